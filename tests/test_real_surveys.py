"""Real household surveys from ../shared/data, read through field mappings.

Expected figures come from the SOURCE.md files (published counts) or from plain Python over the
raw CSV rows, never from ingest itself.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from profiling.config import ConsentStatement, FieldSource, SurveySource
from profiling.form import reference_form
from profiling.ingest import ingest
from profiling.join import prepare, read_boundaries

#: These public surveys have no consent field; their publishers state that respondents consented
#: (see each folder's SOURCE.md), which a configuration must say explicitly (CONTRACT.md §1).
CONSENT = ConsentStatement(collected_outside_form="stated by the survey's publisher")
FORM = reference_form()


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def settlement_list(tmp_path: Path, names: list[str]):
    path = tmp_path / "settlements.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["settlement_id", "name"])
        for n in names:
            w.writerow([n, n])
    return prepare(read_boundaries(path))


# EPFL Nairobi: codes of the thesis's XLSForm (Nairobi_2021.xls) to the reference choice names
EPFL_WATER = {"Public_Tap": "public_tap", "Vendor": "cart_small_tank",
              "Public_Dispenser": "water_kiosk", "Ground_tube": "borehole",
              "Piped_neigh": "piped_neighbour", "Piped_yard": "piped_yard",
              "Piped_dwel": "piped_dwelling", "Ground_well_NotOK": "unprotected_well",
              "RainWater": "rainwater", "Surface": "surface_water"}


def test_epfl_nairobi_kobo_export(tmp_path, shared_data):
    folder = shared_data / "epfl_wash_nairobi"
    households = rows_of(folder / "household_data_nairobi.csv")
    members = Counter(r["KEY"] for r in rows_of(folder / "individual_data_nairobi.csv"))
    # household size is the number of member rows: join it in as a column first
    merged = tmp_path / "nairobi.csv"
    with merged.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=[*households[0].keys(), "members"])
        w.writeheader()
        for r in households:
            w.writerow({**r, "members": members.get(r["KEY"], "")})
    mapping = {
        "key": "KEY",
        "settlement_reported": "Site",
        "hh_size": "members",
        "hh_head_sex": FieldSource(column="Sex_HH", values={"M": "male", "F": "female"}),
        "rooms_sleeping": "HHROOMS",
        "water_source": FieldSource(coalesce=["DrinkingWater_Private", "DrinkingWater_Public",
                                              "DrinkingWaterGroup"], values=EPFL_WATER),
        "toilet_shared": FieldSource(column="ToiletFacilitySHARE",
                                     values={"Y": "yes", "N": "no"}),
    }
    settlements = settlement_list(tmp_path, ["Mabatini", "Vietnam"])
    res = ingest([SurveySource(path=merged, field_mapping=mapping, consent=CONSENT)], FORM,
                 settlements, assign_by="column")
    c = res.counts
    # SOURCE.md: 1,147 households, 3,786 people; Mabatini 576, Vietnam 571
    assert c["read"] == 1147 and c["accepted"] == 1147 and c["rejected"] == 0
    assert res.households["hh_size"].sum() == 3786
    assert res.households["settlement_id"].value_counts().to_dict() == {"Mabatini": 576,
                                                                       "Vietnam": 571}
    # SOURCE.md: HHROOMS 111 and 999 are sentinel codes: out of range, dropped
    sentinels = sum(r["HHROOMS"] in ("111", "999") for r in households)
    dropped = res.rejects[res.rejects["action"] == "value_dropped"]
    assert (dropped["field"] == "household/rooms_sleeping").sum() == sentinels == 8
    assert res.households["hh_head_sex"].value_counts().to_dict() == {"male": 660,
                                                                     "female": 487}
    expected_water = Counter()
    for r in households:
        code = (r["DrinkingWater_Private"] or r["DrinkingWater_Public"]
                or r["DrinkingWaterGroup"])
        if code in EPFL_WATER:
            expected_water[EPFL_WATER[code]] += 1
    assert res.households["water_source"].value_counts().to_dict() == dict(expected_water)
    assert (dropped["field"] == "water/water_source").sum() == sum(
        1 for r in households
        if (r["DrinkingWater_Private"] or r["DrinkingWater_Public"] or r["DrinkingWaterGroup"])
        and (r["DrinkingWater_Private"] or r["DrinkingWater_Public"]
             or r["DrinkingWaterGroup"]) not in EPFL_WATER)
    shared = Counter(r["ToiletFacilitySHARE"] for r in households)
    assert res.households["toilet_shared"].value_counts().to_dict() == {
        "yes": shared["Y"], "no": shared["N"]}


def test_accra_water_cost_survey(tmp_path, shared_data):
    path = shared_data / "openwashdata_watercostaccra" / "households.csv"
    raw = rows_of(path)
    mapping = {
        "key": "id",
        "settlement_reported": "community",
        "hh_size": FieldSource(sum=["adult_count", "child_count"]),
        "rooms_sleeping": "rooms_in_hh",
        "hh_head_sex": "gender",
    }
    settlements = settlement_list(tmp_path, ["abuja", "kg"])
    res = ingest([SurveySource(path=path, field_mapping=mapping, na_values=["NA"],
                               consent=CONSENT)], FORM,
                 settlements, assign_by="column")
    # SOURCE.md: 116 households, abuja 56 and kg 60
    assert res.counts["read"] == 116 and res.counts["accepted"] == 116
    assert res.households["settlement_id"].value_counts().to_dict() == {"kg": 60, "abuja": 56}
    assert res.households["hh_size"].sum() == sum(int(r["adult_count"]) + int(r["child_count"])
                                                  for r in raw)
    zero_rooms = sum(r["rooms_in_hh"] == "0" for r in raw)
    dropped = res.rejects[res.rejects["field"] == "household/rooms_sleeping"]
    assert len(dropped) == zero_rooms == 8 and set(dropped["value"]) == {"0"}


MALAWI_WATER = {"Borehole or tubewell": "borehole", "Unprotected dug well": "unprotected_well",
                "Protected dug well": "protected_well", "Piped supply": "public_tap",
                "Surface water": "surface_water", "Water kiosk": "water_kiosk"}


def test_malawi_gps_survey(tmp_path, shared_data):
    path = shared_data / "openwashdata_waterconsumersurvey" / "waterconsumersurvey.csv"
    raw = rows_of(path)
    mapping = {
        "latitude": "latitude", "longitude": "longitude",
        "settlement_reported": "village",
        "hh_size": "household_size",
        "water_source": FieldSource(column="main_water_source", values=MALAWI_WATER),
        "water_minutes": "water_collection_time_minutes",
    }
    villages = sorted({r["village"] for r in raw})
    res = ingest([SurveySource(path=path, field_mapping=mapping, na_values=["NA"],
                               consent=CONSENT)], FORM,
                 settlement_list(tmp_path, villages), assign_by="column")
    # SOURCE.md: 423 GPS-located households; no submission key, so no row is a duplicate
    assert res.counts["read"] == 423 and res.counts["accepted"] == 423
    assert res.counts["duplicates"] == 0
    hh = res.households
    assert hh["latitude"].between(-16, -13).all() and hh["longitude"].between(34, 36).all()
    assert hh["water_source"].value_counts()["borehole"] == 353  # SOURCE.md
    assert hh["water_minutes"].isna().sum() == sum(
        r["water_collection_time_minutes"] == "NA" for r in raw)
    assert hh["hh_size"].sum() == sum(int(r["household_size"]) for r in raw)


def test_unmatched_settlement_is_rejected(tmp_path, shared_data):
    path = shared_data / "openwashdata_watercostaccra" / "households.csv"
    mapping = {"key": "id", "settlement_reported": "community",
               "hh_size": FieldSource(sum=["adult_count", "child_count"])}
    res = ingest([SurveySource(path=path, field_mapping=mapping, na_values=["NA"],
                               consent=CONSENT)], FORM,
                 settlement_list(tmp_path, ["abuja"]), assign_by="column")
    assert res.counts["accepted"] == 56 and res.counts["rejected"] == 60
    assert set(res.rejects["value"]) == {"kg"}


@pytest.mark.parametrize("bad", ["", "settlement_id,name\n,x\n", "id,name\n1,a\n"])
def test_bad_settlement_list(tmp_path, bad):
    from profiling import BoundaryError

    path = tmp_path / "s.csv"
    path.write_text(bad, encoding="utf-8")
    with pytest.raises(BoundaryError, match=r"s\.csv"):
        read_boundaries(path)


def test_malawi_indicator_shares_match_the_published_counts(tmp_path, shared_data):
    from profiling.indicators import aggregate, compute_indicators

    path = shared_data / "openwashdata_waterconsumersurvey" / "waterconsumersurvey.csv"
    mapping = {"latitude": "latitude", "longitude": "longitude", "settlement_reported": "district",
               "hh_size": "household_size",
               "water_source": FieldSource(column="main_water_source", values=MALAWI_WATER)}
    res = ingest([SurveySource(path=path, field_mapping=mapping, na_values=["NA"],
                               consent=CONSENT)], FORM,
                 settlement_list(tmp_path, ["Zomba", "Mangochi"]), assign_by="column")
    hh = res.households
    table = aggregate(hh, compute_indicators(hh), groups=["Zomba", "Mangochi"])
    # SOURCE.md: Zomba 283 and Mangochi 140 households; main sources: borehole 353, unprotected
    # dug well 37, piped 20, protected dug well 8, surface water 3, kiosk 2 (of 423)
    assert table["households"].to_dict() == {"Zomba": 283, "Mangochi": 140}
    improved = (table["water_improved_share"] * table["water_improved_n"]).sum()
    assert table["water_improved_n"].sum() == 423
    assert improved == pytest.approx(423 - 37 - 3)
    surface = (table["water_ladder_surface_water_share"] * table["water_ladder_n"]).sum()
    unimproved = (table["water_ladder_unimproved_share"] * table["water_ladder_n"]).sum()
    assert (round(surface), round(unimproved)) == (3, 37)
