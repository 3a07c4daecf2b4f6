"""Hazard exposure: settlements' coverage-weighted statistics and the value under each household.

For every hazard raster (CONTRACT.md §3) and every scenario of a stack:

- per settlement, on the raster's own grid with the polygon reprojected to the raster's CRS
  (vectors are reprojected, never the raster), each cell weighted by the exact fraction of its
  area inside the polygon and nodata cells left out (CONTRACT.md §5):

  ``<name>_coverage``
      the share of the settlement's area that the raster models: covered by cells with data,
      0 to 1; NaN ("no coverage") when the settlement lies wholly outside the raster or only
      over nodata (and then every other column is NaN too, never 0).
  ``<name>_mean``
      the coverage-weighted mean over the modelled area, sum(w * v) / sum(w) (for a ``class``
      raster, the mean class): ``flood_mean`` is CONTRACT.md's ``flood_depth_mean``.
  ``<name>_max``
      the highest value of a cell with data that the polygon touches (coverage > 0).
  ``<name>_area_share_<threshold>``
      the share of the *modelled* area at or above each threshold, sum(w * [v >= t]) / sum(w):
      ``flood_area_share_exposed`` is CONTRACT.md's ``flood_area_share``.
  ``<name>_class_<k>_share`` (``class`` rasters)
      the share of the modelled area in class ``k``.

- per household, the value of the cell holding its point (NaN for nodata or outside the raster),
  and for each threshold a nullable boolean ``<name>_<threshold>``: value >= threshold, NA when
  the value is unknown (``flood_exposed``, ``flood_high`` of CONTRACT.md §4).

A stack of scenarios (one file whose bands, or NetCDF dimension, are return periods or named
scenarios) gives the same columns per scenario, ``<name>_rp<T>_...`` or ``<name>_<scenario>_...``,
and for return periods the expected annual value of each, ``<name>_expected_annual_...``
(see :func:`expected_annual`).

How it is fast: the polygons and points are converted once to pixel space; only the raster tiles
(blocks) that a settlement's bounding box or a household touches are read, each exactly once, by
a pool of threads (GDAL's decompression and the compiled kernels release the GIL); each tile is
handed with the settlements and households it holds to the kernels of
:mod:`profiling._coverage`, which compute exact cell coverage fractions (the quantity exactextract
computes, by another route, see there) and accumulate the statistics in columnar arrays. Memory
is the accumulators plus one tile per thread, whatever the raster's size. Weights are fractions
of cells, so the cells of a geographic (degree) raster count alike, as in exactextract.

I/O stays at the edge: :func:`open_hazard` opens a configured raster (through rioxarray, so a
stack is one input); :func:`layer_from_array` wraps an in-memory ``xarray.DataArray``; the
computation itself never opens a path. The pipeline calls :func:`exposure` (or its two halves
:func:`settlement_exposure` and :func:`household_values`); a Dask backend calls the same
functions on partitions of settlements or households, whose results concatenate.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shapely
from affine import Affine
from pyproj import CRS

from profiling import _coverage as K
from profiling._errors import BoundaryError, HazardError
from profiling.config import HazardSource
from profiling.join import box_cells, crs_name, project_points, usable_cores

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

log = logging.getLogger(__name__)

WGS84 = CRS.from_epsg(4326)
#: Tile edge (cells) used when a raster's blocks are whole rows (striped files, ASCII grids).
TILE = 512
#: GDAL block cache while scanning (MiB): every block is read once, so caching buys nothing.
GDAL_CACHE_MIB = 64
# GDAL sizes its block cache once, when it first reads a raster block, from this variable (its
# default, 5 % of the machine's memory, would hold 1.2 GiB of tiles here): tiles are read once
# each, so a small cache loses nothing. A value set by the user stands.
os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHE_MIB))
#: Integer values taken as classes of a ``class`` raster whose classes are not configured.
DEFAULT_CLASSES = np.arange(256, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Opening rasters (the only I/O of this module)
# --------------------------------------------------------------------------------------------

Reader = Callable[[int, int, int, int], np.ndarray]


@dataclass
class HazardLayer:
    """A hazard raster ready to scan: its grid, the scenarios of its stack, and a way to read a
    window ``(row0, row1, col0, col1)`` as a ``(layers, rows, cols)`` array.

    ``open_reader`` returns a reader for one thread (each thread gets its own file handle);
    ``parallel`` says whether readers may run at the same time.
    """

    name: str
    kind: str
    crs: CRS
    transform: Affine
    shape: tuple[int, int]
    nodata: float | None
    dtype: np.dtype
    open_reader: Callable[[], tuple[Reader, Callable[[], None]]]
    labels: list[str] = field(default_factory=list)
    return_periods: list[float] | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    classes: list[float] | None = None
    tile_shape: tuple[int, int] = (TILE, TILE)
    parallel: bool = True
    source: str = ""

    @property
    def n_layers(self) -> int:
        """Scenarios in the stack (1 for a single raster)."""
        return max(1, len(self.labels))

    def prefixes(self) -> list[str]:
        """Column prefix of each layer: ``<name>`` or ``<name>_<scenario>``."""
        if not self.labels:
            return [self.name]
        return [f"{self.name}_{lab}" for lab in self.labels]


def _label(value: Any, return_period: bool) -> str:
    if return_period:
        v = float(value)
        return f"rp{int(v)}" if v.is_integer() else f"rp{v:g}".replace(".", "p")
    text = re.sub(r"[^0-9a-zA-Z]+", "_", str(value)).strip("_").lower()
    return text or "layer"


def warm() -> None:
    """Import what :func:`open_hazard` needs (rioxarray brings xarray and dask: about a second),
    so that a run can do it on a thread while its exports are parsed."""
    import rasterio  # noqa: F401
    import rioxarray  # noqa: F401


def open_hazard(source: HazardSource) -> HazardLayer:
    """Open a configured hazard raster lazily through rioxarray (metadata only).

    A single-band file is one layer; ``band`` picks one band of a multi-band file; ``dimension``
    declares a stack: the bands of a GeoTIFF (``dimension: band``) or a NetCDF dimension that GDAL
    exposes as bands (``return_period``, ``scenario``, ...), labelled by ``return_periods`` or
    ``scenarios`` when given, else by the dimension's coordinate or the band descriptions.
    """
    import rasterio
    import rioxarray

    path = Path(source.path)
    if not path.exists():
        raise HazardError(path, f"hazard raster {source.name!r} does not exist")
    try:
        opened = rioxarray.open_rasterio(path, cache=False, parse_coordinates=False,
                                         variable=source.variable)
    except Exception as exc:  # rasterio raises several kinds
        raise HazardError(path, f"cannot be read as a raster ({exc.__class__.__name__}: "
                                f"{str(exc).splitlines()[0][:200]})") from None
    if isinstance(opened, list):
        raise HazardError(path, "holds several groups of rasters; name the one to use")
    if not hasattr(opened, "dims") or not hasattr(opened, "rio"):
        raise HazardError(path, "is not a raster")
    da = opened
    if hasattr(da, "data_vars"):  # a Dataset: one variable per subdataset
        names = list(da.data_vars)
        if len(names) != 1:
            raise HazardError(path, f"holds the variables {', '.join(map(str, names))}; name "
                                    "the one to use with 'variable'")
        da = da[names[0]]
    src = str(da.encoding.get("source", path))
    y_dim, x_dim = da.rio.y_dim, da.rio.x_dim
    other = [d for d in da.dims if d not in (y_dim, x_dim)]
    if len(other) > 1:
        raise HazardError(path, f"has the dimensions {', '.join(map(str, da.dims))}; a hazard is "
                                "a raster or one stack of scenarios")
    stack_dim = other[0] if other else None
    # the bands of a GeoTIFF may be declared as "band" or as what they hold
    if source.dimension not in (None, "band", stack_dim) and not (
            stack_dim == "band" and source.dimension in ("return_period", "scenario")):
        raise HazardError(path, f"has no dimension {source.dimension!r}; its layers lie along "
                                f"{stack_dim!r}")
    n = int(da.sizes[stack_dim]) if stack_dim else 1
    bands = list(range(1, n + 1))
    labels: list[str] = []
    rps = source.return_periods
    given: list[Any] | None
    if source.dimension is not None or rps or source.scenarios:
        if n < 2 and not (rps or source.scenarios):
            raise HazardError(path, f"is declared a stack of scenarios (dimension "
                                    f"{source.dimension!r}) but holds a single layer")
        given = list(rps or source.scenarios or []) or None
        if given is not None and len(given) != n:
            raise HazardError(path, f"holds {n} layers along {stack_dim!r} but the configuration "
                                    f"lists {len(given)} "
                                    f"{'return periods' if rps else 'scenarios'}")
        if given is None:
            assert stack_dim is not None
            coord = (da[stack_dim].values if stack_dim != "band" else None)
            desc = da.attrs.get("long_name")
            if coord is not None:
                given = list(coord)
            elif isinstance(desc, (tuple, list)) and all(desc):
                given = list(desc)
            else:
                given = list(bands)
            if source.dimension == "return_period" or stack_dim == "return_period":
                if given == bands and coord is None:
                    raise HazardError(path, "the bands are not labelled; list their "
                                            "'return_periods' in the configuration")
                rps = [_years(v, path) for v in given]
        labels = ([_label(v, True) for v in rps] if rps is not None
                  else [_label(v, False) for v in given])
        if len(set(labels)) != len(labels):
            raise HazardError(path, f"scenario labels must be unique; got {labels}")
    elif n > 1:
        if source.band is None:
            raise HazardError(path, f"has {n} bands; choose one with 'band' or declare a stack of "
                                    "scenarios with 'dimension' (and 'return_periods' or "
                                    "'scenarios')")
        if not 1 <= source.band <= n:
            raise HazardError(path, f"has {n} bands; band {source.band} does not exist")
        bands = [source.band]
    elif source.band not in (None, 1):
        raise HazardError(path, f"has a single band; band {source.band} does not exist")
    da.close()
    # the grid as GDAL holds it (rioxarray's transform goes through a deprecated affine path)
    with rasterio.open(src) as ds:
        crs = ds.crs
        transform = ds.transform
        nodata = ds.nodata
        dtype = np.dtype(ds.dtypes[bands[0] - 1])
        block = ds.block_shapes[bands[0] - 1]
        shape = (ds.height, ds.width)
        if ds.count < max(bands):
            raise HazardError(path, f"rioxarray sees {n} layers but GDAL {ds.count} bands")
    if crs is None:
        raise HazardError(path, "has no coordinate reference system; set one (for example with "
                                "gdal_edit.py -a_srs) before using it")
    if transform.b != 0 or transform.d != 0:
        log.info("%s: a rotated grid; cells are measured in its own pixel space", path)

    def open_reader() -> tuple[Reader, Callable[[], None]]:
        ds = rasterio.open(src)

        def read(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
            window = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
            try:
                return ds.read(bands, window=window)
            except rasterio.errors.RasterioError as exc:  # a truncated or corrupt file
                raise HazardError(path, f"cannot read rows {r0}-{r1 - 1}, columns {c0}-{c1 - 1} "
                                        f"({str(exc).splitlines()[0][:160]}): is the file "
                                        "truncated or damaged?") from None

        return read, ds.close

    return HazardLayer(
        name=source.name, kind=source.kind, crs=CRS.from_user_input(crs), transform=transform,
        shape=shape, nodata=None if nodata is None else float(nodata), dtype=dtype,
        open_reader=open_reader, labels=labels, return_periods=rps,
        thresholds=dict(source.thresholds), classes=_classes(source),
        tile_shape=_tile_shape(block, shape), parallel=True, source=str(path))


def _years(value: Any, path: Path) -> float:
    """A return period from a coordinate or a band description (``100``, ``RP100``, ``100yr``)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        found = re.findall(r"\d+(?:\.\d+)?", str(value))
        if len(found) == 1:
            return float(found[0])
    raise HazardError(path, f"cannot read a return period in the label {value!r}; list the "
                            "'return_periods' in the configuration")


def _classes(source: HazardSource) -> list[float] | None:
    return None if source.classes is None else [float(c) for c in source.classes]


def _tile_shape(block: tuple[int, int], shape: tuple[int, int]) -> tuple[int, int]:
    """Read by the file's own blocks; striped files (blocks as wide as the raster) by bands of
    whole rows at least 64 high, so that every strip is decompressed once."""
    bh, bw = max(1, block[0]), max(1, block[1])
    if bw >= shape[1] and shape[1] > TILE:
        return (bh * -(-64 // bh), shape[1])
    if bw >= shape[1]:  # small rasters: one column of tiles
        return (bh * -(-TILE // bh), shape[1])
    return (bh, bw)


def layer_from_array(data: xr.DataArray, name: str, kind: str = "depth",
                     thresholds: dict[str, float] | None = None,
                     classes: Sequence[float] | None = None,
                     dimension: str | None = None,
                     return_periods: Sequence[float] | None = None) -> HazardLayer:
    """Wrap an in-memory (or lazily loaded) ``xarray.DataArray`` with rioxarray's CRS and
    transform as a hazard layer: for notebooks, tests and data made on the fly.

    ``dimension`` names the stack's dimension (its coordinate labels the scenarios; numbers along
    ``return_period`` are return periods in years, or pass ``return_periods``).
    """
    import rioxarray  # noqa: F401  (registers the .rio accessor)

    y_dim, x_dim = data.rio.y_dim, data.rio.x_dim
    if data.rio.crs is None:
        raise HazardError(f"<array {name}>", "has no coordinate reference system (use "
                                             ".rio.write_crs)")
    other = [d for d in data.dims if d not in (y_dim, x_dim)]
    if dimension is None:
        for d in other:
            if data.sizes[d] != 1:
                raise HazardError(f"<array {name}>", f"has {data.sizes[d]} layers along {d!r}; "
                                                     "pass dimension= to read them as a stack")
        arr = data.squeeze([d for d in other]).transpose(y_dim, x_dim).expand_dims("_layer")
        labels: list[str] = []
        rps = None
    else:
        arr = data.transpose(dimension, y_dim, x_dim)
        rps = list(map(float, return_periods)) if return_periods is not None else None
        coord = list(arr[dimension].values)
        if rps is None and dimension == "return_period":
            rps = [float(v) for v in coord]
        labels = [_label(v, rps is not None) for v in (rps if rps is not None else coord)]
    nodata = data.rio.nodata
    if nodata is None:
        nodata = data.rio.encoded_nodata
    with warnings.catch_warnings():  # rioxarray multiplies Affines with the deprecated `*`
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        transform = data.rio.transform(recalc=True)
    lock = threading.Lock()

    def open_reader() -> tuple[Reader, Callable[[], None]]:
        def read(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
            with lock:
                return np.asarray(arr[:, r0:r1, c0:c1].values)

        return read, lambda: None

    return HazardLayer(
        name=name, kind=kind, crs=CRS.from_user_input(data.rio.crs),
        transform=transform, shape=(int(data.sizes[y_dim]),
                                                          int(data.sizes[x_dim])),
        nodata=None if nodata is None else float(nodata), dtype=np.dtype(data.dtype),
        open_reader=open_reader, labels=labels, return_periods=rps,
        thresholds=dict(thresholds or {}),
        classes=None if classes is None else [float(c) for c in classes],
        tile_shape=(TILE, TILE), parallel=False, source=f"<array {name}>")


# --------------------------------------------------------------------------------------------
# Geometry in pixel space
# --------------------------------------------------------------------------------------------

@dataclass
class PixelPolygons:
    """Polygons as ragged arrays in a raster's pixel space (x = column, y = row).

    ``ring_off`` indexes ``xs``/``ys`` per ring (rings closed); ``poly_rings`` indexes rings per
    polygon; ``ring_sign`` makes exteriors count positive and holes negative; ``area`` is each
    polygon's area in cells; ``bbox`` its ``row0, row1, col0, col1`` inside the raster (end
    exclusive; empty when outside).
    """

    xs: np.ndarray
    ys: np.ndarray
    ring_off: np.ndarray
    poly_rings: np.ndarray
    ring_sign: np.ndarray
    area: np.ndarray
    bbox: np.ndarray


def to_pixels(geoms: np.ndarray, transform: Affine, shape: tuple[int, int]) -> PixelPolygons:
    """Polygons (in the raster's CRS) to pixel space, with their areas and bounding boxes."""
    coords, ring_off, poly_rings, exterior = K.ragged_polygons(geoms)
    inv = ~transform
    x, y = coords[:, 0], coords[:, 1]
    px = inv.a * x + inv.b * y + inv.c
    py = inv.d * x + inv.e * y + inv.f
    px = np.ascontiguousarray(px, dtype=np.float64)
    py = np.ascontiguousarray(py, dtype=np.float64)
    n_rings = len(ring_off) - 1
    # shoelace per ring (in pixel space)
    if len(px) > 1:
        cross = px[:-1] * py[1:] - px[1:] * py[:-1]
        starts = ring_off[:-1]
        ends = ring_off[1:] - 1  # last segment of a ring ends at its closing vertex
        csum = np.r_[0.0, np.cumsum(cross)]
        signed = 0.5 * (csum[ends] - csum[starts])
    else:
        signed = np.zeros(n_rings)
    # the winding integral counts a ring positive when its shoelace area is negative
    sign = np.where(exterior, -np.sign(signed), np.sign(signed)).astype(np.float64)
    ring_area = np.where(exterior, np.abs(signed), -np.abs(signed))
    rcs = np.r_[0.0, np.cumsum(ring_area)]
    area = rcs[poly_rings[1:]] - rcs[poly_rings[:-1]]
    n = len(poly_rings) - 1
    bbox = np.zeros((n, 4), np.int64)
    if len(px):
        vstart = ring_off[poly_rings[:-1]]
        vend = ring_off[poly_rings[1:]]
        has = vend > vstart
        idx = np.flatnonzero(has)
        if len(idx):
            ymin = np.minimum.reduceat(py, vstart[idx])
            ymax = np.maximum.reduceat(py, vstart[idx])
            xmin = np.minimum.reduceat(px, vstart[idx])
            xmax = np.maximum.reduceat(px, vstart[idx])
            # reduceat runs to the next start: the polygons are contiguous and ordered
            bbox[idx, 0] = np.clip(np.floor(ymin), 0, shape[0])
            bbox[idx, 1] = np.clip(np.ceil(ymax), 0, shape[0])
            bbox[idx, 2] = np.clip(np.floor(xmin), 0, shape[1])
            bbox[idx, 3] = np.clip(np.ceil(xmax), 0, shape[1])
    return PixelPolygons(px, py, ring_off, poly_rings, sign, area, bbox)


# --------------------------------------------------------------------------------------------
# The scan: every touched tile read once, by a pool of threads
# --------------------------------------------------------------------------------------------

@dataclass
class ScanResult:
    """Accumulators ``(layers, polygons, columns)`` (see :mod:`profiling._coverage`) and the
    cell values under the points ``(layers, points)``."""

    acc: np.ndarray
    values: np.ndarray
    thresholds: list[str]
    classes: np.ndarray
    tiles_read: int = 0


def _threads(threads: int | None) -> int:
    return max(1, threads) if threads is not None else usable_cores()


@dataclass
class PixelPoints:
    """Points as raster cells, grouped by tile: ``rows``/``cols`` per point, ``order`` (the
    points inside the raster in tile order), ``start`` (offsets of each tile in ``order``) and
    ``extent`` (per tile, the rows and columns its points span: row0, row1, col0, col1)."""

    rows: np.ndarray
    cols: np.ndarray
    order: np.ndarray
    start: np.ndarray
    extent: np.ndarray

    @property
    def n(self) -> int:
        """Number of points (inside the raster or not)."""
        return len(self.rows)


def _tile_grid(layer: HazardLayer) -> tuple[int, int, int, int]:
    th, tw = layer.tile_shape
    return th, tw, -(-layer.shape[1] // tw), -(-layer.shape[0] // th)


def pixel_points(x: np.ndarray, y: np.ndarray, layer: HazardLayer) -> PixelPoints:
    """Points in the raster's CRS to cells (the cell whose closed-open extent holds the point:
    on an edge, the cell right of / below it) grouped by tile."""
    th, tw, ntx, nty = _tile_grid(layer)
    n = len(x)
    rows = np.empty(n, np.int64)
    cols = np.empty(n, np.int64)
    tile = np.empty(n, np.int64)
    inv = ~layer.transform
    with K.PARALLEL:
        K.point_cells(np.ascontiguousarray(x, np.float64), np.ascontiguousarray(y, np.float64),
                      np.array([inv.a, inv.b, inv.c, inv.d, inv.e, inv.f]), layer.shape[0],
                      layer.shape[1], th, tw, ntx, rows, cols, tile)
    return PixelPoints(rows, cols, *K.group_by_tile(tile, rows, cols, ntx * nty))


def cell_points(rows: np.ndarray, cols: np.ndarray, layer: HazardLayer) -> PixelPoints:
    """Given cells (row, column) grouped by tile; cells outside the raster are left out."""
    th, tw, ntx, nty = _tile_grid(layer)
    rows = np.ascontiguousarray(rows, np.int64)
    cols = np.ascontiguousarray(cols, np.int64)
    inside = (rows >= 0) & (rows < layer.shape[0]) & (cols >= 0) & (cols < layer.shape[1])
    tile = np.where(inside, (rows // th) * ntx + cols // tw, -1)
    return PixelPoints(rows, cols, *K.group_by_tile(tile, rows, cols, ntx * nty))


def scan(layer: HazardLayer, polygons: PixelPolygons | None, points: PixelPoints | None,
         threads: int | None = None, on_tiles: Callable[[int], None] | None = None,
         on_tile: Callable[[int], None] | None = None) -> ScanResult:
    """Read the tiles that the polygons' bounding boxes and the points' cells touch, once each
    (only the part of each tile they use), and accumulate the zonal statistics and the point
    values, on ``threads`` threads (each with its own file handle and accumulators)."""

    nl = layer.n_layers
    th, tw, ntx, _ = _tile_grid(layer)
    nrows, ncols = layer.shape
    tnames = list(layer.thresholds)
    tvals = np.array([layer.thresholds[k] for k in tnames], np.float64)
    if layer.kind == "class":
        classes = (np.array(sorted(layer.classes), np.float64) if layer.classes is not None
                   else DEFAULT_CLASSES)
    else:
        classes = np.zeros(0, np.float64)
    n_poly = 0 if polygons is None else len(polygons.area)
    width = K.ACC_FIRST + len(tvals) + len(classes)
    big = np.iinfo(np.int64).max

    # (polygon, tile) pairs from the bounding boxes, sorted by tile
    if n_poly:
        assert polygons is not None
        bb = polygons.bbox
        ids = np.flatnonzero((bb[:, 1] > bb[:, 0]) & (bb[:, 3] > bb[:, 2]))
        tr0, tr1 = bb[ids, 0] // th, (bb[ids, 1] - 1) // th
        tc0, tc1 = bb[ids, 2] // tw, (bb[ids, 3] - 1) // tw
        pair_poly, pair_tile = box_cells(ids, tr0, tr1, tc0, tc1, ntx)
    else:
        pair_poly = pair_tile = np.zeros(0, np.int64)
    if points is not None:
        pt_count = np.diff(points.start)
        pt_tiles = np.flatnonzero(pt_count)
    else:
        pt_tiles = np.zeros(0, np.int64)
    tiles = np.union1d(np.unique(pair_tile), pt_tiles)
    poly_lo = np.searchsorted(pair_tile, tiles, "left")
    poly_hi = np.searchsorted(pair_tile, tiles, "right")

    # the window of each tile that its polygons and points use
    t_r0 = (tiles // ntx) * th
    t_c0 = (tiles % ntx) * tw
    t_r1 = np.minimum(t_r0 + th, nrows)
    t_c1 = np.minimum(t_c0 + tw, ncols)
    win = np.empty((len(tiles), 4), np.int64)
    win[:, 0], win[:, 1], win[:, 2], win[:, 3] = big, -big, big, -big
    has_poly = poly_hi > poly_lo
    if has_poly.any():
        assert polygons is not None
        pb = polygons.bbox[pair_poly]
        lo = poly_lo[has_poly]
        win[has_poly, 0] = np.minimum.reduceat(pb[:, 0], lo)
        win[has_poly, 1] = np.maximum.reduceat(pb[:, 1], lo)
        win[has_poly, 2] = np.minimum.reduceat(pb[:, 2], lo)
        win[has_poly, 3] = np.maximum.reduceat(pb[:, 3], lo)
    if points is not None and len(pt_tiles):
        pe = points.extent[tiles]
        has_pt = pt_count[tiles] > 0
        win[has_pt, 0] = np.minimum(win[has_pt, 0], pe[has_pt, 0])
        win[has_pt, 1] = np.maximum(win[has_pt, 1], pe[has_pt, 1])
        win[has_pt, 2] = np.minimum(win[has_pt, 2], pe[has_pt, 2])
        win[has_pt, 3] = np.maximum(win[has_pt, 3], pe[has_pt, 3])
    win[:, 0] = np.maximum(win[:, 0], t_r0)
    win[:, 1] = np.minimum(win[:, 1], t_r1)
    win[:, 2] = np.maximum(win[:, 2], t_c0)
    win[:, 3] = np.minimum(win[:, 3], t_c1)

    n_pts = 0 if points is None else points.n
    values = np.full((nl, n_pts), np.nan)
    nodata, has_nodata = _nodata(layer.nodata, layer.dtype)
    empty = np.zeros(0, np.int64)
    p_rows = points.rows if points is not None else empty
    p_cols = points.cols if points is not None else empty
    p_order = points.order if points is not None else empty
    p_start = points.start if points is not None else np.zeros(1, np.int64)
    n_threads = min(_threads(threads), max(1, len(tiles))) if layer.parallel else 1
    cursor = iter(range(len(tiles)))
    if on_tiles is not None:
        on_tiles(len(tiles))
    cursor_lock = threading.Lock()
    accs: list[np.ndarray] = []
    poly_args: tuple[np.ndarray, ...] = ()
    if polygons is not None:
        poly_args = (polygons.xs, polygons.ys, polygons.ring_off, polygons.ring_sign,
                     polygons.poly_rings, polygons.bbox)

    def work() -> None:
        acc = np.zeros((nl, n_poly, width))
        acc[:, :, K.ACC_MAX] = -np.inf
        buf = np.zeros((th, tw))
        mark = np.zeros((th, tw), np.uint8)
        read, close = layer.open_reader()
        try:
            while True:
                with cursor_lock:
                    i = next(cursor, None)
                if i is None:
                    break
                r0, r1, c0, c1 = (int(v) for v in win[i])
                data = read(r0, r1, c0, c1)
                if data.ndim == 2:
                    data = data[None]
                if has_poly[i]:
                    K.zonal_tile(data, r0, c0, nodata, has_nodata,  # type: ignore[call-arg]
                                 pair_poly[poly_lo[i]:poly_hi[i]], *poly_args, tvals, classes,
                                 acc, buf, mark)
                t = int(tiles[i])
                if points is not None and p_start[t + 1] > p_start[t]:
                    K.sample_tile(data, r0, c0, nodata, has_nodata, p_rows, p_cols,
                                  p_order[p_start[t]:p_start[t + 1]], values)
                if on_tile is not None:
                    on_tile(1)
        finally:
            close()
        accs.append(acc)

    _on_threads(work, n_threads)
    acc = accs[0]
    for other in accs[1:]:
        mx = np.fmax(acc[:, :, K.ACC_MAX], other[:, :, K.ACC_MAX])
        acc += other
        acc[:, :, K.ACC_MAX] = mx
    return ScanResult(acc, values, tnames, classes, len(tiles))


@dataclass
class Preview:
    """A raster read at display resolution: every ``step``-th cell (the cell nearest each
    output pixel's centre), nodata as NaN, first layer of a stack; ``transform`` places it in
    the raster's CRS."""

    values: np.ndarray
    transform: Affine
    crs: CRS
    step: int


def preview(layer: HazardLayer, max_side: int = 2048, threads: int | None = None,
            bounds: tuple[float, float, float, float] | None = None) -> Preview:
    """``layer`` decimated to at most ``max_side`` pixels on its long side, for a map; only
    the part within ``bounds`` (x0, y0, x1, y1 in the raster's CRS) when given.

    Tiles are read one per thread, each reduced to its sampled cells as soon as it is read, so
    memory is the output plus one tile per thread whatever the raster's size (a raster of
    20,000² cells is read in 512² tiles into a 2,000² preview)."""

    nrows, ncols = layer.shape
    r0, r1, c0, c1 = 0, nrows, 0, ncols
    if bounds is not None:
        inv = ~layer.transform
        xs = [bounds[0], bounds[2], bounds[0], bounds[2]]
        ys = [bounds[1], bounds[1], bounds[3], bounds[3]]
        cc, rr = zip(*(inv @ (x, y) for x, y in zip(xs, ys, strict=True)), strict=True)
        r0, r1 = max(0, int(np.floor(min(rr)))), min(nrows, int(np.ceil(max(rr))))
        c0, c1 = max(0, int(np.floor(min(cc)))), min(ncols, int(np.ceil(max(cc))))
        if r1 <= r0 or c1 <= c0:  # the raster lies outside the bounds: nothing to show
            return Preview(np.full((0, 0), np.nan, np.float32), layer.transform, layer.crs, 1)
    step = max(1, -(-max(r1 - r0, c1 - c0) // max_side))
    rows = np.arange(r0 + step // 2, r1, step)
    cols = np.arange(c0 + step // 2, c1, step)
    th, tw, ntx, nty = _tile_grid(layer)
    nodata, has_nodata = _nodata(layer.nodata, layer.dtype)
    out = np.full((len(rows), len(cols)), np.nan, np.float32)
    # the tiles that hold a sampled row and a sampled column, with the cells they hold
    row_tiles = [(t, rows[(rows >= t * th) & (rows < (t + 1) * th)]) for t in range(nty)]
    col_tiles = [(t, cols[(cols >= t * tw) & (cols < (t + 1) * tw)]) for t in range(ntx)]
    jobs = [(rs, cs) for _, rs in row_tiles if len(rs) for _, cs in col_tiles if len(cs)]
    cursor = iter(range(len(jobs)))
    lock = threading.Lock()

    def work() -> None:
        read, close = layer.open_reader()
        try:
            while True:
                with lock:
                    i = next(cursor, None)
                if i is None:
                    break
                rs, cs = jobs[i]
                data = read(int(rs[0]), int(rs[-1]) + 1, int(cs[0]), int(cs[-1]) + 1)
                data = (data[0] if data.ndim == 3 else data)[rs - rs[0]][:, cs - cs[0]]
                v = data.astype(np.float32)
                if has_nodata:
                    v[data == nodata] = np.nan
                out[np.ix_((rs - r0 - step // 2) // step, (cs - c0 - step // 2) // step)] = v
        finally:
            close()

    _on_threads(work, min(_threads(threads), max(1, len(jobs))) if layer.parallel else 1)
    return Preview(out, layer.transform @ Affine.translation(c0, r0) @ Affine.scale(step),
                   layer.crs, step)


def _on_threads(work: Callable[[], None], n_threads: int) -> None:
    """Run ``work`` (a loop that takes tiles from a shared cursor) on ``n_threads`` threads,
    each with its own file handle, GDAL's block cache capped; errors reach the caller."""
    import rasterio

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MIB):
        if n_threads == 1:
            work()
        else:
            with ThreadPoolExecutor(n_threads) as pool:
                for f in [pool.submit(work) for _ in range(n_threads)]:
                    f.result()


def _nodata(nodata: float | None, dtype: np.dtype) -> tuple[float, bool]:
    """The nodata value as the cells hold it (cast to the band's type, as GDAL compares)."""
    if nodata is None or np.isnan(nodata):
        return 0.0, False  # NaN cells are always left out
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if not float(nodata).is_integer() or not info.min <= nodata <= info.max:
            return 0.0, False
        return float(nodata), True
    return float(np.asarray(nodata).astype(dtype)), True


# --------------------------------------------------------------------------------------------
# From accumulators to frames
# --------------------------------------------------------------------------------------------

def _zone_frame(layer: HazardLayer, res: ScanResult, area: np.ndarray,
                index: pd.Index) -> pd.DataFrame:
    cols: dict[str, np.ndarray] = {}
    per_layer: list[dict[str, np.ndarray]] = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for b, prefix in enumerate(layer.prefixes()):
            a = res.acc[b]
            valid = a[:, K.ACC_VALID]
            known = valid > 0
            out: dict[str, np.ndarray] = {}
            out["coverage"] = np.where(known & (area > 0), np.minimum(valid / area, 1.0), np.nan)
            # for classes, the mean class over the modelled area (CONTRACT.md §3 gives every
            # hazard a mean): a summary of ordinal classes, read beside their shares
            out["mean"] = np.where(known, a[:, K.ACC_SUM] / valid, np.nan)
            out["max"] = np.where(known & np.isfinite(a[:, K.ACC_MAX]), a[:, K.ACC_MAX],
                                  np.nan)
            for k, t in enumerate(res.thresholds):
                out[f"area_share_{t}"] = np.where(known, a[:, K.ACC_FIRST + k] / valid, np.nan)
            base = K.ACC_FIRST + len(res.thresholds)
            for k, c in enumerate(res.classes):
                share = np.where(known, a[:, base + k] / valid, np.nan)
                explicit = layer.classes is not None
                if explicit or np.nansum(share) > 0:
                    out[f"class_{_class_label(c)}_share"] = share
            if layer.kind == "class" and layer.classes is None:
                counted = sum(a[:, base + k] for k in range(len(res.classes)))
                if np.any(known & (counted < valid * (1 - 1e-9))):
                    log.warning("%s: some cells hold values that are not integer classes 0-255; "
                                "they count in the modelled area but in no class (declare "
                                "'classes')", layer.source)
            per_layer.append(out)
            for key, col in out.items():
                cols[f"{prefix}_{key}"] = col
    if layer.return_periods is not None and len(per_layer) > 1:
        nan = np.full(len(index), np.nan)
        for key in [k for k in per_layer[0] if k != "coverage"]:
            stack = np.vstack([p.get(key, nan) for p in per_layer])
            cols[f"{layer.name}_expected_annual_{key}"] = expected_annual(stack,
                                                                           layer.return_periods)
    return pd.DataFrame(cols, index=index)


_CLASS_COLUMN = re.compile(r"^(.+)_class_(.+)_share$")


def concat_zones(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Settlement exposure computed in parts (chunks of settlements, on Dask workers) as one
    frame, the same as one computation would give. A class raster without declared classes
    has a column per class found in a part's cells: a class absent from a part is 0 there
    (where the raster models the settlement), not unknown, and its column stands with its
    layer's, in class order."""
    zones = pd.concat(list(parts))
    placed: dict[str, float] = {}
    for i, c in enumerate(zones.columns):
        m = _CLASS_COLUMN.match(str(c))
        if m is None:
            placed[str(c)] = float(i)
            continue
        coverage = f"{m[1]}_coverage"
        if coverage not in zones.columns:  # a stack's expected annual class share: any layer's
            layer = m[1].removesuffix("_expected_annual")
            coverage = next((str(x) for x in zones.columns if str(x).startswith(f"{layer}_")
                             and str(x).endswith("_coverage")), coverage)
        if coverage in zones.columns:
            fill = zones[coverage].notna() & zones[c].isna()
            zones.loc[fill, c] = 0.0
    base = dict(placed)  # the columns that are not classes
    for c in zones.columns:
        m = _CLASS_COLUMN.match(str(c))
        if m is not None:
            own = [v for k, v in base.items() if k.startswith(f"{m[1]}_")
                   and not k.startswith(f"{m[1]}_expected_annual")]
            try:
                rank = float(m[2].replace("p", ".").replace("m", "-"))
            except ValueError:
                rank = 0.0
            placed[str(c)] = max(own, default=len(zones.columns)) + 0.5 + rank * 1e-6
    return zones[sorted(zones.columns, key=lambda c: placed[str(c)])]


def _class_label(c: float) -> str:
    return str(int(c)) if float(c).is_integer() else f"{c:g}".replace(".", "p").replace("-", "m")


def expected_annual(values: np.ndarray, return_periods: Sequence[float]) -> np.ndarray:
    """Expected annual value of a quantity known for several return periods.

    With exceedance probabilities ``p = 1 / T`` (``T`` the return period in years), the expected
    annual value is the area under the curve of the value against ``p`` (the risk curve):

        E = integral from 0 to p_max of x(p) dp

    by the trapezoidal rule between the given scenarios, with ``x`` held at the rarest
    scenario's value between 0 and that scenario's ``p`` (a rarer event is at least as bad) and 0
    for events more frequent than the most frequent scenario (nothing is assumed about them).
    For return periods of 10 and 100 years: ``E = 0.01 * x100 + 0.09 * (x10 + x100) / 2``.
    NaN when any scenario's value is NaN.

    Parameters
    ----------
    values
        ``(scenarios, n)`` array, one row per return period.
    return_periods
        Return periods in years, in the order of the rows.

    Examples
    --------
    >>> float(expected_annual(np.array([[1.0], [2.0]]), [10, 100])[0])
    0.155
    """
    values = np.asarray(values, dtype=np.float64)
    p = 1.0 / np.asarray(return_periods, dtype=np.float64)
    order = np.argsort(p)  # rarest first
    p, x = p[order], values[order]
    total = x[0] * p[0]
    for i in range(1, len(p)):
        total = total + 0.5 * (x[i - 1] + x[i]) * (p[i] - p[i - 1])
    return np.asarray(total, dtype=np.float64)


def _point_frame(layer: HazardLayer, values: np.ndarray, index: pd.Index) -> pd.DataFrame:
    cols: dict[str, Any] = {}
    for b, prefix in enumerate(layer.prefixes()):
        v = values[b]
        cols[prefix] = v
        unknown = np.isnan(v)
        for t, thr in layer.thresholds.items():
            flag = pd.array(v >= thr, dtype="boolean")
            flag[unknown] = pd.NA
            cols[f"{prefix}_{t}"] = flag
    if layer.return_periods is not None and values.shape[0] > 1:
        cols[f"{layer.name}_expected_annual"] = expected_annual(values, layer.return_periods)
    return pd.DataFrame(cols, index=index)


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------

def _settlement_geoms(settlements: gpd.GeoDataFrame) -> tuple[np.ndarray, pd.Index, CRS]:
    if settlements.crs is None:
        raise BoundaryError("settlements", "have no coordinate reference system; set one "
                                           "before measuring hazard exposure")
    if "settlement_id" in settlements.columns:
        index = pd.Index(settlements["settlement_id"].to_numpy(), name="settlement_id")
    else:
        index = pd.Index(settlements.index, name="settlement_id")
    if index.has_duplicates:
        dup = sorted(set(index[index.duplicated()].astype(str)))
        raise BoundaryError("settlements", f"settlement_id must be unique; repeated: "
                                           f"{', '.join(dup[:10])}")
    geoms = np.asarray(settlements.geometry.values, dtype=object).copy()
    missing = shapely.is_missing(geoms)
    geoms[missing] = shapely.Polygon()  # no geometry: no coverage
    kinds = shapely.get_type_id(geoms)
    bad = ~np.isin(kinds, [shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON])
    if bad.any():
        raise BoundaryError("settlements", f"settlement(s) {', '.join(map(str, index[bad][:10]))} "
                                           "are not polygons")
    return geoms, index, CRS.from_user_input(settlements.crs)


def _layers(hazards: Sequence[HazardSource | HazardLayer]) -> list[HazardLayer]:
    layers = [h if isinstance(h, HazardLayer) else open_hazard(h) for h in hazards]
    names = [la.name for la in layers]
    if len(set(names)) != len(names):
        raise ValueError(f"hazard names must be unique; got {names}")
    return layers


def exposure(settlements: gpd.GeoDataFrame | None, lon: np.ndarray | None,
             lat: np.ndarray | None, hazards: Sequence[HazardSource | HazardLayer], *,
             threads: int | None = None,
             points_xy: tuple[np.ndarray, np.ndarray, CRS] | None = None,
             on_tiles: Callable[[int], None] | None = None,
             on_tile: Callable[[int], None] | None = None,
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Settlement and household exposure to every hazard in one pass over the touched tiles
    (``on_tiles`` learns how many tiles a raster will read, ``on_tile`` each one read).

    Parameters
    ----------
    settlements
        Polygons with ``settlement_id`` (or ids as the index), in any CRS; None for none.
    lon, lat
        WGS84 household points (degrees); None for none. NaN for households without a point.
    hazards
        Configured hazard sources (opened with :func:`open_hazard`) or opened layers.
    threads
        Reading and computing threads (default: the usable cores).
    points_xy
        The same points already projected, ``(x, y, crs)`` (e.g. from
        :func:`profiling.join.place`); used for rasters in that CRS instead of projecting again.

    Returns
    -------
    (zones, points)
        :func:`settlement_exposure`'s and :func:`household_values`' frames.
    """
    n_threads = _threads(threads)
    layers = _layers(hazards)
    if settlements is not None:
        geoms, zone_index, zone_crs = _settlement_geoms(settlements)
    else:
        geoms, zone_index, zone_crs = np.empty(0, object), pd.Index([], name="settlement_id"), None
    if lon is not None and lat is not None:
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        if lon.shape != lat.shape:
            raise ValueError("lon and lat must have the same length")
        if points_xy is not None and (len(points_xy[0]) != len(lon)
                                      or len(points_xy[1]) != len(lon)):
            raise ValueError("points_xy must hold the same points as lon and lat")
    zone_frames, point_frames = [], []
    projected: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for layer in layers:
        pix = None
        if len(geoms):
            assert zone_crs is not None
            g = geoms
            if not zone_crs.equals(layer.crs):
                import geopandas as gpd

                g = gpd.GeoSeries(geoms, crs=zone_crs).to_crs(layer.crs).values
            pix = to_pixels(np.asarray(g), layer.transform, layer.shape)
        pts = None
        if lon is not None and lat is not None and len(lon):
            key = layer.crs.to_wkt()
            if key not in projected:
                if (points_xy is not None and points_xy[2] is not None
                        and layer.crs.equals(points_xy[2])):
                    projected[key] = (points_xy[0], points_xy[1])
                else:
                    projected[key] = project_points(lon, lat, layer.crs, n_threads)
            pts = pixel_points(*projected[key], layer)
        res = scan(layer, pix, pts, n_threads, on_tiles=on_tiles, on_tile=on_tile)
        log.info("%s: %d tiles read", layer.source, res.tiles_read)
        if res.tiles_read == 0 and (len(geoms) or (lon is not None and len(lon))):
            log.warning("%s: no settlement or household falls on this raster (in %s; the "
                        "settlements are in %s): every value is unknown; check both CRSs",
                        layer.source, crs_name(layer.crs), crs_name(zone_crs))
        area = pix.area if pix is not None else np.zeros(0)
        zone_frame = _zone_frame(layer, res, area, zone_index)
        coverage = zone_frame.filter(like="_coverage").to_numpy(dtype=float)
        if res.tiles_read and not np.isfinite(res.values).any() and not (
                np.isfinite(coverage) & (coverage > 0)).any():
            log.warning("%s: every cell under the settlements and households is nodata (is "
                        "the raster empty, or its nodata value wrong?): every value is unknown",
                        layer.source)
        zone_frames.append(zone_frame)
        n_pts = 0 if lon is None else len(lon)
        point_frames.append(_point_frame(layer, res.values, pd.RangeIndex(n_pts)))
    zones = (pd.concat(zone_frames, axis=1) if zone_frames
             else pd.DataFrame(index=zone_index))
    points = (pd.concat(point_frames, axis=1) if point_frames
              else pd.DataFrame(index=pd.RangeIndex(0 if lon is None else len(lon))))
    return zones, points


def settlement_exposure(settlements: gpd.GeoDataFrame,
                        hazards: Sequence[HazardSource | HazardLayer], *,
                        threads: int | None = None) -> pd.DataFrame:
    """Each settlement's exposure to each hazard, indexed by ``settlement_id``.

    Columns per hazard ``<name>`` (per scenario ``<name>_<scenario>`` for a stack):
    ``_coverage``, ``_mean``, ``_max``, ``_area_share_<threshold>`` and, for ``class`` rasters,
    ``_class_<k>_share``, all defined in the module's docstring; for return-period stacks also
    ``<name>_expected_annual_<statistic>`` (:func:`expected_annual`). Weights are the exact
    fractions of each cell inside the polygon, reprojected to the raster's CRS.
    """
    zones, _ = exposure(settlements, None, None, hazards, threads=threads)
    return zones


def value_columns(points: pd.DataFrame, hazards: Sequence[HazardSource | HazardLayer]
                  ) -> pd.DataFrame:
    """The columns of :func:`household_values` that households carry into the indicators:
    each hazard's value (for a stack, its value per scenario and the expected annual one),
    without the threshold flags, which the indicators apply from the configuration."""
    names = [h.name for h in hazards]
    keep = [c for c in points.columns
            if any(c == n or c.startswith(f"{n}_") for n in names)
            and pd.api.types.is_float_dtype(points[c])]
    return points[keep]


def household_values(lon: np.ndarray, lat: np.ndarray,
                     hazards: Sequence[HazardSource | HazardLayer], *,
                     threads: int | None = None) -> pd.DataFrame:
    """The value of the cell holding each WGS84 point, and the threshold flags.

    Same length and order as the input (a ``RangeIndex``). Per hazard ``<name>`` (float, NaN for
    nodata or outside the raster) and, per threshold, ``<name>_<threshold>`` (nullable boolean,
    NA when the value is NaN); per scenario for a stack, plus ``<name>_expected_annual`` for
    return periods. A point on the edge between two cells takes the cell right of / below it.
    """
    _, points = exposure(None, lon, lat, hazards, threads=threads)
    return points


def bilinear_values(lon: np.ndarray, lat: np.ndarray, layer: HazardSource | HazardLayer, *,
                    threads: int | None = None) -> np.ndarray:
    """Bilinear interpolation between the four cell centres around each WGS84 point, as InaSAFE
    3.x sampled hazard rasters (NaN when a neighbour is nodata or outside the raster, so outside
    the grid of cell centres). ``(layers, points)``. For comparisons with such tools; the
    pipeline's rule is the value of the cell holding the point.
    """
    (la,) = _layers([layer])
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    x, y = project_points(lon, lat, la.crs, 1)
    inv = ~la.transform
    fc = inv.a * x + inv.b * y + inv.c - 0.5
    fr = inv.d * x + inv.e * y + inv.f - 0.5
    c0 = np.floor(fc)
    r0 = np.floor(fr)
    ac = fc - c0
    ar = fr - r0
    c0i, r0i = c0.astype(np.int64), r0.astype(np.int64)
    rows = np.concatenate([r0i, r0i, r0i + 1, r0i + 1])
    cols = np.concatenate([c0i, c0i + 1, c0i, c0i + 1])
    res = scan(la, None, cell_points(rows, cols, la), threads)
    n = len(x)
    v = res.values.reshape(res.values.shape[0], 4, n)
    return ((1 - ar) * ((1 - ac) * v[:, 0] + ac * v[:, 1])
            + ar * ((1 - ac) * v[:, 2] + ac * v[:, 3]))
