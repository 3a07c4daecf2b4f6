"""The field-supervision report: what supervisors check every evening, per enumerator and day.

One row per enumerator and interview day (the date of ``start`` as the tablet wrote it, in its own
time zone; the submission date in UTC where ``start`` is missing or invalid). Figures count
distinct submissions after duplicates are resolved; refusals count as submissions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from profiling.ingest import iso_datetimes

COLUMNS = [
    "enumerator", "date", "submissions", "accepted", "rejected", "no_consent", "share_rejected",
    "values_dropped", "median_interview_minutes", "short_interviews", "median_gps_precision_m",
    "gps_precision_over_20m", "settlement_mismatch", "outside_settlements",
]
#: An interview shorter than this (minutes) is listed as short: too short to be real.
SHORT_INTERVIEW_MINUTES = 5.0


def supervision_report(submissions: pd.DataFrame) -> pd.DataFrame:
    """Summarise submissions per enumerator and day.

    Parameters
    ----------
    submissions
        One row per distinct submission with ``status`` (accepted, rejected, no_consent),
        ``enumerator``, ``start``, ``end``, ``submitted_at``, ``gps_precision`` (m),
        ``settlement_id``, ``settlement_mismatch`` and ``values_dropped``, as made by ingest.

    Returns
    -------
    DataFrame
        The columns of :data:`COLUMNS`: ``share_rejected`` is rejected / submissions;
        ``median_interview_minutes`` is the median of ``end - start`` over the interviews with
        both times; ``gps_precision_over_20m`` counts points whose stated accuracy is worse than
        20 m; ``settlement_mismatch`` counts households whose declared settlement is not the one
        their point lies in.
    """
    if submissions.empty:
        return pd.DataFrame(columns=COLUMNS)
    s = submissions
    start = s["start"].astype("string")
    # parsed by ingest's validation where it ran (a store's submissions are parsed here)
    start_t = s["_start_utc"] if "_start_utc" in s else iso_datetimes(start)
    end_t = s["_end_utc"] if "_end_utc" in s else iso_datetimes(s["end"].astype("string"))
    local_day = start.str.slice(0, 10).where(start_t.notna())
    # the submission's UTC date, formatted only where the interview start gives no day
    need = local_day.isna().to_numpy()
    sub_day = pd.Series(pd.NA, index=s.index, dtype="string")
    if need.any():
        sub_day[need] = pd.to_datetime(s["submitted_at"][need], utc=True, errors="coerce"
                                       ).dt.strftime("%Y-%m-%d").astype("string")
    minutes = (end_t - start_t).dt.total_seconds() / 60.0
    accepted = s["status"] == "accepted"
    frame = pd.DataFrame({
        "enumerator": s["enumerator"].astype("string").fillna("(none)"),
        "date": local_day.fillna(sub_day).fillna("(unknown)"),
        "accepted": accepted.astype(int),
        "rejected": (s["status"] == "rejected").astype(int),
        "no_consent": (s["status"] == "no_consent").astype(int),
        "values_dropped": s["values_dropped"].astype(int),
        "minutes": minutes.where(minutes >= 0),
        "short": (minutes < SHORT_INTERVIEW_MINUTES).astype(int),
        "precision": pd.to_numeric(s["gps_precision"], errors="coerce"),
        "imprecise": (pd.to_numeric(s["gps_precision"], errors="coerce") > 20).astype(int),
        "mismatch": s["settlement_mismatch"].astype("boolean").fillna(False).astype(int),
        "outside": (accepted & s["settlement_id"].isna()).astype(int),
    })
    g = frame.groupby(["enumerator", "date"], sort=True)
    out = pd.DataFrame({
        "submissions": g.size(),
        "accepted": g["accepted"].sum(),
        "rejected": g["rejected"].sum(),
        "no_consent": g["no_consent"].sum(),
        "values_dropped": g["values_dropped"].sum(),
        "median_interview_minutes": g["minutes"].median(),
        "short_interviews": g["short"].sum(),
        "median_gps_precision_m": g["precision"].median(),
        "gps_precision_over_20m": g["imprecise"].sum(),
        "settlement_mismatch": g["mismatch"].sum(),
        "outside_settlements": g["outside"].sum(),
    }).reset_index()
    out["share_rejected"] = np.round(out["rejected"] / out["submissions"], 4)
    out["median_interview_minutes"] = out["median_interview_minutes"].round(1)
    out["median_gps_precision_m"] = out["median_gps_precision_m"].round(1)
    return out[COLUMNS]
