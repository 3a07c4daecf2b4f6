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

from profiling.outputs import DATES, HEXAGONS, write_csv

HEXAGON_COLUMNS = ["h3_cell", "households", "slum_household_share", "slum_household_n"]


def hexagon_counts(latitude: pd.Series, longitude: pd.Series, slum: pd.Series,
                   resolution: int = 9) -> pd.DataFrame:
    """Households counted per H3 cell, nothing suppressed: the partial counts behind
    :func:`hexagon_table`, which add up exactly across parts of the households
    (``pd.concat(parts).groupby(level=0).sum()``).

    Parameters
    ----------
    latitude, longitude
        WGS84 degrees per household (NaN: no location; such households are left out).
    slum
        ``slum_household`` per household (nullable boolean, NA when unknown).
    resolution
        H3 resolution (9: cells of about 0.1 km², edges of about 200 m).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``h3_cell``: ``households``, ``known`` (households whose slum status is
        known) and ``slum`` (slum households).
    """
    import h3

    ok, cells = _cell_numbers(latitude, longitude, resolution)
    s = pd.array(slum, dtype="boolean")[ok]
    known = (~pd.isna(s)).astype(np.int64)
    true = pd.Series(s).fillna(False).to_numpy(dtype=np.int64)
    distinct, code = np.unique(cells, return_inverse=True)
    names = [h3.int_to_str(int(c)) for c in distinct]
    out = pd.DataFrame({"households": np.bincount(code, minlength=len(distinct)),
                        "known": np.bincount(code, weights=known, minlength=len(distinct)),
                        "slum": np.bincount(code, weights=true, minlength=len(distinct))},
                       index=pd.Index(names, name="h3_cell")).astype(np.int64)
    return out.sort_index()


def _cell_numbers(latitude: pd.Series | np.ndarray, longitude: pd.Series | np.ndarray,
                  resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Which points have a location, and their H3 cells as 64-bit integers (counted with
    numpy; only the distinct cells need become text)."""
    from h3.api import basic_int

    lat = pd.to_numeric(pd.Series(latitude), errors="coerce").to_numpy(dtype=float)
    lon = pd.to_numeric(pd.Series(longitude), errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    cells = np.fromiter((basic_int.latlng_to_cell(a, b, resolution) for a, b in zip(
        lat[ok].tolist(), lon[ok].tolist(), strict=True)), dtype=np.uint64, count=int(ok.sum()))
    return ok, cells


def h3_cells(latitude: pd.Series | np.ndarray, longitude: pd.Series | np.ndarray,
             resolution: int) -> np.ndarray:
    """Each point's H3 cell at ``resolution`` as text (None where it has no location): the
    location an analyst of the store is given instead of the point."""
    import h3

    ok, cells = _cell_numbers(latitude, longitude, resolution)
    out = np.full(len(ok), None, dtype=object)
    if len(cells):
        distinct, code = np.unique(cells, return_inverse=True)
        out[ok] = np.array([h3.int_to_str(int(c)) for c in distinct], dtype=object)[code]
    return out


def hexagon_table(counts: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """The published hexagons from (summed) :func:`hexagon_counts`: a cell with fewer than the
    minimum cell size ``k`` households is dropped, and its slum share is empty when fewer than
    ``k`` households have a known status. :data:`HEXAGON_COLUMNS`, sorted by cell id."""
    out = counts.sort_index()
    out = out[out["households"] >= k]
    share = (out["slum"] / out["known"]).where(out["known"] >= k)
    out = out.assign(households=out["households"].astype(np.int64),
                     slum_household_share=share,
                     slum_household_n=out["known"].where(out["known"] >= k).astype("Int64"))
    out.index.name = "h3_cell"
    return out.reset_index()[HEXAGON_COLUMNS]


def hexagon_cells(latitude: pd.Series, longitude: pd.Series, slum: pd.Series,
                  resolution: int = 9, k: int = 5) -> pd.DataFrame:
    """Households counted per H3 cell (:func:`hexagon_counts`), small cells suppressed
    (:func:`hexagon_table`)."""
    return hexagon_table(hexagon_counts(latitude, longitude, slum, resolution), k)


def enumeration_dates(households: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """First and last interview day per settlement (ISO dates; none below ``k`` households).

    Reads ``start`` (interview start) or else ``submitted_at``; returns ``settlement_id``,
    ``first_interview``, ``last_interview``.
    """
    col = "start" if "start" in households.columns else "submitted_at"
    if col not in households.columns or "settlement_id" not in households.columns:
        return pd.DataFrame(columns=["settlement_id", "first_interview", "last_interview"])
    # ingest keeps only ISO 8601 times (others are dropped values): parsed as such, in UTC
    when = households[col]
    if not pd.api.types.is_datetime64_any_dtype(when):
        when = pd.to_datetime(when, errors="coerce", utc=True, format="ISO8601")
    frame = pd.DataFrame({"settlement_id": households["settlement_id"],
                          "when": pd.to_datetime(when, utc=True)})
    frame = frame.dropna(subset=["settlement_id"])
    g = frame.groupby("settlement_id", sort=True)
    out = pd.DataFrame({"n": g.size(), "first": g["when"].min(), "last": g["when"].max()})
    out = out[out["n"] >= k]

    def day(t: pd.Series) -> pd.Series:
        return t.dt.strftime("%Y-%m-%d").where(t.notna())

    out = out.assign(first_interview=day(out["first"]), last_interview=day(out["last"]))
    return out.reset_index()[["settlement_id", "first_interview", "last_interview"]]


def write_aggregates(out: Path, households: pd.DataFrame, hexagons: pd.DataFrame,
                     k: int) -> dict[str, Path]:
    """Write ``hexagons.csv`` (from summed :func:`hexagon_counts`) and
    ``enumeration_dates.csv`` (from the households' interview times) to ``out``."""
    write_csv(hexagon_table(hexagons, k), out / HEXAGONS)
    write_csv(enumeration_dates(households, k), out / DATES)
    return {"hexagons": out / HEXAGONS, "enumeration_dates": out / DATES}
