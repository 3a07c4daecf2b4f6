"""The reference questionnaire and XLSForm reading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from openpyxl import Workbook

from profiling import ConfigError, FormError
from profiling.form import PERSONAL_FIELDS, REFERENCE_FIELDS, read_xlsform, write_xlsform

CONTRACT = Path(__file__).resolve().parents[2] / "shared" / "CONTRACT.md"


def _contract_rows() -> dict[str, str]:
    """Field name -> the values column of CONTRACT.md §1's table."""
    rows = {}
    for line in CONTRACT.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`") and cells[1] and cells[1] != "type":
            for name in re.findall(r"`([^`]+)`", cells[0]):
                rows[name] = cells[2]
    return rows


def test_reference_form_has_exactly_the_contract_fields_and_choices(tmp_path):
    contract = _contract_rows()
    assert set(REFERENCE_FIELDS) == set(contract)
    form = read_xlsform(write_xlsform(tmp_path / "f.xlsx", [("S1", "One")]))
    for name, values in contract.items():
        q = form.questions[name]
        if q.type in ("select_one", "select_multiple") and q.list_name != "settlements":
            assert set(form.choice_names(name)) == set(re.findall(r"`([^`]+)`", values)), name


def test_personal_fields_are_direct():
    assert {"respondent_name", "phone", "national_id"} <= set(PERSONAL_FIELDS)


def test_the_reference_roster_is_the_contract_s(tmp_path):
    """CONTRACT.md §1b's roster table, written as the repeat group members and read back."""
    contract = Path(__file__).parents[2] / "shared" / "CONTRACT.md"
    text = contract.read_text(encoding="utf-8")
    part = text[text.index("## 1b."):text.index("## 2.")]
    rows = re.findall(r"^\| `(member_\w+)` \| (\w+) \| (.*) \|$", part, flags=re.M)
    assert len(rows) == 5
    form = read_xlsform(write_xlsform(tmp_path / "f.xlsx"))
    assert [q.rsplit("/", 1)[-1] for q in form.members] == [r[0] for r in rows]
    assert all(q.startswith("household/members/") for q in form.members)
    assert not any("member_" in q for q in form.questions)
    for (name, qtype, values) in rows:
        q = form.members[f"household/members/{name}"]
        assert q.type == qtype
        if qtype == "select_one":
            codes = re.findall(r"`([^`]+)`", values.split(":")[0])
            assert form.choice_names(q.name) == codes, name
    age = form.members["household/members/member_age"]
    assert age.constraint == ". >= 0 and . <= 120"


def test_sample_form_is_the_reference(tmp_path):
    sample = read_xlsform(Path(__file__).parents[1] / "sample_data" / "forms" / "enumeration.xlsx")
    assert list(sample.questions) == REFERENCE_FIELDS
    assert sample.questions["tenure/eviction_fear"].privacy == "sensitive"


def _form(tmp_path: Path, survey: list[list[str]], choices: list[list[str]] | None) -> Path:
    wb = Workbook()
    ws = wb.active
    ws.title = "survey"
    for r in survey:
        ws.append(r)
    if choices is not None:
        c = wb.create_sheet("choices")
        for r in choices:
            c.append(r)
    wb.save(tmp_path / "form.xlsx")
    return tmp_path / "form.xlsx"


def test_groups_and_label_columns(tmp_path):
    path = _form(tmp_path, [["type", "name", "label::English (en)"],
                            ["begin group", "hh", "Household"],
                            ["integer", "size", "Size"],
                            ["select_one yn", "ok", "OK?"],
                            ["end group", "", ""]],
                 [["list_name", "name", "label::English (en)"], ["yn", "y", "Yes"]])
    form = read_xlsform(path)
    assert list(form.questions) == ["hh/size", "hh/ok"]
    assert form.label_map("hh/ok") == {"Yes": "y"}


@pytest.mark.parametrize("survey,choices,match", [
    ([["type", "name"], ["select_one nolist", "a"]], [["list_name", "name"]],
     "choice list 'nolist'"),
    ([["type", "name"], ["begin group", "g"], ["integer", "a"]], None, "never closed"),
    ([["type", "name"], ["integer", ""]], None, "has no name"),
    ([["type", "name"], ["end group", ""]], None, "without 'begin group'"),
])
def test_malformed_forms(tmp_path, survey, choices, match):
    with pytest.raises(FormError, match=match):
        read_xlsform(_form(tmp_path, survey, choices))


def test_not_an_xlsx(tmp_path):
    (tmp_path / "form.ods").write_bytes(b"junk")
    with pytest.raises(FormError, match=r"form.ods.*save it as .xlsx"):
        read_xlsform(tmp_path / "form.ods")
    (tmp_path / "form.xls").write_bytes(b"junk")
    with pytest.raises(FormError, match=r"form\.xls: not a readable \.xls workbook"):
        read_xlsform(tmp_path / "form.xls")
    # an .xls is not compressed, so its size is what bounds reading it
    big = tmp_path / "big.xls"
    with big.open("wb") as f:
        f.truncate(65 * 2**20)
    with pytest.raises(FormError, match=r"big\.xls: is larger than 64 MiB"):
        read_xlsform(big)
    (tmp_path / "form.xlsx").write_bytes(b"junk")
    with pytest.raises(FormError, match=r"not a readable \.xlsx"):
        read_xlsform(tmp_path / "form.xlsx")


def test_an_xls_form_as_people_have_them(shared_data):
    """The EPFL Nairobi questionnaire, saved as .xls: every question and choice read, counted
    here straight from the workbook with xlrd."""
    import xlrd

    path = shared_data / "epfl_wash_nairobi" / "Nairobi_2021.xls"
    book = xlrd.open_workbook(str(path))
    survey = book.sheet_by_name("survey")
    structural = {"begin_group", "end_group", "begin_repeat", "end_repeat", "note",
                  "begin group", "end group", "begin repeat", "end repeat"}
    types = [str(survey.cell_value(r, 0)).strip() for r in range(1, survey.nrows)]
    names = [str(survey.cell_value(r, 1)).strip() for r in range(1, survey.nrows)]
    # questions inside a repeat group (the names of the household's members) are not
    # household fields; this form's repeat is not called members, so it is no roster either
    fields, depth = [], 0
    for t, n in zip(types, names, strict=True):
        depth += t.lower() in ("begin_repeat", "begin repeat")
        depth -= t.lower() in ("end_repeat", "end repeat")
        if t and t.lower() not in structural and not depth:
            fields.append(n)
    # the form defines HandWashHabits1 twice (two relevance branches): one field, warned
    expected = list(dict.fromkeys(fields))
    assert len(expected) == len(fields) - 1
    form = read_xlsform(path)
    assert [q.rsplit("/", 1)[-1] for q in form.questions] == expected
    assert form.members == {}
    choices = book.sheet_by_name("choices")
    rows = [choices.row_values(r) for r in range(1, choices.nrows)]
    assert sum(len(v) for v in form.choices.values()) == sum(1 for r in rows if r[0] and r[1])
    # a select question's labels map back to its names, as in an export "with labels"
    water = next(q for q in form.questions if q.endswith("DrinkingWater_Private"))
    assert set(form.label_map(water).values()) == {
        str(r[1]) for r in rows if r[0] == form.questions[water].list_name}


def _bilingual(tmp_path, settings=None):
    survey = [["type", "name", "label::English (en)", "label::Français (fr)"],
              ["select_one water", "water_source", "Main source", "Source principale"]]
    choices = [["list_name", "name", "label::English (en)", "label::Français (fr)"],
               ["water", "public_tap", "Public tap", "Borne-fontaine"],
               ["water", "borehole", "Borehole", "Forage"]]
    path = _form(tmp_path, survey, choices)
    if settings:
        from openpyxl import load_workbook

        wb = load_workbook(path)
        sh = wb.create_sheet("settings")
        for r in settings:
            sh.append(r)
        wb.save(path)
    return path


@pytest.mark.parametrize("ask", ["Français (fr)", "fr", "français", "FR"])
def test_labels_in_the_configured_language(tmp_path, ask):
    form = read_xlsform(_bilingual(tmp_path), ask)
    assert form.label_map("water_source") == {"Borne-fontaine": "public_tap",
                                              "Forage": "borehole"}
    assert form.questions["water_source"].label == "Source principale"


def test_form_language_default_and_unknown(tmp_path):
    # no language asked: the form's default_language, else its first language throughout
    assert read_xlsform(_bilingual(tmp_path)).label_map("water_source") == {
        "Public tap": "public_tap", "Borehole": "borehole"}
    other = tmp_path / "other"
    other.mkdir()
    path = _bilingual(other, [["form_title", "default_language"], ["t", "Français (fr)"]])
    assert read_xlsform(path).label_map("water_source")["Forage"] == "borehole"
    with pytest.raises(FormError, match=r"no labels in the configured language 'pt' "
                                        r"\(its languages: English \(en\), Français \(fr\)\)"):
        read_xlsform(path, "pt")


def test_an_export_with_french_labels_is_mapped_back(tmp_path, squares):
    from profiling.config import parse_config
    from profiling.ingest import ingest
    from profiling.pipeline import load_form

    from conftest import household, write_csv

    survey = [["type", "name", "label::English (en)", "label::Français (fr)"],
              ["select_one yn", "consent", "Consent", "Consentement"],
              ["geopoint", "gps", "Location", "Position"],
              ["begin group", "household", "Household", "Ménage"],
              ["integer", "hh_size", "Size", "Taille"],
              ["end group", "", "", ""],
              ["begin group", "water", "Water", "Eau"],
              ["select_one water", "water_source", "Main source", "Source principale"],
              ["end group", "", "", ""]]
    choices = [["list_name", "name", "label::English (en)", "label::Français (fr)"],
               ["yn", "yes", "Yes", "Oui"], ["yn", "no", "No", "Non"],
               ["water", "public_tap", "Public tap", "Borne-fontaine"],
               ["water", "borehole", "Borehole", "Forage"]]
    form_path = _form(tmp_path, survey, choices)
    rows = [household("k1", **{"consent": "Oui", "water/water_source": "Forage"}),
            household("k2", 700060, **{"consent": "Oui", "water/water_source": "Borne-fontaine"})]
    export = write_csv(tmp_path / "fr.csv", rows)
    cfg = parse_config({"surveys": [{"path": str(export), "labels": "labels"}],
                        "form": str(form_path), "form_language": "fr"})
    res = ingest(cfg.surveys, load_form(cfg), squares)
    assert res.counts["accepted"] == 2
    assert res.households.set_index("key")["water_source"].to_dict() == {
        "k1": "borehole", "k2": "public_tap"}
    with pytest.raises(ConfigError, match="form_language 'fr' needs a form"):
        load_form(parse_config({"surveys": [str(export)], "form_language": "fr"}))
