"""The panel of two enumerations (CONTRACT.md §6, issue 22): the sample city and its second
round made by ``sample_data/second_round.py``, with toilets and water points planted in known
settlements, structures gone and new, a structure id that two households share, and households
re-visited with the same form. The transitions are worked out here again from the exports'
answers and the definitions, and held against what was planted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "demo.yaml"
SCRIPT = REPO / "sample_data" / "second_round.py"
EXE = str(Path(sys.executable).parent / "profiling")
K = 5
#: CONTRACT.md §4, written out again
IMPROVED_TOILETS = {"flush_sewer", "flush_septic", "flush_pit", "flush_unknown", "vip_latrine",
                    "pit_slab", "composting"}
UNIMPROVED_WATER = {"unprotected_well", "unprotected_spring", "surface_water"}


def _round(config: Path) -> pd.DataFrame:
    """One round's accepted households with their structure id, submission key and placed
    settlement (ingest's own accounting), the answers as the exports give them."""
    from profiling import pipeline
    from profiling.config import load_config

    r = pipeline.ingest_config(load_config(config))
    personal = r.personal.set_index("key")
    hh = r.households.set_index("key")
    sid = personal["structure_id"].reindex(hh.index).astype("string").str.strip().str.upper()
    return pd.DataFrame({"sid": sid.mask(sid == ""),
                         "settlement": hh["settlement_id"].astype(object),
                         "toilet": hh["toilet_type"].astype(object),
                         "shared": hh["toilet_shared"].astype(object),
                         "water": hh["water_source"].astype(object)}, index=hh.index)


def _sanitation_basic(t: pd.DataFrame) -> pd.Series:
    """Improved and not shared, three-valued: false as soon as one part is false."""
    improved = t["toilet"].map(lambda v: None if pd.isna(v) else v in IMPROVED_TOILETS)
    not_shared = t["shared"].map(lambda v: None if pd.isna(v) else v == "no")
    out = []
    for i, s in zip(improved, not_shared, strict=True):
        out.append(False if (i is False or s is False) else
                   None if (i is None or s is None) else True)
    return pd.Series(out, index=t.index, dtype=object)


def _water_improved(t: pd.DataFrame) -> pd.Series:
    return t["water"].map(lambda v: None if pd.isna(v) else v not in UNIMPROVED_WATER)


def _pairs(b: pd.DataFrame, a: pd.DataFrame) -> list[tuple[str, str]]:
    """The matching rule, written out: a structure id no other household of its round holds,
    in both rounds; else the same submission key where one of the two has no structure id."""
    def unique(t: pd.DataFrame) -> dict[str, str]:
        counts = t["sid"].value_counts()
        return {s: k for k, s in t["sid"].items() if pd.notna(s) and counts[s] == 1}

    def shared(t: pd.DataFrame) -> set[str]:
        counts = t["sid"].value_counts()
        return {k for k, s in t["sid"].items() if pd.notna(s) and counts[s] > 1}

    ub, ua = unique(b), unique(a)
    pairs = [(ub[s], ua[s]) for s in ub if s in ua]
    done_b, done_a = {p[0] for p in pairs}, {p[1] for p in pairs}
    out_b, out_a = done_b | shared(b), done_a | shared(a)
    for key in b.index:
        if key in a.index and key not in out_b and key not in out_a and (
                pd.isna(b.loc[key, "sid"]) or pd.isna(a.loc[key, "sid"])):
            pairs.append((key, key))
    return pairs


def _expected(b: pd.DataFrame, a: pd.DataFrame, rule, settlements: set[str]) -> pd.DataFrame:
    was, now = rule(b), rule(a)
    rows: dict[str, dict[str, int]] = {}
    for kb, ka in _pairs(b, a):
        s = a.loc[ka, "settlement"]
        if s not in settlements or was[kb] is None or now[ka] is None:
            continue
        r = rows.setdefault(s, dict.fromkeys(
            ["false_to_true", "true_to_false", "stayed_true", "stayed_false"], 0))
        r[{(False, True): "false_to_true", (True, False): "true_to_false",
           (True, True): "stayed_true", (False, False): "stayed_false"}[(was[kb], now[ka])]] += 1
    return pd.DataFrame(rows).T


def test_transitions_are_the_planted_changes(second: Path, compared: Path):
    before, after = _round(DEMO), _round(second / "round2.yaml")
    planted = json.loads((second / "planted_changes.json").read_text())
    got = pd.read_csv(compared / "transitions.csv", dtype={"settlement_id": str})
    assert list(got.columns) == ["settlement_id", "indicator", "matched", "false_to_true",
                                 "true_to_false", "stayed_true", "stayed_false"]
    table = pd.read_csv(compared / "rounds" / "after" / "settlement_indicators.csv",
                        dtype={"settlement_id": str})
    settlements = set(table["settlement_id"])  # every settlement is in both rounds
    for name, rule in (("sanitation_basic", _sanitation_basic),
                       ("water_improved", _water_improved)):
        want = _expected(before, after, rule, settlements)
        rows = got[got["indicator"] == name].set_index("settlement_id")
        assert sorted(rows.index) == sorted(want.index)
        for sid, w in want.iterrows():
            r = rows.loc[sid]
            matched = int(w.sum())
            if matched < K:
                assert r[["matched", "false_to_true", "stayed_false"]].isna().all(), sid
                continue
            assert r["matched"] == matched, (name, sid)
            if ((w > 0) & (w < K)).any():  # a small count: only the total is shown
                assert r.iloc[2:].isna().all(), (name, sid)
                continue
            assert r.iloc[2:].astype(int).to_dict() == w.astype(int).to_dict(), (name, sid)
    # the planted toilets: nobody lost a basic toilet there, nobody still lacks one, and
    # elsewhere nothing moved either way
    san = got[got["indicator"] == "sanitation_basic"].set_index("settlement_id")
    for sid in planted["toilets_in"]:
        assert san.loc[sid, "true_to_false"] == 0 and san.loc[sid, "stayed_false"] == 0
        assert san.loc[sid, "false_to_true"] >= K
    rest = san.drop(index=planted["toilets_in"]).dropna(subset=["false_to_true"])
    assert len(rest) >= 15
    assert (rest["false_to_true"] == 0).all() and (rest["true_to_false"] == 0).all()
    water = got[got["indicator"] == "water_improved"].set_index("settlement_id")
    for sid in planted["water_in"]:
        assert water.loc[sid, "stayed_false"] == 0 and water.loc[sid, "true_to_false"] == 0
        assert water.loc[sid, "false_to_true"] >= K
    # an answer nobody changed moved nowhere
    tenure = got[got["indicator"] == "tenure_documented"].dropna(subset=["false_to_true"])
    assert len(tenure) >= 15 and (tenure["false_to_true"] == 0).all()
    assert (tenure["true_to_false"] == 0).all()


def test_the_matching_rule_and_its_counts(second: Path, compared: Path):
    before, after = _round(DEMO), _round(second / "round2.yaml")
    pairs = _pairs(before, after)
    planted = json.loads((second / "planted_changes.json").read_text())
    manifest = json.loads((compared / "compare_manifest.json").read_text())
    assert manifest["households"]["matched"] == len(pairs)
    same_form = [(b, a) for b, a in pairs if b == a]
    assert len(same_form) == 6  # the re-visits with the same form, on their key
    rule = manifest["matching"]["households"]
    assert f"({len(pairs) - 6} households), else of the submission key (6)" in rule
    assert "(0 before, 2 after)" in rule  # the shared structure id: two households, no match
    shared = planted["shared_structure_id"][0]
    assert shared["structure_id"] not in {before.loc[b, "sid"] for b, _ in pairs}
    # the departed are in no pair, and the arrivals are new
    gone = {d["structure_id"] for d in planted["departed"]}
    assert not gone & {before.loc[b, "sid"] for b, _ in pairs}
    # (an arrival copied from a row with a planted fault, a refusal say, is not accepted)
    arrived = {x["key"] for x in planted["arrivals"]} & set(after.index)
    assert len(arrived) >= 35 and not arrived & {a for _, a in pairs}
    assert manifest["inputs"]["before"]["households"] == len(before)
    assert manifest["inputs"]["after"]["households"] == len(after)


def test_no_linked_pair_or_structure_id_is_written(second: Path, compared: Path):
    """The pairs stay in the process: no output of the comparison holds a structure id or a
    submission key of either round (the audit of both rounds' personal values passed, and it
    is checked here again by plain search)."""
    before, after = _round(DEMO), _round(second / "round2.yaml")
    values = {str(s) for s in pd.concat([before["sid"], after["sid"]]).dropna()}
    keys = {str(k).removeprefix("uuid:") for k in [*before.index, *after.index]}
    text = "\n".join(p.read_text(encoding="utf-8") for p in compared.glob("*.csv"))
    text += (compared / "compare_manifest.json").read_text()
    tokens = set(text.replace(",", " ").replace('"', " ").split())
    assert len(values) > 2000 and len(keys) > 5000
    assert not tokens & values and not tokens & keys


def test_two_folders_give_no_transitions_and_say_why(demo: Path, tmp_path: Path):
    from profiling.compare import compare

    compare(demo, demo, tmp_path / "c")
    assert not (tmp_path / "c" / "transitions.csv").exists()
    manifest = json.loads((tmp_path / "c" / "compare_manifest.json").read_text())
    assert "give both rounds as configurations" in manifest["matching"]["households"]


def test_a_round_from_its_store_gives_the_same_panel(second: Path, compared: Path,
                                                     tmp_path: Path):
    """The second round loaded into a GeoPackage store (households there carry the store's
    pseudonymous ids, the structure ids sealed in its personal table) gives the same
    transitions as the round read from its exports."""
    import os

    import yaml

    data = yaml.safe_load((second / "round2.yaml").read_text())
    (tmp_path / "secret.txt").write_text("an-example-secret-of-the-second-round-0123456789")
    data["store"] = {"url": "round2.gpkg", "secret_file": "secret.txt"}
    data["output_dir"] = str(tmp_path / "out")
    cfg = tmp_path / "round2-store.yaml"
    cfg.write_text(yaml.safe_dump(data))
    env = {k: v for k, v in os.environ.items() if k != "PROFILING_SECRET"}
    proc = subprocess.run([EXE, "load", str(cfg), "-q"], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([EXE, "compare", str(DEMO), str(cfg), "--out", str(tmp_path / "c"),
                           "-q"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    got = pd.read_csv(tmp_path / "c" / "transitions.csv", dtype={"settlement_id": str})
    want = pd.read_csv(compared / "transitions.csv", dtype={"settlement_id": str})
    assert len(got) > 100
    pd.testing.assert_frame_equal(got, want)


def _page_rows(html: str, table_id: str) -> dict[str, list[str]]:
    """A table of a page, by its first cell: the cells' text."""
    import html as html_lib
    import re

    body = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S)
    assert body is not None, table_id
    rows = {}
    for tr in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S):
        cells = [html_lib.unescape(re.sub(r"<[^>]+>", "", c)).strip()
                 for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", tr, re.S)]
        rows[cells[0]] = cells[1:]
    return rows


def test_then_and_now_pages_say_what_changed(second: Path, compared: Path):
    """The JK03 page: each share as the two rounds' settlement tables give it, basic sanitation
    called better (its interval is far from 0), an answer nobody changed called no clear change,
    and the same households' gains as worked out here from the exports."""
    b = pd.read_csv(compared / "rounds" / "before" / "settlement_indicators.csv",
                    dtype={"settlement_id": str}).set_index("settlement_id")
    a = pd.read_csv(compared / "rounds" / "after" / "settlement_indicators.csv",
                    dtype={"settlement_id": str}).set_index("settlement_id")
    page = (compared / "atlas" / "JK03.html").read_text(encoding="utf-8")
    assert '<h1 id="settlement-name">Cideng RW 01</h1>' in page
    rows = _page_rows(page, "then-and-now")
    assert rows["Indicator"][:2] == ["2026", "2028"]  # the rounds named by their years
    san = rows["Basic sanitation"]
    assert san[:2] == [f"{round(b.loc['JK03', 'sanitation_basic_share'] * 100)}%", "100%"]
    assert san[-1] == "better"
    assert rows["Tenure documented"][-1] == "no clear change"
    before, after = _round(DEMO), _round(second / "round2.yaml")
    want = _expected(before, after, _sanitation_basic, {"JK03"}).loc["JK03"]
    moves = _page_rows(page, "transitions")["Basic sanitation"]
    assert moves[1] == f"{want['false_to_true']} of {want['false_to_true'] + want['stayed_false']}"
    assert moves[2] == f"0 of {want['stayed_true']}"
    # the link to the later round's full profile is there, and leads to a file
    assert 'href="../rounds/after/atlas/JK03.html"' in page
    assert (compared / "rounds" / "after" / "atlas" / "JK03.html").exists()
    index = (compared / "atlas" / "index.html").read_text(encoding="utf-8")
    settlements = _page_rows(index, "settlements")
    assert len(settlements) == 1 + 31
    assert settlements["Cideng RW 01"][1:3] == [f"{int(b.loc['JK03', 'households']):,}",
                                                f"{int(a.loc['JK03', 'households']):,}"]
    cuf = pd.read_csv(compared / "cuf_results.csv")
    assert len(_page_rows(index, "cuf-results")) == 1 + len(cuf)
    # a settlement below k in both rounds: no household figure
    small = (compared / "atlas" / "JK01.html").read_text(encoding="utf-8")
    assert "suppressed (fewer than 5 households)" in small


def test_the_later_rounds_profiles_have_their_then_and_now(compared: Path):
    """In the round the comparison ran, each profile gains its "then and now" (the shares of
    both rounds' tables), linking to the comparison's page; the earlier round's has none."""
    b = pd.read_csv(compared / "rounds" / "before" / "settlement_indicators.csv",
                    dtype={"settlement_id": str}).set_index("settlement_id")
    profile = (compared / "rounds" / "after" / "atlas" / "JK03.html").read_text(
        encoding="utf-8")
    assert '<div class="then-and-now" id="then-and-now">' in profile
    section = profile.split('id="then-and-now">')[1]
    rows = _page_rows(section.replace("<table>", '<table id="t">', 1), "t")
    san = rows["Basic sanitation"]
    assert san[:2] == [f"{round(b.loc['JK03', 'sanitation_basic_share'] * 100)}%", "100%"]
    assert san[-1] == "better"
    assert 'href="../../../atlas/JK03.html"' in section
    assert (compared / "rounds" / "after" / "atlas" / "../../../atlas/JK03.html").resolve(
    ).exists()
    before = (compared / "rounds" / "before" / "atlas" / "JK03.html").read_text(
        encoding="utf-8")
    assert "then-and-now" not in before


def test_profiles_written_again_keep_how_consent_was_obtained(compared: Path, tmp_path: Path):
    """The later round's profiles, written again with their "then and now", still say how its
    consent was obtained outside the form (a statement of its configuration)."""
    import shutil

    from profiling.compare import compare

    out = tmp_path / "c"
    for role in ("before", "after"):
        shutil.copytree(compared / "rounds" / role, out / "rounds" / role)
    statement = "signed forms kept at the ward office"
    compare(out / "rounds" / "before", out / "rounds" / "after", out,
            rounds=[out / "rounds" / "before", out / "rounds" / "after"],
            consent=(statement,))
    page = (out / "rounds" / "after" / "atlas" / "JK03.html").read_text(encoding="utf-8")
    assert 'id="then-and-now"' in page and statement in page
    assert statement not in (compared / "rounds" / "after" / "atlas" / "JK03.html").read_text(
        encoding="utf-8")
