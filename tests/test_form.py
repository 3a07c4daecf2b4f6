"""The reference questionnaire and XLSForm reading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from openpyxl import Workbook

from profiling import FormError
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
    (tmp_path / "form.xls").write_bytes(b"junk")
    with pytest.raises(FormError, match=r"form.xls.*save it as .xlsx"):
        read_xlsform(tmp_path / "form.xls")
    (tmp_path / "form.xlsx").write_bytes(b"junk")
    with pytest.raises(FormError, match=r"not a readable \.xlsx"):
        read_xlsform(tmp_path / "form.xlsx")
