"""Hexagon aggregation and enumeration dates: what the map may draw instead of households."""

from __future__ import annotations

import h3
import pandas as pd
import pytest

from profiling.aggregates import HEXAGON_COLUMNS, enumeration_dates, hexagon_cells

# Two H3 cells at resolution 9 near Jakarta: 6 households in the first, 2 in the second.
LAT_A, LON_A = -6.1800, 106.8200
LAT_B, LON_B = -6.1900, 106.8400


def test_small_cells_are_dropped_and_shares_need_k_known() -> None:
    lat = pd.Series([LAT_A] * 6 + [LAT_B] * 2)
    lon = pd.Series([LON_A] * 6 + [LON_B] * 2)
    # cell A: 3 slum, 1 not, 2 unknown -> 4 known < k = 5: the share is suppressed
    slum = pd.Series([True, True, True, False, pd.NA, pd.NA, True, True], dtype="boolean")
    cells = hexagon_cells(lat, lon, slum, resolution=9, k=5)
    assert list(cells.columns) == HEXAGON_COLUMNS
    assert list(cells["h3_cell"]) == [h3.latlng_to_cell(LAT_A, LON_A, 9)]
    assert cells["households"].tolist() == [6]
    assert cells["slum_household_share"].isna().all()
    assert cells["slum_household_n"].isna().all()


def test_share_of_a_large_cell() -> None:
    lat, lon = pd.Series([LAT_A] * 6), pd.Series([LON_A] * 6)
    slum = pd.Series([True, True, True, False, False, pd.NA], dtype="boolean")
    cells = hexagon_cells(lat, lon, slum, resolution=9, k=5)
    assert cells["slum_household_share"].tolist() == pytest.approx([3 / 5])
    assert cells["slum_household_n"].tolist() == [5]


def test_households_without_location_are_left_out() -> None:
    lat = pd.Series([LAT_A] * 5 + [float("nan")])
    lon = pd.Series([LON_A] * 5 + [float("nan")])
    cells = hexagon_cells(lat, lon, pd.Series([pd.NA] * 6, dtype="boolean"), k=5)
    assert cells["households"].tolist() == [5]


def test_enumeration_dates_per_settlement() -> None:
    hh = pd.DataFrame({"settlement_id": ["A"] * 5 + ["B"] * 2,
                       "start": ["2024-03-02T09:00:00+07:00", "2024-03-01T10:00:00+07:00",
                                 "2024-03-05T08:00:00+07:00", "2024-03-03T11:00:00+07:00",
                                 "2024-03-04T12:00:00+07:00", "2024-03-01T09:00:00+07:00",
                                 "2024-03-02T09:00:00+07:00"]})
    d = enumeration_dates(hh, k=5)
    assert d["settlement_id"].tolist() == ["A"]  # B has 2 households: no dates published
    assert str(d["first_interview"].iloc[0]) == "2024-03-01"
    assert str(d["last_interview"].iloc[0]) == "2024-03-05"
