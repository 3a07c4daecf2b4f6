"""Publishing a run's folder: whole or not at all, one run at a time, clear errors for places
that cannot be written. Real processes are killed with SIGKILL at many moments of a real run."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from profiling import pipeline
from profiling.config import load_config

REPO = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).parent / "profiling")
DEMO = REPO / "configs" / "demo.yaml"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, check=False,
                          timeout=600)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("published") / "out"
    pipeline.run(load_config(DEMO), out)
    return out


def _manifest(out: Path) -> dict:
    return json.loads((out / "run_manifest.json").read_text())


def test_files_of_an_earlier_run_do_not_survive(first_run: Path, tmp_path: Path):
    out = tmp_path / "out"
    shutil.copytree(first_run, out)
    (out / "atlas" / "OLD-SETTLEMENT.html").write_text("<p>from an earlier run</p>")
    pipeline.run(load_config(DEMO), out)
    assert not (out / "atlas" / "OLD-SETTLEMENT.html").exists()
    assert _manifest(out)["status"] == "complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]  # no staging


def test_a_second_run_into_the_same_folder_is_refused(tmp_path: Path):
    out = tmp_path / "out"
    with (tmp_path / ".out.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a run in progress holds it
        proc = cli("run", str(DEMO), "--out", str(out), "-q")
    assert proc.returncode == 2
    assert "another run is writing to this output folder" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("case", ["a file", "a folder of other files", "under a file"])
def test_an_output_location_that_cannot_be_a_run_folder_is_refused(tmp_path: Path, case: str):
    if case == "a file":
        out = tmp_path / "results.txt"
        out.write_text("mine")
        expected = "is a file, not a folder"
    elif case == "a folder of other files":
        out = tmp_path / "Documents"
        out.mkdir()
        (out / "letter.docx").write_text("mine")
        expected = "holds files that are not a profiling run's outputs"
    else:
        (tmp_path / "plain").write_text("x")
        out = tmp_path / "plain" / "out"
        expected = "cannot be written"
    proc = cli("run", str(DEMO), "--out", str(out), "-q")
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr and "Traceback" not in proc.stderr
    if case == "a folder of other files":
        assert (out / "letter.docx").read_text() == "mine"


def test_a_full_disk_ends_with_a_message_and_publishes_nothing(tmp_path: Path):
    disk = tmp_path / "small"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs to fill up: {mounted.stderr}")
    try:
        proc = cli("run", str(DEMO), "--out", str(disk / "out"), "-q")
        assert proc.returncode == 2, proc.stderr
        assert "the disk is full" in proc.stderr and "Traceback" not in proc.stderr
        assert not (disk / "out").exists()
        assert not (disk / ".out.staging").exists()
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_kill_at_any_moment_leaves_the_previous_run_or_a_complete_new_one(first_run: Path,
                                                                         tmp_path: Path):
    out = tmp_path / "out"
    shutil.copytree(first_run, out)
    before = _manifest(out)
    for delay in (0.3, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.5, 9.0):
        proc = subprocess.Popen([EXE, "run", str(DEMO), "--out", str(out), "-q"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        m = _manifest(out)  # the previous run's, or a new one that finished before the kill
        assert m["status"] == "complete"
        assert m["counts"] == before["counts"]
        listed = set(m["outputs"])
        present = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
        assert listed <= present
    # the next run clears what the killed ones left and publishes
    done = cli("run", str(DEMO), "--out", str(out), "-q")
    assert done.returncode == 0, done.stderr
    assert _manifest(out)["status"] == "complete"
    assert not (tmp_path / ".out.staging").exists()
