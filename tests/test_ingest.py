"""Ingest on small hand-made exports whose every expected outcome is worked out by hand.

Placement uses the two 100 m squares of conftest: A (x 700000-700100) and B (x 700100-700200).
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from openpyxl import Workbook

from profiling import FormError, InputFileError
from profiling.config import ConsentStatement, FieldSource, SurveySource
from profiling.form import reference_form
from profiling.ingest import compile_constraint, ingest
from profiling.join import Settlements, check_boundaries, place, prepare

from conftest import household, lonlat, write_csv

FORM = reference_form([("A", "Alpha"), ("B", "Bravo")])


def run(squares: Settlements, *paths: Path, **kw: object):
    return ingest([SurveySource(path=p) for p in paths], FORM, squares, **kw)  # type: ignore[arg-type]


def accounted(counts: dict[str, int]) -> bool:
    return counts["read"] == (counts["accepted"] + counts["rejected"] + counts["duplicates"]
                              + counts["no_consent"])


def by_key(result) -> pd.DataFrame:
    return result.households.set_index("key")


# ------------------------------------------------------------------------------------------
# Formats and column spellings
# ------------------------------------------------------------------------------------------

THREE = [household("k1", 700050, 9300050), household("k2", 700150, 9300050, **{
    "household/hh_size": "3.0"}), household("k3", 700180, 9300020)]


@pytest.mark.parametrize("sep", [";", ","])
def test_kobo_csv_either_separator(tmp_path, squares, sep):
    res = run(squares, write_csv(tmp_path / "k.csv", THREE, sep))
    hh = by_key(res)
    assert hh["settlement_id"].to_dict() == {"k1": "A", "k2": "B", "k3": "B"}
    assert hh["hh_size"].tolist() == [4, 3, 4]  # "3.0" is an integer with a zero fraction
    assert res.counts == {"read": 3, "accepted": 3, "rejected": 0, "duplicates": 0,
                          "no_consent": 0, "outside_settlements": 0, "values_dropped": 0}


def _odk(h: str) -> str:
    special = {"_gps_latitude": "gps-Latitude", "_gps_longitude": "gps-Longitude",
               "_gps_altitude": "gps-Altitude", "_gps_precision": "gps-Accuracy",
               "_uuid": "meta-instanceID", "_submission_time": "SubmissionDate"}
    return special.get(h, h.replace("/", "-"))


def test_odk_central_csv(tmp_path, squares):
    rows = [{**r, "_uuid": "uuid:" + r["_uuid"], "_submission_time": "2026-03-02T12:00:00.000Z"}
            for r in THREE]
    for r in rows:
        del r["gps"], r["_id"], r["_index"]
    res = run(squares, write_csv(tmp_path / "odk.csv", rows, ",", _odk))
    hh = by_key(res)
    assert sorted(hh.index) == ["k1", "k2", "k3"]  # the uuid: prefix is not part of the key
    assert hh.loc["k1", "water_source"] == "public_tap"
    assert hh.loc["k2", "settlement_id"] == "B"
    assert hh.loc["k1", "gps_precision"] == 5.0


def test_group_names_left_out(tmp_path, squares):
    res = run(squares, write_csv(tmp_path / "short.csv", THREE, ";",
                                 lambda h: h.rsplit("/", 1)[-1]))
    hh = by_key(res)
    assert hh.loc["k2", "hh_size"] == 3
    assert hh.loc["k1", "tenure_status"] == "tenant_informal"


def test_kobo_xlsx_with_typed_cells(tmp_path, squares):
    import datetime as dt

    wb = Workbook()
    ws = wb.active
    header = list(THREE[0])
    ws.append(header)
    for r in THREE:
        cells: list[object] = [r[h] for h in header]
        cells[header.index("household/hh_size")] = float(r["household/hh_size"])
        cells[header.index("_submission_time")] = dt.datetime(2026, 3, 2, 12, 0)
        ws.append(cells)
    wb.save(tmp_path / "k.xlsx")
    res = run(squares, tmp_path / "k.xlsx")
    assert by_key(res)["hh_size"].to_dict() == {"k1": 4, "k2": 3, "k3": 4}
    assert res.counts["accepted"] == 3
    assert res.households["submitted_at"].iloc[0] == pd.Timestamp("2026-03-02T12:00", tz="UTC")


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg"])
def test_point_layers(tmp_path, squares, suffix):
    rows = [{k: v for k, v in r.items() if not k.startswith("_gps") and k != "gps"}
            for r in THREE]
    pts = [shapely.Point(*lonlat(700050, 9300050)), shapely.Point(*lonlat(700150, 9300050)),
           shapely.Point(*lonlat(700180, 9300020))]
    gdf = gpd.GeoDataFrame(rows, geometry=pts, crs="EPSG:4326")
    gdf.to_file(tmp_path / f"pts{suffix}")
    res = run(squares, tmp_path / f"pts{suffix}")
    assert by_key(res)["settlement_id"].to_dict() == {"k1": "A", "k2": "B", "k3": "B"}


def test_split_geopoint_columns_win_over_the_raw_string(tmp_path, squares):
    lon_b, lat_b = lonlat(700150, 9300050)
    r1 = household("k1", 700050, 9300050, gps=f"{lat_b} {lon_b} 0 5")  # split says A, raw B
    r2 = household("k2", 700050, 9300050, gps=f"{lat_b} {lon_b} 0 7", _gps_latitude="",
                   _gps_longitude="", _gps_precision="")  # split empty: the raw string counts
    hh = by_key(run(squares, write_csv(tmp_path / "g.csv", [r1, r2])))
    assert hh["settlement_id"].to_dict() == {"k1": "A", "k2": "B"}
    assert hh.loc["k2", "gps_precision"] == 7.0


def test_select_multiple_from_choice_columns(tmp_path, squares):
    r1 = household("k1", **{"tenure/tenure_documents/lease": "1",
                            "tenure/tenure_documents/title_deed": "1",
                            "tenure/tenure_documents/none": "0"})
    r2 = household("k2", **{"tenure/tenure_documents/lease": "0",
                            "tenure/tenure_documents/title_deed": "0",
                            "tenure/tenure_documents/none": "1"})
    for r in (r1, r2):
        del r["tenure/tenure_documents"]
    hh = by_key(run(squares, write_csv(tmp_path / "m.csv", [r1, r2])))
    # rebuilt in the order of the choice list
    assert hh["tenure_documents"].to_dict() == {"k1": "title_deed lease", "k2": "none"}


def test_space_separated_column_wins_over_choice_columns(tmp_path, squares):
    r = household("k1", **{"tenure/tenure_documents": "lease",
                           "tenure/tenure_documents/lease": "0",
                           "tenure/tenure_documents/title_deed": "1"})
    hh = by_key(run(squares, write_csv(tmp_path / "m.csv", [r])))
    assert hh.loc["k1", "tenure_documents"] == "lease"


def test_choice_columns_fill_only_the_rows_whose_answer_text_is_empty(tmp_path, squares):
    """Both forms in one export: the space-separated answer where it is given, the 0/1 columns
    where it is empty, row by row."""
    given = household("k1", **{"tenure/tenure_documents": "lease",
                               "tenure/tenure_documents/lease": "0",
                               "tenure/tenure_documents/title_deed": "1"})
    empty = household("k2", **{"tenure/tenure_documents": "",
                               "tenure/tenure_documents/lease": "1",
                               "tenure/tenure_documents/title_deed": "1"})
    neither = household("k3", **{"tenure/tenure_documents": "",
                                 "tenure/tenure_documents/lease": "",
                                 "tenure/tenure_documents/title_deed": ""})
    hh = by_key(run(squares, write_csv(tmp_path / "m.csv", [given, empty, neither])))
    assert hh.loc["k1", "tenure_documents"] == "lease"
    assert hh.loc["k2", "tenure_documents"] == "title_deed lease"
    assert pd.isna(hh.loc["k3", "tenure_documents"])


def _as_labels(row: dict[str, str]) -> dict[str, str]:
    """A household as an export "with labels" writes it: every select_one answer by its label."""
    out = dict(row)
    for q in FORM.questions.values():
        if q.type == "select_one" and q.name in out and q.list_name != "settlements":
            names = {c.name: c.label for c in FORM.choices[q.list_name or ""]}
            out[q.name] = names.get(out[q.name], out[q.name])
    return out


def test_export_with_labels_is_mapped_back(tmp_path, squares):
    r = _as_labels(household("k1", **{"sanitation/toilet_shared": "no"}))
    r2 = _as_labels(household("k2", **{"water/water_source": "piped_dwelling"}))
    assert r["water/water_source"] == "Public tap or standpipe"
    res = run(squares, write_csv(tmp_path / "labels.csv", [r, r2]))
    assert res.inputs[0].labels == "labels"
    hh = by_key(res)
    assert hh.loc["k1", "water_source"] == "public_tap"
    assert hh.loc["k1", "toilet_shared"] == "no"
    assert hh.loc["k1", "toilet_type"] == "pit_slab"
    assert hh.loc["k2", "water_source"] == "piped_dwelling"
    assert res.counts["values_dropped"] == 0


def test_labels_in_an_export_declared_with_names_are_invalid(tmp_path, squares):
    r = household("k1", **{"water/water_source": "Public tap or standpipe"})
    res = ingest([SurveySource(path=write_csv(tmp_path / "n.csv", [r]), labels="names")], FORM,
                 squares)
    rej = res.rejects
    assert rej[["field", "value", "action"]].values.tolist() == [
        ["water/water_source", "Public tap or standpipe", "value_dropped"]]
    assert pd.isna(by_key(res).loc["k1", "water_source"])


# ------------------------------------------------------------------------------------------
# Duplicates, consent, personal fields
# ------------------------------------------------------------------------------------------

def test_latest_submission_wins_across_files(tmp_path, squares):
    a = write_csv(tmp_path / "a.csv", [
        household("k1", _submission_time="2026-03-02T10:00:00", **{"household/hh_size": "4"}),
        household("k2", _submission_time="2026-03-02T10:00:00", **{"household/hh_size": "1"}),
        # 12:00+07:00 is 05:00 UTC: older than the naive (UTC) 06:00 in b.csv
        household("k3", _submission_time="2026-03-02T12:00:00+07:00",
                  **{"household/hh_size": "7"}),
    ])
    b = write_csv(tmp_path / "b.csv", [
        household("k1", _submission_time="2026-03-02T09:00:00", **{"household/hh_size": "5"}),
        household("k2", _submission_time="2026-03-02T10:00:00", **{"household/hh_size": "2"}),
        household("k3", _submission_time="2026-03-02T06:00:00", **{"household/hh_size": "8"}),
        household("k2", _submission_time="2026-03-02T10:00:00", **{"household/hh_size": "3"}),
    ])
    res = run(squares, a, b)
    # k1: a is later; k2: a tie, the later file (b) then its later row; k3: b is later in UTC
    assert by_key(res)["hh_size"].to_dict() == {"k1": 4, "k2": 3, "k3": 8}
    assert res.counts["duplicates"] == 4 and res.counts["read"] == 7
    assert accounted(res.counts)


def test_refusal_keeps_nothing_but_the_fact(tmp_path, squares):
    old = household("k1", _submission_time="2026-03-02T10:00:00")
    new = household("k1", _submission_time="2026-03-02T11:00:00", consent="no",
                    respondent_name="Refusing Person")
    other = household("k2")
    res = run(squares, write_csv(tmp_path / "c.csv", [old, new, other]))
    assert res.counts["no_consent"] == 1 and res.counts["duplicates"] == 1
    assert res.households["key"].tolist() == ["k2"]
    assert res.personal["key"].tolist() == ["k2"]
    assert "Refusing Person" not in res.personal.to_string()
    assert (res.submissions["status"] == "no_consent").sum() == 1
    assert accounted(res.counts)


def test_missing_consent_is_a_rejection(tmp_path, squares):
    res = run(squares, write_csv(tmp_path / "c.csv", [household("k1", consent=""),
                                                        household("k2", consent="maybe")]))
    assert res.counts["rejected"] == 2
    assert set(res.rejects["field"]) == {"consent"}
    assert set(res.rejects["action"]) == {"row_rejected"}


def test_personal_fields_never_reach_the_household_frame(tmp_path, squares):
    res = run(squares, write_csv(tmp_path / "p.csv", THREE))
    for col in ("respondent_name", "phone", "national_id", "structure_id", "gps"):
        assert col not in res.households.columns
    assert set(res.personal.columns) == {"key", "respondent_name", "phone", "national_id",
                                         "structure_id"}
    text = res.households.astype(str).to_string() + res.submissions.astype(str).to_string()
    assert "Test Person" not in text and "+62 800 0000" not in text and "3171000" not in text


# ------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------

def test_invalid_answers_become_unknown_and_are_listed(tmp_path, squares):
    r = household("k1", **{
        "household/rooms_sleeping": "0",            # constraint . >= 1
        "water/water_source": "piped",              # not a choice
        "water/water_minutes": "12.5",              # not a whole number
        "sanitation/toilet_households": "1",        # constraint . >= 2
        "priorities/priority_needs": "water toilets drainage waste",  # more than three
        "tenure/tenure_documents": "lease deed",    # one answer not a choice
        "start": "yesterday",                       # not a date-time
    })
    res = run(squares, write_csv(tmp_path / "v.csv", [r, household("k2")]))
    got = {(f, v) for f, v in res.rejects[["field", "value"]].itertuples(index=False)}
    assert got == {("household/rooms_sleeping", "0"), ("water/water_source", "piped"),
                   ("water/water_minutes", "12.5"), ("sanitation/toilet_households", "1"),
                   ("priorities/priority_needs", "water toilets drainage waste"),
                   ("tenure/tenure_documents", "lease deed"), ("start", "yesterday")}
    assert set(res.rejects["action"]) == {"value_dropped"}
    assert res.counts["values_dropped"] == 7 and res.counts["accepted"] == 2
    hh = by_key(res)
    for col in ("rooms_sleeping", "water_source", "water_minutes", "toilet_households",
                "priority_needs", "tenure_documents", "start"):
        assert pd.isna(hh.loc["k1", col]), col
        assert not pd.isna(hh.loc["k2", col]), col
    assert hh.loc["k1", "hh_size"] == 4  # the rest of the row is kept


@pytest.mark.parametrize("value,reason", [("0", "constraint"), ("31", "constraint"),
                                          ("3.5", "whole number"), ("three", "whole number"),
                                          ("", "missing")])
def test_bad_hh_size_rejects_the_row(tmp_path, squares, value, reason):
    res = run(squares, write_csv(tmp_path / "h.csv", [household("k1", **{
        "household/hh_size": value}), household("k2")]))
    assert res.households["key"].tolist() == ["k2"]
    rej = res.rejects.iloc[0]
    assert (rej["field"], rej["value"], rej["action"]) == ("household/hh_size", value,
                                                          "row_rejected")
    assert reason in rej["reason"] and rej["row"] == 2 and rej["key"] == "k1"


def test_location_rules(tmp_path, squares):
    lon, lat = lonlat(700050, 9300050)
    rows = [
        household("inside"),
        household("missing", gps="", _gps_latitude="", _gps_longitude=""),
        household("zero", gps="", _gps_latitude="0", _gps_longitude="0"),
        household("range", gps="", _gps_latitude="95", _gps_longitude=f"{lon}"),
        household("swapped", gps="", _gps_latitude=f"{lon}", _gps_longitude=f"{lat}"),
        household("text", gps="", _gps_latitude="abc", _gps_longitude="def"),
        household("far", 700050, 9303100),      # 3,000 m north of A
        household("near", 700050, 9300600),     # 500 m north of A: accepted, outside
    ]
    res = run(squares, write_csv(tmp_path / "l.csv", rows))
    reasons = dict(zip(res.rejects["key"], res.rejects["reason"], strict=True))
    assert set(reasons) == {"missing", "zero", "range", "swapped", "text", "far"}
    assert "missing" in reasons["missing"]
    assert "0/0" in reasons["zero"]
    assert "out of range" in reasons["range"]
    assert "swapped" in reasons["swapped"]
    assert "not a pair of numbers" in reasons["text"]
    assert "nearest: A, 3,000 m" in reasons["far"]
    assert set(res.rejects["value"]) == {"(withheld: location)"}  # never the coordinates
    hh = by_key(res)
    assert pd.isna(hh.loc["near", "settlement_id"])
    assert hh.loc["near", "nearest_settlement_id"] == "A"
    assert hh.loc["near", "distance_m"] == pytest.approx(500, abs=0.01)
    assert res.counts["outside_settlements"] == 1 and res.counts["accepted"] == 2


def test_max_distance_is_configurable(tmp_path, squares):
    path = write_csv(tmp_path / "l.csv", [household("near", 700050, 9300600)])
    assert run(squares, path, max_distance_m=400).counts["rejected"] == 1
    assert run(squares, path, max_distance_m=600).counts["rejected"] == 0


def test_settlement_reported_mismatch_is_flagged(tmp_path, squares):
    rows = [household("k1", settlement_reported="B"), household("k2"),
            household("k3", settlement_reported="Nowhere")]
    res = run(squares, write_csv(tmp_path / "s.csv", rows))
    hh = by_key(res)
    assert hh["settlement_mismatch"].tolist() == [True, False, False]
    assert res.rejects[["key", "field"]].values.tolist() == [["k3", "settlement_reported"]]


def test_boundary_point_goes_to_the_first_settlement_id():
    # two squares in WGS84 sharing the meridian 106.81; the point lies exactly on it
    gdf = gpd.GeoDataFrame({"settlement_id": ["Z", "Y"], "name": ["z", "y"]},
                           geometry=[shapely.box(106.81, -6.2, 106.82, -6.19),
                                     shapely.box(106.80, -6.2, 106.81, -6.19)], crs="EPSG:4326")
    s = prepare(check_boundaries(gdf))
    p = place(np.array([106.81, 106.805, 106.815]), np.array([-6.195, -6.195, -6.195]), s)
    assert s.ids[p.inside].tolist() == ["Y", "Y", "Z"]


# ------------------------------------------------------------------------------------------
# Surveys without GPS, other field names, other forms
# ------------------------------------------------------------------------------------------

def test_households_placed_by_a_settlement_column(tmp_path, squares):
    rows = [household("k1", settlement_reported="alpha"), household("k2", settlement_reported="B"),
            household("k3", settlement_reported="Zulu")]
    for r in rows:
        for c in ("gps", "_gps_latitude", "_gps_longitude", "_gps_altitude", "_gps_precision"):
            del r[c]
    res = run(squares, write_csv(tmp_path / "nogps.csv", rows), assign_by="column")
    assert by_key(res)["settlement_id"].to_dict() == {"k1": "A", "k2": "B"}
    rej = res.rejects.iloc[0]
    assert (rej["key"], rej["action"], rej["value"]) == ("k3", "row_rejected", "Zulu")
    assert "matches no settlement" in rej["reason"]


def test_field_mapping_reads_another_survey(tmp_path, squares):
    path = tmp_path / "other.csv"
    path.write_text("id,community,adults,children,drink,rooms,lat,lon\n"
                    "1,Alpha,2,3,packaged,1,,\n"
                    "2,B,1,0,tap,2,,\n"
                    "3,Alpha,x,1,packaged,1,,\n", encoding="utf-8")
    mapping = {
        "key": "id",
        "settlement_reported": "community",
        "hh_size": FieldSource(sum=["adults", "children"]),
        "water_source": FieldSource(column="drink", values={"packaged": "sachet",
                                                            "tap": "public_tap"}),
        "rooms_sleeping": "rooms",
    }
    res = ingest([SurveySource(path=path, field_mapping=mapping, consent=ConsentStatement(
        collected_outside_form="verbal, recorded on the paper list"))], FORM, squares,
                 assign_by="column")
    hh = by_key(res)
    assert hh["hh_size"].to_dict() == {"1": 5, "2": 1}
    assert hh["water_source"].to_dict() == {"1": "sachet", "2": "public_tap"}
    assert hh["settlement_id"].to_dict() == {"1": "A", "2": "B"}
    rej = res.rejects.iloc[0]
    assert (rej["key"], rej["value"], rej["action"]) == ("3", "x+1", "row_rejected")


def test_field_mapping_names_a_missing_column(tmp_path, squares):
    path = write_csv(tmp_path / "k.csv", THREE)
    with pytest.raises(FormError, match=r"k\.csv.*column 'hh_total'"):
        ingest([SurveySource(path=path, field_mapping={"hh_size": "hh_total"})], FORM, squares)


def test_export_of_another_form_is_refused(tmp_path, squares):
    path = tmp_path / "other.csv"
    path.write_text("id,name,age\n1,a,3\n", encoding="utf-8")
    with pytest.raises(FormError, match="does not look like an export"):
        run(squares, path)


def test_malformed_record_is_rejected_and_the_rest_survive(tmp_path, squares):
    path = write_csv(tmp_path / "k.csv", THREE)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(2, "only;three;fields")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = run(squares, path)
    assert res.counts["read"] == 4 and res.counts["accepted"] == 3
    assert res.rejects[["row", "action"]].values.tolist() == [[3, "row_rejected"]]
    assert accounted(res.counts)


def test_empty_export_is_a_clear_error(tmp_path, squares):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(InputFileError, match=r"empty\.csv: the file is empty"):
        run(squares, path)


def test_constraint_parser():
    assert compile_constraint(". >= 1 and . <= 30") == [[("value", ">=", 1.0),
                                                         ("value", "<=", 30.0)]]
    assert compile_constraint("count-selected(.) <= 3") == [[("count", "<=", 3.0)]]
    assert compile_constraint(". < 0 or . > 10") == [[("value", "<", 0.0)],
                                                     [("value", ">", 10.0)]]
    assert compile_constraint("regex(., '^[0-9]+$')") is None


def test_manifest_records_inputs(tmp_path, squares_file):
    from profiling.config import parse_config
    from profiling.pipeline import run as run_pipeline

    path = write_csv(tmp_path / "k.csv", THREE)
    cfg = parse_config({"surveys": [str(path)], "boundaries": str(squares_file)})
    result = run_pipeline(cfg, tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "run_manifest.json").read_text())
    import hashlib

    assert manifest["inputs"]["surveys"][0]["sha256"] == hashlib.sha256(
        path.read_bytes()).hexdigest()
    assert manifest["counts"] == result.counts
    assert manifest["configuration"]["min_cell_size"] == 5


def test_boundary_findings_are_written_beside_the_outputs(tmp_path):
    from profiling.config import parse_config
    from profiling.pipeline import run as run_pipeline

    # B overlaps A by 20 m x 100 m = 2,000 m²
    gdf = gpd.GeoDataFrame({"settlement_id": ["A", "B"], "name": ["Alpha", "Bravo"]},
                           geometry=[shapely.box(700000, 9300000, 700100, 9300100),
                                     shapely.box(700080, 9300000, 700200, 9300100)],
                           crs="EPSG:32748")
    gdf.to_file(tmp_path / "overlap.gpkg")
    path = write_csv(tmp_path / "k.csv", THREE)
    cfg = parse_config({"surveys": [str(path)], "boundaries": str(tmp_path / "overlap.gpkg")})
    run_pipeline(cfg, tmp_path / "out")
    findings = pd.read_csv(tmp_path / "out" / "boundary_findings.csv")
    assert findings["problem"].tolist() == ["overlap"]
    assert findings["area_m2"].iloc[0] == pytest.approx(2000, rel=1e-6)


def test_privacy_classes_from_the_configuration(tmp_path, squares_file):
    from profiling.config import parse_config
    from profiling.pipeline import ingest_config, load_form

    path = write_csv(tmp_path / "k.csv", [household("k1", **{"water/water_source": "borehole"})])
    cfg = parse_config({"surveys": [str(path)], "boundaries": str(squares_file),
                        "privacy": {"water_source": "direct"}})
    assert load_form(cfg).questions["water/water_source"].privacy == "direct"
    res = ingest_config(cfg)
    assert "water_source" not in res.households.columns
    assert res.personal.loc[0, "water_source"] == "borehole"
    from profiling import ConfigError

    with pytest.raises(ConfigError, match="not a field"):
        load_form(parse_config({"surveys": [str(path)], "privacy": {"nope": "direct"}}))


# -- consent is never assumed (issue 15) ----------------------------------------------------

def _without_consent(tmp_path: Path) -> Path:
    rows = [household("k1"), household("k2")]
    for r in rows:
        del r["consent"]
    return write_csv(tmp_path / "no_consent_column.csv", rows)


def test_an_export_without_a_consent_field_is_refused(tmp_path, squares):
    path = _without_consent(tmp_path)
    with pytest.raises(FormError, match=r"no_consent_column\.csv: has no consent field.*"
                                        r"consent is never assumed.*collected_outside_form"):
        ingest([SurveySource(path=path)], FORM, squares)


def test_consent_collected_outside_the_form_is_taken_as_stated(tmp_path, squares):
    path = _without_consent(tmp_path)
    said = ConsentStatement(collected_outside_form="signed forms kept at the ward office")
    res = ingest([SurveySource(path=path, consent=said)], FORM, squares)
    assert res.counts["accepted"] == 2 and res.counts["no_consent"] == 0
    assert res.inputs[0].consent_outside_form == "signed forms kept at the ward office"


def test_a_blank_consent_statement_is_no_statement():
    with pytest.raises(ValueError, match="say how consent was obtained"):
        ConsentStatement(collected_outside_form="   ")


def test_a_blank_consent_answer_rejects_its_row(tmp_path, squares):
    rows = [household("k1"), household("k2", consent=""), household("k3", consent="maybe")]
    res = ingest([SurveySource(path=write_csv(tmp_path / "c.csv", rows))], FORM, squares)
    assert (res.counts["accepted"], res.counts["rejected"]) == (1, 2)


def test_a_stray_quote_in_an_answer_loses_no_household(tmp_path, squares):
    """An ODK answer 5'7" in the middle of a file breaks no record: every row is accepted, the
    last one included (the file holds an odd number of quote characters)."""
    rows = [household(f"k{i}") for i in range(5)]
    rows[2]["enumerator"] = "5'7\""
    path = tmp_path / "stray.csv"
    header = list(rows[0])
    lines = [";".join(header)] + [";".join(r[h] for h in header) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert path.read_bytes().count(b'"') % 2 == 1
    res = ingest([SurveySource(path=path)], FORM, squares)
    assert res.counts["accepted"] == 5 and res.counts["rejected"] == 0
    assert "5'7\"" in res.submissions["enumerator"].tolist()


def test_a_file_cut_inside_a_quoted_value_rejects_only_its_last_record(tmp_path, squares):
    rows = [household(f"k{i}") for i in range(4)]
    header = list(rows[0])
    lines = [";".join(f'"{c}"' for c in header)] + [
        ";".join(f'"{r[h]}"' for h in header) for r in rows]  # every cell quoted, as Kobo does
    path = tmp_path / "cut.csv"
    path.write_text("\n".join(lines)[:-1], encoding="utf-8")  # the last closing quote is lost
    res = ingest([SurveySource(path=path)], FORM, squares)
    assert (res.counts["accepted"], res.counts["rejected"]) == (3, 1)
    assert res.rejects["reason"].str.contains("ends inside a quoted value").any()


def test_an_unparsable_submission_time_is_dropped_and_decides_nothing(tmp_path, squares, caplog):
    """Two versions of one household: the one whose time does not parse loses to the one with
    a time, whatever the order, and its time is listed as a dropped value."""
    early = household("k1", **{"_submission_time": "2026-03-02T12:00:00",
                                "household/hh_size": "3"})
    garbage = household("k1", **{"_submission_time": "yesterday-ish", "household/hh_size": "7"})
    for rows in ([early, garbage], [garbage, early]):
        res = ingest([SurveySource(path=write_csv(tmp_path / "t.csv", rows))], FORM, squares)
        assert res.counts["duplicates"] == 1
        assert res.households["hh_size"].tolist() == [3]
    alone = ingest([SurveySource(path=write_csv(tmp_path / "g.csv", [garbage]))], FORM, squares)
    dropped = alone.rejects[alone.rejects["field"] == "_submission_time"]
    assert dropped["value"].tolist() == ["yesterday-ish"]
    assert dropped["action"].tolist() == ["value_dropped"]
    assert "not ISO 8601" in caplog.text


def test_a_survey_without_gps_columns_is_warned_about(tmp_path, squares, caplog):
    rows = [household("k1")]
    for c in ("gps", "_gps_latitude", "_gps_longitude", "_gps_altitude", "_gps_precision"):
        del rows[0][c]
    res = ingest([SurveySource(path=write_csv(tmp_path / "n.csv", rows))], FORM, squares)
    assert res.counts["rejected"] == 1
    assert "no export has GPS columns" in caplog.text


def test_iso_datetimes_read_what_pandas_reads():
    from profiling.ingest import iso_datetimes

    text = ["2026-03-02T07:18:27.470+07:00", "2026-03-02T00:40:34", "2026-03-02",
            "2026-03-02 07:18:27Z", "2026-03-02T07:18:27+0700", "2026-03-02T07:18",
            "2026-03-02T07:18:27.470123456-05:30", " 2026-03-02T09:00:00+07:00 ",
            "2026-02-30T00:00:00", "2026-13-01", "junk", "", None, "2026-03-02T07:18:27+07",
            "20260302T071827Z"]
    s = pd.Series(text, dtype="string")
    got = iso_datetimes(s)
    want = pd.to_datetime(s.str.strip(), utc=True, format="ISO8601", errors="coerce")
    for t, g, w in zip(text, got, want, strict=True):
        assert (pd.isna(g) and pd.isna(w)) or g == w, (t, g, w)
    # by hand: the same instant in three zones; a naive time is UTC; 30 February is no date
    assert got[0] == pd.Timestamp("2026-03-02T00:18:27.470Z")
    assert got[1] == pd.Timestamp("2026-03-02T00:40:34Z")
    assert got[6] == pd.Timestamp("2026-03-02T12:48:27.470123456Z")
    assert pd.isna(got[8]) and pd.isna(got[10]) and pd.isna(got[12])


@pytest.mark.parametrize("block", [1 << 24, 300])
def test_an_answer_holding_a_line_break_is_read_whole(tmp_path, squares, monkeypatch, block):
    """A quoted answer over two lines is one value of one record, wherever Arrow's blocks
    fall (a block of 300 bytes cuts the file inside that answer): the fast parse, which cuts
    blocks at any newline, is checked by counting lines and the file parsed again quote by
    quote."""
    from profiling import _readers

    monkeypatch.setattr(_readers, "CSV_BLOCK", block)
    rows = [household(f"k{i}") for i in range(12)]
    rows[5]["enumerator"] = "ENUM\n05"
    path = write_csv(tmp_path / "multiline.csv", rows)
    assert path.read_bytes().count(b"\n") == len(rows) + 2  # header, rows, and one inside
    res = ingest([SurveySource(path=path)], FORM, squares)
    assert res.counts["accepted"] == 12 and res.counts["rejected"] == 0
    assert sorted(res.submissions["enumerator"].tolist())[-1] == "ENUM\n05"
    assert res.households["key"].tolist() == [f"k{i}" for i in range(12)]


@pytest.mark.parametrize("block", [1 << 24, 300])
def test_blank_lines_between_records_lose_no_household(tmp_path, squares, monkeypatch, block):
    from profiling import _readers

    monkeypatch.setattr(_readers, "CSV_BLOCK", block)
    rows = [household(f"k{i}") for i in range(6)]
    path = write_csv(tmp_path / "blank.csv", rows)
    text = path.read_text(encoding="utf-8").split("\r\n")
    text.insert(3, "")  # an empty line after the second record
    path.write_text("\r\n".join(text), encoding="utf-8")
    res = ingest([SurveySource(path=path)], FORM, squares)
    assert res.counts["read"] == 6 and res.counts["accepted"] == 6


def test_a_block_cut_inside_an_answer_of_the_last_column_is_read_whole(tmp_path, monkeypatch):
    """The fast parse's worst case: a two-line answer in the last column whose second line
    holds as many delimiters as a record. A block cut after its first line gives two records
    of the right width, and as many records as lines; the file must still be read as the
    careful, quote-aware parse reads it, wherever the blocks fall."""
    from profiling import _readers

    lines = ["_uuid,hh_size,comment"] + [f"u{i},3,ok" for i in range(15)]
    lines.append('u900,4,"near the market\nask for Amina, 2nd house, blue gate"')
    lines += [f"u{i},3,ok" for i in range(15, 30)]
    path = tmp_path / "cut.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode())
    careful = _readers.read_export(path)
    whole = careful.table
    assert len(whole) == 31
    assert whole["comment"].iloc[15] == "near the market\nask for Amina, 2nd house, blue gate"
    size = len(path.read_bytes())
    for block in range(64, size, 3):  # some cut falls just after "market\n"
        monkeypatch.setattr(_readers, "CSV_BLOCK", block)
        got = _readers.read_export(path)
        assert got.table.equals(whole), block
        assert got.rows.tolist() == careful.rows.tolist(), block
