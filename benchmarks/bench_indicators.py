"""Benchmark: household indicators and settlement aggregation for 1,000,000 households.

Generates (seeded, in memory) a household frame with every answer the indicators read, spread
over 2,000 settlements, then times :func:`profiling.indicators.compute_indicators` and
:func:`profiling.indicators.aggregate` (with Wilson intervals, ladders and suppression).
Target (issue 5): under 10 s. Not part of the test suite.

    python benchmarks/bench_indicators.py [--rows N] [--settlements S]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd

from profiling.form import reference_form
from profiling.indicators import INDICATOR_NAMES, aggregate, compute_indicators


def households(n: int, n_settlements: int, seed: int = 11) -> pd.DataFrame:
    """A household frame as ingest returns it (string answers, nullable integers)."""
    rng = np.random.default_rng(seed)
    form = reference_form()
    cols: dict[str, object] = {
        "settlement_id": pd.array(np.char.add("S", rng.integers(0, n_settlements, n).astype(str)),
                                  dtype="string[pyarrow]"),
    }
    for q in form.questions.values():
        if (q.type == "select_one" and q.list_name not in ("settlements", "yes_no")) or (
                q.short in ("water_sufficient", "toilet_shared")):
            names = np.array([*form.choice_names(q.name), None], dtype=object)
            cols[q.short] = pd.array(names[rng.integers(0, len(names), n)],
                                     dtype="string[pyarrow]")
    docs = np.array(["title_deed", "rent_receipt", "none", "lease rent_receipt", None],
                    dtype=object)
    cols["tenure_documents"] = pd.array(docs[rng.integers(0, len(docs), n)],
                                        dtype="string[pyarrow]")
    cols["hh_size"] = pd.array(rng.integers(1, 12, n), dtype="Int64")
    rooms = pd.array(rng.integers(1, 5, n), dtype="Int64")
    rooms[rng.random(n) < 0.02] = pd.NA
    cols["rooms_sleeping"] = rooms
    cols["water_minutes"] = pd.array(rng.integers(0, 90, n), dtype="Int64")
    cols["toilet_households"] = pd.array(rng.integers(2, 20, n), dtype="Int64")
    cols["flood"] = np.where(rng.random(n) < 0.05, np.nan, rng.exponential(0.3, n))
    return pd.DataFrame(cols)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--settlements", type=int, default=2_000)
    a = ap.parse_args()
    t0 = time.perf_counter()
    hh = households(a.rows, a.settlements)
    print(f"generated {a.rows:,} households over {a.settlements:,} settlements in "
          f"{time.perf_counter() - t0:.1f} s")
    t1 = time.perf_counter()
    ind = compute_indicators(hh)
    t2 = time.perf_counter()
    table = aggregate(hh, ind, min_cell_size=5)
    t3 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert len(table) == a.settlements and all(f"{n}_share" in table for n in INDICATOR_NAMES)
    total = t3 - t1
    print(f"compute_indicators: {t2 - t1:.2f} s; aggregate: {t3 - t2:.2f} s")
    print(f"indicators + aggregation for {a.rows:,} households: {total:.2f} s wall, "
          f"peak RSS {peak:,.0f} MiB (target: < 10 s) {'PASS' if total < 10 else 'FAIL'}")


if __name__ == "__main__":
    main()
