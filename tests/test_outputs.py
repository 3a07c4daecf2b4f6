"""Published CSV files: nothing in them runs as a formula in a spreadsheet (OWASP CSV injection),
numbers stay numbers, and the escaping is undone exactly when the tables are read back."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from profiling import pipeline
from profiling.config import parse_config
from profiling.outputs import TRIGGERS, neutralise, read_csv, restore, write_csv

from conftest import household, two_squares
from conftest import write_csv as write_export

FORMULA = '=HYPERLINK("http://x","y")'


def test_text_cells_that_start_a_formula_are_quoted_and_numbers_are_not(tmp_path: Path):
    frame = pd.DataFrame({"name": [FORMULA, "+1", "-x", "@SUM(A1)", "\tx", "\rx", "plain",
                                   "'=already", None],
                          "value": [-0.5, -1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]})
    path = write_csv(frame, tmp_path / "t.csv")
    with path.open(newline="", encoding="utf-8") as f:
        cells = list(csv.reader(f))[1:]
    assert [c[0] for c in cells] == ["'" + FORMULA, "'+1", "'-x", "'@SUM(A1)", "'\tx", "'\rx",
                                     "plain", "''=already", ""]
    assert [c[1] for c in cells][:2] == ["-0.5", "-1.0"]  # a numeric column is left alone
    back = read_csv(path)
    assert back["name"].tolist()[:8] == frame["name"].tolist()[:8]
    assert back["value"].tolist() == frame["value"].tolist()


@given(st.lists(st.text(max_size=6), min_size=1, max_size=20))
def test_neutralise_then_restore_gives_back_every_text(values: list[str]):
    frame = pd.DataFrame({"t": values}, dtype=object)
    safe = neutralise(frame)
    assert not any(isinstance(v, str) and v[:1] in TRIGGERS for v in safe["t"])
    assert restore(safe)["t"].tolist() == values


def test_a_run_writes_no_formula_into_any_csv(tmp_path: Path):
    """Names, enumerator codes and rejected values reach every CSV people open as text."""
    squares = two_squares()
    squares.loc[squares["settlement_id"] == "A", "name"] = FORMULA
    boundaries = tmp_path / "squares.gpkg"
    squares.to_file(boundaries, layer="settlements")
    rows = [household(f"k{i}", enumerator="=1+2") for i in range(6)]
    rows.append(household("bad", **{"household/hh_size": "-3"}))
    rows.append(household("odd", **{"housing/floor_material": "@import"}))
    survey = write_export(tmp_path / "k.csv", rows)
    cfg = parse_config({"surveys": [str(survey)], "boundaries": str(boundaries)}, "test",
                       tmp_path)
    out = tmp_path / "out"
    pipeline.run(cfg, out)
    for path in sorted(out.rglob("*.csv")):
        with path.open(newline="", encoding="utf-8") as f:
            cells = [c for row in list(csv.reader(f))[1:] for c in row]
        starts = [c for c in cells if c[:1] in TRIGGERS and not _number(c)]
        assert starts == [], f"{path.name}: {starts}"
    table = pd.read_csv(out / "settlement_indicators.csv", dtype=str)
    assert "'" + FORMULA in table["name"].tolist()
    rejects = pd.read_csv(out / "rejects.csv", dtype=str, keep_default_na=False)
    assert set(rejects["value"]) >= {"'-3", "'@import"}
    supervision = pd.read_csv(out / "supervision_report.csv", dtype=str)
    assert supervision["enumerator"].tolist()[0] == "'=1+2"
    # presentation reads the names back as they were
    assert FORMULA in (out / "atlas" / "index.html").read_text().replace("&#34;", '"')


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
