"""Hazard exposure: exact coverage, zonal statistics against exactextract and by hand, household
values, class rasters, scenario stacks, CRS handling, and the InaSAFE Jakarta reference counts.

Rasters are written to ``tmp_path`` by the tests themselves; the real ones are read in place
from ``../shared/data/inasafe_jakarta`` (provenance in its SOURCE.md) and ``sample_data``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer

from profiling import _coverage as K
from profiling.config import HazardSource, parse_config
from profiling.hazard import (
    HazardError,
    bilinear_values,
    expected_annual,
    exposure,
    household_values,
    layer_from_array,
    open_hazard,
    preview,
    settlement_exposure,
    to_pixels,
)

UTM = "EPSG:32748"


def from_origin(west: float, north: float, xsize: float, ysize: float) -> Affine:
    """A north-up geotransform (rasterio's from_origin warns with affine >= 3.1)."""
    return Affine(xsize, 0.0, west, 0.0, -ysize, north)


X0, Y0 = 700_000.0, 9_300_000.0  # top-left corner of the test rasters
SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------

def write_raster(path: Path, data: np.ndarray, transform=None, crs: str | None = UTM,
                 nodata: float | None = -9999.0, **profile) -> Path:
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    meta = {"driver": "GTiff", "height": data.shape[1], "width": data.shape[2],
            "count": data.shape[0], "dtype": data.dtype.name,
            "transform": transform or from_origin(X0, Y0, 10, 10), "nodata": nodata, **profile}
    if crs is not None:
        meta["crs"] = crs
    with rasterio.open(path, "w", **meta) as dst:
        dst.write(data)
    return path


def zones(*geoms: shapely.Geometry, crs: str = UTM) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"settlement_id": [f"S{i}" for i in range(len(geoms))],
                             "name": [f"s{i}" for i in range(len(geoms))]},
                            geometry=list(geoms), crs=crs)


def cell_box(col: float, row: float, w: float = 1, h: float = 1,
             size: float = 10) -> shapely.Polygon:
    """A box in the test grid's cell units (col, row from the top-left corner)."""
    return shapely.box(X0 + col * size, Y0 - (row + h) * size, X0 + (col + w) * size,
                       Y0 - row * size)


def reference(raster: Path, gdf: gpd.GeoDataFrame, thresholds: dict[str, float]) -> pd.DataFrame:
    """exactextract's coverage-weighted statistics (polygons already in the raster's CRS)."""
    exactextract = pytest.importorskip("exactextract")
    with warnings.catch_warnings():  # EPSG:4326 and OGC:CRS84 differ only in axis order
        warnings.filterwarnings("ignore", "Spatial reference system of input features",
                                RuntimeWarning)
        ee = exactextract.exact_extract(str(raster), gdf, ["mean", "max", "count", "values",
                                                           "coverage"], output="pandas")
    out = pd.DataFrame({"mean": ee["mean"].to_numpy(float), "max": ee["max"].to_numpy(float),
                        "count": ee["count"].to_numpy(float)}, index=gdf["settlement_id"])
    for name, t in thresholds.items():
        out[f"share_{name}"] = [float(np.sum(c[v >= t]) / np.sum(c)) if np.sum(c) > 0
                                else np.nan
                                for v, c in zip(ee["values"], ee["coverage"], strict=True)]
    return out


def assert_close(a, b, tol: float = 1e-6) -> None:
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert np.array_equal(np.isnan(a), np.isnan(b)), (a, b)
    ok = ~np.isnan(a)
    assert np.max(np.abs(a[ok] - b[ok]), initial=0.0) <= tol, (a, b)


def random_polygons(rng: np.random.Generator, n: int, extent: float, x0: float, y0: float,
                    r_range=(2.0, 60.0)) -> list[shapely.Geometry]:
    out: list[shapely.Geometry] = []
    while len(out) < n:
        k = int(rng.integers(3, 30))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = rng.uniform(0.4, 1.0, k) * rng.uniform(*r_range)
        cx, cy = x0 + rng.uniform(0, extent), y0 - rng.uniform(0, extent)
        p = shapely.Polygon(np.c_[cx + np.cos(ang) * r, cy + np.sin(ang) * r])
        if not p.is_valid or p.area == 0:
            continue
        u = rng.uniform()
        if u < 0.2:
            hole = shapely.Point(cx, cy).buffer(r.min() * 0.3, quad_segs=3)
            p = shapely.Polygon(p.exterior.coords, [hole.exterior.coords])
        elif u < 0.35:
            q = shapely.affinity.translate(p, 3 * r.max(), 0)
            p = shapely.MultiPolygon([p, q])
        if p.is_valid:
            out.append(p)
    return out


# ------------------------------------------------------------------------------------------
# the coverage kernel
# ------------------------------------------------------------------------------------------

def _pixel_coverage(poly: shapely.Geometry, r0: int, c0: int, h: int, w: int) -> np.ndarray:
    pix = to_pixels(np.array([poly], dtype=object), Affine.identity(), (10**6, 10**6))
    return K.coverage(pix.xs, pix.ys, pix.ring_off, pix.ring_sign, 0, len(pix.ring_off) - 1,
                      r0, c0, h, w)


def test_coverage_fractions_equal_the_exact_areas_of_polygon_and_cell():
    rng = np.random.default_rng(7)
    # identity-like transform: pixel space = map space with y downwards (from_origin(0,0,1,-1))
    polys = random_polygons(rng, 150, 20.0, 0.0, 0.0, r_range=(0.2, 9.0))
    cc, rr = np.meshgrid(np.arange(-12, 36), np.arange(-12, 36))
    cells = shapely.box(cc, rr, cc + 1, rr + 1)
    for p in polys:
        p = shapely.affinity.scale(p, 1, -1, origin=(0, 0))  # y down, as pixel space
        cov = _pixel_coverage(p, -12, -12, 48, 48)
        truth = shapely.area(shapely.intersection(cells, p))
        assert np.max(np.abs(cov - truth)) < 1e-9
        assert np.all((cov >= 0) & (cov <= 1))


def test_coverage_by_hand():
    # a triangle over the 2 x 2 cells: (0,0)-(2,0)-(0,2): cells (0,0)=1, (0,1)=(1,0)=0.5, (1,1)=0
    tri = shapely.Polygon([(0, 0), (2, 0), (0, 2)])
    cov = _pixel_coverage(tri, 0, 0, 2, 2)
    np.testing.assert_allclose(cov, [[1.0, 0.5], [0.5, 0.0]], atol=1e-12)
    # a square with a hole in the middle cell of a 3 x 3 block
    ring = shapely.Polygon([(0, 0), (3, 0), (3, 3), (0, 3)], [[(1, 1), (2, 1), (2, 2), (1, 2)]])
    cov = _pixel_coverage(ring, 0, 0, 3, 3)
    np.testing.assert_allclose(cov, [[1, 1, 1], [1, 0, 1], [1, 1, 1]], atol=1e-12)
    # the window may start anywhere: the part right of and below (1, 1) of the same square
    np.testing.assert_allclose(_pixel_coverage(ring, 1, 1, 2, 2), [[0, 1], [1, 1]], atol=1e-12)


# ------------------------------------------------------------------------------------------
# zonal statistics against exactextract
# ------------------------------------------------------------------------------------------

@pytest.fixture
def depth_raster(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    data = np.clip(rng.normal(0.2, 0.4, (60, 80)), 0, None).astype(np.float32)
    data[10:14, 20:30] = -9999  # a nodata patch
    data[40:, 70:] = -9999
    # tiled in 16 x 16 blocks so that settlements span several tiles
    return write_raster(tmp_path / "depth.tif", data, tiled=True, blockxsize=16, blockysize=16)


@pytest.mark.parametrize("max_side", [80, 25, 7])
def test_preview_samples_every_step_th_cell_by_tile(depth_raster: Path, max_side: int):
    """The map's overlay: the cell nearest each output pixel's centre, read tile by tile;
    nodata becomes NaN; the transform places each pixel on the block of cells it stands for."""
    with rasterio.open(depth_raster) as src:
        full = src.read(1).astype(np.float64)
        transform = src.transform
    full[full == -9999] = np.nan
    p = preview(open_hazard(HazardSource(name="flood", path=depth_raster)), max_side,
                threads=2)
    step = -(-80 // max_side)  # the raster is 60 x 80: ceil(80 / max_side)
    assert p.step == step
    expected = full[step // 2::step, step // 2::step]
    np.testing.assert_array_equal(p.values, expected.astype(np.float32))
    assert max(p.values.shape) <= max_side
    assert p.transform.a == transform.a * step and p.transform.e == transform.e * step
    assert (p.transform.c, p.transform.f) == (transform.c, transform.f)


def test_zonal_statistics_equal_exactextract(depth_raster: Path):
    rng = np.random.default_rng(11)
    polys = random_polygons(rng, 120, 900.0, X0 - 50, Y0 + 50, r_range=(1.0, 120.0))
    gdf = zones(*polys)
    src = HazardSource(name="flood", path=depth_raster)
    got = settlement_exposure(gdf, [src], threads=2)
    ref = reference(depth_raster, gdf, src.thresholds)
    assert got.index.name == "settlement_id" and got.index.tolist() == gdf.settlement_id.tolist()
    assert_close(got["flood_mean"], ref["mean"])
    assert_close(got["flood_max"], ref["max"])
    assert_close(got["flood_area_share_exposed"], ref["share_exposed"])
    assert_close(got["flood_area_share_high"], ref["share_high"])
    modelled = ref["count"].to_numpy() / (gdf.area.to_numpy() / 100.0)
    assert_close(got["flood_coverage"], np.where(ref["count"] > 0, np.minimum(modelled, 1),
                                                 np.nan))


def test_one_thread_and_two_threads_agree(depth_raster: Path):
    gdf = zones(*random_polygons(np.random.default_rng(5), 60, 800.0, X0, Y0))
    src = HazardSource(name="flood", path=depth_raster)
    one = settlement_exposure(gdf, [src], threads=1)
    two = settlement_exposure(gdf, [src], threads=2)
    pd.testing.assert_frame_equal(one, two, rtol=1e-12, atol=1e-12)


def test_raster_in_wgs84_against_settlements_in_utm(tmp_path: Path):
    # a geographic raster over the test area; the settlements stay in UTM 48S
    to_wgs = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    lon0, lat0 = to_wgs.transform(X0 - 100, Y0 + 100)
    rng = np.random.default_rng(9)
    data = rng.uniform(0, 1.2, (80, 80)).astype(np.float32)
    data[:5] = -9999
    path = write_raster(tmp_path / "wgs84.tif", data, from_origin(lon0, lat0, 1e-4, 1e-4),
                        crs="EPSG:4326")
    gdf = zones(*random_polygons(rng, 40, 500.0, X0, Y0, r_range=(3.0, 80.0)))
    got = settlement_exposure(gdf, [HazardSource(name="flood", path=path)])
    # the reference gets the polygons reprojected the same way (vertex by vertex)
    ref = reference(path, gdf.to_crs("EPSG:4326"), {"exposed": 0.15, "high": 0.5})
    assert_close(got["flood_mean"], ref["mean"])
    assert_close(got["flood_max"], ref["max"])
    assert_close(got["flood_area_share_exposed"], ref["share_exposed"])
    assert got["flood_mean"].notna().all()


def test_real_rasters_and_boundaries_equal_exactextract(shared_data: Path):
    rw = gpd.read_file(shared_data / "inasafe_jakarta" / "hazard" /
                       "flood_multipart_polygons.shp")
    rw["settlement_id"] = rw["OBJECTID"].astype(str)
    for raster in (shared_data / "inasafe_jakarta" / "hazard" / "tsunami_wgs84.tif",
                   shared_data / "inasafe_jakarta" / "hazard" / "continuous_flood_20_20.asc"):
        got = settlement_exposure(rw, [HazardSource(name="h", path=raster,
                                                    thresholds={"a": 0.5, "b": 1.0})])
        ref = reference(raster, rw, {"a": 0.5, "b": 1.0})
        assert_close(got["h_mean"], ref["mean"])
        assert_close(got["h_max"], ref["max"])
        assert_close(got["h_area_share_a"], ref["share_a"])
        assert_close(got["h_area_share_b"], ref["share_b"])
        assert got["h_mean"].notna().sum() > 0
    # the sample city: real Jakarta RW boundaries (WGS84) on the generated UTM flood raster
    sample = gpd.read_file(SAMPLE / "settlements.gpkg")
    flood = SAMPLE / "hazards" / "flood_depth.tif"
    got = settlement_exposure(sample, [HazardSource(name="flood", path=flood)])
    with rasterio.open(flood) as src:
        ref = reference(flood, sample.to_crs(src.crs), {"exposed": 0.15, "high": 0.5})
    assert_close(got["flood_mean"], ref["mean"])
    assert_close(got["flood_area_share_exposed"], ref["share_exposed"])
    assert_close(got["flood_area_share_high"], ref["share_high"])


# ------------------------------------------------------------------------------------------
# worked by hand
# ------------------------------------------------------------------------------------------

@pytest.fixture
def small_raster(tmp_path: Path) -> Path:
    # 4 x 4 cells of 10 m; row 0 is the northern row
    data = np.array([[0.0, 0.1, 0.2, 0.3],
                     [0.4, 0.5, -9999, 0.7],
                     [1.0, 1.0, 2.0, 2.0],
                     [0.0, 0.0, 0.0, 0.6]], dtype=np.float32)
    return write_raster(tmp_path / "small.tif", data)


def test_statistics_by_hand(small_raster: Path):
    src = HazardSource(name="flood", path=small_raster)
    gdf = zones(
        cell_box(0, 0, 2, 1),            # S0: cells 0.0 and 0.1
        cell_box(1.5, 1, 2, 1),          # S1: half of 0.5, all of nodata, half of 0.7
        cell_box(0.5, 2, 1, 1),          # S2: half of 1.0 and half of 1.0
        cell_box(3.25, 3.25, 0.5, 0.5),  # S3: a quarter of one cell (0.6): smaller than a pixel
        cell_box(3, 0, 2, 1),            # S4: half outside the raster (0.3, then nothing)
        cell_box(10, 10, 1, 1),          # S5: wholly outside the raster
        cell_box(2, 1, 1, 1),            # S6: only over nodata
        shapely.MultiPolygon([cell_box(0, 3), cell_box(3, 2)]),  # S7: 0.0 and 2.0
    )
    got = settlement_exposure(gdf, [src]).round(12)
    assert got.loc["S0", "flood_mean"] == pytest.approx(0.05)
    assert got.loc["S0", "flood_max"] == pytest.approx(0.1)
    assert got.loc["S0", "flood_area_share_exposed"] == 0
    assert got.loc["S0", "flood_coverage"] == 1
    # S1: weights 0.5 (0.5 m) and 0.5 (0.7 m); the nodata cell is half the area
    assert got.loc["S1", "flood_coverage"] == pytest.approx(0.5)
    assert got.loc["S1", "flood_mean"] == pytest.approx(0.6)
    assert got.loc["S1", "flood_area_share_high"] == 1.0  # both at or above 0.5
    assert got.loc["S2", "flood_mean"] == pytest.approx(1.0)
    assert got.loc["S3", "flood_mean"] == pytest.approx(0.6, abs=1e-6)
    assert got.loc["S3", "flood_coverage"] == 1
    assert got.loc["S3", "flood_area_share_high"] == 1
    assert got.loc["S4", "flood_coverage"] == pytest.approx(0.5)
    assert got.loc["S4", "flood_mean"] == pytest.approx(0.3, abs=1e-6)
    for sid in ("S5", "S6"):  # no coverage: NaN, never zero
        assert got.loc[sid].isna().all()
    assert got.loc["S7", "flood_mean"] == pytest.approx(1.0)
    assert got.loc["S7", "flood_area_share_exposed"] == pytest.approx(0.5)
    assert got.loc["S7", "flood_max"] == 2.0


def test_a_sliver_of_a_cell_counts_for_the_maximum(small_raster: Path):
    # over cell (row 3, col 2) (0.0 m) with a tip poking 10 nm into cell (2, 2) (2.0 m): the
    # tip covers 3e-10 of that cell, which still counts for the maximum, as in exactextract
    tip = shapely.Polygon([(X0 + 22, Y0 - 30), (X0 + 28, Y0 - 30), (X0 + 25, Y0 - 30 + 1e-8)])
    gdf = zones(shapely.union(cell_box(2, 3), tip))
    src = HazardSource(name="flood", path=small_raster)
    got = settlement_exposure(gdf, [src])
    ref = reference(small_raster, gdf, src.thresholds)
    assert got.loc["S0", "flood_max"] == ref.loc["S0", "max"] == 2.0
    assert got.loc["S0", "flood_mean"] < 1e-8
    assert_close(got["flood_mean"], ref["mean"], tol=1e-12)


def test_nodata_around_a_settlement_is_left_out(tmp_path: Path):
    data = np.full((6, 6), -9999, np.float32)
    data[2:4, 2:4] = [[0.2, 0.4], [0.6, 0.8]]
    path = write_raster(tmp_path / "ring.tif", data)
    gdf = zones(cell_box(1, 1, 4, 4), cell_box(2, 2, 2, 2))
    got = settlement_exposure(gdf, [HazardSource(name="flood", path=path)])
    assert got.loc["S0", "flood_coverage"] == pytest.approx(4 / 16)
    assert got.loc["S0", "flood_mean"] == pytest.approx(0.5)
    assert got.loc["S1", "flood_mean"] == pytest.approx(0.5)
    assert got.loc["S0", "flood_area_share_high"] == pytest.approx(0.5)  # 0.6 and 0.8


def test_nan_cells_are_nodata_too(tmp_path: Path):
    data = np.array([[np.nan, 1.0], [1.0, 1.0]], np.float32)
    path = write_raster(tmp_path / "nan.tif", data, nodata=None)
    got = settlement_exposure(zones(cell_box(0, 0, 2, 2)), [HazardSource(name="h", path=path)])
    assert got.loc["S0", "h_coverage"] == pytest.approx(0.75)
    assert got.loc["S0", "h_mean"] == 1.0


# ------------------------------------------------------------------------------------------
# households
# ------------------------------------------------------------------------------------------

def lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True).transform(x, y)
    return np.asarray(lon), np.asarray(lat)


def test_household_values_and_flags(small_raster: Path):
    src = HazardSource(name="flood", path=small_raster)
    # cell centres of (row, col): (0,0) 0.0, (1,1) 0.5, (1,2) nodata, (2,2) 2.0, outside, NaN
    x = np.array([X0 + 5, X0 + 15, X0 + 25, X0 + 25, X0 + 500, np.nan])
    y = np.array([Y0 - 5, Y0 - 15, Y0 - 15, Y0 - 25, Y0 - 5, np.nan])
    lon, lat = lonlat(x, y)
    got = household_values(lon, lat, [src])
    assert got.index.equals(pd.RangeIndex(6))
    np.testing.assert_allclose(got["flood"], [0.0, 0.5, np.nan, 2.0, np.nan, np.nan])
    assert got["flood_exposed"].dtype == "boolean"
    assert got["flood_exposed"].tolist() == [False, True, pd.NA, True, pd.NA, pd.NA]
    assert got["flood_high"].tolist() == [False, True, pd.NA, True, pd.NA, pd.NA]


def test_household_values_equal_rasterio_sample(depth_raster: Path):
    rng = np.random.default_rng(1)
    x = rng.uniform(X0 - 30, X0 + 830, 5000)
    y = rng.uniform(Y0 - 630, Y0 + 30, 5000)
    lon, lat = lonlat(x, y)
    got = household_values(lon, lat, [HazardSource(name="flood", path=depth_raster)])
    xx, yy = Transformer.from_crs("EPSG:4326", UTM, always_xy=True).transform(lon, lat)
    with rasterio.open(depth_raster) as ds:
        ref = np.array([v[0] for v in ds.sample(zip(xx, yy, strict=True), masked=True)],
                       dtype=object)
        inside = ((xx >= ds.bounds.left) & (xx < ds.bounds.right) & (yy > ds.bounds.bottom)
                  & (yy <= ds.bounds.top))
    expect = np.array([np.nan if (not ok or v is np.ma.masked) else float(v)
                       for v, ok in zip(ref, inside, strict=True)])
    assert_close(got["flood"], expect, tol=0)


def test_settlements_and_households_in_one_pass(small_raster: Path):
    src = HazardSource(name="flood", path=small_raster)
    lon, lat = lonlat(np.array([X0 + 5]), np.array([Y0 - 25]))
    z, p = exposure(zones(cell_box(0, 0, 2, 1)), lon, lat, [src])
    assert z.loc["S0", "flood_mean"] == pytest.approx(0.05)
    assert p["flood"].tolist() == [1.0]


# ------------------------------------------------------------------------------------------
# class rasters and scenario stacks
# ------------------------------------------------------------------------------------------

def test_class_raster(tmp_path: Path):
    data = np.array([[1, 1, 2, 2], [1, 3, 3, 0], [2, 2, 2, 2]], np.uint8)
    path = write_raster(tmp_path / "classes.tif", data, nodata=0)
    gdf = zones(cell_box(0, 0, 2, 2), cell_box(2, 1, 2, 2))
    src = HazardSource(name="landslide", path=path, kind="class", classes=[1, 2, 3],
                       thresholds={"high": 3})
    got = settlement_exposure(gdf, [src])
    assert got.loc["S0", "landslide_class_1_share"] == pytest.approx(0.75)
    assert got.loc["S0", "landslide_class_2_share"] == 0
    assert got.loc["S0", "landslide_class_3_share"] == pytest.approx(0.25)
    assert got.loc["S0", "landslide_max"] == 3
    # CONTRACT.md §3: every hazard has its mean, a class raster's the mean class over the
    # modelled area (3 cells of class 1 and 1 of class 3)
    assert got.loc["S0", "landslide_mean"] == pytest.approx((3 * 1 + 3) / 4)
    assert got.loc["S1", "landslide_mean"] == pytest.approx((3 + 2 + 2) / 3)
    assert got.loc["S0", "landslide_area_share_high"] == pytest.approx(0.25)
    # S1: cells 3, 0 (nodata), 2, 2: three modelled cells
    assert got.loc["S1", "landslide_coverage"] == pytest.approx(0.75)
    assert got.loc["S1", "landslide_class_2_share"] == pytest.approx(2 / 3)
    assert got.loc["S1", "landslide_class_3_share"] == pytest.approx(1 / 3)
    # without declared classes, the classes found become the columns
    found = settlement_exposure(gdf, [HazardSource(name="ls", path=path, kind="class")])
    assert [c for c in found.columns if c.startswith("ls_class")] == [
        "ls_class_1_share", "ls_class_2_share", "ls_class_3_share"]
    hh = household_values(*lonlat(np.array([X0 + 15]), np.array([Y0 - 15])), [src])
    assert hh["landslide"].tolist() == [3.0] and hh["landslide_high"].tolist() == [True]


def test_two_scenario_stack_in_one_geotiff(tmp_path: Path):
    rp10 = np.array([[0.0, 0.2], [0.4, 0.0]], np.float32)
    rp100 = np.array([[0.3, 0.6], [1.0, 0.2]], np.float32)
    path = write_raster(tmp_path / "stack.tif", np.stack([rp10, rp100]))
    src = HazardSource(name="flood", path=path, return_periods=[10, 100])
    gdf = zones(cell_box(0, 0, 2, 2))
    got = settlement_exposure(gdf, [src])
    assert got.loc["S0", "flood_rp10_mean"] == pytest.approx(0.15)
    assert got.loc["S0", "flood_rp100_mean"] == pytest.approx(0.525)
    assert got.loc["S0", "flood_rp10_area_share_exposed"] == pytest.approx(0.5)
    assert got.loc["S0", "flood_rp100_area_share_exposed"] == pytest.approx(1.0)
    # trapezoid over p = 1/T plus the rarest event held to p = 0
    assert got.loc["S0", "flood_expected_annual_mean"] == pytest.approx(
        0.01 * 0.525 + 0.09 * (0.15 + 0.525) / 2)
    assert got.loc["S0", "flood_expected_annual_area_share_exposed"] == pytest.approx(
        0.01 * 1.0 + 0.09 * (0.5 + 1.0) / 2)
    hh = household_values(*lonlat(np.array([X0 + 15]), np.array([Y0 - 5])), [src])
    assert hh["flood_rp10"].tolist() == pytest.approx([0.2])
    assert hh["flood_rp100"].tolist() == pytest.approx([0.6])
    assert hh["flood_rp10_exposed"].tolist() == [True]
    assert hh["flood_rp100_high"].tolist() == [True]
    assert hh["flood_expected_annual"].tolist() == pytest.approx([0.01 * 0.6 + 0.09 * 0.4])


def test_a_stack_as_an_xarray_dimension():
    xr = pytest.importorskip("xarray")
    pytest.importorskip("rioxarray")
    data = np.stack([np.full((3, 3), 0.1), np.full((3, 3), 0.9)]).astype(np.float32)
    da = xr.DataArray(data, dims=("scenario", "y", "x"),
                      coords={"scenario": ["baseline", "climate 2050"],
                              "y": Y0 - 5 - 10 * np.arange(3), "x": X0 + 5 + 10 * np.arange(3)})
    da = da.rio.write_crs(UTM)
    layer = layer_from_array(da, "flood", thresholds={"exposed": 0.15}, dimension="scenario")
    got = settlement_exposure(zones(cell_box(0, 0, 2, 2)), [layer])
    assert got.loc["S0", "flood_baseline_mean"] == pytest.approx(0.1)
    assert got.loc["S0", "flood_climate_2050_area_share_exposed"] == 1.0
    assert "flood_expected_annual_mean" not in got  # named scenarios: no return periods


def test_a_netcdf_stack_with_a_return_period_dimension(tmp_path: Path):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("rioxarray")
    pytest.importorskip("scipy")  # xarray's NetCDF3 writer
    data = np.stack([np.array([[0.0, 0.2], [0.4, 0.0]]),
                     np.array([[0.3, 0.6], [1.0, 0.2]])]).astype(np.float32)
    da = xr.DataArray(data, dims=("return_period", "y", "x"), name="depth",
                      coords={"return_period": [10, 100], "y": Y0 - 5 - 10 * np.arange(2),
                              "x": X0 + 5 + 10 * np.arange(2)})
    da = da.rio.write_crs(UTM).rio.write_coordinate_system()
    da = da.rio.write_transform(from_origin(X0, Y0, 10, 10))
    da.rio.write_nodata(-9999.0, encoded=True, inplace=True)
    path = tmp_path / "flood.nc"
    da.to_dataset().to_netcdf(path, engine="scipy")
    src = HazardSource(name="flood", path=path, dimension="return_period")
    layer = open_hazard(src)
    assert layer.labels == ["rp10", "rp100"] and layer.return_periods == [10.0, 100.0]
    got = settlement_exposure(zones(cell_box(0, 0, 2, 2)), [src])
    assert got.loc["S0", "flood_rp10_mean"] == pytest.approx(0.15)
    assert got.loc["S0", "flood_rp100_mean"] == pytest.approx(0.525)
    hh = household_values(*lonlat(np.array([X0 + 5]), np.array([Y0 - 15])), [src])
    assert hh["flood_rp100"].tolist() == pytest.approx([1.0])


def test_expected_annual_is_the_area_under_the_risk_curve():
    # one scenario: the value times its probability
    assert expected_annual(np.array([[2.0]]), [50])[0] == pytest.approx(0.04)
    # order of the scenarios does not matter
    a = expected_annual(np.array([[1.0], [3.0], [2.0]]), [10, 1000, 100])
    b = expected_annual(np.array([[1.0], [2.0], [3.0]]), [10, 100, 1000])
    assert a[0] == pytest.approx(b[0])
    assert b[0] == pytest.approx(0.001 * 3 + 0.009 * 2.5 + 0.09 * 1.5)
    assert np.isnan(expected_annual(np.array([[np.nan], [1.0]]), [10, 100])[0])


# ------------------------------------------------------------------------------------------
# refused inputs
# ------------------------------------------------------------------------------------------

def test_raster_without_crs_is_refused(tmp_path: Path):
    path = write_raster(tmp_path / "nocrs.tif", np.zeros((2, 2), np.float32), crs=None)
    with pytest.raises(HazardError, match=r"nocrs\.tif.*no coordinate reference system"):
        open_hazard(HazardSource(name="flood", path=path))


def test_multiband_without_band_or_stack_is_refused(tmp_path: Path):
    path = write_raster(tmp_path / "two.tif", np.zeros((2, 2, 2), np.float32))
    with pytest.raises(HazardError, match="has 2 bands; choose one with 'band'"):
        open_hazard(HazardSource(name="flood", path=path))
    assert open_hazard(HazardSource(name="flood", path=path, band=2)).n_layers == 1
    with pytest.raises(HazardError, match=r"holds 2 layers .* lists 3 return periods"):
        open_hazard(HazardSource(name="flood", path=path, return_periods=[2, 10, 100]))
    with pytest.raises(HazardError, match="does not exist"):
        open_hazard(HazardSource(name="flood", path=tmp_path / "missing.tif"))


def test_nothing_on_the_raster_is_unknown_and_said(small_raster: Path, caplog):
    far = zones(shapely.box(106.80, -6.20, 106.81, -6.19), crs="EPSG:4326")  # Jakarta, not here
    with caplog.at_level("WARNING"):
        got = settlement_exposure(far, [HazardSource(name="flood", path=small_raster)])
    assert got.isna().all().all()
    assert "no settlement or household falls on this raster" in caplog.text
    assert "EPSG:32748" in caplog.text and "EPSG:4326" in caplog.text


def test_settlements_without_crs_are_refused(small_raster: Path):
    gdf = zones(cell_box(0, 0)).set_crs(None, allow_override=True)
    with pytest.raises(Exception, match="no coordinate reference system"):
        settlement_exposure(gdf, [HazardSource(name="flood", path=small_raster)])


def test_hazard_configuration():
    cfg = parse_config({"surveys": ["a.csv"], "hazards": [
        {"name": "flood", "path": "f.tif", "return_periods": [10, 100]},
        {"name": "ls", "path": "l.tif", "kind": "class", "classes": [1, 2, 3]}]})
    assert cfg.hazards[0].dimension == "band"
    assert cfg.hazards[1].classes == [1, 2, 3]
    with pytest.raises(Exception, match="classes"):
        parse_config({"hazards": [{"name": "f", "path": "f.tif", "classes": [1]}]})
    with pytest.raises(Exception, match="return periods"):
        parse_config({"hazards": [{"name": "f", "path": "f.tif", "return_periods": [0.5]}]})


# ------------------------------------------------------------------------------------------
# InaSAFE's published results (../shared/data/inasafe_jakarta/SOURCE.md)
# ------------------------------------------------------------------------------------------

def _buildings(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    """Building centroids as InaSAFE computed them: planar, in the layer's WGS84 degrees."""
    b = gpd.read_file(shared_data / "inasafe_jakarta" / "exposure" / "buildings.shp")
    assert b.crs.to_epsg() == 4326
    c = shapely.centroid(b.geometry.values)
    return shapely.get_x(c), shapely.get_y(c)


def _classify(depth: np.ndarray) -> tuple[int, int, int]:
    """(flooded, wet, dry) by InaSAFE's rule: ``if d <= 0: dry; elif d >= 1.0: flooded; else:
    wet``, so an unknown depth (NaN) falls through to wet."""
    depth = np.asarray(depth, float)
    dry = depth <= 0
    flooded = depth >= 1.0
    return int(flooded.sum()), int((~dry & ~flooded).sum()), int(dry.sum())


def test_inasafe_buildings_flooded_with_its_sampling_rule(shared_data: Path):
    """Result 3: 181 buildings, flooded (>= 1.0 m) 64, wet 117, dry 0, with InaSAFE's bilinear
    interpolation at building centroids (one centroid lies west of the first column of cell
    centres: NaN, which InaSAFE's rule counts as wet); the cell holding the centroid, our rule,
    gives 78 / 101 / 2 as SOURCE.md states."""
    flood = HazardSource(name="flood", path=shared_data / "inasafe_jakarta" / "hazard" /
                         "continuous_flood_20_20.asc")
    lon, lat = _buildings(shared_data)
    assert len(lon) == 181
    assert _classify(bilinear_values(lon, lat, flood)[0]) == (64, 117, 0)
    cell = household_values(lon, lat, [flood])["flood"].to_numpy()
    assert _classify(cell) == (78, 101, 2)


def test_inasafe_people_evacuated(shared_data: Path):
    """Result 1: of 200 people on the population grid, 100 live where the depth is >= 1.0 m
    (the grids are aligned: the depth of the cell holding each population cell's centre)."""
    base = shared_data / "inasafe_jakarta"
    with rasterio.open(base / "exposure" / "pop_binary_raster_20_20.asc") as ds:
        pop = ds.read(1).astype(float)
        rows, cols = np.indices(pop.shape)
        x, y = rasterio.transform.xy(ds.transform, rows.ravel(), cols.ravel())
    flood = HazardSource(name="flood", path=base / "hazard" / "continuous_flood_20_20.asc",
                         thresholds={"evacuate": 1.0})
    got = household_values(np.asarray(x), np.asarray(y), [flood])
    assert pop.sum() == 200
    assert pop.ravel()[got["flood_evacuate"].to_numpy(dtype=bool, na_value=False)].sum() == 100


def test_return_periods_from_band_descriptions(tmp_path: Path):
    path = write_raster(tmp_path / "rp.tif", np.zeros((2, 2, 2), np.float32))
    with rasterio.open(path, "r+") as ds:
        ds.set_band_description(1, "RP25")
        ds.set_band_description(2, "RP250")
    layer = open_hazard(HazardSource(name="flood", path=path, dimension="return_period"))
    assert layer.labels == ["rp25", "rp250"] and layer.return_periods == [25.0, 250.0]
    bare = write_raster(tmp_path / "bare.tif", np.zeros((2, 2, 2), np.float32))
    with pytest.raises(HazardError, match="not labelled; list their 'return_periods'"):
        open_hazard(HazardSource(name="flood", path=bare, dimension="return_period"))
    with pytest.raises(HazardError, match="has no dimension 'time'"):
        open_hazard(HazardSource(name="flood", path=bare, dimension="time"))


def test_concurrent_calls_from_threads_agree(depth_raster: Path):
    """A threaded Dask scheduler calls the stage from several threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(2)
    gdf = zones(*random_polygons(rng, 30, 800.0, X0, Y0))
    lon, lat = lonlat(rng.uniform(X0, X0 + 800, 20000), rng.uniform(Y0 - 600, Y0, 20000))
    src = HazardSource(name="flood", path=depth_raster)
    alone = exposure(gdf, lon, lat, [src])
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: exposure(gdf, lon, lat, [src]), range(4)))
    for z, p in runs:
        pd.testing.assert_frame_equal(z, alone[0])
        pd.testing.assert_frame_equal(p, alone[1])


def test_points_projected_by_the_join_are_reused(small_raster: Path):
    from profiling.join import check_boundaries, place, prepare

    s = prepare(check_boundaries(zones(cell_box(0, 0, 4, 4))))
    lon, lat = lonlat(np.array([X0 + 5, X0 + 25]), np.array([Y0 - 25, Y0 - 25]))
    placed = place(lon, lat, s)
    src = HazardSource(name="flood", path=small_raster)
    _, again = exposure(None, lon, lat, [src])
    _, reused = exposure(None, lon, lat, [src], points_xy=(placed.x, placed.y, placed.crs))
    pd.testing.assert_frame_equal(again, reused)
    assert reused["flood"].tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="same points"):
        exposure(None, lon, lat, [src], points_xy=(placed.x[:1], placed.y[:1], placed.crs))


def test_an_all_nodata_raster_is_warned_about(tmp_path: Path, caplog):
    data = np.full((60, 80), -9999, np.float32)
    path = write_raster(tmp_path / "empty.tif", data, tiled=True, blockxsize=16, blockysize=16)
    rng = np.random.default_rng(2)
    gdf = zones(*random_polygons(rng, 5, 900.0, X0 - 50, Y0 + 50, r_range=(20.0, 60.0)))
    got = settlement_exposure(gdf, [HazardSource(name="flood", path=path)])
    assert got["flood_coverage"].isna().all()
    assert "every cell under the settlements and households is nodata" in caplog.text


def test_preview_within_bounds_reads_only_that_part(depth_raster: Path):
    """A national raster is shown where the city is: only the window around the bounds."""
    with rasterio.open(depth_raster) as src:
        full = src.read(1).astype(np.float64)
        t = src.transform
    full[full == -9999] = np.nan
    layer = open_hazard(HazardSource(name="flood", path=depth_raster))
    # rows 20-39 and columns 30-69 of the raster
    bounds = (t.c + 30 * t.a, t.f + 40 * t.e, t.c + 70 * t.a, t.f + 20 * t.e)
    p = preview(layer, 20, bounds=bounds)
    assert p.step == 2
    np.testing.assert_array_equal(p.values, full[21:40:2, 31:70:2].astype(np.float32))
    assert (p.transform.c, p.transform.f) == (t.c + 30 * t.a, t.f + 20 * t.e)
    outside = preview(layer, 20, bounds=(0.0, 0.0, 1.0, 1.0))
    assert outside.values.size == 0


def test_class_columns_of_settlement_chunks_concatenate_as_one_computation(tmp_path: Path):
    """On Dask, settlements are computed in chunks: a class that a chunk's cells never hold
    is 0 there (not unknown), and the columns stand as one computation orders them."""
    from profiling.hazard import concat_zones

    data = np.array([[1, 1, 2, 2], [1, 3, 3, 0], [2, 2, 2, 2]], np.uint8)
    path = write_raster(tmp_path / "classes.tif", data, nodata=0)
    gdf = zones(cell_box(0, 0, 2, 2), cell_box(2, 1, 2, 2))
    src = HazardSource(name="ls", path=path, kind="class", thresholds={"high": 3})
    whole = settlement_exposure(gdf, [src])
    parts = [settlement_exposure(gdf.iloc[[i]], [src]) for i in range(2)]
    assert "ls_class_1_share" not in parts[1]  # S1's cells hold classes 2 and 3 only
    pd.testing.assert_frame_equal(concat_zones(parts), whole)
