"""Benchmark: CUF ranking robustness and portfolio at city scale.

2,000 settlements (seeded, generated in memory) × the 10 interventions of
``configs/interventions.yaml``: times 1,000 Monte Carlo perturbations of the ranking (target
< 5 s) and the MILP portfolio under a budget (target < 10 s). Not part of the test suite.

    python benchmarks/bench_cuf.py [--settlements N] [--budget B]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from profiling.config import load_interventions
from profiling.indicators import PRIORITY_NEEDS
from profiling.prioritise import (
    DEFAULT_CRITERIA,
    Intervention,
    candidates,
    derive_columns,
    portfolio,
    rank,
    robustness,
)

REPO = Path(__file__).resolve().parents[1]


def settlement_table(n: int, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hh = rng.integers(20, 2000, n).astype(float)
    t = pd.DataFrame({"settlement_id": [f"S{i:05d}" for i in range(n)],
                      "name": [f"Settlement {i}" for i in range(n)],
                      "households": hh, "population": hh * rng.uniform(3, 6, n),
                      "flood_area_share": rng.beta(1, 4, n)})
    for col in ("slum_household", "water_basic", "water_on_premises", "sanitation_basic",
                "sanitation_adequate", "flood_exposed", "waste_collected", "handwashing_basic",
                "electricity_access"):
        t[f"{col}_share"] = rng.beta(2, 2, n)
    for need in PRIORITY_NEEDS:
        t[f"priority_{need}_share"] = rng.beta(1, 3, n)
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settlements", type=int, default=2000)
    ap.add_argument("--budget", type=float, default=5_000_000)
    ap.add_argument("--perturbations", type=int, default=1000)
    a = ap.parse_args()
    catalogue = [Intervention(**iv.model_dump())
                 for iv in load_interventions(REPO / "configs" / "interventions.yaml")]
    table = derive_columns(settlement_table(a.settlements), catalogue)
    t0 = time.perf_counter()
    ranking = rank(table, DEFAULT_CRITERIA)
    t1 = time.perf_counter()
    robust = robustness(ranking, a.perturbations, 0.25, 10, 42)
    t2 = time.perf_counter()
    cands = candidates(table, ranking, catalogue)
    t3 = time.perf_counter()
    port = portfolio(cands, a.budget, settlement_cap=a.budget / 20, community_min_share=0.5)
    t4 = time.perf_counter()
    assert robust["p_top_n"].notna().all()
    print(f"{a.settlements:,} settlements × {len(catalogue)} interventions: "
          f"{len(cands):,} candidate (settlement, intervention) pairs")
    print(f"ranking: {t1 - t0:.2f} s")
    ok_r = t2 - t1 < 5
    print(f"{a.perturbations:,} perturbations of the ranking: {t2 - t1:.2f} s "
          f"(target: < 5 s) {'PASS' if ok_r else 'FAIL'}")
    ok_p = t4 - t2 < 10
    print(f"portfolio ({port.method}): candidates {t3 - t2:.2f} s + solve {t4 - t3:.2f} s = "
          f"{t4 - t2:.2f} s (target: < 10 s) {'PASS' if ok_p else 'FAIL'}; "
          f"{len(port.table):,} projects, cost {port.cost:,.0f} of {a.budget:,.0f}, "
          f"{port.beneficiaries:,.0f} persons served (counted once); within "
          f"{port.gap:.4%} of the LP upper bound")


if __name__ == "__main__":
    main()
