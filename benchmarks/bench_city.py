"""Benchmark: a whole city through ``profiling run``, stage by stage, memory included.

Issue 14's targets, on this 2-core machine, for 2,000 settlements, 1,000,000 households in one
Kobo CSV and a 20,000 x 20,000 flood-depth GeoTIFF:

- the whole run in process: at most 25 s wall and 3 GiB peak RSS, audit passing, status
  ``complete``;
- ingest (read, de-duplicate, validate, place): at most 5 s per million rows;
- household indicators plus per-settlement counts: at most 1.5 s per million households;
- atlas, map and PNG maps for 2,000 settlements: at most 5 s;
- the audit: at most 5 s per million households;
- ``--workers 2``: within 1.3 times the in-process wall time, the client under 3 GiB.

What it does:

1. Generates (seeded, once; reused when present) the city outside the repository
   (``$PROFILING_BENCH_DIR`` or ``/tmp/profiling-bench``): the settlements and the raster of
   ``bench_hazard.py`` (same generator, same seed), and a Kobo CSV export of the reference
   questionnaire written by ``bench_ingest.py``'s generator with its points in those
   settlements (1% re-downloads, 1% refusals, 0.2% rejected rows, 0.5% invalid values, 1%
   outside every settlement; synthetic personal fields, structure ids like ``S00012-0042``).
2. Runs the real command, each in a fresh process::

       profiling run --survey kobo_city.csv --boundaries settlements.gpkg \\
                     --hazard flood=flood.tif --out OUT -q

   and then the same with ``--workers 2``. It prints the wall time and peak RSS of the whole
   command (the higher of ``wait4``'s, for the process and the children it waited for, and
   the stages' own peaks: the run resets the kernel's high-water mark at each stage, which
   ``wait4`` then no longer sees), then each stage's seconds
   and peak RSS as the run recorded them in ``run_manifest.json`` (``stages``), the status and
   the audit.
3. Runs ``check_outputs.py`` of ``../shared/tools`` on the in-process output when it is there.

Run ``python benchmarks/bench_city.py [--households N] [--settlements N] [--size N]
[--skip-workers] [--repeat N] [--regenerate]``. The exit code is 0 whether or not a target
is met; only an exception (or a run that fails) makes it non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import bench_hazard  # noqa: E402
import bench_ingest  # noqa: E402

TARGETS = {"wall_s": 25.0, "peak_mib": 3 * 1024.0, "ingest_s_per_m": 5.0,
           "indicators_s_per_m": 1.5, "publish_s": 5.0, "audit_s_per_m": 5.0,
           "workers_ratio": 1.3}


def ensure_city(args: argparse.Namespace) -> tuple[Path, Path, dict]:
    """The settlements, the raster and the Kobo CSV: generated once per parameters."""
    ns = argparse.Namespace(settlements=args.settlements, households=args.households,
                            size=args.size, seed=args.seed, layout="clustered", dir=args.dir,
                            regenerate=args.regenerate)
    folder = bench_hazard.ensure_city(ns)
    csv = folder / f"kobo_city_{args.households}_s{args.seed}.csv"
    side = csv.with_suffix(".json")
    want = {"rows": args.households, "seed": args.seed,
            "generator_version": bench_ingest.GENERATOR_VERSION}
    if side.exists() and csv.exists() and not args.regenerate:
        meta = json.loads(side.read_text())
        if all(meta.get(k) == v for k, v in want.items()):
            return folder, csv, meta["plan"]
    t0 = time.perf_counter()
    plan = bench_ingest.generate(csv, args.households, args.seed,
                                 boundaries=folder / "settlements.gpkg")
    side.write_text(json.dumps({**want, "plan": plan}, indent=2))
    print(f"wrote {csv.name} ({csv.stat().st_size / 2**20:,.0f} MiB) in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    return folder, csv, plan


def run_command(folder: Path, csv: Path, out: Path, workers: int | None) -> dict:
    """One ``profiling run`` in a fresh process: wall, peak RSS (wait4), exit code, manifest."""
    exe = Path(sys.executable).with_name("profiling")
    cmd = [str(exe), "run", "--survey", str(csv), "--boundaries",
           str(folder / "settlements.gpkg"), "--hazard", f"flood={folder / 'flood.tif'}",
           "--out", str(out), "-q"]
    if workers:
        cmd += ["--workers", str(workers)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stdout, stderr = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)
    manifest_path = out / "run_manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    # The run resets the kernel's high-water mark at each stage (to record each stage's own
    # peak), and wait4's ru_maxrss is that mark as it stood when a thread last exited: an
    # earlier stage's higher peak is lost from it. The whole run's peak is the higher of the
    # two, the children's (the page renderers', the audit's) included through wait4.
    stage_peak = max((s.get("peak_rss_mib", 0.0) for s in manifest.get("stages") or []
                      if isinstance(s, dict)), default=0.0)
    return {"cmd": cmd, "wall_s": wall,
            "peak_mib": max(usage.ru_maxrss / 1024.0, stage_peak),
            "wait4_peak_mib": usage.ru_maxrss / 1024.0,
            "exit": proc.returncode, "stderr": stderr[-3000:], "stdout": stdout[-2000:],
            "manifest": manifest}


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(label: str, r: dict, households: int) -> None:
    m = r["manifest"]
    print(f"\n== {label}: {' '.join(Path(c).name if '/' in c else c for c in r['cmd'][1:])}")
    print(f"exit {r['exit']}, status {m.get('status')!r}, wall {r['wall_s']:.1f} s "
          f"(target {TARGETS['wall_s']:.0f} s) {_verdict(r['wall_s'] <= TARGETS['wall_s'])}, "
          f"peak RSS {r['peak_mib']:,.0f} MiB (target {TARGETS['peak_mib']:,.0f}) "
          f"{_verdict(r['peak_mib'] <= TARGETS['peak_mib'])} (wait4 alone "
          f"{r['wait4_peak_mib']:,.0f} MiB)")
    if r["exit"]:
        print(r["stderr"])
    stages = m.get("stages") or []
    if stages and isinstance(stages[0], dict):
        print(f"{'stage':<28}{'seconds':>9}{'peak MiB':>10}  target")
        per_m = households / 1e6
        targets = {"ingest": TARGETS["ingest_s_per_m"] * per_m,
                   "audit": TARGETS["audit_s_per_m"] * per_m,
                   "publish": TARGETS["publish_s"]}
        ind = sum(s["seconds"] for s in stages if s["name"] in ("indicators", "counts"))
        for s in stages:
            t = targets.get(s["name"])
            note = f"≤ {t:.1f} s {_verdict(s['seconds'] <= t)}" if t else ""
            print(f"{s['name']:<28}{s['seconds']:>9.2f}{s.get('peak_rss_mib', 0):>10,.0f}  "
                  f"{note}")
        if any(s["name"] == "indicators" for s in stages):
            t = TARGETS["indicators_s_per_m"] * per_m
            print(f"{'indicators + counts':<28}{ind:>9.2f}{'':>10}  ≤ {t:.1f} s "
                  f"{_verdict(ind <= t)}")
    a = m.get("audit") or {}
    print(f"audit: {a.get('findings')} finding(s); counts: {m.get('counts')}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--settlements", type=int, default=2000)
    p.add_argument("--households", type=int, default=1_000_000)
    p.add_argument("--size", type=int, default=20_000, help="raster width and height (cells)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--dir", default=None)
    p.add_argument("--regenerate", action="store_true")
    p.add_argument("--skip-workers", action="store_true")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs of each kind, alternating (this machine moves by ±15 %% from run "
                        "to run): each is reported, then the fastest and the median")
    args = p.parse_args(argv)
    folder, csv, plan = ensure_city(args)
    print(f"city: {args.settlements:,} settlements, {args.households:,} rows "
          f"({csv.stat().st_size / 2**20:,.0f} MiB CSV), {args.size:,}² raster in {folder}")
    print(f"planned counts: {plan}")
    out = folder / "out_in_process"
    walls: dict[str, list[float]] = {"in process": [], "workers": []}
    for i in range(max(1, args.repeat)):
        r = run_command(folder, csv, out, None)
        report("in process" + (f" (run {i + 1})" if args.repeat > 1 else ""), r,
               args.households)
        walls["in process"].append(r["wall_s"])
        checker = ROOT.parent / "shared" / "tools" / "check_outputs.py"
        if checker.exists() and not r["exit"]:
            c = subprocess.run([sys.executable, str(checker), str(out)], capture_output=True,
                               text=True)
            print(f"check_outputs.py: exit {c.returncode}; "
                  f"{c.stdout.strip().splitlines()[-1:]}")
        if not args.skip_workers:
            w = run_command(folder, csv, folder / "out_workers", 2)
            report("local Dask cluster, 2 workers" + (
                f" (run {i + 1})" if args.repeat > 1 else ""), w, args.households)
            walls["workers"].append(w["wall_s"])
    if args.repeat > 1:
        print()
        for kind, ws in walls.items():
            if ws:
                print(f"{kind}: fastest {min(ws):.1f} s, median {statistics.median(ws):.1f} s "
                      f"over {len(ws)} runs")
    if walls["workers"]:
        ratio = statistics.median(walls["workers"]) / statistics.median(walls["in process"])
        print(f"workers / in process{' (medians)' if args.repeat > 1 else ''}: {ratio:.2f}× "
              f"(target ≤ {TARGETS['workers_ratio']}) "
              f"{_verdict(ratio <= TARGETS['workers_ratio'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
