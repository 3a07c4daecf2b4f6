"""The supervision report on hand-worked submissions."""

from __future__ import annotations

import pandas as pd
import pytest

from profiling.supervision import COLUMNS, supervision_report


def test_per_enumerator_and_day():
    subs = pd.DataFrame({
        "status": ["accepted", "accepted", "rejected", "no_consent", "accepted"],
        "enumerator": ["E1", "E1", "E1", "E2", "E2"],
        # E1's three interviews are on 2 March local time, though the third is 1 March in UTC
        "start": ["2026-03-02T09:00:00+07:00", "2026-03-02T10:00:00+07:00",
                  "2026-03-02T06:00:00+07:00", "2026-03-03T09:00:00+07:00", "not a time"],
        "end": ["2026-03-02T09:30:00+07:00", "2026-03-02T10:10:00+07:00",
                "2026-03-02T06:03:00+07:00", "2026-03-03T09:02:00+07:00", None],
        "submitted_at": pd.to_datetime(["2026-03-02T05:00Z"] * 4 + ["2026-03-04T01:00Z"]),
        "gps_precision": [5.0, 30.0, None, None, 25.0],
        "settlement_id": ["A", "A", None, None, None],
        "settlement_mismatch": pd.array([True, False, None, None, None], dtype="boolean"),
        "values_dropped": [1, 0, 0, 0, 2],
    })
    rep = supervision_report(subs).set_index(["enumerator", "date"])
    assert list(rep.reset_index().columns) == COLUMNS
    e1 = rep.loc[("E1", "2026-03-02")]
    assert (e1["submissions"], e1["accepted"], e1["rejected"]) == (3, 2, 1)
    assert e1["share_rejected"] == pytest.approx(1 / 3, abs=1e-4)
    assert e1["median_interview_minutes"] == 10.0  # 30, 10 and 3 minutes
    assert e1["short_interviews"] == 1
    assert e1["median_gps_precision_m"] == 17.5 and e1["gps_precision_over_20m"] == 1
    assert e1["settlement_mismatch"] == 1 and e1["values_dropped"] == 1
    assert rep.loc[("E2", "2026-03-03"), "no_consent"] == 1
    # no valid start: the day is the submission's UTC date; the point is outside settlements
    e2 = rep.loc[("E2", "2026-03-04")]
    assert e2["outside_settlements"] == 1 and e2["values_dropped"] == 2


def test_empty():
    assert list(supervision_report(pd.DataFrame()).columns) == COLUMNS
