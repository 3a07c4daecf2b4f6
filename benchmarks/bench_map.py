"""Benchmark: ``map.html`` for 2,000 settlements, its size and its load time in Chromium.

Generates (seeded) a city of 2,000 settlements as a clean coverage with jagged, realistic
boundaries (a 10 m grid labelled by the nearest of 2,000 jittered seeds, then polygonised), a
settlement table with the main indicators, H3 hexagon counts, and the sample flood raster; writes
``map.html`` with its assets through :func:`profiling.publish.maps.write_map`; then opens it in
Debian's Chromium (Playwright, every outside request aborted) and reads the time to the
``load`` event (Navigation Timing) and to the 2,000 polygons drawn. Targets (issue 7): map.html
and its assets under 15 MB, loaded in under 3 s. Not part of the test suite.

    python benchmarks/bench_map.py [--settlements N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.features
import shapely
from rasterio.transform import from_origin
from scipy.spatial import cKDTree

from profiling.config import HazardSource, MapSettings
from profiling.publish._data import MAIN_INDICATORS, read_tables
from profiling.publish.maps import write_map

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PIXEL_DEG = 1e-4  # about 11 m
LON0, LAT0 = 106.70, -6.10


def city(n: int, seed: int = 7) -> gpd.GeoDataFrame:
    """``n`` settlements tiling a square without gaps or overlaps, with staircase edges."""
    rng = np.random.default_rng(seed)
    side = int(np.sqrt(n * 200))  # about 200 pixels (2.4 ha) a settlement
    seeds = rng.uniform(0, side, size=(n, 2))
    yy, xx = np.mgrid[0:side, 0:side]
    pts = np.column_stack([xx.ravel() + 0.5, yy.ravel() + 0.5])
    pts += rng.normal(0, 1.5, pts.shape)  # jitter: irregular boundaries
    _, label = cKDTree(seeds).query(pts)
    grid = label.reshape(side, side).astype("int32")
    transform = from_origin(LON0, LAT0, PIXEL_DEG, PIXEL_DEG)
    parts: dict[int, list] = {}
    for geom, value in rasterio.features.shapes(grid, transform=transform):
        parts.setdefault(int(value), []).append(shapely.geometry.shape(geom))
    ids = sorted(parts)
    geoms = [shapely.union_all(parts[i]) for i in ids]
    return gpd.GeoDataFrame({"settlement_id": [f"S{i:04d}" for i in ids],
                             "name": [f"Settlement {i}" for i in ids]},
                            geometry=geoms, crs="EPSG:4326")


def write_run(out: Path, n: int, seed: int = 7) -> None:
    """The tables a run leaves: settlement table (CSV + GeoPackage), parameters, hexagons."""
    import h3

    rng = np.random.default_rng(seed)
    g = city(n, seed)
    m = len(g)
    g["households"] = rng.integers(0, 400, m).astype(float)
    g.loc[g["households"] < 5, "households"] = np.nan
    g["population"] = g["households"] * 4.2
    for ind in MAIN_INDICATORS:
        if ind.kind.startswith("share"):
            g[ind.column] = rng.beta(2, 2, m)
    g["cuf_rank"] = pd.Series(rng.permutation(m) + 1, dtype=float)
    sup = g["households"].isna()
    g.loc[sup, [c for c in g.columns if c.endswith("_share") and c != "flood_area_share"]
          + ["population", "cuf_rank"]] = np.nan
    g.drop(columns="geometry").to_csv(out / "settlement_indicators.csv", index=False)
    g.to_file(out / "settlements.gpkg", layer="settlement_indicators")
    pd.DataFrame({"parameter": ["min_cell_size"], "value": [5.0]}).to_csv(
        out / "parameters.csv", index=False)
    c = shapely.point_on_surface(g.geometry.values)
    cells = sorted({h3.latlng_to_cell(y, x, 9) for x, y in zip(shapely.get_x(c),
                                                                shapely.get_y(c), strict=True)})
    pd.DataFrame({"h3_cell": cells, "households": rng.integers(5, 300, len(cells)),
                  "slum_household_share": rng.uniform(0, 1, len(cells)),
                  "slum_household_n": 5}).to_csv(out / "hexagons.csv", index=False)


def folder_mb(out: Path) -> float:
    files = [out / "map.html", *(p for p in (out / "map_files").rglob("*") if p.is_file())]
    return sum(p.stat().st_size for p in files) / 1e6


def load_seconds(html: Path, n: int) -> tuple[float, float, list[str]]:
    """Seconds to the ``load`` event and to all polygons drawn, and requests to outside hosts."""
    from playwright.sync_api import sync_playwright

    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 800})

        def route(r) -> None:  # type: ignore[no-untyped-def]
            if r.request.url.startswith("file://"):
                r.continue_()
            else:
                outside.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.goto(html.as_uri(), wait_until="load")
        page.wait_for_function(f"document.querySelectorAll('path.pm-settlement').length >= {n}",
                               timeout=60_000)
        drawn = page.evaluate("performance.now()") / 1000
        load = page.evaluate("(() => { const t = performance.getEntriesByType('navigation')[0];"
                             " return t.loadEventEnd - t.startTime; })()") / 1000
        browser.close()
    return load, drawn, outside


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settlements", type=int, default=2000)
    ap.add_argument("--keep", type=Path, default=None, help="write here and keep the files")
    args = ap.parse_args()
    out = args.keep or Path(tempfile.mkdtemp(prefix="bench_map_"))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    write_run(out, args.settlements)
    t1 = time.perf_counter()
    tables = read_tables(out)
    flood = HazardSource(name="flood", path=REPO / "sample_data" / "hazards" / "flood_depth.tif")
    write_map(tables, MapSettings(), [flood])
    t2 = time.perf_counter()
    n = len(tables.settlements)
    vertices = int(shapely.get_num_coordinates(tables.settlements.geometry.values).sum())
    size = folder_mb(out)
    load, drawn, outside = load_seconds(out / "map.html", n)
    print(f"settlements: {n:,} ({vertices:,} boundary vertices), generated in {t1 - t0:.1f} s")
    print(f"map.html written in {t2 - t1:.1f} s")
    print(f"map.html + map_files: {size:.2f} MB (target < 15 MB: "
          f"{'met' if size < 15 else 'MISSED'})")
    print(f"Chromium: load event at {load:.2f} s, all {n:,} polygons drawn at {drawn:.2f} s "
          f"(target < 3 s: {'met' if max(load, drawn) < 3 else 'MISSED'})")
    print(f"requests to outside hosts: {len(outside)}")
    if args.keep is None:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
