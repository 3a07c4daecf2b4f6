"""The community validation round (issue 22): the sample city in a GeoPackage store, a pack of
sheets and an XLSForm for its forums, a forum's answers loaded (every row accepted or listed with
its reason), and the profile showing the enumerated and the community's figure side by side."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import yaml

from conftest import demo_config_data

REPO = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).parent / "profiling")
HOSTILE = "<script>alert(1)</script>"
RECORDER = "Ibu Sari Wulandari"
HEADER = ["settlement_id", "forum", "forum_date", "recorded_by", "households_confirmed",
          "households_corrected", "population_confirmed", "population_corrected",
          "taps_confirmed", "taps_corrected", "toilets_confirmed", "toilets_corrected"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PROFILING_SECRET"}
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sample city loaded into a store and run from it: (configuration, output folder)."""
    tmp = tmp_path_factory.mktemp("validation")
    data = demo_config_data()
    (tmp / "secret.txt").write_text("a-secret-of-the-validation-store-0123456789")
    data["store"] = {"url": "city.gpkg", "secret_file": "secret.txt"}
    data["output_dir"] = str(tmp / "out")
    cfg = tmp / "city.yaml"
    cfg.write_text(yaml.safe_dump(data))
    for args in (("load", str(cfg), "-q"), ("run", str(cfg), "-q")):
        proc = cli(*args)
        assert proc.returncode == 0, proc.stderr
    return cfg, tmp / "out"


def table(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "settlement_indicators.csv", dtype={"settlement_id": str}
                       ).set_index("settlement_id")


def write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=HEADER)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in HEADER})
    return path


def test_the_pack_carries_the_profiles_counts_and_a_form_of_the_same_questions(city, tmp_path):
    cfg, out = city
    proc = cli("validation", "pack", str(cfg), "--settlement", "JK03", "--settlement", "JK01",
               "--out", str(tmp_path / "pack"))
    assert proc.returncode == 0, proc.stderr
    t = table(out)
    sheet = (tmp_path / "pack" / "JK03.html").read_text(encoding="utf-8")
    row = t.loc["JK03"]
    taps = round(row["water_on_premises_share"] * row["water_on_premises_n"])
    toilets = round(row["sanitation_basic_share"] * row["sanitation_basic_n"])
    for name, value in (("households", row["households"]), ("population", row["population"]),
                        ("taps", taps), ("toilets", toilets)):
        assert f'<tr id="figure-{name}">' in sheet
        cell = sheet.split(f'<tr id="figure-{name}">')[1].split("</tr>")[0]
        assert f'<td class="num">{int(value):,}</td>' in cell, name
    assert '<svg class="sketch" id="sketch"' in sheet and '<path class="own"' in sheet
    small = (tmp_path / "pack" / "JK01.html").read_text(encoding="utf-8")
    assert 'id="suppressed"' in small and '<td class="num">–</td>' in small
    wb = openpyxl.load_workbook(tmp_path / "pack" / "validation_form.xlsx")
    survey = [[c.value for c in r] for r in wb["survey"].iter_rows()]
    names = [r[1] for r in survey[1:]]
    assert names[:4] == ["settlement_id", "forum", "forum_date", "recorded_by"]
    assert "toilets_confirmed" in names and "toilets_corrected" in names
    corrected = next(r for r in survey if r[1] == "households_corrected")
    assert corrected[0] == "integer" and corrected[4] == "${households_confirmed} = 'no'"
    choices = [[c.value for c in r] for r in wb["choices"].iter_rows()]
    assert {r[1] for r in choices if r[0] == "settlements"} == set(t.index)
    proc = cli("validation", "pack", str(cfg), "--settlement", "JK99", "--out",
               str(tmp_path / "x"))
    assert proc.returncode == 2 and "JK99" in proc.stderr and "Traceback" not in proc.stderr


def test_a_forums_answers_are_kept_beside_the_enumeration_and_shown(city, tmp_path):
    cfg, out = city
    t = table(out)
    first = write(tmp_path / "forum_april.csv", [
        {"settlement_id": "JK03", "forum": "RW 01 forum", "forum_date": "2026-04-02",
         "recorded_by": RECORDER, "households_confirmed": "no", "households_corrected": "240",
         "toilets_confirmed": "yes"},
        {"settlement_id": "JK99", "forum": "x", "forum_date": "2026-04-02",
         "recorded_by": RECORDER, "households_confirmed": "yes"},
        {"settlement_id": "JK08", "forum": "RW 02 forum", "forum_date": "02/04/2026",
         "recorded_by": RECORDER, "households_confirmed": "yes"},
        {"settlement_id": "JK08", "forum": "RW 02 forum", "forum_date": "2026-04-03",
         "recorded_by": RECORDER, "households_confirmed": "maybe",
         "population_confirmed": "no", "population_corrected": "-3"},
        {"settlement_id": "JK05", "forum": "=HYPERLINK(\"http://x\",\"y\")",
         "forum_date": "2026-04-04", "recorded_by": RECORDER, "population_confirmed": "yes"},
    ])
    proc = cli("validation", "load", str(cfg), str(first))
    assert proc.returncode == 0, proc.stderr
    assert "3 correction(s) kept" in proc.stdout
    listed = proc.stdout
    for row, field in (("3", "settlement_id"), ("4", "forum_date"), ("5", "households_conf"),
                       ("5", "population_corr"), ("5", "(row)")):
        assert any(line.split("│")[1:3] and line.split("│")[1].strip() == row
                   and line.split("│")[2].strip().startswith(field)
                   for line in listed.splitlines() if "│" in line), (row, field)
    again = cli("validation", "load", str(cfg), str(first))
    assert again.returncode == 0 and "loaded before" in again.stdout
    later = write(tmp_path / "forum_may.csv", [
        {"settlement_id": "JK03", "forum": HOSTILE, "forum_date": "2026-05-10",
         "recorded_by": RECORDER, "households_confirmed": "no", "households_corrected": "238"}])
    assert cli("validation", "load", str(cfg), str(later)).returncode == 0
    with sqlite3.connect(cfg.parent / "city.gpkg") as conn:
        kept = conn.execute("SELECT source_file, source_row, settlement_id, figure, enumerated, "
                            "confirmed, validated, forum_date, recorded_by FROM validations "
                            "ORDER BY fid").fetchall()
    jk03, jk05 = t.loc["JK03"], t.loc["JK05"]
    toilets = float(round(jk03["sanitation_basic_share"] * jk03["sanitation_basic_n"]))
    assert kept == [
        ("forum_april.csv", 2, "JK03", "households", float(jk03["households"]), 0, 240.0,
         "2026-04-02", RECORDER),
        ("forum_april.csv", 2, "JK03", "toilets", toilets, 1, toilets, "2026-04-02", RECORDER),
        ("forum_april.csv", 6, "JK05", "population", float(jk05["population"]), 1,
         float(jk05["population"]), "2026-04-04", RECORDER),
        ("forum_may.csv", 2, "JK03", "households", float(jk03["households"]), 0, 238.0,
         "2026-05-10", RECORDER)]
    # the next run from the store publishes the latest correction of each figure
    proc = cli("run", str(cfg), "-q")
    assert proc.returncode == 0, proc.stderr
    v = pd.read_csv(out / "validated_figures.csv", dtype={"settlement_id": str})
    jk03_hh = v[(v["settlement_id"] == "JK03") & (v["figure"] == "households")].iloc[0]
    assert jk03_hh["enumerated"] == jk03["households"] and jk03_hh["validated"] == 238
    assert len(v) == 3
    text = (out / "validated_figures.csv").read_text(encoding="utf-8")
    assert "'=HYPERLINK" in text and ',=HYPERLINK' not in text
    page = (out / "atlas" / "JK03.html").read_text(encoding="utf-8")
    assert '<table id="validated"' in page
    assert "238 (corrected)" in page and "&lt;script&gt;alert(1)&lt;/script&gt;, 2026-05-10" in page
    assert HOSTILE not in page
    assert f"{int(toilets):,} (confirmed)" in page
    # who recorded the answers stays in the store
    for p in out.rglob("*"):
        if p.is_file() and p.suffix in (".csv", ".html", ".js", ".json"):
            assert RECORDER not in p.read_text(encoding="utf-8", errors="replace"), p


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not UTF-8"),
    (b"settlement,forum\nJK03,x\n", "has no column settlement_id"),
    (b"", "has no header row"),
])
def test_a_corrections_file_that_is_not_one_is_refused_with_its_name(city, tmp_path, content,
                                                                    message):
    cfg, _ = city
    path = tmp_path / "answers.csv"
    path.write_bytes(content)
    proc = cli("validation", "load", str(cfg), str(path))
    assert proc.returncode == 2, proc.stdout
    assert message in proc.stderr and "answers.csv" in proc.stderr
    assert "Traceback" not in proc.stderr
    odd = tmp_path / "answers.txt"
    odd.write_text("x")
    proc = cli("validation", "load", str(cfg), str(odd))
    assert proc.returncode == 2 and "CSV or XLSX" in proc.stderr


def test_a_redrawn_boundary_is_a_new_version_the_next_run_uses_and_names(city, tmp_path):
    import geopandas as gpd
    import shapely

    from profiling import pipeline
    from profiling.config import load_config

    cfg, out = city
    shapes = gpd.read_file(REPO / "sample_data" / "settlements.gpkg")
    utm = shapes.estimate_utm_crs()
    jk02 = shapes[shapes["settlement_id"] == "JK02"].copy()
    wider = jk02.to_crs(utm).buffer(30).to_crs(shapes.crs)
    jk02["geometry"] = wider.to_numpy()
    stray = jk02.assign(settlement_id="JK77")
    redrawn = tmp_path / "redrawn.gpkg"
    pd.concat([jk02, stray]).to_file(redrawn, layer="settlements", driver="GPKG")
    proc = cli("validation", "boundary", str(cfg), str(redrawn), "--forum", "RW 09 forum",
               "--date", "2026-04-05")
    assert proc.returncode == 0, proc.stderr
    assert "boundary version 1: 1 settlement(s) redrawn (JK02)" in proc.stdout
    assert "feature 2: settlement_id 'JK77'" in proc.stdout
    assert "loaded before" in cli("validation", "boundary", str(cfg), str(redrawn)).stdout
    proc = cli("run", str(cfg), "-q")
    assert proc.returncode == 0, proc.stderr
    import json

    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["inputs"]["boundaries"]["version"] == 1
    assert manifest["inputs"]["boundaries"]["redrawn"] == ["JK02"]
    got = gpd.read_file(out / "settlements.gpkg").set_index("settlement_id")
    assert float(got.loc[["JK02"]].to_crs(utm).area.iloc[0]) == pytest.approx(
        float(wider.to_crs(utm).area.iloc[0]), rel=1e-3)
    # the households are placed again in the redrawn boundary: those whose point it covers,
    # but for the overlap with JK01 (a shared edge goes to the lowest id), counted here
    hh = pipeline.ingest_config(load_config(REPO / "configs" / "demo.yaml")).households
    pts = shapely.points(hh["longitude"].to_numpy(float), hh["latitude"].to_numpy(float))
    jk01 = shapes.set_index("settlement_id").geometry.loc["JK01"]
    inside = shapely.covers(wider.iloc[0], pts) & ~shapely.covers(jk01, pts)
    assert table(out).loc["JK02", "households"] == int(inside.sum())
    assert int(inside.sum()) > 27  # more than the 27 households of the boundary as enumerated


def test_the_ranking_takes_the_communitys_counts_where_the_configuration_says_so(city,
                                                                                 tmp_path):
    cfg, out = city
    before = pd.read_csv(out / "cuf_priorities.csv", dtype={"settlement_id": str}
                         ).set_index("settlement_id")
    sid = str(before["cuf_rank"].idxmax())  # the last ranked settlement
    enumerated = table(out).loc[sid, "population"]
    assert before.loc[sid, "people_value"] == enumerated  # as enumerated, by default
    answers = write(tmp_path / "forum_june.csv", [
        {"settlement_id": sid, "forum": "RW 01 forum", "forum_date": "2026-06-01",
         "recorded_by": RECORDER, "population_confirmed": "no",
         "population_corrected": "50000"}])
    assert cli("validation", "load", str(cfg), str(answers)).returncode == 0
    data = yaml.safe_load(cfg.read_text())
    data["cuf"]["use_validated"] = ["population"]
    data["output_dir"] = str(tmp_path / "out")
    with_counts = cfg.parent / "city-validated.yaml"
    with_counts.write_text(yaml.safe_dump(data))
    proc = cli("run", str(with_counts), "-q")
    assert proc.returncode == 0, proc.stderr
    after = pd.read_csv(tmp_path / "out" / "cuf_priorities.csv", dtype={"settlement_id": str}
                        ).set_index("settlement_id")
    assert after.loc[sid, "people_value"] == 50000
    assert after.loc[sid, "cuf_rank"] < before.loc[sid, "cuf_rank"]
    # every other settlement's count is the enumerated one, and the table keeps it too
    others = after.drop(index=sid)["people_value"].sort_index()
    assert others.fillna(-1).equals(before.drop(index=sid)["people_value"].sort_index()
                                    .fillna(-1))
    assert table(tmp_path / "out").loc[sid, "population"] == enumerated


def _messages() -> set[str]:
    """Every message the validation sheets, index and form say, extracted from their sources
    (Babel's extractors: Jinja's for the templates, Python's for ``_()`` calls), and the
    figures' labels."""
    from babel.messages.extract import extract

    from profiling.validation import FIGURES

    found = {f.label for f in FIGURES}
    templates = REPO / "src" / "profiling" / "templates"
    for name in ("validation_sheet.html", "validation_index.html"):
        with (templates / name).open("rb") as f:
            found |= {m[1] if isinstance(m[1], str) else m[1][0] for m in extract(
                "jinja2.ext:babel_extract", f, keywords={"_": None},
                options={"extensions": "jinja2.ext.i18n", "trim_blocks": "true",
                         "lstrip_blocks": "true"})}
    with (REPO / "src" / "profiling" / "validation.py").open("rb") as f:
        found |= {m[1] for m in extract("python", f, keywords={"_": None})
                  if isinstance(m[1], str)}
    return found


@pytest.mark.parametrize("language", ["fr", "es", "pt"])
def test_every_message_of_the_validation_round_has_its_translation(language):
    from babel.messages.pofile import read_po

    po = REPO / "src" / "profiling" / "locale" / language / "LC_MESSAGES" / "profiling.po"
    with po.open("rb") as f:
        catalog = read_po(f, locale=language)
    said = _messages()
    assert len(said) > 30
    missing = sorted(m for m in said if not (catalog.get(m) and catalog.get(m).string))
    assert missing == []
    # a message's placeholders are the translation's too
    import re

    for m in said:
        assert set(re.findall(r"%\((\w+)\)s", m)) == set(re.findall(
            r"%\((\w+)\)s", catalog.get(m).string)), m


def test_the_pack_in_french_has_no_english_left(city, tmp_path):
    import html as html_lib
    import re

    from profiling.i18n import gettext_for

    cfg, _ = city
    data = yaml.safe_load(cfg.read_text())
    data["language"] = "fr"
    fr = cfg.parent / "city-fr.yaml"
    fr.write_text(yaml.safe_dump(data))
    proc = cli("validation", "pack", str(fr), "--settlement", "JK03", "--settlement", "JK01",
               "--out", str(tmp_path / "pack"))
    assert proc.returncode == 0, proc.stderr
    _ = gettext_for("fr")
    english = [m for m in _messages() if _(m) != m]  # those French words differently
    for page in ("JK03.html", "JK01.html", "index.html"):
        html = (tmp_path / "pack" / page).read_text(encoding="utf-8")
        assert '<html lang="fr">' in html
        text = html_lib.unescape(re.sub(r"<[^>]+>", "\n", html))
        lines = {line.strip() for line in text.splitlines() if line.strip()}
        left = [m for m in english if "%(" not in m and m in lines]
        assert left == [], (page, left)
    sheet = (tmp_path / "pack" / "JK03.html").read_text(encoding="utf-8")
    assert "Les chiffres du profil" in sheet and "Ménages ayant l&#39;eau sur place" in sheet
    wb = openpyxl.load_workbook(tmp_path / "pack" / "validation_form.xlsx")
    labels = [r[2].value for r in wb["survey"].iter_rows(min_row=2)]
    assert "Date du forum" in labels and "Date of the forum" not in labels
    assert wb["settings"]["D2"].value == "Français (fr)"


def test_a_translated_message_escapes_what_it_is_given():
    from profiling.i18n import environment

    page = environment("fr").get_template("validation_index.html").render(
        sheets=[{"id": "JK05", "name": HOSTILE, "href": "JK05.html"}])
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    with pytest.raises(ValueError, match="no catalogue for the language 'xx'"):
        environment("xx")
