"""Households to settlements: boundaries checked on entry, and exact point-in-polygon placement.

Boundaries are checked before anything uses them (:func:`inspect_boundaries`): a missing CRS,
coordinates that contradict the CRS, missing columns, duplicate or empty ids and non-polygons are
refused; invalid polygons are refused with GEOS's reason unless repair is asked for (then
``shapely.make_valid`` repairs them and the area change is logged); overlaps between settlements
are reported with their area in square metres.

A point on a boundary shared by two settlements (or in their overlap) goes to the one whose
``settlement_id`` sorts first, so the answer never depends on the order of the boundary file. A
point inside no settlement keeps the id of the nearest one and its distance in metres.
Placement is exact: a compiled crossing-number test decides every point whose float64
orientation tests are beyond their rounding error (the same rule GEOS applies), and GEOS itself
decides the rare rest.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from profiling import _coverage as K
from profiling._errors import BoundaryError

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("settlement_id", "name")


@dataclass
class Settlements:
    """Settlement polygons sorted by id: in their own CRS for exact containment, and in a metric
    CRS (their own if projected, else their UTM zone) for distances."""

    frame: pd.DataFrame
    metric: gpd.GeoSeries | None = None
    tree: shapely.STRtree | None = None
    metric_tree: shapely.STRtree | None = None
    _pip: _PipIndex | None = field(default=None, repr=False, compare=False)
    _metric_pip: _PipIndex | None = field(default=None, repr=False, compare=False)

    @property
    def pip_index(self) -> _PipIndex:
        """The compiled point-in-polygon index, in the boundaries' CRS (built on first use)."""
        if self._pip is None:
            self._pip = _PipIndex.build(np.asarray(self.frame.geometry.values))
        return self._pip

    @property
    def metric_index(self) -> _PipIndex:
        """The same in the metric CRS, for distances (built on first use)."""
        if self._metric_pip is None:
            assert self.metric is not None
            self._metric_pip = _PipIndex.build(np.asarray(self.metric.values))
        return self._metric_pip

    @property
    def has_geometry(self) -> bool:
        """False for a plain list of settlements (surveys placed by a column)."""
        return self.tree is not None

    @property
    def ids(self) -> np.ndarray:
        """Settlement ids in index order."""
        return self.frame["settlement_id"].to_numpy(dtype=object)

    @property
    def crs(self) -> CRS:
        """The boundaries' own CRS."""
        return CRS.from_user_input(self.frame.crs)

    def lookup(self) -> dict[str, str]:
        """Casefolded id or name -> settlement id, for surveys placed by a column."""
        out: dict[str, str] = {}
        for sid, name in zip(self.frame["settlement_id"], self.frame["name"], strict=True):
            out.setdefault(str(name).strip().casefold(), sid)
        for sid in self.frame["settlement_id"]:
            out[str(sid).strip().casefold()] = sid
        return out


def read_boundaries(path: str | Path, layer: str | None = None,
                    repair: bool = False) -> pd.DataFrame:
    """Read settlement boundaries from any vector file GDAL reads (or a CSV list of them), and
    check them (:func:`check_boundaries`; ``repair`` repairs invalid polygons)."""
    import pyogrio

    path = Path(path)
    if not path.exists():
        raise BoundaryError(path, "the boundary file does not exist")
    if path.suffix.lower() == ".csv":
        return read_settlement_list(path)
    try:
        gdf = pyogrio.read_dataframe(path, layer=layer)
    except Exception as exc:  # pyogrio raises several kinds
        raise BoundaryError(path, f"cannot be read ({exc.__class__.__name__}: "
                                  f"{str(exc).splitlines()[0][:200]})") from None
    if len(gdf) == 0:
        raise BoundaryError(path, f"the layer {layer or '(the first)'} holds no settlements: "
                                  "there is nothing to place households in")
    return check_boundaries(gdf, str(path), repair=repair)


def read_settlement_list(path: Path) -> pd.DataFrame:
    """A CSV of ``settlement_id`` and ``name``, for surveys placed by a column (no geometry)."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BoundaryError(path, f"not a readable CSV settlement list ({exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise BoundaryError(path, f"lacks the column(s) {', '.join(missing)}")
    ids = table["settlement_id"].str.strip()
    if (ids == "").any():
        raise BoundaryError(path, f"row(s) {(ids.index[ids == ''] + 2).tolist()[:10]} have no "
                                  "settlement_id")
    dup = sorted(set(ids[ids.duplicated()]))
    if dup:
        raise BoundaryError(path, f"settlement_id must be unique; repeated: {', '.join(dup)}")
    return table.assign(settlement_id=ids)


@dataclass
class BoundaryCheck:
    """Checked boundaries and what the check found.

    ``findings`` has one row per finding: ``settlement_id``, ``other_id`` (the other settlement
    of an overlap), ``problem`` (``invalid_repaired`` or ``overlap``), ``detail`` (GEOS's reason
    for an invalid polygon) and ``area_m2`` (the overlap's area, or the area a repair changed).
    """

    frame: gpd.GeoDataFrame
    findings: pd.DataFrame


FINDING_COLUMNS = ["settlement_id", "other_id", "problem", "detail", "area_m2"]
#: Overlaps smaller than this (m²) are rounding along shared edges, not overlaps.
MIN_OVERLAP_M2 = 0.01


def check_crs_match(crs_a: object, crs_b: object, what_a: str, what_b: str) -> None:
    """Refuse two inputs that must share a CRS but do not (or that lack one), naming both."""
    missing = [w for c, w in ((crs_a, what_a), (crs_b, what_b)) if c is None]
    if missing:
        raise BoundaryError(missing[0], "has no coordinate reference system; "
                                        f"{what_b if missing[0] == what_a else what_a} is in "
                                        f"{crs_name(crs_b if missing[0] == what_a else crs_a)}")
    a, b = CRS.from_user_input(crs_a), CRS.from_user_input(crs_b)
    if not a.equals(b, ignore_axis_order=True):
        raise BoundaryError(what_a, f"is in {crs_name(a)} but {what_b} is in {crs_name(b)}; "
                                    "they must be in the same coordinate reference system")


def crs_name(crs: object) -> str:
    """A CRS as people read it: ``EPSG:32748 (WGS 84 / UTM zone 48S)``."""
    if crs is None:
        return "no CRS"
    c = CRS.from_user_input(crs)
    epsg = c.to_epsg()
    return f"EPSG:{epsg} ({c.name})" if epsg else c.name


def _check_coordinates(gdf: gpd.GeoDataFrame, source: str) -> None:
    """Coordinates that cannot be in the declared CRS: degrees in a projected CRS, or values
    beyond ±180/±90 in a geographic one (a wrong or missing .prj)."""
    crs = CRS.from_user_input(gdf.crs)
    if gdf.geometry.isna().all():
        return
    xmin, ymin, xmax, ymax = gdf.geometry.total_bounds
    if not np.all(np.isfinite([xmin, ymin, xmax, ymax])):
        return
    degrees = -180 <= xmin <= xmax <= 180 and -90 <= ymin <= ymax <= 90
    if crs.is_geographic and not degrees:
        raise BoundaryError(source, f"declares the geographic CRS {crs_name(crs)} but its "
                                    f"coordinates reach ({xmin:.0f}, {ymin:.0f}) to ({xmax:.0f}, "
                                    f"{ymax:.0f}), which are not degrees: the CRS is wrong")
    if crs.is_projected and degrees and max(xmax - xmin, ymax - ymin) < 5:
        raise BoundaryError(source, f"declares the projected CRS {crs_name(crs)} but its "
                                    f"coordinates ({xmin:.4f}, {ymin:.4f}) to ({xmax:.4f}, "
                                    f"{ymax:.4f}) look like longitude and latitude in degrees "
                                    "(EPSG:4326): the CRS is wrong")


def inspect_boundaries(gdf: gpd.GeoDataFrame, source: str = "boundaries",
                       repair: bool = False) -> BoundaryCheck:
    """Check settlement boundaries on entry; return them with the findings.

    Refused (:class:`profiling.BoundaryError`, every problem of a kind listed at once): no CRS,
    coordinates that contradict the CRS, missing ``settlement_id`` or ``name``, empty or
    repeated ids, features that are not polygons, and invalid polygons (with GEOS's reason)
    unless ``repair`` is true: then ``shapely.make_valid`` repairs them and the change of area
    is logged and listed. Overlaps between settlements are listed with their area (m²) and
    logged; they are allowed (a point in an overlap goes to the first ``settlement_id``).
    """
    if gdf.crs is None or "undefined" in str(CRS.from_user_input(gdf.crs).name).lower():
        raise BoundaryError(source, "has no coordinate reference system; set one (for example "
                                    "in QGIS) before using it")
    if "settlement_id" not in gdf.columns:
        # a shapefile cuts field names at 10 characters
        cut = [c for c in gdf.columns if str(c).lower() in ("settlement", "settlemen")]
        if cut:
            log.info("%s: reading column %r as settlement_id", source, cut[0])
            gdf = gdf.rename(columns={cut[0]: "settlement_id"})
    missing = [c for c in REQUIRED_COLUMNS if c not in gdf.columns]
    if missing:
        raise BoundaryError(source, f"lacks the column(s) {', '.join(missing)}; it has "
                                    f"{', '.join(map(str, gdf.columns))}")
    ids = gdf["settlement_id"].astype("string").str.strip()
    if ids.isna().any() or (ids == "").any():
        bad_id = (ids.isna() | (ids == "")).fillna(True).to_numpy()
        rows = (np.flatnonzero(bad_id) + 1).tolist()[:10]
        raise BoundaryError(source, f"feature(s) {rows} have no settlement_id")
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        raise BoundaryError(source, f"settlement_id must be unique; repeated: "
                                    f"{', '.join(sorted(set(dup.tolist())))}")
    geom = gdf.geometry
    bad = geom.isna() | ~geom.geom_type.isin(["Polygon", "MultiPolygon"])
    if bad.any():
        which = ids[bad.to_numpy()].tolist()[:10]
        raise BoundaryError(source, f"settlement(s) {', '.join(which)} are not polygons")
    _check_coordinates(gdf, source)
    out = gdf.copy()
    out["settlement_id"] = ids.astype(object).to_numpy()
    out["name"] = out["name"].astype("string").fillna(out["settlement_id"]).astype(object)
    findings: list[dict[str, object]] = []
    values = np.asarray(out.geometry.values)
    valid = shapely.is_valid(values)
    metric_crs = _metric_crs(out)
    if not valid.all():
        idx = np.flatnonzero(~valid)
        reasons = shapely.is_valid_reason(values[idx])
        listed = "; ".join(f"{out['settlement_id'].iloc[i]}: {r}"
                           for i, r in zip(idx[:20], reasons[:20], strict=False))
        if not repair:
            raise BoundaryError(source, f"{len(idx)} invalid polygon(s) ({listed}); fix them, "
                                        "or set repair_geometries: true to repair them with "
                                        "shapely.make_valid")
        fixed = np.array([_repair(g) for g in values[idx]], dtype=object)
        before = _areas(values[idx], out.crs, metric_crs)
        after = _areas(fixed, out.crs, metric_crs)
        for i, r, a0, a1 in zip(idx, reasons, before, after, strict=True):
            sid = out["settlement_id"].iloc[i]
            log.warning("%s: settlement %s was invalid (%s); repaired, area %.1f -> %.1f m²",
                        source, sid, r, a0, a1)
            findings.append({"settlement_id": sid, "other_id": None,
                             "problem": "invalid_repaired", "detail": r,
                             "area_m2": float(a1 - a0)})
        values = values.copy()
        values[idx] = fixed
        out = out.set_geometry(gpd.GeoSeries(values, index=out.index, crs=out.crs))
        empty = shapely.is_empty(values)
        if empty.any():
            which = out["settlement_id"].to_numpy()[empty].tolist()[:10]
            raise BoundaryError(source, f"settlement(s) {', '.join(which)} have no area left "
                                        "once repaired")
    findings += _overlaps(out, metric_crs)
    for f in findings:
        if f["problem"] == "overlap":
            log.warning("%s: settlements %s and %s overlap by %.1f m²", source,
                        f["settlement_id"], f["other_id"], f["area_m2"])
    frame = pd.DataFrame(findings, columns=FINDING_COLUMNS)
    out.attrs["boundary_findings"] = frame.to_dict("records")
    return BoundaryCheck(out, frame)


def check_boundaries(gdf: gpd.GeoDataFrame, source: str = "boundaries",
                     repair: bool = False) -> gpd.GeoDataFrame:
    """Check settlement boundaries (:func:`inspect_boundaries`) and return them; the findings
    are logged and kept in ``.attrs["boundary_findings"]``."""
    return inspect_boundaries(gdf, source, repair).frame


def _repair(g: shapely.Geometry) -> shapely.Geometry:
    """make_valid, keeping only the polygonal parts (a collapsed ring is no area)."""
    fixed = shapely.make_valid(g, method="structure", keep_collapsed=False)
    if fixed.geom_type in ("Polygon", "MultiPolygon"):
        return fixed
    parts = [p for p in shapely.get_parts(fixed) if p.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return shapely.Polygon()
    merged = shapely.union_all(parts)
    return merged


def _metric_crs(gdf: gpd.GeoDataFrame) -> CRS:
    crs = CRS.from_user_input(gdf.crs)
    if crs.is_projected:
        return crs
    try:
        return CRS.from_user_input(gdf.estimate_utm_crs())
    except (RuntimeError, ValueError):  # empty or odd extent
        return CRS.from_epsg(6933)  # equal-area world


def _areas(geoms: np.ndarray, crs: object, metric: CRS) -> np.ndarray:
    if CRS.from_user_input(crs).equals(metric):
        return np.asarray(shapely.area(geoms), dtype=float)
    return np.asarray(gpd.GeoSeries(geoms, crs=crs).to_crs(metric).area, dtype=float)


def _overlaps(gdf: gpd.GeoDataFrame, metric: CRS) -> list[dict[str, object]]:
    """Pairs of settlements sharing area, with that area in m²."""
    values = np.asarray(gdf.geometry.values)
    if len(values) < 2:
        return []
    tree = shapely.STRtree(values)
    a, b = tree.query(values, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    if not len(a):
        return []
    inter = shapely.intersection(values[a], values[b])
    area = _areas(inter, gdf.crs, metric)
    ids = gdf["settlement_id"].to_numpy()
    out = []
    for i, j, ar in zip(a, b, area, strict=True):
        if ar > MIN_OVERLAP_M2:
            first, second = sorted([str(ids[i]), str(ids[j])])
            out.append({"settlement_id": first, "other_id": second, "problem": "overlap",
                        "detail": "", "area_m2": float(ar)})
    return out


def prepare(gdf: pd.DataFrame) -> Settlements:
    """Sort boundaries by id and index them in their own CRS and in a metric one."""
    frame = gdf.sort_values("settlement_id", kind="stable").reset_index(drop=True)
    if not isinstance(frame, gpd.GeoDataFrame):
        return Settlements(frame)
    crs = CRS.from_user_input(frame.crs)
    metric = frame.geometry if crs.is_projected else frame.geometry.to_crs(
        frame.estimate_utm_crs())
    return Settlements(frame, metric, shapely.STRtree(frame.geometry.values),
                       shapely.STRtree(metric.values))


@dataclass
class Placement:
    """Where points fall: ``inside`` (index or -1), ``nearest`` (index) and ``distance`` (m);
    ``x``, ``y`` are the points in the boundaries' CRS ``crs`` (NaN when not finite), for
    later stages that work in that CRS (:func:`profiling.hazard.exposure`'s ``points_xy``)."""

    inside: np.ndarray
    nearest: np.ndarray
    distance: np.ndarray
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    crs: CRS | None = None


def project_points(lon: np.ndarray, lat: np.ndarray, crs: CRS,
                   threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 longitudes and latitudes to ``crs`` (x, y); with ``threads`` > 1 a large array is
    cut in parts projected side by side (PROJ releases the GIL)."""
    wgs84 = CRS.from_epsg(4326)
    if crs.equals(wgs84, ignore_axis_order=True):
        return np.asarray(lon, np.float64), np.asarray(lat, np.float64)
    n = len(lon)
    if threads < 2 or n < 100_000:
        x, y = Transformer.from_crs(wgs84, crs, always_xy=True).transform(lon, lat)
        return np.asarray(x, np.float64), np.asarray(y, np.float64)
    xs = np.empty(n)
    ys = np.empty(n)
    cuts = np.linspace(0, n, threads + 1).astype(int)

    def part(k: int) -> None:
        tr = Transformer.from_crs(wgs84, crs, always_xy=True)
        a, b = cuts[k], cuts[k + 1]
        xs[a:b], ys[a:b] = tr.transform(lon[a:b], lat[a:b])

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(part, range(threads)))
    return xs, ys


def box_cells(items: np.ndarray, r0: np.ndarray, r1: np.ndarray, c0: np.ndarray,
              c1: np.ndarray, ncols: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (item, cell) pair of items whose boxes cover rows r0..r1 and columns c0..c1
    (inclusive) of a grid ``ncols`` wide, cells numbered row by row; sorted by cell, then
    item. Vectorised: no loop over items."""
    nc = c1 - c0 + 1
    count = (r1 - r0 + 1) * nc
    item = np.repeat(items, count)
    k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    ncr = np.repeat(nc, count)
    cell = (np.repeat(r0, count) + k // ncr) * ncols + np.repeat(c0, count) + k % ncr
    order = np.lexsort((item, cell))
    return item[order], cell[order]


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class _PipIndex:
    """Polygons as ragged arrays with a grid of square bins listing, per bin, the polygons whose
    bounding box meets it (ascending), for the compiled point-in-polygon kernel."""

    xs: np.ndarray
    ys: np.ndarray
    ring_off: np.ndarray
    poly_rings: np.ndarray
    bbox: np.ndarray
    strip_off: np.ndarray
    strip_h: np.ndarray
    strip_start: np.ndarray
    strip_segs: np.ndarray
    bins: np.ndarray
    bin_polys: np.ndarray
    x0: float
    y0: float
    size: float
    nx: int
    ny: int

    @classmethod
    def build(cls, geoms: np.ndarray) -> _PipIndex:
        coords, ring_off, poly_rings, _ = K.ragged_polygons(geoms)
        xs = np.ascontiguousarray(coords[:, 0], dtype=np.float64)
        ys = np.ascontiguousarray(coords[:, 1], dtype=np.float64)
        b = np.ascontiguousarray(shapely.bounds(geoms), np.float64)
        ok = np.all(np.isfinite(b), axis=1)
        strips = _strips(xs, ys, ring_off, poly_rings, b)
        if not ok.any():
            return cls(xs, ys, ring_off, poly_rings, b, *strips, np.zeros(2, np.int64),
                       np.zeros(0, np.int64), 0.0, 0.0, 1.0, 1, 1)
        x0, y0 = float(b[ok, 0].min()), float(b[ok, 1].min())
        x1, y1 = float(b[ok, 2].max()), float(b[ok, 3].max())
        extent = max(x1 - x0, y1 - y0, 1e-9)
        # bins about the size of a typical settlement, at most ~4 million of them
        typical = float(np.median(np.maximum(b[ok, 2] - b[ok, 0], b[ok, 3] - b[ok, 1])))
        size = max(typical, extent / 2000.0, 1e-12)
        nx = int((x1 - x0) // size) + 1
        ny = int((y1 - y0) // size) + 1
        ids = np.flatnonzero(ok)
        bx0 = np.floor((b[ids, 0] - x0) / size).astype(np.int64)
        bx1 = np.minimum(np.floor((b[ids, 2] - x0) / size).astype(np.int64), nx - 1)
        by0 = np.floor((b[ids, 1] - y0) / size).astype(np.int64)
        by1 = np.minimum(np.floor((b[ids, 3] - y0) / size).astype(np.int64), ny - 1)
        poly, cell = box_cells(ids, by0, by1, bx0, bx1, nx)
        bins = np.searchsorted(cell, np.arange(nx * ny + 1)).astype(np.int64)
        return cls(xs, ys, ring_off, poly_rings, b, *strips, bins, poly.astype(np.int64), x0,
                   y0, size, nx, ny)

    def locate(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lowest polygon index holding each point (boundary included) or -1, and a flag for
        the points float64 could not decide (their index is a candidate only)."""
        out = np.empty(len(x), np.int64)
        undecided = np.zeros(len(x), np.bool_)
        with K.PARALLEL:
            K.points_in_polygons(np.ascontiguousarray(x, np.float64),
                                 np.ascontiguousarray(y, np.float64), self.xs, self.ys,
                                 self.bbox, self.strip_off, self.strip_h, self.strip_start,
                                 self.strip_segs, self.bins, self.bin_polys, self.x0, self.y0,
                                 self.size, self.nx, self.ny, out, undecided)
        return out, undecided

    def nearest(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest polygon (lowest index on a tie) and the distance to it, for points outside
        every polygon."""
        out = np.empty(len(x), np.int64)
        dist = np.empty(len(x))
        with K.PARALLEL:
            K.nearest_polygons(np.ascontiguousarray(x, np.float64),
                               np.ascontiguousarray(y, np.float64), self.xs, self.ys,
                               self.ring_off, self.poly_rings, self.bbox, self.bins,
                               self.bin_polys, self.x0, self.y0, self.size, self.nx, self.ny,
                               out, dist)
        return out, dist


def _strips(xs: np.ndarray, ys: np.ndarray, ring_off: np.ndarray, poly_rings: np.ndarray,
            bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut each polygon's height in strips (about one per four segments, at most 64) and list
    the segments meeting each strip: ``strip_off`` (first strip per polygon), ``strip_h``
    (their height), ``strip_start``/``strip_segs`` (CSR of segment start vertices)."""
    n_poly = len(poly_rings) - 1
    n_rings = len(ring_off) - 1
    ring_len = np.diff(ring_off)
    seg_ring = np.repeat(np.arange(n_rings), np.maximum(ring_len - 1, 0))
    segs = (np.arange(len(seg_ring)) - np.repeat(np.cumsum(np.maximum(ring_len - 1, 0))
                                                 - np.maximum(ring_len - 1, 0),
                                                 np.maximum(ring_len - 1, 0))
            + ring_off[seg_ring])
    poly_of_ring = np.repeat(np.arange(n_poly), np.diff(poly_rings))
    seg_poly = poly_of_ring[seg_ring]
    n_seg = np.bincount(seg_poly, minlength=n_poly)
    count = np.clip(n_seg // 4, 1, 64)
    ymin, ymax = bounds[:, 1], bounds[:, 3]
    height = np.where(np.isfinite(ymax - ymin) & (ymax > ymin), ymax - ymin, 1.0)
    strip_h = np.ascontiguousarray(height / count, np.float64)
    strip_off = np.r_[0, np.cumsum(count)].astype(np.int64)
    lo = np.minimum(ys[segs], ys[segs + 1])
    hi = np.maximum(ys[segs], ys[segs + 1])
    base = np.where(np.isfinite(ymin), ymin, 0.0)[seg_poly]
    # the same arithmetic as the kernel's, so a point's strip always lists its segments
    s0 = np.clip(np.floor((lo - base) / strip_h[seg_poly]), 0, count[seg_poly] - 1)
    s1 = np.clip(np.floor((hi - base) / strip_h[seg_poly]), 0, count[seg_poly] - 1)
    s0, s1 = s0.astype(np.int64), s1.astype(np.int64)
    reps = s1 - s0 + 1
    k = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
    strip = strip_off[np.repeat(seg_poly, reps)] + np.repeat(s0, reps) + k
    seg_rep = np.repeat(segs, reps)
    order = np.argsort(strip, kind="stable")
    strip_start = np.searchsorted(strip[order], np.arange(strip_off[-1] + 1)).astype(np.int64)
    return strip_off, strip_h, strip_start, seg_rep[order].astype(np.int64)


def warm(settlements: Settlements) -> None:
    """Build the settlements' point-in-polygon indexes and load the placement kernels
    (numba's cached machine code, about half a second per process), so that a first
    :func:`place` pays neither: ingest calls it on a thread while Arrow parses the exports."""
    if not settlements.has_geometry or settlements.metric is None:
        return
    one = np.zeros(1)
    settlements.pip_index.locate(one, one)
    settlements.metric_index.nearest(one, one)


def place(lon: np.ndarray, lat: np.ndarray, settlements: Settlements) -> Placement:
    """Place WGS84 points: the settlement holding each, else the nearest and its distance.

    Points on a shared boundary (or in an overlap) go to the lowest settlement index, i.e. the
    first ``settlement_id`` in sort order. Non-finite coordinates get -1 and NaN.
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    n = len(lon)
    inside = np.full(n, -1, dtype=np.int64)
    nearest = np.full(n, -1, dtype=np.int64)
    distance = np.full(n, np.nan)
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        return Placement(inside, nearest, distance)
    if settlements.tree is None or settlements.metric_tree is None or settlements.metric is None:
        raise ValueError("these settlements have no geometry: place households by a column")
    idx = np.flatnonzero(ok)
    # Containment is decided in the boundaries' own CRS: exact when they are in WGS84.
    wgs84 = CRS.from_epsg(4326)
    all_ok = len(idx) == n
    x, y = project_points(lon if all_ok else lon[ok], lat if all_ok else lat[ok],
                          settlements.crs, usable_cores())
    hit, undecided = settlements.pip_index.locate(x, y)
    if undecided.any():  # GEOS decides what float64 could not
        u = np.flatnonzero(undecided)
        hit[u] = -1
        pts = shapely.points(np.asarray(x)[u], np.asarray(y)[u])
        q_pt, q_poly = settlements.tree.query(pts, predicate="intersects")
        if len(q_pt):
            order = np.lexsort((q_poly, q_pt))
            q_pt, q_poly = q_pt[order], q_poly[order]
            first = np.r_[True, q_pt[1:] != q_pt[:-1]]
            hit[u[q_pt[first]]] = q_poly[first]
    inside[idx] = hit
    outside = hit < 0
    nearest[idx[~outside]] = hit[~outside]
    distance[idx[~outside]] = 0.0
    if outside.any():
        out_idx = idx[outside]
        if CRS.from_user_input(settlements.metric.crs).equals(settlements.crs):
            mx, my = x[outside], y[outside]
        else:
            mx, my = Transformer.from_crs(wgs84, settlements.metric.crs,
                                          always_xy=True).transform(lon[out_idx], lat[out_idx])
        near, dist = settlements.metric_index.nearest(np.asarray(mx), np.asarray(my))
        found = near >= 0
        nearest[out_idx[found]] = near[found]
        distance[out_idx[found]] = dist[found]
    if all_ok:
        px, py = x, y
    else:
        px, py = np.full(n, np.nan), np.full(n, np.nan)
        px[idx], py[idx] = x, y
    return Placement(inside, nearest, distance, px, py, settlements.crs)


def settlement_table(settlements: Settlements) -> pd.DataFrame:
    """Settlement ids and names, without geometry."""
    return pd.DataFrame(settlements.frame[["settlement_id", "name"]])
