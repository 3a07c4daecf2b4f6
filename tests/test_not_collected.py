"""Components never collected (CONTRACT.md §4) and the tenure rule, end to end.

The city is the hand-made two squares of ``conftest.py``; settlement ``A`` holds 14 households
that lack nothing but, for 8 of them, durable walls (``mud_brick``). Worked by hand:

- with no tenure columns at all, tenure is *not collected*: the slum status is decided on the
  four other components, so 8 of 14 are slum households (share 8/14, n = 14) and no tenure
  column is published;
- with tenure columns present but blank, tenure is *unknown*: the 6 households lacking nothing
  else are unknown, the 8 with mud walls are slum households (share 8/8, n = 8).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from profiling.config import parse_config
from profiling.indicators import Thresholds, compute_indicators, not_collected
from profiling.pipeline import run as run_pipeline

from conftest import household, write_csv

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO.parent / "shared" / "tools" / "check_outputs.py"
TENURE = ("tenure_documented", "tenure_perceived_secure", "tenure_secure")

#: A household that lacks nothing (improved water, own improved toilet, 2 per sleeping room,
#: durable materials), at a point inside A.
NOTHING_LACKING = {"sanitation/toilet_shared": "no", "sanitation/toilet_households": "",
                   "housing/wall_material": "concrete_block", "housing/roof_material": "tiles",
                   "housing/floor_material": "cement"}


def _rows(tenure: str) -> list[dict[str, str]]:
    """14 households in A: 6 lacking nothing, 8 with mud walls; ``tenure``: ``drop`` (no
    tenure columns), ``blank`` (the columns, empty)."""
    rows = []
    for i in range(14):
        r = household(f"k{i:02d}", x=700005 + 6 * i, y=9300050, **NOTHING_LACKING)
        if i >= 6:
            r["housing/wall_material"] = "mud_brick"
        for col in [c for c in r if c.startswith("tenure/")]:
            if tenure == "drop":
                del r[col]
            else:
                r[col] = ""
        rows.append(r)
    return rows


def _run(tmp_path: Path, squares_file: Path, tenure: str, **extra: object) -> Path:
    path = write_csv(tmp_path / f"{tenure}.csv", _rows(tenure))
    cfg = parse_config({"surveys": [str(path)], "boundaries": str(squares_file), **extra})
    out = tmp_path / f"out_{tenure}"
    run_pipeline(cfg, out)
    return out


CRITERIA = {"cuf": {"criteria": {
    "slum": {"column": "slum_household_share", "weight": 0.5},
    "tenure": {"column": "tenure_secure_share", "weight": 0.5, "higher_is_worse": False},
}}}


def test_a_survey_without_tenure_questions(tmp_path, squares_file, caplog):
    caplog.set_level(logging.WARNING)
    out = _run(tmp_path, squares_file, "drop", **CRITERIA)
    table = pd.read_csv(out / "settlement_indicators.csv", dtype={"settlement_id": str})
    a = table.set_index("settlement_id").loc["A"]
    assert a["households"] == 14
    assert a["slum_household_share"] == pytest.approx(8 / 14)
    assert a["slum_household_n"] == 14
    # not collected is not unknown: no tenure column at all, not an empty share
    assert not [c for c in table.columns if c.startswith("tenure_")]
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["slum_components"] == ["water", "sanitation", "living_area",
                                           "durable_housing"]
    assert manifest["not_collected"] == sorted(TENURE)
    assert manifest["status"] == "complete"
    # one warning for each indicator left out
    warned = [r.getMessage() for r in caplog.records if "is not computed" in r.getMessage()]
    assert sorted(m.split()[0] for m in warned) == sorted(TENURE)
    city = pd.read_csv(out / "city_summary.csv")
    note = city.loc[city["indicator"] == "slum_components", "definition"].iloc[0]
    assert "not collected: tenure" in note and "durable housing" in note
    assert not city["indicator"].str.contains("tenure").any()
    for page in ("atlas/index.html", "atlas/A.html"):
        assert "not collected: tenure" in (out / page).read_text(encoding="utf-8")
    map_html = (out / "map.html").read_text(encoding="utf-8")
    assert "tenure_secure_share" not in map_html
    # the ranking drops the criterion whose source was not collected, and says so
    pri = pd.read_csv(out / "cuf_priorities.csv", dtype={"settlement_id": str})
    assert "tenure_secure_share was not computed" in pri["criteria_left_out"].iloc[0]
    assert not [c for c in pri.columns if c.startswith("tenure_")]
    proc = subprocess.run([sys.executable, str(CHECK), str(out)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_tenure_columns_collected_but_blank_stay_unknown(tmp_path, squares_file):
    out = _run(tmp_path, squares_file, "blank")
    a = pd.read_csv(out / "settlement_indicators.csv", dtype={"settlement_id": str}
                    ).set_index("settlement_id").loc["A"]
    assert a["slum_household_share"] == 1.0 and a["slum_household_n"] == 8
    # collected, so its columns are there; no household answered, so they are empty
    assert pd.isna(a["tenure_secure_share"]) and pd.isna(a["tenure_secure_n"])
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["slum_components"] == ["water", "sanitation", "living_area",
                                           "durable_housing", "tenure"]
    assert manifest["not_collected"] == []


def test_not_collected_indicators_from_the_columns():
    cols = ["water_source", "water_minutes", "toilet_type", "toilet_shared", "hh_size",
            "rooms_sleeping", "wall_material", "roof_material", "floor_material"]
    gone = not_collected(cols)
    assert set(TENURE) <= gone
    assert {"handwashing_basic", "waste_collected", "electricity_access"} <= gone
    assert not {"water_basic", "sanitation_adequate", "overcrowded", "durable_housing",
                "flood_exposed", "slum_household"} & gone
    # a household lacking nothing among the collected components is not a slum household
    hh = pd.DataFrame({"water_source": ["public_tap"], "water_minutes": [10],
                       "toilet_type": ["pit_slab"], "toilet_shared": ["no"], "hh_size": [3],
                       "rooms_sleeping": [1], "wall_material": ["stone"],
                       "roof_material": ["tiles"], "floor_material": ["wood"]})
    ind = compute_indicators(hh, Thresholds(not_collected=gone))
    assert ind["slum_household"].tolist() == [False]
    assert ind["deprivations"].iloc[0] == 0 and ind["deprivations_unknown"].iloc[0] == 0
    assert ind["tenure_secure"].isna().all()
    # the same household with tenure counted as collected (unanswered): unknown
    assert pd.isna(compute_indicators(hh, Thresholds())["slum_household"].iloc[0])


def test_the_documents_that_count_are_configurable(tmp_path, squares_file):
    hh = pd.DataFrame({"tenure_documents": ["rent_receipt", "title_deed", "none", None],
                       "eviction_fear": ["yes"] * 4})
    default = compute_indicators(hh)["tenure_documented"]
    assert default.tolist()[:3] == [False, True, False] and pd.isna(default.iloc[3])
    local = compute_indicators(hh, Thresholds(tenure_documents=("rent_receipt",)))
    assert local["tenure_documented"].tolist()[:3] == [True, False, False]
    # from the configuration, into the run's parameters
    rows = [household(f"k{i}", x=700005 + 9 * i, y=9300050) for i in range(6)]
    path = write_csv(tmp_path / "k.csv", rows)  # every household: rent_receipt, fears eviction
    cfg = parse_config({"surveys": [str(path)], "boundaries": str(squares_file),
                        "indicators": {"tenure_documents": ["rent_receipt", "lease"]}})
    run_pipeline(cfg, tmp_path / "out")
    a = pd.read_csv(tmp_path / "out" / "settlement_indicators.csv", dtype={
        "settlement_id": str}).set_index("settlement_id").loc["A"]
    assert a["tenure_documented_share"] == 1.0 and a["tenure_secure_share"] == 1.0
    params = pd.read_csv(tmp_path / "out" / "parameters.csv").set_index("parameter")["value"]
    assert params["tenure_documents"] == "`rent_receipt`, `lease`"


@pytest.mark.parametrize("bad", [["title deed"], [], ["<script>"], ["x" * 65]])
def test_a_document_list_that_is_not_choice_names_is_refused(bad, squares_file):
    from profiling._errors import ConfigError

    with pytest.raises(ConfigError, match="tenure_documents"):
        parse_config({"surveys": ["k.csv"], "boundaries": str(squares_file),
                      "indicators": {"tenure_documents": bad}})
