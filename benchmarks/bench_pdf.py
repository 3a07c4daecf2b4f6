"""Benchmark: a whole city's atlas printed to PDF, ``profiling atlas CONFIG --pdf``.

Issue 21's target, on this 2-core machine: the 2,000 settlement profiles of ``bench_city.py``'s
city printed to PDF in at most 5 minutes, every PDF through the disclosure audit.

What it does:

1. Makes the city and its run with ``bench_city.py`` (generated once, reused when present),
   and writes the configuration that run used (its manifest's ``configuration``) as a YAML file
   beside it.
2. Removes the PDFs, then runs the real command in a fresh process::

       profiling atlas city.yaml --out OUT --pdf -q [--pdf-engine E]

   sampling the resident memory of the command and every process below it (the browser's
   included) ten times a second. It prints the whole command's wall time and peak memory, each
   stage as the manifest recorded it, profiles per second and pages per second of the PDF
   stage, and the audit's seconds.
3. Resumption: starts the command again, kills it (the whole process group) half-way through
   the PDF stage, starts it once more and reports how many PDFs the last run printed and how
   many it found up to date.
4. With ``--book``: ``profiling atlas city.yaml --book rank``, timed the same way, on the PDFs
   already there.

Run ``python benchmarks/bench_pdf.py [--engine auto|chromium|weasyprint] [--book]
[--skip-resume] [--settlements N] [--households N]``. The exit code is 0 whether or not the
target is met; only a failing command makes it non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_city  # noqa: E402

TARGET_S = 300.0


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of a process and every process below it."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def run(cmd: list[str], kill_after: float | None = None) -> dict:
    """Run ``cmd`` in its own process group, sampling its tree's memory; with ``kill_after``,
    kill the group after that many seconds."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    killed = False
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, tree_rss(ps))
        if kill_after is not None and time.perf_counter() - t0 > kill_after:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.1)
    stdout, stderr = proc.communicate()
    return {"wall_s": time.perf_counter() - t0, "peak_mib": peak / 2**20,
            "exit": proc.returncode, "killed": killed, "stderr": stderr[-3000:],
            "stdout": stdout[-2000:]}


def last_rewrite(out: Path) -> dict:
    manifest = json.loads((out / "run_manifest.json").read_text())
    return {**manifest["rewritten"][-1], "status": manifest["status"]}


def report(label: str, r: dict, out: Path) -> dict:
    print(f"\n== {label}: exit {r['exit']}, wall {r['wall_s']:.1f} s, peak RSS of the command "
          f"and its children {r['peak_mib']:,.0f} MiB")
    if r["exit"]:
        print(r["stderr"])
        raise SystemExit(1)
    rw = last_rewrite(out)
    print(f"status {rw['status']!r}, audit findings {rw['findings']}")
    print(f"{'stage':<28}{'seconds':>9}{'work':>8}  unit")
    for s in rw.get("stages", []):
        print(f"{s['name']:<28}{s['seconds']:>9.2f}{s.get('work', ''):>8}  {s.get('unit', '')}")
    return rw


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--settlements", type=int, default=2000)
    p.add_argument("--households", type=int, default=1_000_000)
    p.add_argument("--size", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--dir", default=None)
    p.add_argument("--regenerate", action="store_true")
    p.add_argument("--engine", default="auto")
    p.add_argument("--book", action="store_true")
    p.add_argument("--skip-resume", action="store_true")
    args = p.parse_args(argv)
    folder, csv, _ = bench_city.ensure_city(args)
    out = folder / "out_in_process"
    if not (out / "run_manifest.json").exists() or not (out / "atlas").exists():
        r = bench_city.run_command(folder, csv, out, None)
        if r["exit"]:
            print(r["stderr"])
            return 1
    manifest = json.loads((out / "run_manifest.json").read_text())
    config = folder / "city.yaml"
    config.write_text(json.dumps(manifest["configuration"], indent=1))  # JSON is YAML
    exe = str(Path(sys.executable).with_name("profiling"))
    cmd = [exe, "atlas", str(config), "--out", str(out), "--pdf", "-q",
           "--pdf-engine", args.engine]
    pages = len(list((out / "atlas").glob("*.html")))
    print(f"city: {args.settlements:,} settlements ({pages:,} atlas pages, the index included), "
          f"{args.households:,} households, in {out}")

    def clean() -> None:
        shutil.rmtree(out / "atlas" / "pdf", ignore_errors=True)
        (out / "atlas" / "pdf_state.json").unlink(missing_ok=True)

    clean()
    r = run(cmd)
    rw = report("all PDFs, from none", r, out)
    stage = next(s for s in rw["stages"] if s["name"] == "PDF")
    pdfs = sorted((out / "atlas" / "pdf").glob("*.pdf"))
    import pypdfium2 as pdfium

    sheets = sum(len(pdfium.PdfDocument(f)) for f in pdfs)
    print(f"PDF stage: {len(pdfs):,} PDFs, {sheets:,} pages in {stage['seconds']:.1f} s: "
          f"{len(pdfs) / stage['seconds']:.1f} profiles/s, {sheets / stage['seconds']:.1f} "
          f"pages/s; whole command {r['wall_s']:.1f} s (target ≤ {TARGET_S:.0f} s) "
          f"{'PASS' if r['wall_s'] <= TARGET_S else 'MISS'}")
    if not args.skip_resume:
        clean()
        before = next(s["seconds"] for s in rw["stages"] if s["name"] == "PDF")
        start = r["wall_s"] - before
        k = run(cmd, kill_after=start + before / 2)
        have = len(list((out / "atlas" / "pdf").glob("*.pdf")))
        print(f"\n== killed after {k['wall_s']:.1f} s with {have:,} of {pages:,} PDFs written")
        r2 = run(cmd)
        rw2 = report("started again", r2, out)
        printed = next(s.get("work", 0) for s in rw2["stages"] if s["name"] == "PDF")
        print(f"the restarted command printed {printed:,} PDFs ({pages - printed:,} up to date); "
              f"{len(list((out / 'atlas' / 'pdf').glob('*.pdf'))):,} PDFs now")
    if args.book:
        b = run([exe, "atlas", str(config), "--out", str(out), "--book", "rank", "-q",
                 "--pdf-engine", args.engine])
        report("atlas.pdf, by CUF rank", b, out)
        book = out / "atlas" / "atlas.pdf"
        print(f"atlas.pdf: {len(pdfium.PdfDocument(book)):,} pages, "
              f"{book.stat().st_size / 2**20:,.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
