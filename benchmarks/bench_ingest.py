"""Benchmark: reading and validating a million Kobo submissions.

Acceptance criterion: "Reading and validating 1,000,000 submissions from a Kobo CSV takes under
20 s with peak memory under 4 GiB on this machine (2 cores)".

What it does:

1. Generates (seeded, vectorised with numpy and pyarrow, no Python loop per row) a KoboToolbox
   CSV export of the reference questionnaire (CONTRACT.md §1) with ``--rows`` submissions: the
   very columns of ``sample_data/exports/kobo_day1-4.csv`` (``;`` separated, group paths joined
   by ``/``, the raw ``gps`` string and the split ``_gps_*`` columns, select_multiple as a
   space-separated column plus 0/1 columns, ``_id``, ``_uuid``, ``_submission_time``, ...).
   Households lie inside the sample settlements (``sample_data/settlements.gpkg``), a few just
   outside; about 1% of the rows are re-downloads of a key, 1% refusals, 0.5% hold one invalid
   value and 0.2% are rejected (bad GPS or bad ``hh_size``). Personal fields are synthetic.
   The file is written outside the repository, to ``$PROFILING_BENCH_DIR`` or
   ``/tmp/profiling-bench``, with a sidecar ``.json`` (rows, seed, expected counts); a later run
   with the same rows and seed reuses it.
2. Times, in a fresh subprocess (so the generator's memory does not count),
   ``profiling.ingest.ingest`` on that file with the reference form and the prepared sample
   settlements: wall time of the ``ingest`` call, rows per second, the RSS after imports and the
   peak RSS (``ru_maxrss``) of that subprocess, and the resulting counts, checked against
   read = accepted + rejected + duplicates + no_consent and against the generator's plan.
3. Times ``pandas.read_csv(path, sep=";", dtype=str)`` alone, in another fresh subprocess, for
   comparison.

Run: ``python benchmarks/bench_ingest.py [--rows N] [--seed S] [--profile]``. The exit code is 0
whether or not the targets are met (benchmarks are not tests); only an exception fails it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTLEMENTS = ROOT / "sample_data" / "settlements.gpkg"
SAMPLE_EXPORT = ROOT / "sample_data" / "exports" / "kobo_day1-4.csv"
TARGET_SECONDS = 20.0
TARGET_MIB = 4096.0
#: Bump when the generated file changes, so that older cached files are regenerated.
GENERATOR_VERSION = 1

# Shares of the unique households (the duplicate rows come on top, as a share of all rows).
DUP_SHARE = 0.01
REFUSED_SHARE = 0.01
INVALID_SHARE = 0.005
REJECT_SHARE = 0.002
OUTSIDE_SHARE = 0.01  # accepted, a few hundred metres outside every settlement


def _mib(kib: float) -> float:
    return kib / 1024.0


def _rss_now_kib() -> int:
    """The current resident set size (Linux ``/proc``; the peak elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------

def kobo_header() -> list[str]:
    """The columns of a Kobo CSV export of the reference form, in Kobo's order."""
    from profiling.form import reference_form

    form = reference_form()
    head: list[str] = []
    for name, q in form.questions.items():
        if q.type == "geopoint":
            head += [name, *(f"_{name}_{p}" for p in ("latitude", "longitude", "altitude",
                                                        "precision"))]
            continue
        head.append(name)
        if q.type == "select_multiple":
            head += [f"{name}/{c}" for c in form.choice_names(name)]
    return [*head, "_id", "_uuid", "_submission_time", "_validation_status", "_status", "_index"]


def _sample_points(rng, n: int, settlements):
    """``n`` WGS84 points inside the settlement polygons, and the settlement index of each."""
    import numpy as np
    import shapely

    geoms = settlements.geometry.values
    area = settlements.to_crs(settlements.estimate_utm_crs()).area.to_numpy()
    weight = np.sqrt(area) / np.sqrt(area).sum()
    which = rng.choice(len(geoms), size=n, p=weight)
    lon = np.empty(n)
    lat = np.empty(n)
    for i, geom in enumerate(geoms):  # one pass per settlement, not per point
        rows = np.flatnonzero(which == i)
        x0, y0, x1, y1 = geom.bounds
        filled = 0
        shapely.prepare(geom)
        while filled < len(rows):
            need = len(rows) - filled
            cx = rng.uniform(x0, x1, 3 * need + 64)
            cy = rng.uniform(y0, y1, 3 * need + 64)
            keep = shapely.contains_xy(geom, cx, cy)
            cx, cy = cx[keep][:need], cy[keep][:need]
            lon[rows[filled:filled + len(cx)]] = cx
            lat[rows[filled:filled + len(cy)]] = cy
            filled += len(cx)
    return lon, lat, which


def _uuids(rng, n: int):
    """``n`` random version-4 UUID strings, as a pyarrow string array."""
    import numpy as np
    import pyarrow as pa

    b = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    b[:, 6] = (b[:, 6] & 0x0F) | 0x40
    b[:, 8] = (b[:, 8] & 0x3F) | 0x80
    hexdigits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    nib = np.empty((n, 32), dtype=np.uint8)
    nib[:, 0::2] = hexdigits[b >> 4]
    nib[:, 1::2] = hexdigits[b & 0x0F]
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    for a, z, d in ((0, 8, 0), (8, 12, 1), (12, 16, 2), (16, 20, 3), (20, 32, 4)):
        out[:, a + d:z + d] = nib[:, a:z]
    return pa.array(out.view("S36").ravel()).cast(pa.string())


def _take(values, idx):
    """``values[idx]`` as a pyarrow string array (values: a short list of strings)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.take(pa.array(values, pa.string()), pa.array(idx))


def _num(a, decimals: int | None = None):
    """Numbers as strings (shortest round-trip form), optionally rounded first."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if decimals is not None:
        a = np.round(a, decimals)
    return pc.cast(pa.array(a), pa.string())


def _cat(*parts):
    """Element-wise concatenation of string arrays and scalars."""
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(*parts, "")


def _times(ms, offset_hours: int | None, with_ms: bool):
    """Epoch milliseconds (UTC) as ISO 8601 strings, in local time with its offset or in UTC."""
    import numpy as np
    import pyarrow as pa

    shift = (offset_hours or 0) * 3_600_000
    t = (ms + shift).astype("datetime64[ms]")
    s = np.datetime_as_string(t, unit="ms" if with_ms else "s")
    arr = pa.array(s).cast(pa.string())
    if offset_hours is not None:
        arr = _cat(arr, f"{offset_hours:+03d}:00")
    return arr


def _multi(rng, n: int, choices: list[str], n_chosen, exclusive: str | None = None):
    """A select_multiple answer per row: the space-separated column and the 0/1 columns.

    ``n_chosen`` (array) choices are drawn per row without replacement; the strings are built
    once per distinct combination (at most 2**len(choices)), not once per row.
    """
    import numpy as np

    k = len(choices)
    scores = rng.random((n, k))
    rank = np.argsort(np.argsort(scores, axis=1), axis=1)
    chosen = rank < np.asarray(n_chosen)[:, None]
    if exclusive is not None:  # "none" goes alone
        e = choices.index(exclusive)
        alone = chosen[:, e]
        chosen[alone] = False
        chosen[alone, e] = True
    code = (chosen * (1 << np.arange(k))).sum(axis=1)
    uniq, inv = np.unique(code, return_inverse=True)
    text = [" ".join(c for j, c in enumerate(choices) if u >> j & 1) for u in uniq.tolist()]
    joined = _take(text, inv)
    flags = {c: _take(["0", "1"], chosen[:, j].astype(np.int8)) for j, c in enumerate(choices)}
    return joined, flags, chosen


def generate(path: Path, n_rows: int, seed: int, boundaries: Path = SETTLEMENTS) -> dict:
    """Write a Kobo CSV of ``n_rows`` submissions with points in the settlements of
    ``boundaries`` (default: the sample city's); returns the planned counts."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    from profiling.form import reference_form
    from profiling.join import read_boundaries

    rng = np.random.default_rng(seed)
    sett = read_boundaries(boundaries).to_crs("EPSG:4326").reset_index(drop=True)
    ids = sett["settlement_id"].astype(str).tolist()
    form = reference_form(zip(ids, sett["name"].astype(str), strict=True))

    n_dup = round(n_rows * DUP_SHARE)
    m = n_rows - n_dup  # unique households
    # one fate per household: refused, rejected, one invalid value, or clean
    u = rng.random(m)
    refused = u < REFUSED_SHARE
    rejected = (u >= REFUSED_SHARE) & (u < REFUSED_SHARE + REJECT_SHARE)
    invalid = (u >= REFUSED_SHARE + REJECT_SHARE) & (u < REFUSED_SHARE + REJECT_SHARE
                                                     + INVALID_SHARE)
    answered = ~refused

    cols: dict[str, pa.Array] = {}
    empty = pa.scalar("", pa.string())

    def blank_unless(arr, keep):
        return pc.if_else(pa.array(keep), arr, empty)

    def choice(field: str, p=None):
        names = form.choice_names(field)
        idx = rng.choice(len(names), size=m, p=p)
        return blank_unless(_take(names, idx), answered), idx

    # interview times: 60 days from 2 March 2026, 07:00-18:00 local (UTC+7)
    day = rng.integers(0, 60, m)
    start_ms = (np.datetime64("2026-03-02T00:00:00", "ms").astype(np.int64)
                + day * 86_400_000 + rng.integers(0, 11 * 3_600_000, m))  # 07:00 local = 00 UTC
    end_ms = start_ms + rng.integers(8 * 60_000, 45 * 60_000, m)
    sub_ms = end_ms + rng.integers(60_000, 2 * 86_400_000, m)
    cols["start"] = _times(start_ms, 7, True)
    cols["end"] = _times(end_ms, 7, True)
    cols["enumerator"] = _take([f"ENUM{i:02d}" for i in range(1, 61)], rng.integers(0, 60, m))
    cols["consent"] = _take(["yes", "no"], refused.astype(np.int8))

    lon, lat, where = _sample_points(rng, m, sett)
    outside = answered & ~rejected & (rng.random(m) < OUTSIDE_SHARE)
    ang = rng.uniform(0, 2 * np.pi, outside.sum())
    dist_deg = rng.uniform(150, 600, outside.sum()) / 111_000.0
    lon[outside] += dist_deg * np.cos(ang)
    lat[outside] += dist_deg * np.sin(ang)
    reported = where.copy()
    neighbour = rng.random(m) < 0.02
    reported[neighbour] = rng.integers(0, len(ids), neighbour.sum())
    cols["settlement_reported"] = blank_unless(_take(ids, reported), answered)
    cols["structure_id"] = blank_unless(_cat(
        _take(ids, where), "-",
        pc.utf8_lpad(_num(rng.integers(1, 5000, m)), 4, "0")), answered)

    # rejected rows: a bad location or a bad hh_size
    rej_kind = np.where(rejected, rng.integers(0, 6, m), -1)
    lat_s, lon_s = _num(lat, 7), _num(lon, 7)
    alt_s, acc_s = _num(rng.normal(8.0, 2.0, m), 1), _num(rng.gamma(2.0, 3.0, m) + 2.0, 1)
    zero = pa.scalar("0", pa.string())
    lat_s = pc.if_else(pa.array(rej_kind == 1), zero, lat_s)  # 0/0: no fix
    lon_s = pc.if_else(pa.array(rej_kind == 1), zero, lon_s)
    swapped = pa.array(rej_kind == 2)
    lat_s, lon_s = pc.if_else(swapped, lon_s, lat_s), pc.if_else(swapped, lat_s, lon_s)
    far = pa.array(rej_kind == 3)  # some 20 km south of every settlement
    lat_s = pc.if_else(far, _num(lat - 0.2, 7), lat_s)
    no_gps = pa.array((rej_kind == 0) | refused)
    gps = pc.if_else(no_gps, empty, _cat(lat_s, " ", lon_s, " ", alt_s, " ", acc_s))
    cols["gps"] = gps
    for name, s in (("latitude", lat_s), ("longitude", lon_s), ("altitude", alt_s),
                    ("precision", acc_s)):
        cols[f"_gps_{name}"] = pc.if_else(no_gps, empty, s)

    serial = np.arange(1, m + 1)
    cols["respondent_name"] = blank_unless(_cat("Synthetic Respondent ", _num(serial)), answered)
    cols["phone"] = blank_unless(_cat("+00 000 ", pc.utf8_lpad(_num(serial), 8, "0")), answered)
    cols["national_id"] = blank_unless(_cat("SYN", pc.utf8_lpad(_num(serial), 13, "0")),
                                       answered)

    hh = np.clip(rng.poisson(4.2, m), 1, 30)
    bad_hh = _take(["0", "45", "", "four", "2.5"], rng.integers(0, 5, m))
    hh_s = pc.if_else(pa.array(rej_kind >= 4), bad_hh, _num(hh))
    cols["household/hh_size"] = blank_unless(hh_s, answered)
    cols["household/hh_head_sex"], _ = choice("household/hh_head_sex", [0.35, 0.65])
    rooms = np.clip(rng.poisson(1.3, m) + 1, 1, 20)
    cols["household/rooms_sleeping"] = blank_unless(_num(rooms), answered)

    tenure_p = [0.12, 0.18, 0.2, 0.12, 0.25, 0.05, 0.03, 0.05]
    cols["tenure/tenure_status"], _ = choice("tenure/tenure_status", tenure_p)
    docs = form.choice_names("tenure/tenure_documents")
    n_docs = rng.choice([1, 1, 1, 2, 2, 3], size=m)
    joined, flags, _ = _multi(rng, m, docs, n_docs, exclusive="none")
    cols["tenure/tenure_documents"] = blank_unless(joined, answered)
    for c, f in flags.items():
        cols[f"tenure/tenure_documents/{c}"] = blank_unless(f, answered)
    cols["tenure/eviction_fear"], _ = choice("tenure/eviction_fear", [0.35, 0.5, 0.15])

    cols["water/water_source"], ws = choice("water/water_source")
    on_premises = ws <= 1
    minutes = np.where(on_premises, 0, np.clip(rng.gamma(2.0, 12.0, m).astype(int), 1, 600))
    cols["water/water_minutes"] = blank_unless(_num(minutes), answered)
    cols["water/water_sufficient"], _ = choice("water/water_sufficient", [0.7, 0.3])
    cols["sanitation/toilet_type"], _ = choice("sanitation/toilet_type")
    cols["sanitation/toilet_shared"], shared = choice("sanitation/toilet_shared", [0.45, 0.55])
    toilet_hh = np.clip(rng.poisson(6, m) + 2, 2, 200)
    cols["sanitation/toilet_households"] = blank_unless(_num(toilet_hh), answered & (shared == 0))
    cols["hygiene/handwashing"], _ = choice("hygiene/handwashing", [0.55, 0.3, 0.15])
    cols["waste/waste_disposal"], _ = choice("waste/waste_disposal")
    cols["energy/electricity"], _ = choice("energy/electricity")
    cols["housing/wall_material"], _ = choice("housing/wall_material")
    cols["housing/roof_material"], _ = choice("housing/roof_material")
    cols["housing/floor_material"], _ = choice("housing/floor_material")
    cols["hazards/flooded_past_year"], _ = choice("hazards/flooded_past_year", [0.3, 0.7])
    needs = form.choice_names("priorities/priority_needs")
    joined, flags, _ = _multi(rng, m, needs, rng.integers(1, 4, m))
    cols["priorities/priority_needs"] = blank_unless(joined, answered)
    for c, f in flags.items():
        cols[f"priorities/priority_needs/{c}"] = blank_unless(f, answered)

    # one invalid value in ~0.5% of the households (each becomes a dropped value)
    faults = [("housing/floor_material", "ceramic"), ("tenure/tenure_status", "owner"),
              ("water/water_source", "pipe"), ("household/rooms_sleeping", "25"),
              ("water/water_minutes", "about 10"), ("household/hh_head_sex", "f"),
              ("priorities/priority_needs", "water roads")]
    fault = np.where(invalid, rng.integers(0, len(faults), m), -1)
    for j, (field, bad) in enumerate(faults):
        cols[field] = pc.if_else(pa.array(fault == j), pa.scalar(bad, pa.string()), cols[field])

    # rows: every household once, plus re-downloads of ~1% of them; Kobo orders by _id
    dup_of = rng.integers(0, m, n_dup)
    hid = np.concatenate([np.arange(m), dup_of])
    row_sub = np.concatenate([sub_ms, sub_ms[dup_of] + np.where(
        rng.random(n_dup) < 0.5, 0, rng.integers(60_000, 86_400_000, n_dup))])
    order = np.argsort(row_sub, kind="stable")
    hid = hid[order]
    take_idx = pa.array(hid)
    keys = _uuids(rng, m)
    header = kobo_header()
    out: dict[str, pa.Array] = {}
    for h in header:
        if h in cols:
            out[h] = pc.take(cols[h], take_idx)
    out["_id"] = _num(np.arange(418_001, 418_001 + n_rows))
    out["_uuid"] = pc.take(keys, take_idx)
    out["_submission_time"] = _times(row_sub[order], None, False)
    out["_validation_status"] = _take([""], np.zeros(n_rows, dtype=np.int8))
    out["_status"] = _take(["submitted_via_web"], np.zeros(n_rows, dtype=np.int8))
    out["_index"] = _num(np.arange(1, n_rows + 1))
    missing = [h for h in header if h not in out]
    if missing:
        raise RuntimeError(f"generator lacks columns {missing}")
    table = pa.table({h: out[h] for h in header})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.part")
    pacsv.write_csv(table, tmp, pacsv.WriteOptions(delimiter=";", quoting_style="all_valid",
                                                   batch_size=1 << 14))
    tmp.replace(path)

    # the plan: what ingest should report (the kept version of a key has the same fate)
    live = ~refused & ~rejected
    return {"read": n_rows, "accepted": int(live.sum()), "rejected": int(rejected.sum()),
            "duplicates": n_dup, "no_consent": int(refused.sum()),
            "values_dropped": int((invalid & live).sum())}


def ensure_file(n_rows: int, seed: int, directory: Path, force: bool) -> tuple[Path, dict]:
    """The benchmark CSV for these rows and seed, generated unless an identical one exists."""
    path = directory / f"kobo_bench_{n_rows}_s{seed}.csv"
    side = path.with_suffix(".json")
    want = {"rows": n_rows, "seed": seed, "generator_version": GENERATOR_VERSION}
    if not force and path.exists() and side.exists():
        meta = json.loads(side.read_text())
        if ({k: meta.get(k) for k in want} == want
                and meta.get("size_bytes") == path.stat().st_size):
            print(f"reusing {path} ({path.stat().st_size / 2**20:,.1f} MiB; generated in "
                  f"{meta.get('generation_s', float('nan')):.1f} s on its first run)")
            return path, meta
    print(f"generating {n_rows:,} submissions (seed {seed}) into {path} ...", flush=True)
    t0 = time.perf_counter()
    plan = generate(path, n_rows, seed)
    took = time.perf_counter() - t0
    meta = {**want, "size_bytes": path.stat().st_size, "generation_s": round(took, 2),
            "plan": plan}
    side.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"generated {path.stat().st_size / 2**20:,.1f} MiB in {took:.1f} s", flush=True)
    return path, meta


def check_header(path: Path) -> None:
    """Warn when the generated header differs from the sample Kobo export's."""
    if not SAMPLE_EXPORT.exists():
        return
    with SAMPLE_EXPORT.open(encoding="utf-8") as f:
        sample = f.readline().rstrip("\n")
    with path.open(encoding="utf-8") as f:
        ours = f.readline().rstrip("\n")
    if sample != ours:
        print("WARNING: the generated header differs from sample_data/exports/kobo_day1-4.csv")
    else:
        print("header identical to sample_data/exports/kobo_day1-4.csv "
              f"({ours.count(';') + 1} columns)")


# --------------------------------------------------------------------------------------------
# Measuring (each in a fresh subprocess)
# --------------------------------------------------------------------------------------------

def measure_ingest(path: Path, profile: bool) -> dict:
    """Time ``ingest`` on ``path``; runs inside the measuring subprocess."""
    from profiling.config import SurveySource
    from profiling.form import reference_form
    from profiling.ingest import ingest
    from profiling.join import prepare, read_boundaries

    gdf = read_boundaries(SETTLEMENTS)
    settlements = prepare(gdf)
    form = reference_form(zip(gdf["settlement_id"], gdf["name"], strict=True))
    sources = [SurveySource(path=path)]
    base_now = _rss_now_kib()
    base_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t0 = time.perf_counter()
    result = ingest(sources, form, settlements)
    wall = time.perf_counter() - t0
    if prof is not None:
        import pstats

        prof.disable()
        for key in ("cumulative", "tottime"):
            print(f"--- cProfile, top 35 by {key} ---", file=sys.stderr)
            pstats.Stats(prof, stream=sys.stderr).sort_stats(key).print_stats(35)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"wall_s": wall, "baseline_rss_mib": _mib(base_now),
            "baseline_peak_mib": _mib(base_peak), "peak_rss_mib": _mib(peak),
            "counts": result.counts, "households": len(result.households),
            "rejects_rows": len(result.rejects)}


def measure_pandas(path: Path) -> dict:
    """Time ``pandas.read_csv(dtype=str)`` on ``path``; runs inside its own subprocess."""
    import pandas as pd

    base = _rss_now_kib()
    t0 = time.perf_counter()
    frame = pd.read_csv(path, sep=";", dtype=str)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"wall_s": wall, "rows": len(frame), "baseline_rss_mib": _mib(base),
            "peak_rss_mib": _mib(peak)}


def _run_child(mode: str, path: Path, profile: bool = False) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), mode, str(path)]
    if profile:
        cmd.append("--profile")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="submissions to generate")
    parser.add_argument("--seed", type=int, default=20260302, help="generator seed")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the CSV goes (default $PROFILING_BENCH_DIR or "
                             "/tmp/profiling-bench)")
    parser.add_argument("--regenerate", action="store_true", help="ignore a cached file")
    parser.add_argument("--skip-pandas", action="store_true",
                        help="do not time pandas.read_csv for comparison")
    parser.add_argument("--profile", action="store_true",
                        help="run ingest under cProfile and print the top functions (stderr); "
                             "the timing then includes the profiler's overhead")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--measure-pandas", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.measure is not None:
        print(json.dumps(measure_ingest(args.measure, args.profile)))
        return 0
    if args.measure_pandas is not None:
        print(json.dumps(measure_pandas(args.measure_pandas)))
        return 0

    directory = args.dir or Path(os.environ.get("PROFILING_BENCH_DIR") or "/tmp/profiling-bench")
    path, meta = ensure_file(args.rows, args.seed, directory, args.regenerate)
    size_mib = path.stat().st_size / 2**20
    print(f"file: {path}, {size_mib:,.1f} MiB, {args.rows:,} rows")
    check_header(path)

    print("measuring ingest in a fresh subprocess ...", flush=True)
    r = _run_child("--measure", path, args.profile)
    c = r["counts"]
    rate = c["read"] / r["wall_s"]
    print(f"  RSS after imports (baseline): {r['baseline_rss_mib']:,.0f} MiB")
    print(f"  ingest wall: {r['wall_s']:.2f} s  ({rate:,.0f} rows/s)")
    print(f"  peak RSS: {r['peak_rss_mib']:,.0f} MiB")
    print("  counts: " + ", ".join(f"{k}={v:,}" for k, v in c.items()))
    total = c["accepted"] + c["rejected"] + c["duplicates"] + c["no_consent"]
    balanced = total == c["read"]
    print(f"  read = accepted + rejected + duplicates + no_consent: {c['read']:,} "
          f"{'==' if balanced else '!='} {total:,} -> {'OK' if balanced else 'MISMATCH'}")
    plan = meta.get("plan")
    if plan:
        diffs = [f"{k}: planned {plan[k]:,}, got {c.get(k)}" for k in
                 ("read", "accepted", "rejected", "duplicates", "no_consent", "values_dropped")
                 if plan[k] != c.get(k)]
        print("  counts match the generator's plan" if not diffs else
              "  counts differ from the generator's plan: " + "; ".join(diffs))

    pd_line = None
    if not args.skip_pandas:
        print("measuring pandas.read_csv(sep=';', dtype=str) in a fresh subprocess ...",
              flush=True)
        p = _run_child("--measure-pandas", path)
        pd_line = (f"pandas.read_csv(dtype=str) alone: {p['wall_s']:.1f} s, "
                   f"peak RSS {p['peak_rss_mib']:,.0f} MiB")

    ok = r["wall_s"] < TARGET_SECONDS and r["peak_rss_mib"] < TARGET_MIB
    print()
    print(f"ingest {c['read']:,} rows: {r['wall_s']:.1f} s wall, {rate:,.0f} rows/s, peak RSS "
          f"{r['peak_rss_mib']:,.0f} MiB (target: < {TARGET_SECONDS:g} s, < {TARGET_MIB:g} MiB) "
          f"{'PASS' if ok else 'FAIL'}" + (" [under cProfile]" if args.profile else ""))
    if pd_line:
        print(pd_line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
