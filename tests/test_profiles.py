"""Batch profiles: parallel, skipping what did not change, resuming after an interruption."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from profiling import pipeline
from profiling.config import load_config
from profiling.profiles import STATE, regenerate

REPO = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).parent / "profiling")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    pipeline.run(load_config(REPO / "configs" / "demo.yaml"), out)
    reference = {p.name: p.read_bytes() for p in (out / "atlas").glob("JK*.html")}
    return out, reference


@pytest.fixture
def run_copy(finished_run, tmp_path):
    out, reference = finished_run
    dst = tmp_path / "out"
    shutil.copytree(out, dst)
    return dst, reference


def pages(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (out / "atlas").glob("JK*.html")}


def test_batch_writes_the_same_pages_then_does_nothing(run_copy):
    out, reference = run_copy
    first = regenerate(out, workers=2)
    assert sorted(first.written) == sorted(p.removesuffix(".html") for p in reference)
    assert pages(out) == reference  # the batch renders exactly what the run published
    stamps = {p: p.stat().st_mtime_ns for p in (out / "atlas").glob("JK*.html")}
    second = regenerate(out, workers=2)
    assert second.written == [] and len(second.skipped) == 31 and second.ok
    assert {p: p.stat().st_mtime_ns for p in (out / "atlas").glob("JK*.html")} == stamps
    events = [json.loads(x) for x in (out / "atlas" / "profiles.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "batch_end" and events[-1]["written"] == 0


def test_only_missing_or_changed_profiles_are_recomputed(run_copy):
    out, reference = run_copy
    regenerate(out, workers=2)
    (out / "atlas" / "JK05.html").unlink()
    pri = pd.read_csv(out / "cuf_priorities.csv", dtype={"settlement_id": str})
    pri.loc[pri["settlement_id"] == "JK09", "explanation"] = "A changed explanation."
    pri.to_csv(out / "cuf_priorities.csv", index=False)
    again = regenerate(out, workers=2)
    assert sorted(again.written) == ["JK05", "JK09"]
    assert "A changed explanation." in (out / "atlas" / "JK09.html").read_text()
    assert (out / "atlas" / "JK05.html").read_bytes() == reference["JK05.html"]


def _processes_naming(path: Path) -> list[int]:
    """Live processes whose command line names ``path``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(ln for ln in (proc / "status").read_text().splitlines()
                         if ln.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if str(path) in cmd and "zombie" not in state:
            found.append(int(proc.name))
    return found


def test_an_interrupted_batch_resumes_where_it_stopped(run_copy):
    out, reference = run_copy
    for page in (out / "atlas").glob("JK*.html"):
        page.unlink()
    with subprocess.Popen([EXE, "profiles", str(REPO / "configs" / "demo.yaml"), "--all",
                           "--out", str(out), "--workers", "1", "--jsonl"],
                          stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if json.loads(line).get("status") == "written":
                proc.send_signal(signal.SIGKILL)  # interrupted mid-batch, as by a scheduler
                break
        proc.wait(timeout=60)
    # the batch's worker processes end with it, not left waiting for work
    deadline = time.monotonic() + 20
    while _processes_naming(out) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_naming(out)
    done = set(json.loads((out / "atlas" / STATE).read_text()))
    assert 1 <= len(done) <= 31
    resumed = regenerate(out, workers=2)
    assert set(resumed.written) == {p.removesuffix(".html") for p in reference} - done
    assert set(resumed.skipped) == done
    assert pages(out) == reference


def test_a_failing_profile_does_not_stop_the_others(run_copy):
    out, _ = run_copy
    proc = subprocess.run([EXE, "profiles", str(REPO / "configs" / "demo.yaml"), "--settlement",
                           "JK02", "--settlement", "NO-SUCH", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1
    assert "NO-SUCH" in proc.stderr and "Traceback" not in proc.stderr
    assert "1 profile(s) written" in proc.stdout
    assert (out / "atlas" / "JK02.html").exists()
