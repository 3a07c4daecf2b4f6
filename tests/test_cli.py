"""The command line: real subprocesses, exit codes, and no traceback on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import household, write_csv

REPO = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).parent / "profiling")


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, check=False, cwd=cwd,
                          timeout=300)


def test_quick_run_with_options(tmp_path, squares_file):
    survey = write_csv(tmp_path / "k.csv", [household("k1"), household("k2", **{
        "household/hh_size": "0"})])
    proc = cli("run", "--survey", str(survey), "--boundaries", str(squares_file), "--out",
               str(tmp_path / "out"), "-q")
    assert proc.returncode == 0, proc.stderr
    counts = json.loads((tmp_path / "out" / "run_manifest.json").read_text())["counts"]
    assert (counts["accepted"], counts["rejected"]) == (1, 1)
    assert (tmp_path / "out" / "rejects.csv").exists()
    assert (tmp_path / "out" / "supervision_report.csv").exists()


def test_validate_writes_nothing(tmp_path, squares_file):
    survey = write_csv(tmp_path / "k.csv", [household("k1")])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"surveys: [{survey}]\nboundaries: {squares_file}\noutput_dir: out\n")
    before = set(tmp_path.iterdir())
    proc = cli("validate", str(cfg))
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout
    assert set(tmp_path.iterdir()) == before


def test_bad_config_is_one_paragraph_without_traceback(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("surveys: [a.csv]\nmin_cel_size: 3\n")
    proc = cli("run", str(cfg))
    assert proc.returncode == 2
    assert "did you mean 'min_cell_size'" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_bad_file_names_the_file(tmp_path, squares_file):
    bad = tmp_path / "broken.xlsx"
    bad.write_bytes(b"PK\x03\x04 truncated")
    proc = cli("run", "--survey", str(bad), "--boundaries", str(squares_file), "--out",
               str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "broken.xlsx" in proc.stderr and "Traceback" not in proc.stderr
    bad_hazard = cli("run", "--survey", str(bad), "--hazard", "flood")
    assert bad_hazard.returncode == 2 and "NAME=PATH" in bad_hazard.stderr


def test_demo_config_from_another_directory(tmp_path):
    proc = cli("run", str(REPO / "configs" / "demo.yaml"), "--out", str(tmp_path / "o"), "-q",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "run_manifest.json").exists()


def test_prioritise_reruns_only_the_cuf_stage(tmp_path):
    out = tmp_path / "o"
    assert cli("run", str(REPO / "configs" / "demo.yaml"), "--out", str(out), "-q").returncode == 0
    before = (out / "rejects.csv").stat().st_mtime_ns
    proc = cli("prioritise", str(REPO / "configs" / "demo.yaml"), "--out", str(out),
               "--budget", "20000", "--weights", "slum=1,people=0", "-q")
    assert proc.returncode == 0, proc.stderr
    import pandas as pd

    port = pd.read_csv(out / "cuf_portfolio.csv")
    assert 0 < port["cost"].sum() <= 20000
    table = pd.read_csv(out / "settlement_indicators.csv")
    pri = pd.read_csv(out / "cuf_priorities.csv")
    assert pri["people_weight"].dropna().eq(0).all()
    # the settlement table carries the new ranks; nothing else was recomputed
    first = pri.dropna(subset=["cuf_rank"]).iloc[0]["settlement_id"]
    assert table.set_index("settlement_id").loc[first, "cuf_rank"] == 1
    assert (out / "rejects.csv").stat().st_mtime_ns == before
    # and the rewritten folder was audited again before it could be published
    import json

    manifest = json.loads((out / "run_manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "complete"
    assert [r["by"] for r in manifest["rewritten"]] == ["profiling prioritise"]
    bad = cli("prioritise", str(REPO / "configs" / "demo.yaml"), "--out", str(out),
              "--weights", "slumm=1")
    assert bad.returncode == 2 and "unknown criteria slumm" in bad.stderr


def test_a_run_shows_its_stages_and_records_them(tmp_path):
    """Progress for every stage (quiet under -q), each stage's seconds and peak memory in the
    manifest, and none of pyogrio's "Created N records" noise."""
    out = tmp_path / "out"
    proc = cli("run", str(REPO / "configs" / "demo.yaml"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "run_manifest.json").read_text())
    stages = {s["name"]: s for s in manifest["stages"]}
    for name in ("ingest", "hazard exposure", "indicators", "counts", "tables", "publish",
                 "audit"):
        assert name in proc.stderr, name  # its progress bar
        assert stages[name]["seconds"] > 0 and stages[name]["peak_rss_mib"] > 0
    assert stages["ingest"]["work"] == manifest["counts"]["read"]
    assert stages["indicators"]["work"] == manifest["counts"]["accepted"]
    settlements = (out / "settlement_indicators.csv").read_text().count("\n") - 1
    assert stages["publish"]["work"] == settlements
    files = [p for p in out.rglob("*") if p.is_file()]
    assert stages["audit"]["work"] == len(files)  # every file but none written after it
    assert "Created" not in proc.stderr
    quiet = cli("run", str(REPO / "configs" / "demo.yaml"), "--out", str(tmp_path / "q"), "-q")
    assert quiet.returncode == 0, quiet.stderr
    assert "━" not in quiet.stderr and "ingest" not in quiet.stderr  # warnings only


def test_consent_is_never_assumed_and_a_stated_one_is_recorded(tmp_path, squares_file):
    rows = [household(f"k{i}") for i in range(6)]
    for r in rows:
        del r["consent"]
    survey = write_csv(tmp_path / "k.csv", rows)
    refused = cli("run", "--survey", str(survey), "--boundaries", str(squares_file), "--out",
                  str(tmp_path / "refused"), "-q")
    assert refused.returncode == 2
    assert "k.csv: has no consent field" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "refused" / "settlement_indicators.csv").exists()
    statement = "signed forms kept at the ward office"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({
        "surveys": [{"path": str(survey), "consent": {"collected_outside_form": statement}}],
        "boundaries": str(squares_file), "output_dir": str(tmp_path / "out")}))
    proc = cli("run", str(cfg), "-q")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "out" / "run_manifest.json").read_text())
    assert manifest["inputs"]["surveys"][0]["consent_outside_form"] == statement
    assert manifest["counts"]["accepted"] == 6
    assert statement in (tmp_path / "out" / "atlas" / "index.html").read_text()


def test_version_flag_prints_the_package_version():
    import profiling

    r = cli("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"profiling {profiling.__version__}"


def test_every_command_help_ends_with_an_example_of_that_command():
    """Each command's --help shows how it is called, starting with its own name."""
    import typer

    from profiling.cli import app

    root = typer.main.get_command(app)
    paths: list[list[str]] = []
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        subs = getattr(command, "commands", None)
        paths += [[name, sub] for sub in subs] if subs else [[name]]
    assert ["store", "backup"] in paths and ["run"] in paths
    for path in paths:
        r = cli(*path, "--help")
        assert r.returncode == 0, (path, r.stderr)
        text = " ".join(r.stdout.split())
        assert "Example" in text, path
        example = text.split("Example", 1)[1]
        assert f"profiling {' '.join(path)} " in example + " ", (path, example)
