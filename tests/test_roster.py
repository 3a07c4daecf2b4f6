"""The household roster (CONTRACT.md §1b) in every shape the field exports it.

One hand-made enumeration, written as a Kobo CSV pair, a Kobo XLSX workbook and an ODK Central
zip. Worked by hand:

- k1: hh_size 3, three members listed: kept, no mismatch;
- k2: hh_size 4, two members listed: the row's 4 wins, one ``roster_mismatch``;
- k3: no hh_size, two members listed: hh_size 2, from the roster;
- k4: refused (consent no): its two members are dropped with it;
- k5: two versions (an earlier and a later submission): the later is kept, with its own
  single member; the earlier version's two members are dropped (Kobo XLSX and ODK only: a Kobo
  CSV pair links by key, so the test for it has no duplicate);
- one member links to a household that is not there: rejected, field ``link``;
- k1's third member has age ``abc``: kept, the age dropped as a value.
"""

from __future__ import annotations

import csv
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from openpyxl import Workbook

from profiling import FormError
from profiling.config import FieldSource, MembersSource, SurveySource, parse_config
from profiling.form import reference_form
from profiling.ingest import ingest

from conftest import household, write_csv

FORM = reference_form()
M = "household/members/"


def _households() -> list[dict[str, str]]:
    rows = [household("k1", 700010, 9300050), household("k2", 700020, 9300050),
            household("k3", 700030, 9300050, **{"household/hh_size": ""}),
            household("k4", 700040, 9300050, consent="no"),
            household("k5", 700050, 9300050, _submission_time="2026-03-02T10:00:00"),
            household("k5", 700050, 9300060, _submission_time="2026-03-03T10:00:00")]
    rows[0]["household/hh_size"] = "3"
    rows[1]["household/hh_size"] = "4"
    rows[4]["household/hh_size"] = rows[5]["household/hh_size"] = ""
    for i, r in enumerate(rows):
        r["_index"] = str(i + 1)
        r["_id"] = str(100 + i)
    return rows


def _person(sex: str, age: str, relation: str = "child", doc: str = "", fears: str = ""
            ) -> dict[str, str]:
    return {M + "member_sex": sex, M + "member_age": age, M + "member_relation": relation,
            M + "member_on_document": doc, M + "member_fears_loss": fears}


#: (household row index, person): k5's earlier version (row 5) has two, its later one (6) one
MEMBERS = [
    (1, _person("female", "40", "head", "yes", "no")), (1, _person("male", "42", "spouse",
                                                                    "no", "yes")),
    (1, _person("female", "abc")),
    (2, _person("male", "30", "head", "yes", "dont_know")), (2, _person("female", "5")),
    (3, _person("female", "61", "head", "no", "no")), (3, _person("male", "17")),
    (4, _person("male", "50", "head")), (4, _person("female", "20")),
    (5, _person("male", "33", "head")), (5, _person("female", "31")),
    (6, _person("other", "29", "head", "yes", "no")),
    (99, _person("female", "8")),  # links to no household
]


def _keys(rows: list[dict[str, str]]) -> dict[int, str]:
    return {i + 1: r["_uuid"] for i, r in enumerate(rows)}


def _check(res, duplicates: bool) -> None:
    hh = res.households.set_index("key")
    assert hh["hh_size"].to_dict() == ({"k1": 3, "k2": 4, "k3": 2, "k5": 1} if duplicates
                                       else {"k1": 3, "k2": 4, "k3": 2})
    c = res.counts
    kept = 3 + 2 + 2 + (1 if duplicates else 0)
    dropped = 2 + (2 if duplicates else 0)
    assert (c["members_read"], c["members_kept"], c["members_rejected"],
            c["members_dropped"]) == (kept + dropped + 1, kept, 1, dropped)
    assert c["members_read"] == c["members_kept"] + c["members_rejected"] + c["members_dropped"]
    rej = res.rejects
    link = rej[rej["field"] == "link"]
    assert len(link) == 1 and link["action"].iloc[0] == "row_rejected"
    assert "links to no household" in link["reason"].iloc[0]
    mismatch = rej[rej["action"] == "roster_mismatch"]
    assert mismatch[["key", "value"]].values.tolist() == [["k2", "4"]]
    assert "gives 4 persons and its roster lists 2" in mismatch["reason"].iloc[0]
    age = rej[rej["field"] == M + "member_age"]
    assert age[["key", "value", "action"]].values.tolist() == [["k1", "abc", "value_dropped"]]
    members = res.members
    assert Counter(members["key"]) == ({"k1": 3, "k2": 2, "k3": 2, "k5": 1} if duplicates
                                       else {"k1": 3, "k2": 2, "k3": 2})
    if duplicates:  # the later version's member, not the earlier's two
        assert members.loc[members["key"] == "k5", "member_sex"].tolist() == ["other"]
    assert members["member_age"].isna().sum() == 1
    assert set(members.columns) == {"key", "member_sex", "member_age", "member_relation",
                                    "member_on_document", "member_fears_loss"}


def test_kobo_csv_and_its_repeat_csv(tmp_path, squares):
    rows = [r for r in _households() if r["_uuid"] != "k5"]
    keys = _keys(_households())
    path = write_csv(tmp_path / "households.csv", rows)
    members = [{**p, "_submission__uuid": keys.get(i, "nobody"), "_parent_index": str(i)}
               for i, p in MEMBERS if i not in (5, 6)]
    mpath = write_csv(tmp_path / "members.csv", members)
    res = ingest([SurveySource(path=path, members=MembersSource(path=mpath))], FORM, squares)
    _check(res, duplicates=False)
    # asked of adults: of the kept members aged 18 or more or of unknown age (40, 42, abc, 30,
    # 61), all but the one of unknown age answered both questions
    from profiling.roster import member_coverage

    assert member_coverage(res.members) == [("adult_tenure_documented", "partly", 4, 5),
                                            ("adult_tenure_perceived_secure", "partly", 4, 5)]


def _xlsx(path: Path, sheets: dict[str, list[dict[str, str]]]) -> Path:
    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        header = list(rows[0])
        ws.append(header)
        for r in rows:
            ws.append([r.get(h, "") or None for h in header])
    wb.save(path)
    return path


def test_kobo_xlsx_with_the_repeat_on_its_own_sheet(tmp_path, squares):
    rows = _households()
    keys = _keys(rows)
    members = [{**p, "_parent_index": str(i), "_submission__uuid": keys.get(i, "nobody")}
               for i, p in MEMBERS]
    # Kobo links a repeat row to its submission by _parent_index (the two k5 versions share
    # their _uuid, so only the index tells them apart)
    for m in members:
        del m["_submission__uuid"]
    path = _xlsx(tmp_path / "kobo.xlsx", {"enumeration": rows, "members": members})
    res = ingest([SurveySource(path=path, members=MembersSource())], FORM, squares)
    _check(res, duplicates=True)


def test_odk_central_csv_zip(tmp_path, squares):
    rows = _households()
    odk = []
    for i, r in enumerate(rows):
        key = f"uuid:{r['_uuid']}-v{i}" if r["_uuid"] == "k5" else f"uuid:{r['_uuid']}"
        o = {("meta-instanceID" if k == "_uuid" else "SubmissionDate"
              if k == "_submission_time" else k.replace("/", "-")): v
             for k, v in r.items() if k not in ("_id", "_index", "gps")}
        o["meta-instanceID"] = f"uuid:{r['_uuid']}"
        o["KEY"] = key
        odk.append(o)
    keys = {i + 1: o["KEY"] for i, o in enumerate(odk)}
    members = [{**{k.replace("/", "-"): v for k, v in p.items()},
                "PARENT_KEY": keys.get(i, "uuid:nobody"),
                "KEY": f"{keys.get(i, 'uuid:nobody')}/household/members[{j}]"}
               for j, (i, p) in enumerate(MEMBERS)]
    main = write_csv(tmp_path / "enumeration.csv", odk, ",")
    rep = write_csv(tmp_path / "enumeration-members.csv", members, ",")
    path = tmp_path / "enumeration.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(main, "enumeration.csv")
        z.write(rep, "enumeration-members.csv")
        z.writestr("media/photo.jpg", b"\xff\xd8")
    # the two k5 versions have one submission key (meta-instanceID) and two KEYs
    res = ingest([SurveySource(path=path, members=MembersSource())], FORM, squares)
    _check(res, duplicates=True)
    assert res.inputs[0].format == "odk_zip"


def test_household_size_counted_from_the_roster(tmp_path, squares):
    rows = [r for r in _households() if r["_uuid"] != "k5"]
    for r in rows:
        del r["household/hh_size"]
    keys = _keys(_households())
    members = [{**p, "_submission__uuid": keys.get(i, "nobody")} for i, p in MEMBERS
               if i not in (5, 6)]
    path = write_csv(tmp_path / "households.csv", rows)
    mpath = write_csv(tmp_path / "members.csv", members)
    src = SurveySource(path=path, members=MembersSource(path=mpath),
                       field_mapping={"hh_size": FieldSource(count="members")})
    res = ingest([src], FORM, squares)
    assert res.households.set_index("key")["hh_size"].to_dict() == {"k1": 3, "k2": 2,
                                                                    "k3": 2}
    assert not (res.rejects["action"] == "roster_mismatch").any()


def test_where_a_roster_cannot_be_found_is_said(tmp_path, squares):
    path = write_csv(tmp_path / "households.csv", _households()[:3])
    with pytest.raises(FormError, match=r"households\.csv: its roster is not inside it.*"
                                        r"members: \{path: members\.csv\}"):
        ingest([SurveySource(path=path, members=MembersSource())], FORM, squares)
    book = _xlsx(tmp_path / "kobo.xlsx", {"enumeration": _households()[:3],
                                          "people": [_person("female", "3")]})
    with pytest.raises(FormError, match=r"none of its sheets \(enumeration, people\) is the "
                                        r"roster 'members'.*members: \{sheet: NAME\}"):
        ingest([SurveySource(path=book, members=MembersSource())], FORM, squares)
    with pytest.raises(FormError, match=r"has none of the link columns PARENT_KEY"):
        ingest([SurveySource(path=book, members=MembersSource(sheet="people"))], FORM,
               squares)
    with pytest.raises(FormError, match="counts the roster's members, but this survey names "
                                        "no roster"):
        ingest([SurveySource(path=path, field_mapping={
            "hh_size": FieldSource(count="members")})], FORM, squares)
    with pytest.raises(Exception, match="'path' or its 'sheet', not both"):
        parse_config({"surveys": [{"path": "a.xlsx", "members": {"path": "m.csv",
                                                                 "sheet": "members"}}]})


def test_nairobi_household_and_member_files(tmp_path, shared_data):
    """The EPFL Nairobi survey's two real files, linked by KEY / PARENT_KEY: household sizes,
    persons per site and adults by sex, against counts made here from the CSV rows."""
    folder = shared_data / "epfl_wash_nairobi"

    def rows_of(name: str) -> list[dict[str, str]]:
        with (folder / name).open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    households = rows_of("household_data_nairobi.csv")
    people = rows_of("individual_data_nairobi.csv")
    from test_real_surveys import CONSENT, settlement_list

    src = SurveySource(
        path=folder / "household_data_nairobi.csv", consent=CONSENT,
        field_mapping={"key": "KEY", "settlement_reported": "Site",
                       "hh_size": FieldSource(count="members")},
        members=MembersSource(path=folder / "individual_data_nairobi.csv", link="KEY",
                              field_mapping={
                                  "member_sex": FieldSource(column="Sex", values={
                                      "M": "male", "F": "female"}),
                                  # the file gives age groups: each as its lowest age,
                                  # which decides adulthood exactly (18 or older)
                                  "member_age": FieldSource(column="Age_group", values={
                                      "adult (18 or older)": "18", "5 to 17": "5",
                                      "under five": "0", "unknown/did not answer": None}),
                                  "member_relation": FieldSource(
                                      column="Relation_to_HH", values={
                                          "Head": "head", "S_D": "child", "W_H": "spouse",
                                          "Par": "parent", "GndC": "other_relative",
                                          "Other": "other_relative", "Nrel": "non_relative"}),
                              }))
    res = ingest([src], FORM, settlement_list(tmp_path, ["Mabatini", "Vietnam"]),
                 assign_by="column")
    per = Counter(p["KEY"] for p in people)
    hh = res.households.set_index("key")
    # (the uuid: prefix is not part of a submission key)
    assert hh["hh_size"].to_dict() == {h["KEY"].removeprefix("uuid:"): per[h["KEY"]]
                                       for h in households}
    # SOURCE.md: 3,786 people in 1,147 households
    assert res.counts["members_kept"] == len(people) == 3786
    site = {h["KEY"]: h["Site"] for h in households}
    by_site = Counter(site[p["KEY"]] for p in people)
    got = res.members.merge(hh[["settlement_id"]], left_on="key", right_index=True)
    assert got["settlement_id"].value_counts().to_dict() == dict(by_site)
    adults = Counter(p["Sex"] for p in people if p["Age_group"] == "adult (18 or older)")
    m = res.members
    grown = m[(m["member_age"] >= 18).fillna(False)]
    assert grown["member_sex"].value_counts().to_dict() == {"female": adults["F"],
                                                            "male": adults["M"]}
    assert m["member_age"].isna().sum() == 11
    heads = Counter(p["Relation_to_HH"] for p in people)["Head"]
    assert (m["member_relation"] == "head").sum() == heads == 1082
    assert not (res.rejects["action"] == "value_dropped").any()


def test_figures_per_person_end_to_end(tmp_path, squares_file):
    """The Kobo XLSX city through the whole run (k = 2 so that its 4 households show).
    Worked by hand from MEMBERS, with k1's tenure documented by a title deed:

    - persons 8: female 4 (40, abc, 5, 61), male 3 (42, 30, 17), other 1; aged 0-17: 2 (5, 17),
      18-59: 4 (40, 42, 30, 29), 60+: 1 (61); the age abc is unknown;
    - adult_tenure_documented: adults with a known age 40F (yes, documented: true), 42M (no),
      30M (yes, not documented), 61F (no), 29 other (yes, not documented): 1/5; female 1/2,
      male 0/2;
    - adult_tenure_perceived_secure: 40F no fear, 42M yes, 30M dont_know, 61F no, 29 no:
      3/5; female 2/2, male 0/2;
    - female_headed: heads k1 F, k2 M, k3 F, k5 other: 2/4.
    """
    import json
    import subprocess
    import sys

    import pandas as pd

    from profiling.pipeline import run

    rows = _households()
    rows[0]["tenure/tenure_documents"] = "title_deed"
    members = [{**p, "_parent_index": str(i)} for i, p in MEMBERS]
    book = _xlsx(tmp_path / "kobo.xlsx", {"enumeration": rows, "members": members})
    cfg = parse_config({"surveys": [{"path": str(book), "members": {}}],
                        "boundaries": str(squares_file), "min_cell_size": 2})
    out = tmp_path / "out"
    run(cfg, out)
    a = pd.read_csv(out / "settlement_indicators.csv", dtype={"settlement_id": str}
                    ).set_index("settlement_id").loc["A"]
    assert a["households"] == 4
    assert (a["persons"], a["persons_female"], a["persons_male"]) == (8, 4, 3)
    assert (a["persons_age_0_17"], a["persons_age_18_59"], a["persons_age_60_plus"]) == (2, 4, 1)
    assert (a["adult_tenure_documented_share"], a["adult_tenure_documented_n"]) == (0.2, 5)
    assert a["adult_tenure_documented_female_share"] == 0.5
    assert (a["adult_tenure_documented_male_share"], a["adult_tenure_documented_male_n"]) == (
        0.0, 2)
    assert a["adult_tenure_perceived_secure_share"] == pytest.approx(3 / 5)
    assert a["adult_tenure_perceived_secure_female_share"] == 1.0
    assert a["adult_tenure_perceived_secure_male_share"] == 0.0
    assert (a["female_headed_share"], a["female_headed_n"]) == (0.5, 4)
    page = (out / "atlas" / "A.html").read_text(encoding="utf-8")
    assert "Tenure of adults (SDG 1.4.2, from the household rosters)" in page
    assert "<th class=\"num\">Share of adults</th>" in page
    table = pd.read_csv(out / "settlement_indicators.csv", dtype={"settlement_id": str})

    def city(name: str) -> str:  # over the settlements that publish the share
        ok = table[f"{name}_share"].notna()
        share, n = table.loc[ok, f"{name}_share"], table.loc[ok, f"{name}_n"]
        return f"{(share * n).round().sum() / n.sum():.0%}"

    # 1 of 2 women: 50%, its 95% Wilson interval 9–91% (worked by hand), the city's beside it
    assert ('<tr><td>Women named on a tenure document</td><td class="num">50% <span '
            'class="interval" title="Range where the true share lies, 95 times in 100">'
            '(9–91%)</span></td><td class="num city">'
            f'{city("adult_tenure_documented_female")}</td><td class="num">2</td></tr>') in page
    assert '<div class="value">4</div><div class="label">Women and girls</div>' in page
    # 2 of 4 households: 50%, 15–85%
    assert ('<tr><td>Households headed by a woman</td><td class="num">50% <span '
            'class="interval" title="Range where the true share lies, 95 times in 100">'
            '(15–85%)</span></td><td class="num city">'
            f'{city("female_headed")}</td><td class="num">4</td></tr>') in page
    city = pd.read_csv(out / "city_summary.csv").set_index("indicator")
    row = city.loc["sdg_1_4_2_adult_tenure_perceived_secure_female"]
    assert (row["numerator"], row["denominator"]) == (2, 2)
    manifest = json.loads((out / "run_manifest.json").read_text())
    c = manifest["counts"]
    assert (c["members_read"], c["members_kept"], c["members_rejected"],
            c["members_dropped"]) == (13, 8, 1, 4)
    check = Path(__file__).resolve().parents[2] / "shared" / "tools" / "check_outputs.py"
    proc = subprocess.run([sys.executable, str(check), str(out), "--k", "2"],
                          capture_output=True, text=True, check=False)
    # the shared checker holds every _n to at most the households; a person-level _n counts
    # persons (CONTRACT.md §4), so those two lines are the only ones it may raise here
    problems = [ln for ln in proc.stdout.splitlines() if ln.startswith("PROBLEM")]
    assert problems == [f"PROBLEM A: {n}_n 5.0 exceeds households 4.0"
                        for n in ("adult_tenure_documented", "adult_tenure_perceived_secure")]


def test_the_sample_city_s_rosters_in_three_shapes():
    """The sample exports with their rosters: a Kobo repeat CSV, the XLSX's members sheet and
    ODK Central's zip. The generator's own accounting (expected_counts.json, worked from the
    households it drew) is met, and every kept household lists as many members as its size."""
    import json

    from profiling.pipeline import ingest_config

    sample = Path(__file__).resolve().parents[1] / "sample_data"
    exports = sample / "exports"
    cfg = parse_config({
        "surveys": [{"path": str(exports / "kobo_day1-4.csv"),
                     "members": {"path": str(exports / "kobo_day1-4_members.csv")}},
                    {"path": str(exports / "kobo_day3-7.xlsx"), "members": {}},
                    {"path": str(exports / "odk_day6-10.zip"), "members": {}}],
        "form": str(sample / "forms" / "enumeration.xlsx"),
        "boundaries": str(sample / "settlements.gpkg")})
    res = ingest_config(cfg)
    expected = json.loads((sample / "expected_counts.json").read_text())
    assert {k: res.counts[k] for k in expected["roster_counts"]} == expected["roster_counts"]
    assert {k: v for k, v in res.counts.items() if not k.startswith("members_")} == expected[
        "counts"]
    listed = res.members.groupby("key").size()
    sizes = res.households.set_index("key")["hh_size"]
    assert (listed.reindex(sizes.index).fillna(0) == sizes).all()
    assert not (res.rejects["action"] == "roster_mismatch").any()
    # the ODK zip's main table is the ODK CSV, byte for byte
    with zipfile.ZipFile(exports / "odk_day6-10.zip") as z:
        assert z.read("odk_day6-10.csv") == (exports / "odk_day6-10.csv").read_bytes()


def test_a_roster_s_rejected_members_are_not_rejected_households_in_the_store(tmp_path,
                                                                              squares):
    """Loaded into a store, a member linking to no household counts among the members, not
    among the households: the store's accounting still adds up (read = accepted + rejected +
    duplicates + no consent), and the load says rosters are not kept yet."""
    from profiling.store import open_store

    rows = [r for r in _households() if r["_uuid"] != "k5"]
    keys = _keys(_households())
    path = write_csv(tmp_path / "households.csv", rows)
    members = [{**p, "_submission__uuid": keys.get(i, "nobody")} for i, p in MEMBERS
               if i not in (5, 6)]
    mpath = write_csv(tmp_path / "members.csv", members)
    res = ingest([SurveySource(path=path, members=MembersSource(path=mpath))], FORM, squares)
    assert res.counts["members_rejected"] == 1
    store = open_store(tmp_path / "store.gpkg", b"test-secret-of-the-store-0123456789")
    store.load(res)
    c = store.counts()
    assert (c["read"], c["accepted"], c["rejected"], c["no_consent"]) == (4, 3, 0, 1)
    assert c["read"] == c["accepted"] + c["rejected"] + c["duplicates"] + c["no_consent"]


def test_a_newer_version_replaces_its_roster_and_a_refusal_erases_it(tmp_path, squares):
    """In the store, k1's roster of three is replaced by its newer version's two; then a newer
    refusal of k2 erases k2's roster (consent withdrawn: only the fact is kept)."""
    from profiling.store import open_store, pseudonyms

    secret = b"test-secret-of-the-store-0123456789"

    def export(name: str, rows: list[dict[str, str]], people: list[tuple[str, dict]]) -> None:
        path = write_csv(tmp_path / f"{name}.csv", rows)
        mpath = write_csv(tmp_path / f"{name}_members.csv",
                          [{**p, "_submission__uuid": k} for k, p in people])
        store.load(ingest([SurveySource(path=path, members=MembersSource(path=mpath))], FORM,
                          squares))

    store = open_store(tmp_path / "store.gpkg", secret)
    first = [household("k1", 700010, 9300050, **{"household/hh_size": "3"}),
             household("k2", 700020, 9300050, **{"household/hh_size": "2"})]
    export("day1", first, [("k1", _person("female", "40", "head")),
                           ("k1", _person("male", "41", "spouse")),
                           ("k1", _person("male", "9")),
                           ("k2", _person("female", "70", "head")),
                           ("k2", _person("female", "35"))])
    later = [household("k1", 700010, 9300050, _submission_time="2026-03-05T12:00:00",
                       **{"household/hh_size": "2"}),
             household("k2", 700020, 9300050, _submission_time="2026-03-05T12:00:00",
                       consent="no")]
    export("day5", later, [("k1", _person("female", "40", "head")),
                           ("k1", _person("female", "12"))])
    members = store.members()
    k1, k2 = pseudonyms(secret, ["k1", "k2"])
    assert members is not None
    assert members.loc[members["key"] == k1, "member_age"].tolist() == [40, 12]
    assert not (members["key"] == k2).any()
    c = store.counts()
    assert (c["members_read"], c["members_kept"], c["members_rejected"],
            c["members_dropped"]) == (7, 2, 0, 5)


def test_a_misspelt_roster_code_is_found_before_anything_is_read(tmp_path, squares):
    """The roster's own mapping is checked with the survey's, before any export is read (the
    roster file named here does not even exist)."""
    path = write_csv(tmp_path / "households.csv", _households()[:2])
    src = SurveySource(path=path, members=MembersSource(
        path=tmp_path / "not_there.csv",
        field_mapping={"member_sex": FieldSource(column="Sex", values={"M": "mail"})}))
    with pytest.raises(FormError, match=r"'member_sex' maps an answer to 'mail'.*did you "
                                        r"mean 'male'"):
        ingest([src], FORM, squares)
