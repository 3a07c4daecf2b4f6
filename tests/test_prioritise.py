"""CUF prioritisation: rankings worked on paper, portfolios checked by brute force."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profiling import ConfigError
from profiling.prioritise import (
    Criterion,
    Intervention,
    counted_beneficiaries,
    portfolio,
    prioritise,
    rank,
    robustness,
)

CRITERIA = (Criterion("slum", "slum_household_share", 1.0, True, "slum households"),
            Criterion("water", "water_basic_share", 1.0, False, "basic water"))


def table(**cols: list[object]) -> pd.DataFrame:
    base = {"settlement_id": ["A", "B", "C"], "name": ["Alpha", "Bravo", "Charlie"],
            "households": [10, 10, 10], "population": [40, 40, 40]}
    base.update(cols)
    return pd.DataFrame(base)


def test_ranking_on_paper():
    t = table(slum_household_share=[0.8, 0.4, 0.6], water_basic_share=[0.2, 0.6, 0.2])
    r = rank(t, CRITERIA).table.set_index("settlement_id")
    # slum normalised: A 1, B 0, C 0.5; water flipped (lower is worse): A 1, B 0, C 1
    # weights 0.5 each: A 1.0, B 0.0, C 0.75
    assert r["cuf_score"].to_dict() == pytest.approx({"A": 1.0, "B": 0.0, "C": 0.75})
    assert r["cuf_rank"].tolist() == [1, 3, 2]
    parts = r[["slum_contribution", "water_contribution"]].sum(axis=1)
    assert np.allclose(parts, r["cuf_score"])
    assert r.loc["C", "slum_normalised"] == pytest.approx(0.5)
    assert r.loc["C", "water_weight"] == 0.5


def test_ties_go_by_id_and_unranked_settlements_say_why():
    t = table(slum_household_share=[0.5, 0.5, np.nan], water_basic_share=[0.3, 0.3, 0.1],
              households=[10, 10, 10])
    t.loc[len(t)] = {"settlement_id": "D", "name": "Delta", "households": 3, "population": 9,
                     "slum_household_share": 0.9, "water_basic_share": 0.0}
    r = rank(t, CRITERIA, min_cell_size=5).table.set_index("settlement_id")
    assert r.loc["A", "cuf_rank"] == 1 and r.loc["B", "cuf_rank"] == 2
    assert pd.isna(r.loc["C", "cuf_rank"]) and "slum_household_share" in r.loc[
        "C", "not_ranked_reason"]
    assert pd.isna(r.loc["D", "cuf_score"]) and "fewer than 5" in r.loc["D", "not_ranked_reason"]


def test_weights_are_validated():
    t = table(slum_household_share=[0.8, 0.4, 0.6], water_basic_share=[0.2, 0.6, 0.2])
    with pytest.raises(ValueError, match="not all zero"):
        rank(t, [Criterion("slum", "slum_household_share", 0.0)])
    with pytest.raises(ValueError, match="no column"):
        rank(t, [Criterion("x", "nope", 1.0)])


def test_explanations_write_shares_as_percentages():
    # A: every household a slum household (1.0 is "100%", never "1"); B: none ("0%")
    t = table(slum_household_share=[1.0, 0.0, 0.5], water_basic_share=[0.25, 1.0, 0.5],
              population=[1, 40, 40])
    crit = (*CRITERIA, Criterion("people", "population", 1.0, True, "persons"))
    pri = prioritise(t, crit, perturbations=0).priorities.set_index("settlement_id")
    a, b = pri.loc["A", "explanation"], pri.loc["B", "explanation"]
    assert "slum households 100% (" in a and "basic water 25% (" in a and "persons 1 (" in a
    assert "slum households 0% (" in b and "basic water 100% (" in b
    assert (pri["criteria_left_out"] == "").all()


def test_a_criterion_whose_indicator_was_not_collected_is_left_out():
    # no tenure column: its fields were not collected (CONTRACT.md §4)
    t = table(slum_household_share=[0.8, 0.4, 0.6])
    crit = (CRITERIA[0], Criterion("tenure", "tenure_secure_share", 1.0, False))
    pri = prioritise(t, crit, perturbations=0).priorities.set_index("settlement_id")
    assert pri["cuf_rank"].to_dict() == {"A": 1, "C": 2, "B": 3}
    assert pri.loc["A", "criteria_left_out"].startswith(
        "tenure (tenure_secure_share was not computed")
    assert "tenure_secure_share" not in pri.loc["A", "explanation"]
    # a column that is no indicator's is still a configuration error
    with pytest.raises(ValueError, match="no column"):
        rank(t, [CRITERIA[0], Criterion("x", "tenure_secure_sharez", 1.0)])


def test_robustness_without_perturbation_is_certain():
    t = table(slum_household_share=[0.8, 0.4, 0.6], water_basic_share=[0.2, 0.6, 0.2])
    rb = robustness(rank(t, CRITERIA), perturbations=50, spread=0.0, top_n=2)
    assert rb["p_top_n"].tolist() == [1.0, 0.0, 1.0]
    assert rb["rank_p05"].tolist() == [1, 3, 2] and rb["rank_p95"].tolist() == [1, 3, 2]


def test_robustness_probability_worked_by_hand():
    # slum normalised A 1, B 0, C 0.875; water flipped A 0.8, B 0, C 1. A beats C when
    # w_slum + 0.8 w_water > 0.875 w_slum + w_water, i.e. f_slum > 1.6 f_water for factors
    # f ~ U(0.5, 1.5): P = integral over f_w in [0.5, 0.9375] of (1.5 - 1.6 f_w) = 0.153
    t = table(slum_household_share=[0.9, 0.1, 0.8], water_basic_share=[0.5, 0.9, 0.4])
    rb = robustness(rank(t, CRITERIA), perturbations=4000, spread=0.5, top_n=1, seed=1)
    assert rb.loc[0, "p_top_n"] == pytest.approx(0.153, abs=0.02)
    assert rb.loc[2, "p_top_n"] == pytest.approx(0.847, abs=0.02)
    assert rb.loc[1, "p_top_n"] == 0 and rb.loc[0, "rank_p05"] == 1 and rb.loc[0, "rank_p95"] == 2


# ------------------------------------------------------------------------------------------
# Portfolio
# ------------------------------------------------------------------------------------------

def cands() -> pd.DataFrame:
    return pd.DataFrame({
        "settlement_id": ["A", "A", "B", "B", "C"],
        "intervention": ["tap", "toilet", "tap", "toilet", "tap"],
        "need": ["water", "toilets", "water", "toilets", "water"],
        "unit": "unit",
        "unit_cost": [100.0, 250.0, 100.0, 250.0, 100.0],
        "households_in_need": [20, 12, 15, 30, 8],
        "persons_in_need": [80.0, 48.0, 60.0, 120.0, 32.0],
        "persons_per_unit": [30.0, 50.0, 30.0, 50.0, 30.0],
        "max_units": [3, 1, 2, 3, 2],
        "community_chosen": [True, False, False, True, True],
        "value_per_person": [1.0, 1.5, 0.6, 0.9, 0.8],
    })


def brute_force(c: pd.DataFrame, budget: float, cap: float | None = None,
                min_share: float = 0.0) -> float:
    best = 0.0
    ranges = [range(int(m) + 1) for m in c["max_units"]]
    for x in itertools.product(*ranges):
        xs = np.array(x, dtype=float)
        cost = xs * c["unit_cost"].to_numpy()
        if cost.sum() > budget + 1e-9:
            continue
        if cap is not None and any(cost[(c["settlement_id"] == s).to_numpy()].sum() > cap
                                   for s in c["settlement_id"].unique()):
            continue
        chosen = c["community_chosen"].to_numpy()
        if cost[chosen].sum() < min_share * cost.sum() - 1e-9:
            continue
        served = np.minimum(xs * c["persons_per_unit"].to_numpy(), c["persons_in_need"])
        best = max(best, float((served * c["value_per_person"]).sum()))
    return best


def objective(p, c: pd.DataFrame) -> float:
    merged = p.table.merge(c, on=["settlement_id", "intervention"])
    served = np.minimum(merged["units"] * merged["persons_per_unit"], merged["persons_in_need"])
    return float((served * merged["value_per_person"]).sum())


@pytest.mark.parametrize("budget,cap,min_share", [(500, None, 0.0), (777, None, 0.0),
                                                  (1000, 400, 0.0), (900, None, 0.8),
                                                  (5000, None, 0.0)])
def test_portfolio_matches_brute_force(budget, cap, min_share):
    c = cands()
    p = portfolio(c, budget, cap, min_share)
    assert p.method == "milp"
    assert p.cost <= budget
    assert objective(p, c) == pytest.approx(brute_force(c, budget, cap, min_share), abs=1e-6)


@pytest.mark.parametrize("budget,cap,min_share", [(777, None, 0.0), (1000, 400, 0.0),
                                                  (900, None, 0.8)])
def test_core_path_stays_within_its_reported_gap(monkeypatch, budget, cap, min_share):
    import profiling.prioritise as P

    monkeypatch.setattr(P, "CORE_THRESHOLD", 0)  # force the LP-core path on a small model
    c = cands()
    p = portfolio(c, budget, cap, min_share)
    best = brute_force(c, budget, cap, min_share)
    assert p.method.startswith("milp on the LP core") and p.cost <= budget
    assert objective(p, c) >= best * (1 - p.gap) - 1e-6
    assert objective(p, c) <= best + 1e-6


def test_beneficiaries_are_counted_once():
    t = pd.DataFrame({"settlement_id": ["A", "A", "B"], "beneficiaries": [90.0, 48.0, 60.0]})
    assert counted_beneficiaries(t) == 150.0  # A's 48 are among its 90
    p = portfolio(cands(), 5000)
    expected = p.table.groupby("settlement_id")["beneficiaries"].max().sum()
    assert p.beneficiaries == expected < p.table["beneficiaries"].sum()


def test_zero_budget_is_an_empty_portfolio():
    p = portfolio(cands(), 0)
    assert p.empty and p.cost == 0 and p.beneficiaries == 0


@pytest.mark.parametrize("kw,match", [({"budget": -1}, "must not be negative"),
                                      ({"budget": 10, "community_min_share": 1.5}, r"\[0, 1\]")])
def test_bad_settings_are_clear(kw, match):
    with pytest.raises(ValueError, match=match):
        portfolio(cands(), **kw)


def test_not_advised_and_need_from_indicators():
    t = table(slum_household_share=[0.8, 0.4, 0.6], water_basic_share=[0.2, 0.6, 0.2],
              sanitation_adequate_share=[0.5, 0.9, 0.0], flood_area_share=[0.1, 0.1, 0.7],
              priority_toilets_share=[0.6, 0.1, 0.9])
    toilets = Intervention("toilet_block", "Toilet block", "toilets", 1000,
                           households_per_unit=4, improves="sanitation_adequate",
                           not_advised_above={"flood_area_share": 0.5})
    res = prioritise(t, CRITERIA, [toilets], budget=100000)
    port = res.portfolio.table.set_index("settlement_id")
    # A: 10 households × (1 - 0.5) = 5 in need: 2 blocks; C floods over half its area: not
    # advised; B ranks last with score 0, so a person served there weighs nothing
    assert port["units"].to_dict() == {"A": 2}
    assert port.loc["A", "beneficiaries"] == 20  # 5 households × 4 persons
    pri = res.priorities.set_index("settlement_id")
    assert "2 × Toilet block" in pri.loc["A", "recommended_interventions"]
    assert res.settlements["cuf_rank"].tolist() == [1, 3, 2]


def test_sample_city_explanations_add_up(tmp_path):
    from pathlib import Path

    from profiling.config import load_config
    from profiling.pipeline import run

    repo = Path(__file__).resolve().parents[1]
    result = run(load_config(repo / "configs" / "demo.yaml"), tmp_path)
    pri = pd.read_csv(tmp_path / "cuf_priorities.csv")
    ranked = pri[pri["cuf_rank"].notna()]
    assert len(ranked) >= 25
    parts = ranked[[c for c in pri.columns if c.endswith("_contribution")]].sum(axis=1)
    assert np.allclose(parts, ranked["cuf_score"])
    assert ranked["cuf_rank"].tolist() == list(range(1, len(ranked) + 1))
    for _, row in ranked.iterrows():
        assert row["explanation"].startswith(f"Rank {int(row['cuf_rank'])} of {len(ranked)}")
        assert f"{row['cuf_score']:.3f}" in row["explanation"]
    assert pri.set_index("settlement_id").loc["JK01", "explanation"].startswith("Not ranked")
    port = pd.read_csv(tmp_path / "cuf_portfolio.csv")
    assert port["cost"].sum() <= 250000 and (port.groupby("settlement_id")["cost"].sum()
                                             <= 60000).all()
    chosen = port.loc[port["community_chosen"], "cost"].sum()
    assert chosen >= 0.5 * port["cost"].sum() - 1e-6
    table = result.settlements.set_index("settlement_id")
    assert table["cuf_rank"].dropna().astype(int).tolist() != []
    assert math.isnan(table.loc["JK01", "cuf_score"])


def test_only_the_rankings_own_errors_become_configuration_errors(monkeypatch):
    """A CUF configuration the ranking cannot use is a ConfigError (exit 2, with the message);
    any other error inside it is a bug and is not dressed up as one."""
    from profiling import PrioritisationError, pipeline
    from profiling.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml")
    table = pd.DataFrame({"settlement_id": ["A"], "name": ["A"], "households": [10.0]})
    with pytest.raises(PrioritisationError, match=r"^CUF prioritisation: the settlement "
                                                  r"table has no column"):
        pipeline.run_cuf(cfg, table)
    assert issubclass(PrioritisationError, ConfigError)

    def broken(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(pipeline, "prioritise", broken)
    with pytest.raises(ValueError, match="a bug") as caught:
        pipeline.run_cuf(cfg, table)
    assert not isinstance(caught.value, ConfigError)


def test_the_solver_prints_nothing(capfd):
    """HiGHS 1.12 prints a stray debug line from C (not Python) on some models, the sample
    city's among them: the solver's standard output goes nowhere, ours is left as it was."""
    import ctypes

    from profiling.prioritise import _solver_quiet

    libc = ctypes.CDLL(None)
    with _solver_quiet():
        libc.printf(b"from C inside\n")
        libc.fflush(None)
    libc.printf(b"from C after\n")
    libc.fflush(None)
    print("from Python after")
    out = capfd.readouterr().out
    assert "inside" not in out
    assert "from C after" in out and "from Python after" in out


def test_sample_city_budgets_print_nothing(tmp_path, capfd):
    """The budgets of notebook 04, where HiGHS printed its debug line on the sample city."""
    from pathlib import Path

    from profiling import pipeline
    from profiling.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml")
    result = pipeline.run(cfg, tmp_path)
    capfd.readouterr()
    for budget in (50_000, 100_000, 250_000, 500_000):
        cuf = pipeline.run_cuf(cfg, result.settlements, budget=budget)
        assert cuf.portfolio.cost <= budget
    assert capfd.readouterr().out == ""
