"""Comparing two enumerations (CONTRACT.md §6): the sample city, then the same city after every
household got a flush toilet of its own, with one settlement gone and one redrawn."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pytest
import yaml

from profiling import ConfigError
from profiling.compare import compare, newcombe

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "demo.yaml"
EXE = str(Path(sys.executable).parent / "profiling")


def test_newcombe_interval_is_the_published_one():
    """Newcombe (1998), Table II, method 10: 56/70 − 48/80 = 0.2000 (0.0524, 0.3339) and
    9/10 − 3/10 = 0.6000 (0.1705, 0.8090)."""
    d, lo, hi = newcombe(np.array([48, 3]), np.array([80, 10]), np.array([56, 9]),
                         np.array([70, 10]))
    assert d == pytest.approx([0.2, 0.6])
    assert np.round(lo, 4).tolist() == [0.0524, 0.1705]
    assert np.round(hi, 4).tolist() == [0.3339, 0.8090]


def _wilson(x: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson's interval, written out again here from its formula."""
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _after_round(tmp: Path) -> Path:
    """The sample city re-enumerated: every household now has a flush toilet to the sewer that
    it does not share; settlement JK31 is gone from the boundaries and JK02 is redrawn 10 m
    wider."""
    raw = yaml.safe_load(DEMO.read_text())
    base = DEMO.parent
    exports = tmp / "exports"
    exports.mkdir()
    surveys = []
    for s in raw["surveys"]:
        src = (base / s).resolve()
        dst = exports / src.name
        if src.suffix == ".xlsx":
            wb = openpyxl.load_workbook(src)
            ws = wb["enumeration"]
            head = [c.value for c in ws[1]]
            for row in ws.iter_rows(min_row=2):
                row[head.index("toilet_type")].value = "flush_sewer"
                row[head.index("toilet_shared")].value = "no"
            wb.save(dst)
        else:
            sep = ";" if "kobo" in src.name else ","
            group = "/" if "kobo" in src.name else "-"
            frame = pd.read_csv(src, sep=sep, dtype=str, keep_default_na=False)
            frame[f"sanitation{group}toilet_type"] = "flush_sewer"
            frame[f"sanitation{group}toilet_shared"] = "no"
            frame.to_csv(dst, sep=sep, index=False,
                         quoting=csv.QUOTE_ALL if sep == ";" else csv.QUOTE_MINIMAL)
        surveys.append(str(dst))
    shapes = gpd.read_file(base / raw["boundaries"])
    shapes = shapes[shapes["settlement_id"] != "JK31"].copy()
    utm = shapes.estimate_utm_crs()
    jk02 = shapes["settlement_id"] == "JK02"
    shapes.loc[jk02, "geometry"] = shapes.loc[jk02].to_crs(utm).buffer(10).to_crs(shapes.crs)
    shapes.to_file(tmp / "settlements.gpkg", layer="settlements", driver="GPKG")
    raw["surveys"] = surveys
    raw["boundaries"] = str(tmp / "settlements.gpkg")
    for key in ("form",):
        raw[key] = str((base / raw[key]).resolve())
    for h in raw["hazards"]:
        h["path"] = str((base / h["path"]).resolve())
    raw["cuf"]["interventions"] = str((base / raw["cuf"]["interventions"]).resolve())
    path = tmp / "after.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


@pytest.fixture(scope="module")
def rounds(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    from profiling import pipeline
    from profiling.config import load_config

    tmp = tmp_path_factory.mktemp("after")
    after = tmp / "out"
    pipeline.run(load_config(_after_round(tmp)), after)
    out = tmp / "compare"
    compare(demo, after, out)
    return demo, after, out


def test_planted_changes_are_found_with_their_intervals(rounds):
    before, after, out = rounds
    got = pd.read_csv(out / "change_by_settlement.csv", dtype={"settlement_id": str})
    b = pd.read_csv(before / "settlement_indicators.csv", dtype={"settlement_id": str}
                    ).set_index("settlement_id")
    a = pd.read_csv(after / "settlement_indicators.csv", dtype={"settlement_id": str}
                    ).set_index("settlement_id")
    rows = got[got["indicator"] == "sanitation_basic"].set_index("settlement_id")
    assert "JK31" not in rows.index and len(rows) == 30
    checked = 0
    for sid, r in rows.iterrows():
        nb, na = b.loc[sid, "sanitation_basic_n"], a.loc[sid, "sanitation_basic_n"]
        if not (nb >= 5 and na >= 5):
            assert pd.isna(r["change"]) and pd.isna(r["before_n"]) and pd.isna(r["changed"])
            continue
        assert a.loc[sid, "sanitation_basic_share"] == 1.0  # every toilet basic now
        pb = b.loc[sid, "sanitation_basic_share"]
        xb = round(pb * nb)
        lb, ub = _wilson(xb, int(nb))
        la, ua = _wilson(na, int(na))
        assert r["change"] == pytest.approx(1.0 - xb / nb)
        assert r["change_lo"] == pytest.approx(1.0 - xb / nb - math.sqrt(
            (1.0 - la) ** 2 + (ub - xb / nb) ** 2))
        assert r["change_hi"] == pytest.approx(1.0 - xb / nb + math.sqrt(
            (ua - 1.0) ** 2 + (xb / nb - lb) ** 2))
        assert bool(r["changed"]) == (r["change_lo"] > 0)
        checked += 1
    assert checked >= 20
    assert rows["changed"].astype(str).eq("True").sum() >= 15
    # an answer nobody changed is never called a change; it is exactly the same wherever the
    # same households were counted (JK02's wider boundary took a few from its neighbours)
    tenure = got[got["indicator"] == "tenure_documented"].dropna(subset=["change"])
    assert len(tenure) >= 20 and not tenure["changed"].astype(str).eq("True").any()
    same = tenure[tenure["before_n"] == tenure["after_n"]]
    assert len(same) >= 20 and (same["change"].abs() < 1e-9).all()


def test_settlements_added_removed_or_redrawn_are_reported(rounds):
    _, _, out = rounds
    changes = pd.read_csv(out / "settlement_changes.csv", dtype={"settlement_id": str})
    assert sorted(zip(changes["settlement_id"], changes["change"], strict=True)) == [
        ("JK02", "boundary_changed"), ("JK31", "removed")]
    jk02 = changes.set_index("settlement_id").loc["JK02"]
    shape = gpd.read_file(REPO / "sample_data" / "settlements.gpkg")
    shape = shape[shape["settlement_id"] == "JK02"]
    utm = shape.to_crs(shape.estimate_utm_crs())
    assert jk02["area_before_m2"] == pytest.approx(float(utm.area.iloc[0]), rel=1e-6)
    assert jk02["area_after_m2"] == pytest.approx(float(utm.buffer(10).area.iloc[0]), rel=1e-3)
    manifest = json.loads((out / "compare_manifest.json").read_text())
    assert manifest["min_cell_size"] == 5
    assert manifest["inputs"]["before"]["status"] == "complete"


def test_the_command_compares_and_refuses_what_is_not_a_finished_run(rounds, tmp_path):
    before, after, _ = rounds
    proc = subprocess.run([EXE, "compare", str(before), str(after), "--out",
                           str(tmp_path / "c")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "change(s) whose 95 % interval excludes 0" in proc.stdout
    unfinished = tmp_path / "unfinished"
    shutil.copytree(before, unfinished)
    manifest = json.loads((unfinished / "run_manifest.json").read_text())
    manifest["status"] = "incomplete: the audit found disclosures"
    (unfinished / "run_manifest.json").write_text(json.dumps(manifest))
    proc = subprocess.run([EXE, "compare", str(unfinished), str(after), "--out",
                           str(tmp_path / "d")], capture_output=True, text=True)
    assert proc.returncode == 2 and "not complete" in proc.stderr
    assert "Traceback" not in proc.stderr
    with pytest.raises(ConfigError, match="not a run's output folder"):
        compare(tmp_path, after, tmp_path / "e")


def test_cuf_results_are_a_difference_in_differences_of_person_weighted_shares(rounds):
    """For each funded intervention, worked again here from the two settlement tables and
    BEFORE's portfolio: the population-weighted share of its indicator in the settlements it
    funded and in the others, before and after, and (after − before) funded minus unfunded,
    with the delta method's interval."""
    before, after, out = rounds
    portfolio = pd.read_csv(before / "cuf_portfolio.csv", dtype={"settlement_id": str})
    got = pd.read_csv(out / "cuf_results.csv").set_index(["intervention", "indicator"])
    b = pd.read_csv(before / "settlement_indicators.csv", dtype={"settlement_id": str}
                    ).set_index("settlement_id")
    a = pd.read_csv(after / "settlement_indicators.csv", dtype={"settlement_id": str}
                    ).set_index("settlement_id")
    both = [s for s in a.index if s in b.index]
    pairs = portfolio.dropna(subset=["improves"])[["intervention", "improves"]]
    assert len(got) == len(pairs.drop_duplicates()) >= 3
    for (iv, ind), g in portfolio.dropna(subset=["improves"]).groupby(
            ["intervention", "improves"]):
        funded = [s for s in both if s in set(g["settlement_id"])]
        touched = set(portfolio.loc[portfolio["improves"] == ind, "settlement_id"])
        others = [s for s in both if s not in touched]

        def share(t: pd.DataFrame, ids: list[str], ind: str = ind) -> tuple[float, float]:
            num = den = n = 0.0
            for s in ids:
                p, k, pop = t.loc[s, f"{ind}_share"], t.loc[s, f"{ind}_n"], t.loc[s,
                                                                                 "population"]
                if pd.notna(p) and k >= 5:
                    num, den, n = num + p * pop, den + pop, n + k
            return num / den, n

        (fb, n1), (fa, n2), (ub, n3), (ua, n4) = (share(b, funded), share(a, funded),
                                                  share(b, others), share(a, others))
        row = got.loc[(iv, ind)]
        assert row["funded_settlements"] == len(funded)
        assert [row[c] for c in ("funded_before", "funded_after", "unfunded_before",
                                 "unfunded_after")] == pytest.approx([fb, fa, ub, ua])
        did = (fa - fb) - (ua - ub)
        se = math.sqrt(sum(p * (1 - p) / n for p, n in ((fb, n1), (fa, n2), (ub, n3),
                                                        (ua, n4))))
        assert row["did"] == pytest.approx(did)
        assert row["did_lo"] == pytest.approx(did - 1.959963984540054 * se)
        assert row["did_hi"] == pytest.approx(did + 1.959963984540054 * se)
    # only toilets changed between the rounds; none of the funded interventions improves
    # them, so no difference in differences is told apart from 0
    assert not any("sanitation" in ind for _, ind in got.index)
    assert ((got["did_lo"] < 0) & (got["did_hi"] > 0)).all()


def test_the_city_summary_of_change(rounds):
    """Every toilet basic after: the persons at the basic sanitation rung go to 100 %; a share
    of households gets Newcombe's interval from its own numerator and denominator."""
    before, after, out = rounds
    got = pd.read_csv(out / "change_city.csv").set_index("indicator")
    b = pd.read_csv(before / "city_summary.csv").set_index("indicator")
    a = pd.read_csv(after / "city_summary.csv").set_index("indicator")
    basic = got.loc["sanitation_ladder_basic"]
    assert basic["after"] == 1.0 and basic["change"] == pytest.approx(
        1.0 - b.loc["sanitation_ladder_basic", "value"])
    assert pd.isna(basic["change_lo"]) and pd.isna(basic["changed"])  # persons: no interval
    row = got.loc["sdg_1_4_2_tenure_documented"]
    xb, nb = b.loc[row.name, "numerator"], b.loc[row.name, "denominator"]
    xa, na = a.loc[row.name, "numerator"], a.loc[row.name, "denominator"]
    lb, ub = _wilson(xb, int(nb))
    la, ua = _wilson(xa, int(na))
    pb, pa = xb / nb, xa / na
    assert row["change"] == pytest.approx(pa - pb)
    assert row["change_lo"] == pytest.approx(pa - pb - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2))
    assert row["change_hi"] == pytest.approx(pa - pb + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2))
    assert str(row["changed"]) == "False"
    assert "slum_components" not in got.index  # a note, not a figure


@pytest.mark.parametrize("manifest", [b"{not json", b"[1, 2]", b"\xff\xfe garbage"])
def test_a_broken_run_manifest_is_refused_with_a_message(rounds, tmp_path, manifest):
    before, after, _ = rounds
    broken = tmp_path / "broken"
    shutil.copytree(before, broken)
    (broken / "run_manifest.json").write_bytes(manifest)
    with pytest.raises(ConfigError, match="BEFORE"):
        compare(broken, after, tmp_path / "out")


def test_a_formula_in_a_settlement_name_stays_text_in_the_comparison(rounds, tmp_path):
    from profiling.outputs import read_csv, write_csv

    before, after, _ = rounds
    copies = []
    for run in (before, after):
        dst = tmp_path / run.name
        shutil.copytree(run, dst)
        table = read_csv(dst / "settlement_indicators.csv", dtype={"settlement_id": str})
        table.loc[table["settlement_id"] == "JK05", "name"] = '=HYPERLINK("http://x","y")'
        write_csv(table, dst / "settlement_indicators.csv")
        copies.append(dst)
    compare(copies[0], copies[1], tmp_path / "c")
    text = (tmp_path / "c" / "change_by_settlement.csv").read_text(encoding="utf-8")
    assert "'=HYPERLINK" in text and ',=HYPERLINK' not in text and ',"=HYPERLINK' not in text


def test_a_script_in_a_settlement_name_stays_text_in_the_then_and_now_pages(rounds, tmp_path):
    from profiling.outputs import read_csv, write_csv

    before, after, _ = rounds
    hostile = "<script>alert(1)</script>"
    copies = []
    for run in (before, after):
        dst = tmp_path / run.name
        shutil.copytree(run, dst)
        table = read_csv(dst / "settlement_indicators.csv", dtype={"settlement_id": str})
        table.loc[table["settlement_id"] == "JK05", "name"] = hostile
        write_csv(table, dst / "settlement_indicators.csv")
        copies.append(dst)
    compare(copies[0], copies[1], tmp_path / "c")
    for page in ("atlas/JK05.html", "atlas/index.html", "map_files/data.js"):
        text = (tmp_path / "c" / page).read_text(encoding="utf-8")
        assert "<script>alert" not in text, page
        assert ("&lt;script&gt;alert(1)&lt;/script&gt;" in text
                or "\\u003cscript\\u003ealert(1)" in text), page
