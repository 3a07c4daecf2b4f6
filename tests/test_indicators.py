"""Indicators: every rule on hand-worked households, Kleene's unknowns, aggregation, and the sample
city recomputed in plain Python from CONTRACT.md §4 (not from the module)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiling.indicators import (
    INDICATOR_NAMES,
    HazardRule,
    Thresholds,
    aggregate,
    city_summary,
    compute_indicators,
    contract_columns,
    partial_counts,
    render_docs,
    settlement_indicators,
    wilson,
)

REPO = Path(__file__).resolve().parents[1]

#: A household lacking nothing: every indicator has an obvious value.
GOOD = {
    "settlement_id": "A", "hh_size": 4, "rooms_sleeping": 2, "water_source": "piped_dwelling",
    "water_minutes": 0, "water_sufficient": "yes", "toilet_type": "flush_sewer",
    "toilet_shared": "no", "toilet_households": None, "handwashing": "water_and_soap",
    "waste_disposal": "collected_door", "electricity": "grid_metered",
    "tenure_documents": "title_deed", "eviction_fear": "no", "wall_material": "concrete_block",
    "roof_material": "tiles", "floor_material": "cement", "flood": 0.0, "hh_head_sex": "male",
}


def frame(*rows: dict[str, object]) -> pd.DataFrame:
    df = pd.DataFrame([{**GOOD, **r} for r in rows])
    for c in ("hh_size", "rooms_sleeping", "water_minutes", "toilet_households"):
        df[c] = df[c].astype("Int64")
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].astype("string")
    df["flood"] = df["flood"].astype(float)
    return df


def value(overrides: dict[str, object], name: str, t: Thresholds | None = None) -> object:
    out = compute_indicators(frame(overrides), t)[name].iloc[0]
    return None if pd.isna(out) else (bool(out) if isinstance(out, (bool, np.bool_)) else out)


T, F, U = True, False, None
CASES = [
    # water_improved
    ({}, "water_improved", T),
    ({"water_source": "surface_water"}, "water_improved", F),
    ({"water_source": "unprotected_spring"}, "water_improved", F),
    ({"water_source": "sachet"}, "water_improved", T),
    ({"water_source": None}, "water_improved", U),
    # water_basic = improved and minutes <= 30
    ({"water_source": "public_tap", "water_minutes": 30}, "water_basic", T),
    ({"water_source": "public_tap", "water_minutes": 31}, "water_basic", F),
    ({"water_source": "public_tap", "water_minutes": None}, "water_basic", U),
    ({"water_source": "surface_water", "water_minutes": None}, "water_basic", F),  # F and U
    ({"water_source": None, "water_minutes": 10}, "water_basic", U),
    ({"water_source": None, "water_minutes": 45}, "water_basic", F),  # U and F
    # water_on_premises = improved and (piped dwelling/yard or minutes = 0)
    ({"water_source": "piped_yard", "water_minutes": None}, "water_on_premises", T),  # T or U
    ({"water_source": "borehole", "water_minutes": 0}, "water_on_premises", T),
    ({"water_source": "borehole", "water_minutes": 5}, "water_on_premises", F),
    ({"water_source": "borehole", "water_minutes": None}, "water_on_premises", U),
    ({"water_source": "unprotected_well", "water_minutes": 0}, "water_on_premises", F),
    # sanitation
    ({"toilet_type": "pit_no_slab"}, "sanitation_improved", F),
    ({"toilet_type": "flush_open_drain"}, "sanitation_improved", F),
    ({"toilet_type": None}, "sanitation_improved", U),
    ({"toilet_shared": "yes"}, "sanitation_basic", F),
    ({"toilet_shared": None}, "sanitation_basic", U),
    ({"toilet_type": "bucket", "toilet_shared": None}, "sanitation_basic", F),
    ({"toilet_shared": "yes", "toilet_households": 2}, "sanitation_adequate", T),
    ({"toilet_shared": "yes", "toilet_households": 3}, "sanitation_adequate", F),
    ({"toilet_shared": "yes", "toilet_households": None}, "sanitation_adequate", U),
    ({"toilet_shared": None, "toilet_households": 2}, "sanitation_adequate", T),  # U or T
    ({"toilet_type": "hanging_latrine", "toilet_shared": None}, "sanitation_adequate", F),
    ({"toilet_type": "no_facility"}, "open_defecation", T),
    ({"toilet_type": None}, "open_defecation", U),
    ({"handwashing": "water_only"}, "handwashing_basic", F),
    ({"handwashing": None}, "handwashing_basic", U),
    ({"waste_disposal": "collected_point"}, "waste_collected", T),
    ({"waste_disposal": "burned"}, "waste_collected", F),
    ({"electricity": "grid_informal"}, "electricity_access", T),
    ({"electricity": "none"}, "electricity_access", F),
    ({"electricity": None}, "electricity_access", U),
    # tenure
    ({"tenure_documents": "rent_receipt lease"}, "tenure_documented", T),
    ({"tenure_documents": "rent_receipt"}, "tenure_documented", F),
    ({"tenure_documents": "none"}, "tenure_documented", F),
    ({"tenure_documents": None}, "tenure_documented", U),
    ({"eviction_fear": "dont_know"}, "tenure_perceived_secure", F),
    ({"eviction_fear": None}, "tenure_perceived_secure", U),
    # tenure_secure = documented OR perceived secure (SDG 11.1.1's tenure component)
    ({}, "tenure_secure", T),  # documented, not fearing eviction
    ({"eviction_fear": "yes"}, "tenure_secure", T),  # documented but fearing eviction
    ({"tenure_documents": "none"}, "tenure_secure", T),  # undocumented, not fearing it
    ({"tenure_documents": "rent_receipt", "eviction_fear": "yes"}, "tenure_secure", F),
    ({"tenure_documents": "none", "eviction_fear": "dont_know"}, "tenure_secure", F),
    ({"eviction_fear": "dont_know"}, "tenure_secure", T),  # documented, dont_know
    ({"eviction_fear": None, "tenure_documents": "none"}, "tenure_secure", U),  # F or U
    ({"eviction_fear": None}, "tenure_secure", T),  # T or U
    ({"eviction_fear": None, "tenure_documents": None}, "tenure_secure", U),
    # housing
    ({"wall_material": "mud_wattle"}, "durable_housing", F),
    ({"roof_material": "thatch"}, "durable_housing", F),
    ({"floor_material": "earth"}, "durable_housing", F),
    ({"floor_material": None}, "durable_housing", U),
    ({"floor_material": None, "roof_material": "plastic_sheet"}, "durable_housing", F),
    ({"hh_size": 6, "rooms_sleeping": 2}, "overcrowded", F),  # 3.0 is not more than 3
    ({"hh_size": 7, "rooms_sleeping": 2}, "overcrowded", T),
    ({"rooms_sleeping": None}, "overcrowded", U),
    # female_headed: the head is female (from the roster, a head may be "other": false)
    ({"hh_head_sex": "female"}, "female_headed", T),
    ({}, "female_headed", F),
    ({"hh_head_sex": "other"}, "female_headed", F),
    ({"hh_head_sex": None}, "female_headed", U),
    # flood, thresholds 0.15 and 0.5
    ({"flood": 0.15}, "flood_exposed", T),
    ({"flood": 0.1499}, "flood_exposed", F),
    ({"flood": float("nan")}, "flood_exposed", U),
    ({"flood": 0.5}, "hazardous_location", T),
    ({"flood": 0.49}, "hazardous_location", F),
    # slum household: any deprivation is enough; unknown only if nothing is lacking
    ({}, "slum_household", F),
    ({"wall_material": "iron_sheet"}, "slum_household", T),
    ({"hh_size": 9, "rooms_sleeping": 2}, "slum_household", T),
    ({"rooms_sleeping": None}, "slum_household", U),
    ({"rooms_sleeping": None, "eviction_fear": "yes"}, "slum_household", U),  # documented
    ({"rooms_sleeping": None, "eviction_fear": "yes", "tenure_documents": "none"},
     "slum_household", T),
    ({"water_source": None, "toilet_type": None}, "slum_household", U),
]


@pytest.mark.parametrize("overrides,name,expected", CASES)
def test_rules(overrides, name, expected):
    assert value(overrides, name) is expected


def test_every_indicator_has_a_hand_worked_case():
    assert {name for _, name, _ in CASES} == set(INDICATOR_NAMES)


def test_thresholds_come_from_the_configuration():
    t = Thresholds(persons_per_room=2.0, water_minutes=15, toilet_households=3,
                   hazards=(HazardRule("flood", 0.3, 1.0),))
    assert value({"hh_size": 5, "rooms_sleeping": 2}, "overcrowded", t) is True
    assert value({"water_source": "public_tap", "water_minutes": 20}, "water_basic", t) is False
    assert value({"toilet_shared": "yes", "toilet_households": 3}, "sanitation_adequate",
                 t) is True
    assert value({"flood": 0.2}, "flood_exposed", t) is False
    assert value({"flood": 0.9}, "hazardous_location", t) is False


@pytest.mark.parametrize("overrides,ladder,level", [
    ({}, "water_ladder", "safely_managed_upper_bound"),
    ({"water_sufficient": "no"}, "water_ladder", "basic"),
    ({"water_source": "public_tap", "water_minutes": 45}, "water_ladder", "limited"),
    ({"water_source": "unprotected_well"}, "water_ladder", "unimproved"),
    ({"water_source": "surface_water"}, "water_ladder", "surface_water"),
    ({"water_source": None}, "water_ladder", None),
    ({"water_source": "public_tap", "water_minutes": None}, "water_ladder", None),
    ({}, "sanitation_ladder", "basic"),
    ({"toilet_shared": "yes"}, "sanitation_ladder", "limited"),
    ({"toilet_type": "pit_no_slab"}, "sanitation_ladder", "unimproved"),
    ({"toilet_type": "no_facility"}, "sanitation_ladder", "open_defecation"),
    ({"toilet_shared": None}, "sanitation_ladder", None),
    ({"toilet_type": "bucket", "toilet_shared": None}, "sanitation_ladder", "unimproved"),
    ({}, "hygiene_ladder", "basic"),
    ({"handwashing": "water_only"}, "hygiene_ladder", "limited"),
    ({"handwashing": "none"}, "hygiene_ladder", "none"),
])
def test_ladders(overrides, ladder, level):
    assert value(overrides, ladder) == level or (level is None and value(overrides, ladder)
                                                 is None)


def test_deprivation_count():
    # deprived of tenure: no document and fearing eviction (either alone is secure tenure)
    bad = {"water_source": "surface_water", "wall_material": "mud_brick",
           "eviction_fear": "yes", "tenure_documents": "none"}
    ind = compute_indicators(frame({}, bad, {**bad, "rooms_sleeping": None},
                                   {"water_source": "surface_water", "rooms_sleeping": None,
                                    "toilet_type": None}))
    assert ind["deprivations"].tolist() == [0, 3, 3, 1]
    assert ind["deprivations_unknown"].tolist() == [0, 0, 1, 2]
    # 1 known + 2 unknown could be 3: unknown
    assert [None if pd.isna(x) else bool(x) for x in ind["deprived_3plus"]] == [
        False, True, True, None]


def test_wilson_interval_by_hand():
    lo, hi = wilson(np.array([3.0, 0.0, 5.0]), np.array([10.0, 10.0, 0.0]))
    # p = 0.3, n = 10, z = 1.96: centre 0.35551, half-width 0.24772
    assert lo[0] == pytest.approx(0.10779, abs=1e-4) and hi[0] == pytest.approx(0.60322, abs=1e-4)
    assert lo[1] == 0.0 and hi[1] == pytest.approx(0.27754, abs=1e-4)
    assert math.isnan(lo[2]) and math.isnan(hi[2])


def test_aggregation_and_suppression_by_hand():
    rows = ([{"settlement_id": "A", "hh_size": 2}] * 3
            + [{"settlement_id": "A", "hh_size": 6, "wall_material": "mud_brick"}] * 2
            + [{"settlement_id": "A", "hh_size": 3, "eviction_fear": None,
                "tenure_documents": "none"}]
            + [{"settlement_id": "B", "hh_size": 5}] * 2)
    hh = frame(*rows)
    out = aggregate(hh, compute_indicators(hh), groups=["A", "B", "C"], min_cell_size=3)
    a = out.loc["A"]
    assert (a["households"], a["population"]) == (6, 21)
    # slum: 2 true (mud walls), 3 false, 1 unknown (no document and eviction fear unknown:
    # tenure unknown, nothing else lacking)
    assert (a["slum_household_share"], a["slum_household_n"]) == (pytest.approx(2 / 5), 5)
    assert a["slum_population_share"] == pytest.approx(12 / 18)
    assert a["durable_housing_share"] == pytest.approx(4 / 6)
    # B has 2 < 3 households: everything household-based is empty; C has none at all
    assert out.loc[["B", "C"]].isna().all().all()
    assert a["water_ladder_safely_managed_upper_bound_share"] == 1.0
    assert a["water_ladder_n"] == 6


def test_city_summary_names_its_denominators():
    rows = ([{"settlement_id": "A", "hh_size": 2}] * 3
            + [{"settlement_id": "A", "hh_size": 6, "wall_material": "mud_brick"}] * 2
            + [{"settlement_id": "A", "hh_size": 3, "eviction_fear": None,
                "tenure_documents": "none"}])
    hh = frame(*rows)
    city = city_summary(partial_counts(hh, compute_indicators(hh)), min_cell_size=3
                        ).set_index("indicator")
    # 12 persons in slum households; 21 enumerated; 18 in households of known status
    sdg = city.loc["sdg_11_1_1_slum_population"]
    assert (sdg["numerator"], sdg["denominator"]) == (12, 21)
    assert "over all persons enumerated" in sdg["definition"]
    other = city.loc["slum_population_over_known_status"]
    assert (other["numerator"], other["denominator"]) == (12, 18)
    assert other["definition"].startswith("the SDG 11.1.1 figure above with another "
                                          "denominator")
    assert "upper bound: quality not tested" in city.loc[
        "water_ladder_safely_managed_upper_bound", "definition"]
    assert city.loc["slum_components", "definition"].startswith(
        "Slum status is decided on all five components")
    assert "a tenure document or not fearing eviction" in city.loc[
        "sdg_1_4_2_tenure_secure", "definition"]


def test_share_below_k_is_empty_with_its_n():
    hh = frame(*[{"flood": float("nan")}] * 4, {"flood": 0.7}, {"flood": 0.0})
    out = aggregate(hh, compute_indicators(hh), min_cell_size=3).loc["A"]
    assert out["households"] == 6
    assert math.isnan(out["flood_exposed_share"]) and math.isnan(out["flood_exposed_n"])
    assert out["water_improved_n"] == 6


# ------------------------------------------------------------------------------------------
# Properties
# ------------------------------------------------------------------------------------------

ANSWERS = {
    "water_source": ["piped_dwelling", "public_tap", "surface_water", "unprotected_well", None],
    "water_minutes": [0, 10, 30, 31, 120, None],
    "toilet_type": ["flush_sewer", "pit_slab", "pit_no_slab", "no_facility", None],
    "toilet_shared": ["yes", "no", None],
    "toilet_households": [2, 3, 10, None],
    "tenure_documents": ["title_deed", "rent_receipt", "none", "lease rent_receipt", None],
    "eviction_fear": ["yes", "no", "dont_know", None],
    "wall_material": ["concrete_block", "iron_sheet", None],
    "hh_size": [1, 3, 7, 12],
    "rooms_sleeping": [1, 2, 4, None],
    "flood": [0.0, 0.2, 0.6, float("nan")],
    "settlement_id": ["A", "B", "C"],
}
household = st.fixed_dictionaries({k: st.sampled_from(v) for k, v in ANSWERS.items()})


@settings(max_examples=60, deadline=None)
@given(st.lists(household, min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_properties(rows, rnd):
    hh = frame(*rows)
    ind = compute_indicators(hh)
    out = aggregate(hh, ind, min_cell_size=1)
    shares = out[[c for c in out.columns if c.endswith("_share")]].to_numpy(dtype=float)
    assert np.nanmin(shares, initial=0) >= 0 and np.nanmax(shares, initial=0) <= 1
    for name in INDICATOR_NAMES:
        n = out[f"{name}_n"]
        assert ((n <= out["households"]) | n.isna()).all()
    # a household's slum status does not depend on the order of the rows
    order = list(range(len(rows)))
    rnd.shuffle(order)
    shuffled = compute_indicators(hh.iloc[order].reset_index(drop=True))
    assert shuffled["slum_household"].astype("object").tolist() == ind["slum_household"].iloc[
        order].astype("object").tolist()
    again = aggregate(hh.iloc[order], ind.iloc[order], min_cell_size=1)
    pd.testing.assert_frame_equal(again, out)


# ------------------------------------------------------------------------------------------
# The sample city, recomputed row by row from the contract
# ------------------------------------------------------------------------------------------

def _kleene_and(*xs):
    if any(x is False for x in xs):
        return False
    return None if any(x is None for x in xs) else True


def _kleene_or(*xs):
    if any(x is True for x in xs):
        return True
    return None if any(x is None for x in xs) else False


def _in(v, allowed):
    return None if v is None else v in allowed


def _num(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def contract_rules(r: dict) -> dict:
    """CONTRACT.md §4, written out for one household as plain Python."""
    o = {}
    src, mins = r["water_source"], _num(r["water_minutes"])
    o["water_improved"] = None if src is None else src not in (
        "unprotected_well", "unprotected_spring", "surface_water")
    o["water_basic"] = _kleene_and(o["water_improved"], None if mins is None else mins <= 30)
    o["water_on_premises"] = _kleene_and(o["water_improved"], _kleene_or(
        _in(src, ("piped_dwelling", "piped_yard")), None if mins is None else mins == 0))
    o["sanitation_improved"] = _in(r["toilet_type"], (
        "flush_sewer", "flush_septic", "flush_pit", "flush_unknown", "vip_latrine", "pit_slab",
        "composting"))
    not_shared = _in(r["toilet_shared"], ("no",))
    th = _num(r["toilet_households"])
    o["sanitation_basic"] = _kleene_and(o["sanitation_improved"], not_shared)
    o["sanitation_adequate"] = _kleene_and(o["sanitation_improved"], _kleene_or(
        not_shared, None if th is None else th <= 2))
    o["open_defecation"] = _in(r["toilet_type"], ("no_facility",))
    o["handwashing_basic"] = _in(r["handwashing"], ("water_and_soap",))
    o["waste_collected"] = _in(r["waste_disposal"], ("collected_door", "collected_point"))
    o["electricity_access"] = None if r["electricity"] is None else r["electricity"] != "none"
    docs = r["tenure_documents"]
    o["tenure_documented"] = None if docs is None else bool(set(docs.split()) & {
        "title_deed", "lease", "allotment_letter", "sale_agreement", "customary_certificate"})
    o["tenure_perceived_secure"] = _in(r["eviction_fear"], ("no",))
    o["tenure_secure"] = _kleene_or(o["tenure_documented"], o["tenure_perceived_secure"])
    o["durable_housing"] = _kleene_and(
        _in(r["wall_material"], ("concrete_block", "brick_fired", "stone", "cement_plastered")),
        _in(r["roof_material"], ("concrete", "tiles", "iron_sheet", "asbestos")),
        _in(r["floor_material"], ("cement", "tiles", "wood")))
    rooms = _num(r["rooms_sleeping"])
    o["overcrowded"] = None if rooms is None else float(r["hh_size"]) / rooms > 3
    o["female_headed"] = _in(r.get("hh_head_sex"), ("female",))
    depth = _num(r.get("flood"))
    o["flood_exposed"] = None if depth is None else depth >= 0.15
    o["hazardous_location"] = None if depth is None else depth >= 0.5

    def neg(x):
        return None if x is None else not x

    o["slum_household"] = _kleene_or(neg(o["water_improved"]), neg(o["sanitation_adequate"]),
                                     o["overcrowded"], neg(o["durable_housing"]),
                                     neg(o["tenure_secure"]))
    return o


def test_sample_city_table_matches_a_plain_python_recount(tmp_path):
    from profiling import pipeline
    from profiling.config import load_config

    cfg = load_config(REPO / "configs" / "demo.yaml")
    res = pipeline.ingest_config(cfg)
    hh = res.households.copy()
    # a stand-in depth per household, so the flood rules are exercised too
    rng = np.random.default_rng(7)
    hh["flood"] = np.where(rng.random(len(hh)) < 0.1, np.nan, rng.choice(
        [0.0, 0.1, 0.15, 0.3, 0.5, 0.8], len(hh)))
    settlements = pipeline.load_settlements(cfg)
    inside = hh["settlement_id"].notna().to_numpy()
    table = settlement_indicators(settlements.frame, partial_counts(
        hh.loc[inside], compute_indicators(hh).loc[inside]), 5)
    assert list(table.columns[:len(contract_columns())]) == contract_columns()

    records = hh.astype(object).where(hh.notna(), None).to_dict("records")
    expected: dict[str, dict[str, list]] = {}
    people: dict[str, list[float]] = {}
    for r in records:
        sid = r["settlement_id"]
        if sid is None:
            continue
        o = contract_rules(r)
        e = expected.setdefault(sid, {n: [0, 0] for n in INDICATOR_NAMES})
        for n in INDICATOR_NAMES:
            if o[n] is not None:
                e[n][0] += int(o[n])
                e[n][1] += 1
        p = people.setdefault(sid, [0, 0.0, 0.0])
        p[0] += 1
        if o["slum_household"] is not None:
            p[2] += r["hh_size"]
            if o["slum_household"]:
                p[1] += r["hh_size"]
    by_id = table.set_index("settlement_id")
    checked = 0
    for sid, e in expected.items():
        row = by_id.loc[sid]
        n_hh = people[sid][0]
        if n_hh < 5:
            assert pd.isna(row["households"]) and pd.isna(row["slum_household_share"])
            continue
        assert row["households"] == n_hh
        for n, (x, known) in e.items():
            if known < 5:
                assert pd.isna(row[f"{n}_share"]) and pd.isna(row[f"{n}_n"]), (sid, n)
            else:
                assert row[f"{n}_n"] == known, (sid, n)
                assert row[f"{n}_share"] == pytest.approx(x / known, abs=1e-12), (sid, n)
                checked += 1
        assert row["slum_population_share"] == pytest.approx(people[sid][1] / people[sid][2],
                                                             abs=1e-12)
    assert checked > 400
    assert pd.isna(by_id.loc["JK01", "households"])  # the 3-household settlement


def test_docs_are_generated_from_the_definitions():
    docs = REPO / "docs" / "indicators.md"
    assert docs.read_text(encoding="utf-8") == render_docs(), (
        "docs/indicators.md is stale: run `python -m profiling.indicators > docs/indicators.md`")


def test_priority_needs_by_hand():
    # a need counts only as a whole word of the answer, in any order and spacing
    hh = frame({"priority_needs": "drainage toilets"}, {"priority_needs": "water"},
               {"priority_needs": None}, {"priority_needs": "  toilets   drainage "},
               {"priority_needs": "waste_extra"})
    ind = compute_indicators(hh)

    def flags(need: str) -> list[bool | None]:
        return [None if pd.isna(x) else bool(x) for x in ind[f"priority_{need}"]]

    assert flags("drainage") == [True, False, None, True, False]
    assert flags("toilets") == [True, False, None, True, False]
    assert flags("water") == [False, True, None, False, False]
    assert flags("waste") == [False, False, None, False, False]
