"""Placement and boundary checks: exact point in polygon (boundaries, holes, multipolygons,
overlaps, near-degenerate points), the nearest settlement, and the checks made on entry."""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from profiling import BoundaryError
from profiling.config import parse_config
from profiling.join import (
    check_boundaries,
    check_crs_match,
    inspect_boundaries,
    place,
    prepare,
)

from conftest import UTM, lonlat, two_squares

WGS84 = "EPSG:4326"


def frame(geoms: list[shapely.Geometry], ids: list[str] | None = None,
          crs: str | None = WGS84) -> gpd.GeoDataFrame:
    ids = ids or [f"S{i:03d}" for i in range(len(geoms))]
    return gpd.GeoDataFrame({"settlement_id": ids, "name": ids}, geometry=geoms, crs=crs)


def shapely_place(gdf: gpd.GeoDataFrame, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """GEOS's answer: the lowest index of a polygon that intersects the point, else -1."""
    tree = shapely.STRtree(gdf.geometry.values)
    a, b = tree.query(shapely.points(x, y), predicate="intersects")
    out = np.full(len(x), -1)
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    first = np.r_[True, a[1:] != a[:-1]] if len(a) else np.zeros(0, bool)
    out[a[first]] = b[first]
    return out


def city(seed: int, n: int = 60) -> gpd.GeoDataFrame:
    """Irregular WGS84 polygons, some adjoining (sharing vertices and edges), with holes and
    multipolygons; sorted by id as ``prepare`` sorts them."""
    rng = np.random.default_rng(seed)
    geoms: list[shapely.Geometry] = []
    # a grid of adjoining squares: shared edges and shared vertices
    for i in range(4):
        for j in range(4):
            geoms.append(shapely.box(106.80 + i * 0.001, -6.20 + j * 0.001,
                                     106.80 + (i + 1) * 0.001, -6.20 + (j + 1) * 0.001))
    while len(geoms) < n:
        k = int(rng.integers(3, 24))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = rng.uniform(0.3, 1, k) * rng.uniform(1e-4, 2e-3)
        cx, cy = 106.81 + rng.uniform(0, 0.02), -6.20 + rng.uniform(0, 0.02)
        p = shapely.Polygon(np.c_[cx + np.cos(ang) * r, cy + np.sin(ang) * r])
        if not p.is_valid:
            continue
        if rng.uniform() < 0.2:
            p = p.difference(shapely.Point(cx, cy).buffer(r.min() * 0.4, quad_segs=2))
        if rng.uniform() < 0.15:
            p = shapely.MultiPolygon([*shapely.get_parts(p),
                                      shapely.affinity.translate(p, 3 * r.max(), 0)])
        if p.is_valid and p.geom_type in ("Polygon", "MultiPolygon"):
            geoms.append(p)
    return frame(geoms)


def boundary_points(gdf: gpd.GeoDataFrame, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Every vertex, points on edges (midpoints: exactly representable on axis-parallel edges,
    a rounding away from the edge otherwise), and points a few ulps off edges."""
    coords = shapely.get_coordinates(gdf.geometry.values)
    a, b = coords[:-1], coords[1:]
    mid = (a + b) / 2
    t = rng.uniform(0, 1, (len(a), 1))
    along = a + t * (b - a)
    nudge = np.nextafter(along, along + rng.choice([-1.0, 1.0], along.shape))
    pts = np.vstack([coords, mid, along, nudge])
    return pts[:, 0], pts[:, 1]


# ------------------------------------------------------------------------------------------
# exact placement
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_placement_equals_geos_everywhere_and_on_boundaries(seed: int):
    gdf = city(seed)
    s = prepare(check_boundaries(gdf))
    rng = np.random.default_rng(seed)
    bx, by = boundary_points(s.frame, rng)
    rx = rng.uniform(106.799, 106.832, 20000)
    ry = rng.uniform(-6.201, -6.178, 20000)
    x, y = np.r_[bx, rx], np.r_[by, ry]
    got = place(x, y, s).inside
    np.testing.assert_array_equal(got, shapely_place(s.frame, x, y))
    assert (got >= 0).sum() > 1000  # the test exercises insides as well as outsides


def test_points_on_shared_boundaries_go_to_the_first_id():
    # the four squares around the vertex (106.801, -6.199) in city(): ids S001, S004, S005...
    s = prepare(check_boundaries(city(0)))
    corner = place(np.array([106.801]), np.array([-6.199]), s)
    ids = s.ids[corner.inside]
    touching = [i for i, g in zip(s.ids, s.frame.geometry, strict=True)
                if g.intersects(shapely.Point(106.801, -6.199))]
    assert len(touching) == 4 and ids.tolist() == [min(touching)]


def test_holes_and_multipolygons():
    outer = shapely.box(106.80, -6.21, 106.83, -6.18)
    hole = shapely.box(106.81, -6.20, 106.82, -6.19)
    ring = shapely.Polygon(outer.exterior.coords, [hole.exterior.coords])
    multi = shapely.MultiPolygon([shapely.box(106.85, -6.21, 106.86, -6.20),
                                  shapely.box(106.87, -6.21, 106.88, -6.20)])
    s = prepare(check_boundaries(frame([ring, multi], ["RING", "MULTI"])))
    lon = np.array([106.805, 106.815, 106.855, 106.875, 106.865, 106.81])
    lat = np.array([-6.195, -6.195, -6.205, -6.205, -6.205, -6.195])
    p = place(lon, lat, s)
    got = [s.ids[i] if i >= 0 else None for i in p.inside]
    # in the ring; in its hole (outside); each part of the multipolygon; between the parts;
    # on the hole's edge (the boundary belongs to the settlement)
    assert got == ["RING", None, "MULTI", "MULTI", None, "RING"]
    # the point in the hole is nearest to RING, at the distance to the hole's edge
    assert s.ids[p.nearest[1]] == "RING"
    assert p.distance[1] == pytest.approx(550, rel=0.02)  # 0.005 deg of latitude ~ 553 m


def test_overlapping_settlements_are_reported_and_the_first_id_wins(caplog):
    a = shapely.box(700000, 9300000, 700100, 9300100)
    b = shapely.box(700050, 9300000, 700150, 9300100)  # overlaps a by 50 x 100 m
    c = shapely.box(700150, 9300000, 700250, 9300100)  # touches b: no overlap
    with caplog.at_level(logging.WARNING):
        checked = inspect_boundaries(frame([b, a, c], ["B", "A", "C"], crs=UTM), "zones.gpkg")
    f = checked.findings
    assert f[["settlement_id", "other_id", "problem"]].values.tolist() == [["A", "B", "overlap"]]
    assert f["area_m2"].iloc[0] == pytest.approx(5000)
    assert "A and B overlap by 5000.0 m²" in caplog.text
    assert checked.frame.attrs["boundary_findings"][0]["area_m2"] == pytest.approx(5000)
    s = prepare(checked.frame)
    lon, lat = lonlat(700075, 9300050)
    assert s.ids[place(np.array([lon]), np.array([lat]), s).inside].tolist() == ["A"]


def test_overlap_areas_are_in_square_metres_for_wgs84_boundaries():
    a = shapely.box(106.80, -6.20, 106.81, -6.19)
    b = shapely.box(106.805, -6.20, 106.815, -6.19)
    f = inspect_boundaries(frame([a, b])).findings
    utm = gpd.GeoSeries([a.intersection(b)], crs=WGS84).to_crs(UTM).area.iloc[0]
    assert f["area_m2"].iloc[0] == pytest.approx(utm, rel=1e-3)
    assert 600_000 < utm < 620_000  # 0.005 x 0.01 degrees near the equator


def test_nearest_settlement_and_distance_equal_geos():
    gdf = city(4)
    s = prepare(check_boundaries(gdf))
    rng = np.random.default_rng(4)
    lon = rng.uniform(106.78, 106.85, 5000)
    lat = rng.uniform(-6.22, -6.16, 5000)
    p = place(lon, lat, s)
    out = p.inside < 0
    assert out.sum() > 1000
    metric = s.metric
    mx, my = Transformer.from_crs(WGS84, metric.crs, always_xy=True).transform(lon[out],
                                                                                lat[out])
    pts = shapely.points(mx, my)
    q, poly = shapely.STRtree(metric.values).query_nearest(pts, all_matches=True)
    order = np.lexsort((poly, q))
    q, poly = q[order], poly[order]
    first = np.r_[True, q[1:] != q[:-1]]
    np.testing.assert_array_equal(p.nearest[out], poly[first])
    np.testing.assert_array_equal(p.distance[out],
                                  shapely.distance(pts, metric.values[poly[first]]))


def test_equidistant_point_goes_to_the_first_id():
    s = prepare(check_boundaries(two_squares(), "two squares"))
    # straight below the shared edge x = 700100: equally far from A and B
    lon, lat = lonlat(700100, 9299900)
    p = place(np.array([lon]), np.array([lat]), s)
    assert p.inside[0] == -1 and s.ids[p.nearest[0]] == "A"
    assert p.distance[0] == pytest.approx(100, abs=1e-6)


def test_missing_coordinates_are_not_placed(squares):
    p = place(np.array([np.nan, 1e400]), np.array([-6.2, np.nan]), squares)
    assert p.inside.tolist() == [-1, -1] and np.isnan(p.distance).all()


# ------------------------------------------------------------------------------------------
# boundary checks on entry
# ------------------------------------------------------------------------------------------

def bowtie(x0: float = 700000, y0: float = 9300000) -> shapely.Polygon:
    return shapely.Polygon([(x0, y0), (x0 + 100, y0 + 100), (x0 + 100, y0), (x0, y0 + 100)])


def test_invalid_rings_are_refused_with_the_reason():
    gdf = frame([shapely.box(700200, 9300000, 700300, 9300100), bowtie()], ["OK", "BAD"],
                crs=UTM)
    with pytest.raises(BoundaryError, match=r"zones\.gpkg: 1 invalid polygon.*BAD: "
                                            r"Self-intersection.*repair_geometries"):
        check_boundaries(gdf, "zones.gpkg")


def test_invalid_rings_are_repaired_when_asked(caplog):
    gdf = frame([shapely.box(700200, 9300000, 700300, 9300100), bowtie()], ["OK", "BAD"],
                crs=UTM)
    with caplog.at_level(logging.WARNING):
        checked = inspect_boundaries(gdf, "zones.gpkg", repair=True)
    g = checked.frame.set_index("settlement_id").geometry
    assert g["BAD"].is_valid and g["BAD"].area == pytest.approx(5000)  # two triangles
    row = checked.findings.iloc[0]
    assert row["problem"] == "invalid_repaired" and "Self-intersection" in row["detail"]
    assert row["area_m2"] == pytest.approx(5000)  # a bowtie's signed area is 0
    assert "BAD was invalid" in caplog.text and "repaired" in caplog.text
    assert parse_config({"repair_geometries": True}).repair_geometries is True


def test_duplicate_and_missing_ids_are_refused():
    sq = shapely.box(0, 0, 1, 1)
    with pytest.raises(BoundaryError, match="unique; repeated: A"):
        check_boundaries(frame([sq, sq], ["A", "A"]))
    with pytest.raises(BoundaryError, match=r"feature\(s\) \[2\] have no settlement_id"):
        check_boundaries(frame([sq, sq], ["A", " "]))


def test_missing_crs_is_refused():
    with pytest.raises(BoundaryError, match="has no coordinate reference system"):
        check_boundaries(frame([shapely.box(0, 0, 1, 1)], crs=None), "zones.shp")


def test_coordinates_that_contradict_the_crs_are_refused():
    degrees_as_utm = frame([shapely.box(106.80, -6.20, 106.81, -6.19)], crs=UTM)
    with pytest.raises(BoundaryError, match=r"EPSG:32748 .*look like longitude and latitude"):
        check_boundaries(degrees_as_utm, "zones.shp")
    metres_as_wgs84 = frame([shapely.box(700000, 9300000, 700100, 9300100)])
    with pytest.raises(BoundaryError, match=r"EPSG:4326 .*not degrees"):
        check_boundaries(metres_as_wgs84, "zones.shp")


def test_mismatched_crs_names_both():
    with pytest.raises(BoundaryError, match=r"households\.gpkg: is in EPSG:32748 .*but "
                                            r"settlements\.gpkg is in EPSG:4326"):
        check_crs_match(UTM, WGS84, "households.gpkg", "settlements.gpkg")
    with pytest.raises(BoundaryError, match=r"a\.gpkg: has no coordinate reference system; "
                                            r"b\.gpkg is in EPSG:4326"):
        check_crs_match(None, WGS84, "a.gpkg", "b.gpkg")
    check_crs_match("OGC:CRS84", WGS84, "a", "b")  # the same up to axis order


def test_real_boundaries_pass_the_checks(shared_data):
    rw = gpd.read_file(shared_data / "inasafe_jakarta" / "hazard" /
                       "flood_multipart_polygons.shp")
    rw["settlement_id"] = rw["OBJECTID"].astype(str)
    rw["name"] = rw["KEL_NAME"]
    checked = inspect_boundaries(rw, "flood_multipart_polygons.shp")
    assert len(checked.frame) == 31
    assert isinstance(checked.findings, pd.DataFrame)
    s = prepare(checked.frame)
    pts = shapely.get_coordinates(shapely.point_on_surface(s.frame.geometry.values))
    np.testing.assert_array_equal(place(pts[:, 0], pts[:, 1], s).inside,
                                  shapely_place(s.frame, pts[:, 0], pts[:, 1]))
