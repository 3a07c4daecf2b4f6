"""Household aggregates published for display: H3 hexagons and enumeration dates.

The map must never draw a household at its true location (CONTRACT.md §5). Instead, households
are counted in H3 hexagons (Uber's hierarchical hexagonal grid); a cell with fewer than the
minimum cell size ``k`` households is dropped, and so is a share known for fewer than ``k``. Only
these aggregates leave the pipeline; presentation draws them and never sees a point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HEXAGON_COLUMNS = ["h3_cell", "households", "slum_household_share", "slum_household_n"]


def hexagon_cells(latitude: pd.Series, longitude: pd.Series, slum: pd.Series,
                  resolution: int = 9, k: int = 5) -> pd.DataFrame:
    """Households counted per H3 cell, small cells suppressed.

    Parameters
    ----------
    latitude, longitude
        WGS84 degrees per household (NaN: no location; such households are left out).
    slum
        ``slum_household`` per household (nullable boolean, NA when unknown).
    resolution
        H3 resolution (9: cells of about 0.1 km², edges of about 200 m).
    k
        Minimum cell size: cells with fewer households are dropped; the slum share of a cell is
        empty when fewer than ``k`` households have a known status.

    Returns
    -------
    pandas.DataFrame
        :data:`HEXAGON_COLUMNS`, one row per published cell, sorted by cell id.
    """
    import h3

    lat = pd.to_numeric(latitude, errors="coerce").to_numpy(dtype=float)
    lon = pd.to_numeric(longitude, errors="coerce").to_numpy(dtype=float)
    ok = ~(np.isnan(lat) | np.isnan(lon))
    cells = [h3.latlng_to_cell(a, b, resolution) for a, b in zip(lat[ok], lon[ok], strict=True)]
    s = pd.array(slum, dtype="boolean")[ok]
    frame = pd.DataFrame({"h3_cell": cells, "known": ~pd.isna(s),
                          "slum": pd.Series(s).fillna(False).to_numpy(dtype=bool)})
    g = frame.groupby("h3_cell", sort=True)
    out = pd.DataFrame({"households": g.size(), "slum_household_n": g["known"].sum(),
                        "slum": g["slum"].sum()})
    out = out[out["households"] >= k]
    share = (out["slum"] / out["slum_household_n"]).where(out["slum_household_n"] >= k)
    out = out.assign(slum_household_share=share,
                     slum_household_n=out["slum_household_n"].where(
                         out["slum_household_n"] >= k).astype("Int64"))
    return out.reset_index()[HEXAGON_COLUMNS]


def enumeration_dates(households: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """First and last interview day per settlement (ISO dates; none below ``k`` households).

    Reads ``start`` (interview start) or else ``submitted_at``; returns ``settlement_id``,
    ``first_interview``, ``last_interview``.
    """
    col = "start" if "start" in households.columns else "submitted_at"
    if col not in households.columns or "settlement_id" not in households.columns:
        return pd.DataFrame(columns=["settlement_id", "first_interview", "last_interview"])
    when = pd.to_datetime(households[col], errors="coerce", utc=True, format="mixed")
    frame = pd.DataFrame({"settlement_id": households["settlement_id"], "day": when.dt.date})
    frame = frame.dropna(subset=["settlement_id"])
    g = frame.groupby("settlement_id", sort=True)
    out = pd.DataFrame({"n": g.size(), "first_interview": g["day"].min(),
                        "last_interview": g["day"].max()})
    out = out[out["n"] >= k]
    return out.reset_index()[["settlement_id", "first_interview", "last_interview"]]


HEXAGONS = "hexagons.csv"
DATES = "enumeration_dates.csv"


def write_aggregates(out: Path, households: pd.DataFrame, indicators: pd.DataFrame,
                     resolution: int, k: int) -> dict[str, Path]:
    """Write ``hexagons.csv`` and ``enumeration_dates.csv`` (aggregates only) to ``out``."""
    slum = indicators["slum_household"] if "slum_household" in indicators.columns else (
        pd.Series(pd.NA, index=households.index, dtype="boolean"))
    cells = hexagon_cells(households["latitude"], households["longitude"], slum, resolution, k)
    cells.to_csv(out / HEXAGONS, index=False, encoding="utf-8")
    enumeration_dates(households, k).to_csv(out / DATES, index=False, encoding="utf-8")
    return {"hexagons": out / HEXAGONS, "enumeration_dates": out / DATES}
