"""Benchmark: the heavy stages in process and on a local Dask cluster (issue 9).

Issue 9's acceptance size: 5,000,000 households, 10,000 settlements and a 40,000 x 40,000
float32 flood raster (5 m cells, 200 km a side), generated on disk; the heavy stages run in
process and on a 2-worker local cluster, printing wall time and peak memory per worker. Memory
per worker must stay bounded (under 4 GiB) as the data grows, where the in-process path's grows
with the households.

``--scale F`` multiplies the households and the settlements by F and the raster's side by
sqrt(F) (the same density of households per settlement and per cell), so a run at 0.05 and one at
0.2 show how each path's memory grows.

What it does:

1. Generates (seeded, once; reused when present) in ``$PROFILING_BENCH_DIR`` or
   ``/tmp/profiling-bench`` (``distributed-<size>-<settlements>-<seed>/``):
   ``settlements.gpkg`` (rectangles of 1-16 ha, one in each cell of a jittered grid over the
   raster, UTM zone 48S) and ``flood.tif`` (float32 depth, tiled 512 x 512, DEFLATE with the
   floating-point predictor, nodata -9999: a smooth field, dry on about 60% of the land, with a
   band of nodata along the northern edge). Households are not written: each partition
   generates its own, seeded by its number, in the settlements of one spatially compact
   (Hilbert-ordered) chunk, 97% inside a settlement, 3% up to 200 m outside; answers are drawn
   from the reference form's choice lists. The same partitions are made in both runs.
2. Runs, each in a fresh subprocess:

   - ``in_process``: all partitions generated and concatenated into one frame, then the stages
     as :func:`profiling.pipeline.run` runs them on one machine: ``join.place``,
     ``hazard.exposure`` of the settlements and the households, ``compute_indicators``, the
     settlement counts (``partial_counts`` on the whole) and the H3 hexagon counts
     (``hexagon_counts``).
   - ``local``: a ``distributed.LocalCluster`` of ``--workers`` processes (1 thread each); each
     partition is generated on a worker and goes through the same functions
     (:func:`profiling.distributed.place_task`, :func:`profiling.distributed.household_task`,
     :func:`profiling.distributed.zone_task`); only its settlement and hexagon counts come back
     and are added.

   Wall time (generation of the households included in both, so the two compare), peak RSS of
   the in-process subprocess, of the client, and of each worker (``ru_maxrss`` read on the worker
   at the end: the worker processes start fresh for the run, so it is their peak). Then it checks
   that both give the same settlement and hexagon counts exactly and the same zonal statistics
   to 1e-9.

The machine is shared: timings are noisy. Run ``python benchmarks/bench_distributed.py
[--scale F] [--workers N] [--partition-size N] [--skip-in-process] [--regenerate]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HOUSEHOLDS = 5_000_000
SETTLEMENTS = 10_000
SIZE = 40_000
CELL = 5.0
X0, Y0 = 600_000.0, 9_400_000.0  # top-left corner, UTM 48S
CRS = "EPSG:32748"
NODATA = -9999.0


def bench_dir(size: int, settlements: int, seed: int) -> Path:
    root = Path(os.environ.get("PROFILING_BENCH_DIR", "/tmp/profiling-bench"))
    return root / f"distributed-{size}-{settlements}-{seed}"


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

def make_settlements(path: Path, n: int, size: int, seed: int) -> None:
    import geopandas as gpd
    import shapely

    rng = np.random.default_rng(seed)
    side = size * CELL
    k = math.ceil(math.sqrt(n))
    step = side / k
    i = np.arange(n)
    gx, gy = i % k, i // k
    area = np.exp(rng.uniform(np.log(1e4), np.log(16e4), n))  # 1-16 ha
    aspect = rng.uniform(0.6, 1.6, n)
    w = np.minimum(np.sqrt(area * aspect), step * 0.8)
    h = np.minimum(area / w, step * 0.8)
    x0 = X0 + gx * step + rng.uniform(0, 1, n) * (step - w)
    y1 = Y0 - gy * step - rng.uniform(0, 1, n) * (step - h)
    geoms = shapely.box(x0, y1 - h, x0 + w, y1)
    ids = np.array([f"S{j:05d}" for j in i])
    gpd.GeoDataFrame({"settlement_id": ids, "name": ids}, geometry=geoms, crs=CRS).to_file(
        path, layer="settlements", engine="pyogrio")


def make_raster(path: Path, size: int, seed: int) -> None:
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    k = rng.uniform(0.5, 2.0, (6, 2)) * 2 * np.pi / size * 8
    ph = rng.uniform(0, 2 * np.pi, 6)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1,
               "dtype": "float32", "crs": CRS, "transform": from_origin(X0, Y0, CELL, CELL),
               "nodata": NODATA, "tiled": True, "blockxsize": 512, "blockysize": 512,
               "compress": "deflate", "zlevel": 1, "predictor": 3, "num_threads": "all_cpus",
               "bigtiff": "yes"}
    cols = np.arange(size, dtype=np.float32)
    with rasterio.open(path, "w", **profile) as ds:
        for r0 in range(0, size, 512):
            rows = np.arange(r0, min(size, r0 + 512), dtype=np.float32)[:, None]
            f = np.zeros((len(rows), size), np.float32)
            for j in range(6):
                f += np.sin(k[j, 0] * cols[None, :] + k[j, 1] * rows + ph[j], dtype=np.float32)
            depth = np.maximum(f * np.float32(0.35) - np.float32(0.3), 0).astype(np.float32)
            depth[rows[:, 0] < size * 0.02] = NODATA  # the sea: outside the modelled extent
            ds.write(depth[None], window=rasterio.windows.Window(0, r0, size, len(rows)))


def prepare_inputs(folder: Path, size: int, n_settlements: int, seed: int,
                   regenerate: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    s, r = folder / "settlements.gpkg", folder / "flood.tif"
    if regenerate or not s.exists():
        t = time.perf_counter()
        make_settlements(s, n_settlements, size, seed)
        print(f"generated {s} in {time.perf_counter() - t:.1f} s", flush=True)
    if regenerate or not r.exists():
        t = time.perf_counter()
        make_raster(r, size, seed)
        print(f"generated {r} ({r.stat().st_size / 2**20:.0f} MiB on disk, "
              f"{size * size * 4 / 2**30:.1f} GiB as float32) in "
              f"{time.perf_counter() - t:.1f} s", flush=True)


def _choices() -> dict[str, list[str]]:
    from profiling.form import reference_form

    form = reference_form()
    out = {}
    for q in form.questions.values():
        short = q.name.rsplit("/", 1)[-1]
        names = form.choice_names(q.name)
        if names:
            out[short] = names
    return out


def make_households(chunk: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` households in and around the rectangles of ``chunk`` (minx, miny, maxx, maxy),
    with WGS84 coordinates and answers drawn from the reference choice lists."""
    from pyproj import Transformer

    rng = np.random.default_rng(seed)
    b = chunk[["minx", "miny", "maxx", "maxy"]].to_numpy()
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    which = rng.choice(len(b), n, p=area / area.sum())
    x = rng.uniform(b[which, 0], b[which, 2])
    y = rng.uniform(b[which, 1], b[which, 3])
    out = rng.random(n) < 0.03
    x[out] += rng.choice([-1, 1], out.sum()) * rng.uniform(0, 200, out.sum())
    y[out] += rng.choice([-1, 1], out.sum()) * rng.uniform(0, 200, out.sum())
    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(x, y)
    cols: dict[str, object] = {"longitude": lon, "latitude": lat,
                               "hh_size": rng.integers(1, 11, n).astype(float),
                               "rooms_sleeping": rng.integers(1, 6, n).astype(float),
                               "water_minutes": rng.choice([0, 5, 15, 30, 45, 90], n)
                               .astype(float),
                               "toilet_households": rng.integers(2, 12, n).astype(float)}
    for field, values in _choices().items():
        if field in ("settlement_reported", "consent", "enumerator"):
            continue
        pick = np.array(values, dtype=object)[rng.integers(0, len(values), n)]
        if field in ("tenure_documents", "priority_needs"):
            second = np.array(values, dtype=object)[rng.integers(0, len(values), n)]
            pick = pick + " " + second
        pick[rng.random(n) < 0.02] = None  # unknown answers
        cols[field] = pick
    return pd.DataFrame(cols)


def partition_plan(folder: Path, households: int, partition_size: int
                   ) -> tuple[pd.DataFrame, list[pd.Index], list[int]]:
    """Settlements, their Hilbert-ordered chunks (one per partition) and households per
    partition (proportional to the chunk's area)."""
    import geopandas as gpd

    from profiling import distributed as D

    s = gpd.read_file(folder / "settlements.gpkg", engine="pyogrio")
    k = max(1, math.ceil(households / partition_size))
    chunks = D.settlement_chunks(s, math.ceil(len(s) / k))
    area = np.array([c.geometry.area.sum() for c in chunks])
    n = np.floor(households * area / area.sum()).astype(int)
    n[: households - n.sum()] += 1
    return s, [c.index for c in chunks], n.tolist()


def _bounds(s: pd.DataFrame, idx: pd.Index) -> pd.DataFrame:
    return s.loc[idx].geometry.bounds


# --------------------------------------------------------------------------------------------
# The two runs (each in its own subprocess)
# --------------------------------------------------------------------------------------------

def run_in_process(folder: Path, households: int, partition_size: int, seed: int) -> dict:
    from profiling import hazard
    from profiling.aggregates import hexagon_counts
    from profiling.config import HazardSource
    from profiling.indicators import compute_indicators, partial_counts
    from profiling.join import place, prepare

    s, chunks, sizes = partition_plan(folder, households, partition_size)
    flood = HazardSource(name="flood", path=folder / "flood.tif")
    t0 = time.perf_counter()
    hh = pd.concat([make_households(_bounds(s, c), n, seed * 100_003 + i)
                    for i, (c, n) in enumerate(zip(chunks, sizes, strict=True))],
                   ignore_index=True)
    t_gen = time.perf_counter() - t0
    settlements = prepare(s)
    lon, lat = hh["longitude"].to_numpy(), hh["latitude"].to_numpy()
    p = place(lon, lat, settlements)
    ids = settlements.frame["settlement_id"].to_numpy(dtype=object)
    hh["settlement_id"] = pd.array(np.where(p.inside >= 0, ids[np.maximum(p.inside, 0)], None),
                                   dtype="string")
    xy = (p.x, p.y, p.crs) if p.x is not None and p.y is not None and p.crs else None
    zones, points = hazard.exposure(settlements.frame, lon, lat, [flood], points_xy=xy)
    points.index = hh.index
    hh["flood"] = points["flood"]
    ind = compute_indicators(hh)
    inside = hh["settlement_id"].notna().to_numpy()
    counts = partial_counts(hh.loc[inside], ind.loc[inside])
    cells = hexagon_counts(hh["latitude"], hh["longitude"], ind["slum_household"])
    wall = time.perf_counter() - t0
    counts.to_parquet(folder / "counts_in_process.parquet")
    cells.to_parquet(folder / "hexagons_in_process.parquet")
    zones.to_parquet(folder / "zones_in_process.parquet")
    return {"wall_s": wall, "generate_s": t_gen, "households": len(hh),
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def _worker_part(bounds: pd.DataFrame, n: int, seed: int, settlements: pd.DataFrame,
                 flood: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    from profiling import distributed as D
    from profiling.indicators import Thresholds

    part = make_households(bounds, n, seed)
    _, inside, _, _ = D.place_task(part, settlements)
    ids = settlements.sort_values("settlement_id")["settlement_id"].to_numpy(dtype=object)
    part["settlement_id"] = pd.array(np.where(inside >= 0, ids[np.maximum(inside, 0)], None),
                                     dtype="string")
    return D.household_task(part, [flood], Thresholds())


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_local(folder: Path, households: int, partition_size: int, seed: int,
              workers: int) -> dict:
    from distributed import Client, LocalCluster

    from profiling import distributed as D
    from profiling.config import HazardSource

    s, chunks, sizes = partition_plan(folder, households, partition_size)
    flood = HazardSource(name="flood", path=folder / "flood.tif")
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0", memory_limit=None) as lc, Client(lc) as client:
        client.wait_for_workers(workers)
        t0 = time.perf_counter()
        polys = s[list(D.SETTLEMENT_COLUMNS)]
        [sent] = D._scatter(client, [polys], broadcast=True)
        futs = [client.submit(_worker_part, _bounds(s, c), n, seed * 100_003 + i, sent, flood,
                              pure=False)
                for i, (c, n) in enumerate(zip(chunks, sizes, strict=True))]
        zchunks = D.settlement_chunks(polys, math.ceil(len(polys) / (4 * workers)))
        zfuts = client.map(D.zone_task, D._scatter(client, zchunks), hazards=[flood],
                           pure=False)
        parts = client.gather(futs)
        counts = D.add_counts([c for c, _ in parts])
        cells = D.add_counts([h for _, h in parts])
        zones = pd.concat(client.gather(zfuts)).reindex(s["settlement_id"].to_numpy())
        wall = time.perf_counter() - t0
        per_worker = client.run(_peak_rss_gib)
    counts.to_parquet(folder / "counts_local.parquet")
    cells.to_parquet(folder / "hexagons_local.parquet")
    zones.to_parquet(folder / "zones_local.parquet")
    return {"wall_s": wall, "partitions": len(chunks), "workers": workers,
            "peak_rss_gib_per_worker": sorted(per_worker.values()),
            "client_peak_rss_gib": _peak_rss_gib()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--partition-size", type=int, default=250_000)
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--skip-in-process", action="store_true")
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--run", choices=["in_process", "local"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    households = round(HOUSEHOLDS * a.scale)
    n_settlements = max(1, round(SETTLEMENTS * a.scale))
    size = max(512, round(SIZE * math.sqrt(a.scale)))
    folder = bench_dir(size, n_settlements, a.seed)
    if a.run == "in_process":
        print(json.dumps(run_in_process(folder, households, a.partition_size, a.seed)))
        return
    if a.run == "local":
        print(json.dumps(run_local(folder, households, a.partition_size, a.seed, a.workers)))
        return
    print(f"scale {a.scale:g}: {households:,} households, {n_settlements:,} settlements, "
          f"{size:,} x {size:,} raster; {a.workers} workers, partitions of "
          f"{a.partition_size:,}; the machine is shared, timings are noisy", flush=True)
    prepare_inputs(folder, size, n_settlements, a.seed, a.regenerate)
    results = {}
    for mode in (["local"] if a.skip_in_process else ["in_process", "local"]):
        proc = subprocess.run([sys.executable, __file__, "--run", mode, "--scale", str(a.scale),
                               "--workers", str(a.workers), "--partition-size",
                               str(a.partition_size), "--seed", str(a.seed)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(proc.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"{mode} run failed")
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(mode, json.dumps(results[mode]), flush=True)
    if "in_process" in results:
        a_counts = pd.read_parquet(folder / "counts_in_process.parquet")
        b_counts = pd.read_parquet(folder / "counts_local.parquet")
        pd.testing.assert_frame_equal(a_counts, b_counts, check_exact=True, check_names=False)
        pd.testing.assert_frame_equal(pd.read_parquet(folder / "hexagons_in_process.parquet"),
                                      pd.read_parquet(folder / "hexagons_local.parquet"),
                                      check_exact=True)
        za = pd.read_parquet(folder / "zones_in_process.parquet")
        zb = pd.read_parquet(folder / "zones_local.parquet")
        pd.testing.assert_frame_equal(za, zb, check_exact=False, rtol=0, atol=1e-9,
                                      check_names=False)
        print("same settlement and hexagon counts (exactly) and zonal statistics (to 1e-9) "
              "both ways")
        ip, lo = results["in_process"], results["local"]
        print(f"in process: {ip['wall_s']:.1f} s, peak RSS {ip['peak_rss_gib']:.2f} GiB; "
              f"local cluster ({lo['workers']} workers, {lo['partitions']} partitions): "
              f"{lo['wall_s']:.1f} s, peak RSS per worker "
              f"{', '.join(f'{g:.2f}' for g in lo['peak_rss_gib_per_worker'])} GiB, client "
              f"{lo['client_peak_rss_gib']:.2f} GiB")


if __name__ == "__main__":
    main()
