"""Community Upgrading Fund: a transparent ranking of settlements and a budgeted portfolio.

The ranking is a weighted sum of criteria read from the settlement table, each normalised to
[0, 1] across the ranked settlements (min-max: the most deprived settlement on a criterion gets 1,
the least 0; a criterion where "lower is worse", such as ``water_basic_share``, is flipped). A
settlement's score is the sum of weight × normalised value over the criteria, with the weights
scaled to sum to 1, so every score lies in [0, 1] and its parts add up to it. Settlements with
fewer households than the minimum cell size, or missing a criterion, are not ranked, and say so.

The portfolio chooses how many units of each intervention of the catalogue to fund where, under a
budget, by integer programming (:func:`scipy.optimize.milp`): it maximises the persons served,
each weighted by the settlement's score and by how strongly its community asked for that need.
Beneficiaries are reported once per person: where two interventions serve the same settlement,
only the larger count is aggregated (the results-framework rule of upgrading funds).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from profiling._errors import PrioritisationError
from profiling.i18n import gettext_for
from profiling.indicators import INDICATOR_NAMES, PRIORITY_NEEDS
from profiling.publish._data import fmt

log = logging.getLogger(__name__)


#: The settlement table's columns of the household indicators (absent when not collected).
_INDICATOR_COLUMNS = frozenset(f"{i}_{s}" for i in INDICATOR_NAMES for s in ("share", "n"))


@dataclass(frozen=True)
class Criterion:
    """One criterion of the ranking: a column of the settlement table and its weight."""

    name: str
    column: str
    weight: float
    higher_is_worse: bool = True
    label: str = ""


#: The default criteria: deprivation, services, people affected, community priority; each
#: configured hazard with a ``cuf_weight`` joins them (the flood layer's weight is 0.15 by
#: default: :func:`profiling.pipeline.hazard_criterion`).
DEFAULT_CRITERIA: tuple[Criterion, ...] = (
    Criterion("slum", "slum_household_share", 0.25, True, "share of slum households"),
    Criterion("water", "water_basic_share", 0.15, False,
              "share of households with basic water"),
    Criterion("sanitation", "sanitation_basic_share", 0.15, False,
              "share of households with basic sanitation"),
    Criterion("people", "population", 0.20, True, "persons enumerated"),
    Criterion("community", "community_priority_share", 0.10, True,
              "share of households naming the need they most often name among those the fund "
              "can answer"),
)


@dataclass(frozen=True)
class Intervention:
    """A kind of small project the fund pays for."""

    id: str
    name: str
    need: str
    unit_cost: float
    #: households one unit serves (a water point per N households, a toilet block per N)...
    households_per_unit: float | None = None
    #: ...or units one household needs (metres of drainage or footpath per household).
    units_per_household: float | None = None
    #: the household indicator it improves: households where it is false (or true, for a
    #: ``bad`` indicator) are those in need.
    improves: str | None = None
    improves_is_bad: bool = False
    unit: str = "unit"
    #: not advised where the settlement's column is above the value, e.g.
    #: ``{"flood_area_share": 0.5}`` for toilet blocks where drainage must come first.
    not_advised_above: Mapping[str, float] = field(default_factory=dict)
    reason_not_advised: str = ""

    def __post_init__(self) -> None:
        if (self.households_per_unit is None) == (self.units_per_household is None):
            raise PrioritisationError(f"intervention {self.id!r}: give exactly one of "
                                      "households_per_unit or units_per_household")


@dataclass
class Ranking:
    """The ranking: per settlement its score, rank and the parts of the score."""

    table: pd.DataFrame
    criteria: tuple[Criterion, ...]
    #: the criteria the ranking did without, each with the reason
    left_out: tuple[tuple[Criterion, str], ...] = ()


def derive_columns(settlements: pd.DataFrame, interventions: Sequence[Intervention]
                   ) -> pd.DataFrame:
    """Add ``community_priority_share``: the largest share of households naming a need that
    some intervention answers."""
    out = settlements.copy()
    needs = sorted({i.need for i in interventions})
    cols = [f"priority_{n}_share" for n in needs if f"priority_{n}_share" in out]
    out["community_priority_share"] = out[cols].max(axis=1, skipna=True) if cols else np.nan
    return out


def rank(settlements: pd.DataFrame, criteria: Sequence[Criterion] = DEFAULT_CRITERIA,
         min_cell_size: int = 5, language: str = "en") -> Ranking:
    """Score and rank settlements; the explanation of each score is in the returned table.

    Returns a table indexed like ``settlements`` with ``cuf_score``, ``cuf_rank`` (1 = first
    served; ties broken by ``settlement_id``), ``ranked`` and ``not_ranked_reason``, and per
    criterion ``<name>_value``, ``<name>_normalised``, ``<name>_weight`` and
    ``<name>_contribution`` (weight × normalised; they add up to the score).
    """
    criteria = tuple(criteria)
    if not criteria:
        raise PrioritisationError("the ranking needs at least one criterion")
    left_out: list[tuple[Criterion, str]] = []
    absent = [c for c in criteria if c.column not in settlements]
    # an indicator's column is absent when its fields were not collected (CONTRACT.md §4)
    uncollected = [c for c in absent if c.column in _INDICATOR_COLUMNS]
    missing = [c.column for c in absent if c not in uncollected]
    if missing:
        raise PrioritisationError(f"the settlement table has no column(s) "
                                  f"{', '.join(missing)} for the ranking criteria")
    for c in uncollected:
        log.warning("ranking without criterion %s: %s was not collected", c.name, c.column)
        left_out.append((c, f"{c.column} was not computed: the surveys did not collect its "
                            "fields"))
    criteria = tuple(c for c in criteria if c not in uncollected)
    empty = [c for c in criteria if settlements[c.column].isna().all()]
    if empty and len(empty) < len(criteria):
        # e.g. no flood raster configured: rank on what is known, and say so
        log.warning("ranking without criteria %s: no settlement has a value for them",
                    ", ".join(c.name for c in empty))
        left_out += [(c, f"no settlement has a value of {c.column}") for c in empty]
        criteria = tuple(c for c in criteria if c not in empty)
    if not criteria:
        raise PrioritisationError("none of the ranking criteria can be read: "
                         + "; ".join(why for _, why in left_out))
    weights = np.array([c.weight for c in criteria], dtype=float)
    if (weights < 0).any() or weights.sum() <= 0:
        raise PrioritisationError("criterion weights must be non-negative and not all zero")
    weights = weights / weights.sum()
    out = pd.DataFrame(index=settlements.index)
    out["settlement_id"] = settlements["settlement_id"]
    values = np.column_stack([pd.to_numeric(settlements[c.column], errors="coerce")
                              .to_numpy(dtype=float) for c in criteria])
    hh = pd.to_numeric(settlements["households"], errors="coerce").to_numpy(dtype=float)
    small = ~(hh >= min_cell_size)
    unknown = np.isnan(values)
    ranked = ~small & ~unknown.any(axis=1)
    _ = gettext_for(language)  # why a settlement is not ranked, in the run's language
    reason = np.array([
        "" if ranked[i] else
        _("fewer than %(k)s households enumerated", k=min_cell_size) if small[i] else
        _("unknown %(columns)s", columns=", ".join(
            c.column for j, c in enumerate(criteria) if unknown[i, j]))
        for i in range(len(values))], dtype=object)
    norm = normalise(values, ranked, np.array([c.higher_is_worse for c in criteria]))
    contrib = norm * weights
    score = np.where(ranked, contrib.sum(axis=1), np.nan)
    for j, c in enumerate(criteria):
        out[f"{c.name}_value"] = values[:, j]
        out[f"{c.name}_normalised"] = np.where(ranked, norm[:, j], np.nan)
        out[f"{c.name}_weight"] = weights[j]
        out[f"{c.name}_contribution"] = np.where(ranked, contrib[:, j], np.nan)
    out["cuf_score"] = score
    out["ranked"] = ranked
    out["not_ranked_reason"] = reason
    out["cuf_rank"] = pd.array(ranks(score, out["settlement_id"].to_numpy()), dtype="Int64")
    return Ranking(out, criteria, tuple(left_out))


def normalise(values: np.ndarray, rows: np.ndarray, higher_is_worse: np.ndarray) -> np.ndarray:
    """Min-max normalisation over ``rows``: 1 for the most deprived, 0 for the least.

    A criterion equal in every ranked settlement carries no information and gets 0 everywhere.
    """
    out = np.full(values.shape, np.nan)
    if not rows.any():
        return out
    v = values[rows]
    lo, hi = v.min(axis=0), v.max(axis=0)
    span = np.where(hi > lo, hi - lo, np.inf)
    scaled = (v - lo) / span
    scaled = np.where(higher_is_worse, scaled, np.where(hi > lo, 1 - scaled, 0.0))
    out[rows] = scaled
    return out


def ranks(score: np.ndarray, ids: np.ndarray) -> list[int | None]:
    """1 for the highest score; ties by id; None where the score is NaN."""
    order = sorted((i for i in range(len(score)) if not math.isnan(score[i])),
                   key=lambda i: (-score[i], str(ids[i])))
    out: list[int | None] = [None] * len(score)
    for r, i in enumerate(order, start=1):
        out[i] = r
    return out


def explain(row: Mapping[str, Any], criteria: Sequence[Criterion], n_ranked: int,
            language: str = "en") -> str:
    """The score of one settlement in plain words (in ``language``)."""
    _ = gettext_for(language)
    if not row["ranked"]:
        return _("Not ranked: %(reason)s.", reason=row["not_ranked_reason"])
    parts = sorted(criteria, key=lambda c: -row[f"{c.name}_contribution"])
    words = [_("%(criterion)s %(value)s (normalised %(normalised).2f × weight %(weight).2f = "
               "%(contribution).3f)", criterion=_(c.label or c.column),
               value=_fmt(row[f"{c.name}_value"], c.column, _),
               normalised=row[f"{c.name}_normalised"], weight=row[f"{c.name}_weight"],
               contribution=row[f"{c.name}_contribution"]) for c in parts]
    return _("Rank %(rank)s of %(n)s, score %(score).3f, the sum of: %(parts)s. Its largest "
             "part is %(largest)s.", rank=int(row["cuf_rank"]), n=n_ranked,
             score=row["cuf_score"], parts="; ".join(words),
             largest=_(parts[0].label or parts[0].column))


def _fmt(x: float, column: str, _: Any = None) -> str:
    """A criterion's value in words, as the map and atlas write it (a share as a percentage,
    1.0 as 100 %)."""
    if math.isnan(x):
        return "unknown" if _ is None else _("unknown")
    return fmt(x, "share" if column.endswith("_share") else "number")


# --------------------------------------------------------------------------------------------
# Robustness
# --------------------------------------------------------------------------------------------

def robustness(ranking: Ranking, perturbations: int = 1000, spread: float = 0.25,
               top_n: int = 10, seed: int = 42) -> pd.DataFrame:
    """Rerun the ranking with perturbed weights (Monte Carlo, seeded).

    Each run multiplies every weight by an independent factor drawn uniformly from
    [1 − spread, 1 + spread] and scales the weights to sum to 1 again. Returns, per settlement,
    ``p_top_n`` (share of runs in which it ranks in the top ``top_n``) and ``rank_p05``,
    ``rank_p95`` (the 5th and 95th percentiles of its rank), or NaN when not ranked.
    """
    t = ranking.table
    crit = ranking.criteria
    ranked = t["ranked"].to_numpy(dtype=bool)
    out = pd.DataFrame(index=t.index)
    out["p_top_n"] = np.nan
    out["rank_p05"] = np.nan
    out["rank_p95"] = np.nan
    if not ranked.any():
        return out
    norm = np.column_stack([t[f"{c.name}_normalised"].to_numpy(dtype=float) for c in crit])[
        ranked]
    base = np.array([c.weight for c in crit], dtype=float)
    rng = np.random.default_rng(seed)
    factors = rng.uniform(1 - spread, 1 + spread, size=(perturbations, len(crit)))
    w = base * factors
    w /= w.sum(axis=1, keepdims=True)
    scores = norm @ w.T  # settlements × runs
    # rank within each run: higher score first, ties broken by id order (stable argsort on
    # ids sorted beforehand)
    ids = t["settlement_id"].to_numpy()[ranked].astype(str)
    by_id = np.argsort(ids, kind="stable")
    s_sorted = scores[by_id]
    order = np.argsort(-s_sorted, axis=0, kind="stable")
    rank_sorted = np.empty_like(order)
    cols = np.arange(order.shape[1])
    rank_sorted[order, cols] = np.arange(1, order.shape[0] + 1)[:, None]
    run_ranks = np.empty_like(rank_sorted)
    run_ranks[by_id] = rank_sorted
    out.loc[ranked, "p_top_n"] = (run_ranks <= top_n).mean(axis=1)
    out.loc[ranked, "rank_p05"] = np.percentile(run_ranks, 5, axis=1)
    out.loc[ranked, "rank_p95"] = np.percentile(run_ranks, 95, axis=1)
    return out


# --------------------------------------------------------------------------------------------
# The portfolio
# --------------------------------------------------------------------------------------------

@dataclass
class Portfolio:
    """The chosen interventions: one row per settlement and intervention funded."""

    table: pd.DataFrame
    method: str
    budget: float
    cost: float
    beneficiaries: float
    #: relative distance of the objective from a proven upper bound (0 = proven optimal).
    gap: float = 0.0

    @property
    def empty(self) -> bool:
        """True when nothing is funded."""
        return self.table.empty


def candidates(settlements: pd.DataFrame, ranking: Ranking,
               interventions: Sequence[Intervention]) -> pd.DataFrame:
    """Every (settlement, intervention) pair the fund could pay for, with its need and value.

    Households in need of an intervention are the settlement's households where the indicator
    it improves is false (true for a ``bad`` indicator such as ``flood_exposed``): households
    × (1 − share), or × share. Persons per household are the settlement's population over its
    households. ``max_units`` is what serves all of them; a unit serves ``persons_per_unit``.
    The value of a person served is the settlement's score times (1 + the share of its
    households naming that need).
    """
    t = ranking.table
    ok = t["ranked"].to_numpy(dtype=bool)
    rows = []
    for pos in np.flatnonzero(ok):
        s = settlements.iloc[pos]
        hh = float(s["households"])
        size = float(s["population"]) / hh if hh else 0.0
        chosen = community_choices(s)
        for iv in interventions:
            if iv.improves is not None:
                share = s.get(f"{iv.improves}_share", np.nan)
                if pd.isna(share):
                    continue
                in_need = hh * (float(share) if iv.improves_is_bad else 1 - float(share))
            else:
                demand = s.get(f"priority_{iv.need}_share", np.nan)
                in_need = hh * (0.0 if pd.isna(demand) else float(demand))
            advised = all(not (pd.notna(s.get(col)) and float(s.get(col)) > limit)
                          for col, limit in iv.not_advised_above.items())
            if in_need <= 0 or not advised:
                continue
            if iv.households_per_unit is not None:
                per_unit_hh = iv.households_per_unit
                max_units = math.ceil(in_need / iv.households_per_unit - 1e-9)
            else:
                per_unit_hh = 1.0 / float(iv.units_per_household or 1.0)
                max_units = math.ceil(in_need * float(iv.units_per_household or 1.0) - 1e-9)
            demand = s.get(f"priority_{iv.need}_share", np.nan)
            rows.append({
                "settlement_id": s["settlement_id"], "intervention": iv.id, "need": iv.need,
                "improves": iv.improves or "", "improves_is_bad": iv.improves_is_bad,
                "unit": iv.unit, "unit_cost": iv.unit_cost,
                "households_in_need": in_need, "persons_in_need": in_need * size,
                "persons_per_unit": per_unit_hh * size, "max_units": max_units,
                "community_chosen": iv.need in chosen,
                "value_per_person": float(t.iloc[pos]["cuf_score"]) * (
                    1 + (0.0 if pd.isna(demand) else float(demand))),
            })
    return pd.DataFrame(rows)


def top_need_reasons(table: pd.DataFrame, ranking: Ranking,
                     interventions: Sequence[Intervention], cands: pd.DataFrame,
                     port: Portfolio | None, settlement_cap: float | None = None,
                     language: str = "en") -> pd.DataFrame:
    """For each ranked settlement, the need its households name most often and why the
    portfolio funds it there or not, in that order of causes: funded here; nothing in the
    catalogue answers it; not advised here (the catalogue's reason); no household lacks it;
    the settlement's cap is spent; too costly per person served (dearer than anything the
    portfolio funds); else the budget ran out before it. Columns ``top_need``,
    ``top_need_funded`` and ``top_need_reason`` (words)."""
    t = ranking.table
    bought = port.table if port is not None and not port.empty else pd.DataFrame(
        columns=["settlement_id", "need", "cost", "beneficiaries"])
    per_person = (bought["cost"].astype(float) / bought["beneficiaries"].astype(float)
                  .where(bought["beneficiaries"].astype(float) > 0))
    dearest = float(per_person.max()) if per_person.notna().any() else math.inf
    spent = bought.groupby(bought["settlement_id"].astype(str))["cost"].sum()
    total = float(bought["cost"].sum()) if len(bought) else 0.0
    budget = port.budget if port is not None else 0.0
    _ = gettext_for(language)
    rows = []
    for pos in np.flatnonzero(t["ranked"].to_numpy(dtype=bool)):
        s = table.iloc[pos]
        sid = str(s["settlement_id"])
        shares = [(float(s[f"priority_{n}_share"]), i, n) for i, n in enumerate(PRIORITY_NEEDS)
                  if f"priority_{n}_share" in s and pd.notna(s[f"priority_{n}_share"])]
        shares = [x for x in shares if x[0] > 0]
        if not shares:
            continue
        need = min(shares, key=lambda x: (-x[0], x[1]))[2]
        words = need.replace("_", " ")
        ivs = [iv for iv in interventions if iv.need == need]
        here = bought[(bought["settlement_id"].astype(str) == sid)
                      & (bought["need"].astype(str) == need)]
        funded = len(here) > 0
        mine = cands[(cands["settlement_id"].astype(str) == sid)
                     & (cands["need"] == need)] if len(cands) else cands
        if funded:
            reason = _("funded here")
        elif not ivs:
            reason = _("the fund's catalogue has nothing for it")
        elif len(mine) == 0:
            blocked = [iv for iv in ivs if any(
                pd.notna(s.get(col)) and float(s.get(col)) > limit
                for col, limit in iv.not_advised_above.items())]
            why = (blocked[0].reason_not_advised or _("the catalogue advises against it here")
                   ) if blocked else ""
            reason = (_("not advised here (%(why)s)", why=why) if blocked else
                      _("no household here lacks it"))
        else:
            cost = float((mine["unit_cost"] / mine["persons_per_unit"]).min())
            if (settlement_cap is not None
                    and float(spent.get(sid, 0.0)) + float(mine["unit_cost"].min())
                    > settlement_cap):
                reason = _("the settlement's cap of %(cap)s is spent on its other needs",
                           cap=f"{settlement_cap:,.0f}")
            elif cost > dearest:
                reason = _("too costly per person served: %(cost)s a person here, the "
                           "portfolio funds nothing above %(dearest)s", cost=f"{cost:,.0f}",
                           dearest=f"{dearest:,.0f}")
            else:
                reason = _("the budget ran out (%(total)s of %(budget)s spent) before it, at "
                           "%(cost)s a person served here", total=f"{total:,.0f}",
                           budget=f"{budget:,.0f}", cost=f"{cost:,.0f}")
        rows.append({"settlement_id": s["settlement_id"], "top_need": words,
                     "top_need_funded": funded, "top_need_reason": reason})
    return pd.DataFrame(rows, columns=["settlement_id", "top_need", "top_need_funded",
                                       "top_need_reason"])


def community_choices(settlement: pd.Series, top: int = 3) -> set[str]:
    """The needs a settlement's households name most often (its top three)."""
    shares = {c[len("priority_"):-len("_share")]: settlement[c] for c in settlement.index
              if c.startswith("priority_") and c.endswith("_share") and pd.notna(settlement[c])}
    best = sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return {k for k, v in best if v > 0}


def portfolio(cands: pd.DataFrame, budget: float, settlement_cap: float | None = None,
              community_min_share: float = 0.0, time_limit: float = 60.0) -> Portfolio:
    """Choose units under the budget by mixed-integer programming (HiGHS via scipy).

    Per candidate: integer units ``x`` in [0, max_units], serving ``b`` persons
    with b = min(persons_per_unit · x, persons_in_need). Maximise Σ value_per_person · b,
    subject to Σ cost · x ≤ budget, per-settlement spending ≤ ``settlement_cap``, and spending
    on community-chosen needs ≥ ``community_min_share`` × total spending. Falls back to a greedy
    choice (named as such) when the solver does not finish.
    """
    if budget < 0:
        raise PrioritisationError(f"the budget must not be negative (got {budget:g})")
    if not 0 <= community_min_share <= 1:
        raise PrioritisationError(f"community_min_share must lie in [0, 1] (got "
                                  f"{community_min_share})")
    if cands.empty or budget == 0:
        return _portfolio_frame(cands, np.zeros(len(cands)), np.zeros(len(cands)), "milp",
                                budget)
    from scipy.sparse import coo_matrix, vstack

    n = len(cands)
    cost = cands["unit_cost"].to_numpy(dtype=float)
    ppu = cands["persons_per_unit"].to_numpy(dtype=float)
    need = cands["persons_in_need"].to_numpy(dtype=float)
    value = cands["value_per_person"].to_numpy(dtype=float)
    # Units that serve ppu persons each (``full``), and one last unit serving the remainder.
    # Buying the last unit before all full ones would serve fewer persons than one more full
    # unit at the same cost, so no optimum does: the split is exact and keeps the model a
    # knapsack (no coupling of units and persons served).
    full = np.floor(need / ppu + 1e-9)
    rest = np.maximum(need - full * ppu, 0.0)
    has_rest = rest > 1e-9
    cols_cost = np.concatenate([cost, cost[has_rest]])
    cols_gain = np.concatenate([value * ppu, (value * rest)[has_rest]])
    owner = np.concatenate([np.arange(n), np.flatnonzero(has_rest)])
    m = len(cols_cost)
    rows = [coo_matrix((cols_cost, (np.zeros(m, dtype=int), np.arange(m))), shape=(1, m))]
    lo = [np.array([-np.inf])]
    hi = [np.array([budget])]
    if settlement_cap is not None:
        codes, _ = pd.factorize(cands["settlement_id"])
        k = int(codes.max()) + 1
        rows.append(coo_matrix((cols_cost, (codes[owner], np.arange(m))), shape=(k, m)))
        lo.append(np.full(k, -np.inf))
        hi.append(np.full(k, float(settlement_cap)))
    if community_min_share > 0:
        chosen = cands["community_chosen"].to_numpy(dtype=bool)[owner]
        coef = np.where(chosen, cols_cost * (1 - community_min_share),
                        -cols_cost * community_min_share)
        rows.append(coo_matrix((coef, (np.zeros(m, dtype=int), np.arange(m))), shape=(1, m)))
        lo.append(np.array([0.0]))
        hi.append(np.array([np.inf]))
    A = vstack(rows).tocsr()
    lo_all, hi_all = np.concatenate(lo), np.concatenate(hi)
    upper = np.concatenate([full, np.ones(int(has_rest.sum()))])
    groups = pd.factorize(cands["settlement_id"])[0][owner]
    try:
        units, method, bound = _solve(A, lo_all, hi_all, cols_gain, upper, groups, time_limit)
    except _Infeasible as exc:
        raise PrioritisationError(
            f"the portfolio constraints cannot all be met ({exc}); lower community_min_share "
            "or raise the budget or settlement cap") from None
    if units is None:
        log.warning("the optimiser did not finish: using the greedy fallback")
        x = greedy(cands, budget, settlement_cap)
        return _portfolio_frame(cands, x, np.minimum(ppu * x, need), "greedy (fallback)",
                                budget)
    x = np.bincount(owner, weights=units, minlength=n)
    out = _portfolio_frame(cands, x, np.minimum(ppu * x, need), method, budget)
    achieved = float(cols_gain @ units)
    out.gap = max(0.0, (bound - achieved) / bound) if bound > 0 else 0.0
    return out


class _Infeasible(Exception):
    pass


#: Above this many integer variables the MILP is solved on the core of its LP relaxation.
CORE_THRESHOLD = 3000


_STDOUT_LOCK = threading.Lock()


@contextlib.contextmanager
def _solver_quiet() -> Iterator[None]:
    """The process's standard output (file descriptor 1) goes to the null device while HiGHS
    runs. HiGHS 1.12, which scipy 1.17 bundles, prints a leftover debug line
    (``HighsMipSolverData::transformNewIntegerFeasibleSolution tmpSolver.run();``) with C's
    printf, whatever its options say (ERGO-Code/HiGHS#2783): noise on every run and in every
    notebook, that nobody can act on. Nothing of ours writes to standard output meanwhile."""
    fd = 1
    try:
        sys.stdout.flush()
        saved = os.dup(fd)
    except (OSError, ValueError, AttributeError):  # no real descriptor 1: nothing to quiet
        yield
        return
    import ctypes

    libc = ctypes.CDLL(None)
    with _STDOUT_LOCK:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, fd)
            yield
        finally:
            libc.fflush(None)  # what printf buffered goes to the null device, not after it
            os.dup2(saved, fd)
            os.close(null)
            os.close(saved)


def _milp(*args: Any, **kwargs: Any) -> Any:
    from scipy.optimize import milp

    with _solver_quiet():
        return milp(*args, **kwargs)


def _solve(A: object, lo: np.ndarray, hi: np.ndarray, gain: np.ndarray, upper: np.ndarray,
           groups: np.ndarray, time_limit: float) -> tuple[np.ndarray | None, str, float]:
    """Maximise gain · u for integer u in [0, upper] with lo ≤ A u ≤ hi.

    Small models go to HiGHS's branch and bound whole (proven optimal). Large ones first solve
    the LP relaxation (an upper bound on every portfolio), keep the few settlements whose
    variables come out fractional free, fix the others at their (integral) LP values, and
    solve the MILP on that core; the gap to the LP bound is reported.
    """
    from scipy.optimize import Bounds, LinearConstraint

    m = len(gain)
    if m <= CORE_THRESHOLD:
        res = _milp(-gain, constraints=LinearConstraint(A, lo, hi),
                   bounds=Bounds(np.zeros(m), upper), integrality=np.ones(m),
                   options={"time_limit": time_limit, "mip_rel_gap": 1e-9})
        if res.status == 2:
            raise _Infeasible(res.message)
        if res.x is None:
            return None, "", 0.0
        method = "milp" if res.status == 0 else "milp (time limit: best found)"
        bound = -float(res.mip_dual_bound) if res.mip_dual_bound is not None else float(
            gain @ np.round(res.x))
        return np.round(res.x), method, bound
    lp = _milp(-gain, constraints=LinearConstraint(A, lo, hi),
               bounds=Bounds(np.zeros(m), upper), integrality=np.zeros(m),
               options={"time_limit": time_limit, "presolve": False})
    if lp.status == 2:
        raise _Infeasible(lp.message)
    if lp.x is None:
        return None, "", 0.0
    bound = -float(lp.fun)
    frac = np.abs(lp.x - np.round(lp.x)) > 1e-7
    free = np.isin(groups, np.unique(groups[frac]))
    fixed = np.round(np.where(free, 0.0, lp.x))
    used = A @ fixed  # type: ignore[operator]
    sub = A[:, free]  # type: ignore[index]
    res = _milp(-gain[free], constraints=LinearConstraint(sub, lo - used, hi - used),
               bounds=Bounds(np.zeros(int(free.sum())), upper[free]),
               integrality=np.ones(int(free.sum())),
               options={"time_limit": time_limit, "mip_rel_gap": 1e-9})
    if res.x is None:
        return None, "", bound
    units = fixed.copy()
    units[free] = np.round(res.x)
    return units, f"milp on the LP core ({int(free.sum())} of {m} variables free)", bound


def greedy(cands: pd.DataFrame, budget: float, settlement_cap: float | None = None
           ) -> np.ndarray:
    """Units chosen one at a time by value per unit of money, while the money lasts."""
    x = np.zeros(len(cands))
    left = budget
    spent: dict[str, float] = {}
    order = np.argsort(-(cands["value_per_person"] * cands["persons_per_unit"]
                         / cands["unit_cost"]).to_numpy(), kind="stable")
    for i in order:
        r = cands.iloc[i]
        cap = math.inf if settlement_cap is None else settlement_cap - spent.get(
            r["settlement_id"], 0.0)
        units = min(r["max_units"], math.floor(min(left, cap) / r["unit_cost"]))
        if units > 0:
            x[i] = units
            left -= units * r["unit_cost"]
            spent[r["settlement_id"]] = spent.get(r["settlement_id"], 0.0) + units * r[
                "unit_cost"]
    return x


def _portfolio_frame(cands: pd.DataFrame, x: np.ndarray, served: np.ndarray, method: str,
                     budget: float) -> Portfolio:
    if cands.empty:
        table = pd.DataFrame(columns=["settlement_id", "intervention", "need", "units", "unit",
                                      "cost", "beneficiaries", "community_chosen", "improves",
                                      "improves_is_bad"])
        return Portfolio(table, method, budget, 0.0, 0.0)
    chosen = x > 0
    cands = cands.assign(**{c: cands.get(c, d) for c, d in (("improves", ""),
                                                            ("improves_is_bad", False))})
    t = cands.loc[chosen, ["settlement_id", "intervention", "need", "unit",
                           "community_chosen", "improves", "improves_is_bad"]].copy()
    t["units"] = x[chosen].astype(int)
    t["cost"] = x[chosen] * cands.loc[chosen, "unit_cost"].to_numpy()
    t["beneficiaries"] = np.floor(served[chosen] + 1e-9)
    # what each intervention improves travels with it, so that a later enumeration can be
    # compared on it (profiling compare: cuf_results.csv)
    t = t[["settlement_id", "intervention", "need", "units", "unit", "cost", "beneficiaries",
           "community_chosen", "improves", "improves_is_bad"]].reset_index(drop=True)
    return Portfolio(t, method, budget, float(t["cost"].sum()),
                     float(counted_beneficiaries(t)))


def counted_beneficiaries(table: pd.DataFrame) -> float:
    """Persons served, each counted once: per settlement only the largest intervention's count
    (interventions in one settlement serve the same households)."""
    if table.empty:
        return 0.0
    return float(table.groupby("settlement_id")["beneficiaries"].max().sum())


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------

@dataclass
class CufResult:
    """The settlement table with ``cuf_score``/``cuf_rank``, the priorities and the portfolio."""

    settlements: pd.DataFrame
    priorities: pd.DataFrame
    portfolio: Portfolio | None


def prioritise(settlements: pd.DataFrame, criteria: Sequence[Criterion] = DEFAULT_CRITERIA,
               interventions: Sequence[Intervention] = (), *, budget: float = 0.0,
               settlement_cap: float | None = None, community_min_share: float = 0.0,
               top_n: int = 10, perturbations: int = 1000, spread: float = 0.25,
               seed: int = 42, min_cell_size: int = 5, language: str = "en") -> CufResult:
    """Rank the settlements, test the ranking's robustness and choose a portfolio.

    ``settlements`` is the settlement table (CONTRACT.md §5). Returns it with ``cuf_score`` and
    ``cuf_rank`` filled, a priorities table in rank order (criteria parts, robustness,
    recommended interventions and the explanation in words), and the portfolio (None without
    a catalogue).
    """
    table = derive_columns(settlements, interventions)
    ranking = rank(table, criteria, min_cell_size, language)
    robust = robustness(ranking, perturbations, spread, top_n, seed) if perturbations else None
    port = None
    reasons = None
    if interventions:
        cands = candidates(table, ranking, interventions)
        port = portfolio(cands, budget, settlement_cap, community_min_share)
        reasons = top_need_reasons(table, ranking, interventions, cands, port, settlement_cap,
                                   language)
    r = ranking.table
    n_ranked = int(r["ranked"].sum())
    pri = pd.DataFrame({"cuf_rank": r["cuf_rank"], "settlement_id": r["settlement_id"],
                        "name": table["name"], "cuf_score": r["cuf_score"]})
    for c in ranking.criteria:
        for part in ("value", "normalised", "weight", "contribution"):
            pri[f"{c.name}_{part}"] = r[f"{c.name}_{part}"]
    if robust is not None:
        pri[f"p_top_{top_n}"] = robust["p_top_n"]
        pri["rank_p05"] = robust["rank_p05"]
        pri["rank_p95"] = robust["rank_p95"]
    if port is not None and not port.empty:
        t = port.table
        names = {iv.id: iv.name for iv in interventions}
        words = t.assign(text=t["units"].astype(str) + " × " + t["intervention"].map(names)
                         ).groupby("settlement_id")["text"].agg("; ".join)
        pri["recommended_interventions"] = pri["settlement_id"].map(words).fillna("")
        pri["portfolio_cost"] = pri["settlement_id"].map(t.groupby("settlement_id")["cost"]
                                                         .sum()).fillna(0.0)
        pri["portfolio_beneficiaries"] = pri["settlement_id"].map(
            t.groupby("settlement_id")["beneficiaries"].max()).fillna(0.0)
    else:
        pri["recommended_interventions"] = ""
    if reasons is not None:
        by_id = reasons.set_index(reasons["settlement_id"].astype(str))
        sid = pri["settlement_id"].astype(str)
        for col in ("top_need", "top_need_funded", "top_need_reason"):
            pri[col] = sid.map(by_id[col]).to_numpy() if len(by_id) else None
    pri["explanation"] = [explain(row, ranking.criteria, n_ranked, language)
                          for row in r.to_dict("records")]
    pri["criteria_left_out"] = "; ".join(f"{c.name} ({why})" for c, why in ranking.left_out)
    pri["not_ranked_reason"] = r["not_ranked_reason"]
    pri = pri.sort_values(["cuf_rank", "settlement_id"], na_position="last",
                          kind="stable").reset_index(drop=True)
    out = settlements.copy()
    out["cuf_score"] = r["cuf_score"].to_numpy()
    out["cuf_rank"] = r["cuf_rank"].to_numpy()
    return CufResult(out, pri, port)
