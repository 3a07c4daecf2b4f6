"""Household indicators (CONTRACT.md §4), their ladders, and the settlement and city tables.

Every indicator is defined once, in :data:`INDICATORS`, next to its source and its rule in words;
``docs/indicators.md`` is generated from these definitions (:func:`render_docs`). An indicator is
true, false or unknown (``pd.NA``): parts combine by Kleene's three-valued logic, which pandas'
nullable booleans implement (``False & NA`` is ``False``, ``True | NA`` is ``True``, otherwise NA).

All functions are vectorised over the household frame: a frame in, a boolean column out on the
same index. Thresholds come from :class:`Thresholds` (the configuration), never from constants
buried in a rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

BOOL = "boolean"

#: Sources cited by the definitions.
UN_HABITAT = ("UN-Habitat, SDG indicator 11.1.1 metadata (proportion of urban population living "
              "in slums, informal settlements or inadequate housing)")
JMP_WATER = "WHO/UNICEF Joint Monitoring Programme (JMP), drinking-water service ladder (SDG 6.1.1)"
JMP_SAN = "WHO/UNICEF Joint Monitoring Programme (JMP), sanitation service ladder (SDG 6.2.1)"
JMP_HYG = "WHO/UNICEF Joint Monitoring Programme (JMP), hygiene service ladder (SDG 6.2.1)"
SDG_142 = "SDG indicator 1.4.2 metadata (secure tenure rights: documentation and perception)"
CONTRACT = "CONTRACT.md §4 (this project's enumeration contract)"


@dataclass(frozen=True)
class Thresholds:
    """The values the rules compare with; every output states the ones used."""

    #: ``overcrowded`` when persons per sleeping room exceed this (UN-Habitat: more than 3).
    persons_per_room: float = 3.0
    #: ``water_basic`` when the round trip takes at most this many minutes (JMP: 30).
    water_minutes: float = 30.0
    #: a shared toilet is still ``sanitation_adequate`` for at most this many households.
    toilet_households: float = 2.0
    #: flood depth (m) at or above which a household is ``flood_exposed``.
    flood_exposed: float = 0.15
    #: flood depth (m) at or above which a household is in a ``hazardous_location``.
    flood_high: float = 0.5


# --------------------------------------------------------------------------------------------
# Three-valued building blocks
# --------------------------------------------------------------------------------------------

def _col(hh: pd.DataFrame, name: str) -> pd.Series:
    if name in hh.columns:
        return hh[name]
    return pd.Series(pd.NA, index=hh.index, dtype="object")


def is_in(values: pd.Series, allowed: Iterable[str]) -> pd.Series:
    """True when the answer is one of ``allowed``, false when it is another, NA when missing."""
    known = values.notna().to_numpy()
    hit = values.isin(list(allowed)).to_numpy(dtype=bool)
    return pd.Series(pd.array(hit, dtype=BOOL), index=values.index).mask(~known)


def compare(values: pd.Series, op: Callable[[np.ndarray, float], np.ndarray],
            threshold: float) -> pd.Series:
    """A numeric comparison, NA where the number is missing."""
    x = pd.to_numeric(values, errors="coerce").astype(float).to_numpy()
    known = ~np.isnan(x)
    out = np.zeros(len(x), dtype=bool)
    out[known] = op(x[known], threshold)
    return pd.Series(pd.array(out, dtype=BOOL), index=values.index).mask(~known)


def holds_any(values: pd.Series, tokens: Iterable[str]) -> pd.Series:
    """For a select_multiple answer (space-separated names): true when it holds any token."""
    import pyarrow as pa
    import pyarrow.compute as pc

    pattern = r"(?:^|\s)(?:" + "|".join(re.escape(t) for t in sorted(tokens)) + r")(?:\s|$)"
    arr = pa.array(values.astype("string"), type=pa.string(), from_pandas=True)
    hit = pc.match_substring_regex(arr, pattern)  # columnar (RE2), NA stays NA
    known = np.asarray(pc.is_valid(hit))
    out = np.asarray(pc.fill_null(hit, False))
    return pd.Series(pd.array(out, dtype=BOOL), index=values.index).mask(~known)


# --------------------------------------------------------------------------------------------
# The definitions
# --------------------------------------------------------------------------------------------

UNIMPROVED_WATER = ("unprotected_well", "unprotected_spring", "surface_water")
IMPROVED_SANITATION = ("flush_sewer", "flush_septic", "flush_pit", "flush_unknown", "vip_latrine",
                       "pit_slab", "composting")
DURABLE_WALLS = ("concrete_block", "brick_fired", "stone", "cement_plastered")
DURABLE_ROOFS = ("concrete", "tiles", "iron_sheet", "asbestos")
DURABLE_FLOORS = ("cement", "tiles", "wood")
TENURE_DOCUMENTS = ("title_deed", "lease", "allotment_letter", "sale_agreement",
                    "customary_certificate")


@dataclass(frozen=True)
class Indicator:
    """A household indicator: its name, rule in words, source and vectorised function."""

    name: str
    rule: str
    source: str
    compute: Callable[[pd.DataFrame, Thresholds, dict[str, pd.Series]], pd.Series]
    needs: tuple[str, ...] = field(default=())


def _water_improved(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    return ~is_in(_col(hh, "water_source"), UNIMPROVED_WATER)


def _water_basic(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    return d["water_improved"] & compare(_col(hh, "water_minutes"), np.less_equal,
                                         t.water_minutes)


def _water_on_premises(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    piped = is_in(_col(hh, "water_source"), ("piped_dwelling", "piped_yard"))
    zero = compare(_col(hh, "water_minutes"), np.equal, 0.0)
    return d["water_improved"] & (piped | zero)


def _sanitation_improved(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    return is_in(_col(hh, "toilet_type"), IMPROVED_SANITATION)


def _not_shared(hh: pd.DataFrame) -> pd.Series:
    return is_in(_col(hh, "toilet_shared"), ("no",))


def _sanitation_basic(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    return d["sanitation_improved"] & _not_shared(hh)


def _sanitation_adequate(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    few = compare(_col(hh, "toilet_households"), np.less_equal, t.toilet_households)
    return d["sanitation_improved"] & (_not_shared(hh) | few)


def _open_defecation(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    return is_in(_col(hh, "toilet_type"), ("no_facility",))


def _handwashing_basic(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    return is_in(_col(hh, "handwashing"), ("water_and_soap",))


def _waste_collected(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    return is_in(_col(hh, "waste_disposal"), ("collected_door", "collected_point"))


def _electricity_access(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    return ~is_in(_col(hh, "electricity"), ("none",))


def _tenure_documented(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    return holds_any(_col(hh, "tenure_documents"), TENURE_DOCUMENTS)


def _tenure_perceived_secure(hh: pd.DataFrame, t: Thresholds,
                             d: dict[str, pd.Series]) -> pd.Series:
    return is_in(_col(hh, "eviction_fear"), ("no",))


def _tenure_secure(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    return d["tenure_documented"] & d["tenure_perceived_secure"]


def _durable_housing(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    return (is_in(_col(hh, "wall_material"), DURABLE_WALLS)
            & is_in(_col(hh, "roof_material"), DURABLE_ROOFS)
            & is_in(_col(hh, "floor_material"), DURABLE_FLOORS))


def _overcrowded(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    size = pd.to_numeric(_col(hh, "hh_size"), errors="coerce").astype(float)
    rooms = pd.to_numeric(_col(hh, "rooms_sleeping"), errors="coerce").astype(float)
    return compare(size / rooms, np.greater, t.persons_per_room)


def _flood_exposed(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    return compare(_col(hh, "flood"), np.greater_equal, t.flood_exposed)


def _hazardous_location(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    return compare(_col(hh, "flood"), np.greater_equal, t.flood_high)


def _slum_household(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    return (~d["water_improved"] | ~d["sanitation_adequate"] | d["overcrowded"]
            | ~d["durable_housing"] | ~d["tenure_secure"])


INDICATORS: list[Indicator] = [
    Indicator("water_improved", "`water_source` is not `unprotected_well`, `unprotected_spring` "
              "or `surface_water` (packaged and delivered water count as improved)", JMP_WATER,
              _water_improved, ("water_source",)),
    Indicator("water_basic", "`water_improved` and `water_minutes` ≤ {water_minutes:g} "
              "(round trip, queueing included)", JMP_WATER, _water_basic,
              ("water_source", "water_minutes")),
    Indicator("water_on_premises", "`water_improved` and (`water_source` is `piped_dwelling` or "
              "`piped_yard`, or `water_minutes` = 0)", JMP_WATER, _water_on_premises,
              ("water_source", "water_minutes")),
    Indicator("sanitation_improved", "`toilet_type` is one of " + ", ".join(
        f"`{x}`" for x in IMPROVED_SANITATION), JMP_SAN, _sanitation_improved, ("toilet_type",)),
    Indicator("sanitation_basic", "`sanitation_improved` and `toilet_shared` = `no` (a shared "
              "improved toilet is JMP's 'limited')", JMP_SAN, _sanitation_basic,
              ("toilet_type", "toilet_shared")),
    Indicator("sanitation_adequate", "`sanitation_improved` and (`toilet_shared` = `no` or "
              "`toilet_households` ≤ {toilet_households:g})", UN_HABITAT, _sanitation_adequate,
              ("toilet_type", "toilet_shared", "toilet_households")),
    Indicator("open_defecation", "`toilet_type` = `no_facility`", JMP_SAN, _open_defecation,
              ("toilet_type",)),
    Indicator("handwashing_basic", "`handwashing` = `water_and_soap` (observed)", JMP_HYG,
              _handwashing_basic, ("handwashing",)),
    Indicator("waste_collected", "`waste_disposal` is `collected_door` or `collected_point`",
              CONTRACT, _waste_collected, ("waste_disposal",)),
    Indicator("electricity_access", "`electricity` is not `none`", CONTRACT,
              _electricity_access, ("electricity",)),
    Indicator("tenure_documented", "`tenure_documents` holds any of " + ", ".join(
        f"`{x}`" for x in TENURE_DOCUMENTS), SDG_142, _tenure_documented, ("tenure_documents",)),
    Indicator("tenure_perceived_secure", "`eviction_fear` = `no` (`dont_know` counts as false)",
              SDG_142, _tenure_perceived_secure, ("eviction_fear",)),
    Indicator("tenure_secure", "`tenure_documented` and `tenure_perceived_secure` "
              "(documentation and protection from eviction)", UN_HABITAT, _tenure_secure,
              ("tenure_documents", "eviction_fear")),
    Indicator("durable_housing", "wall in " + ", ".join(f"`{x}`" for x in DURABLE_WALLS)
              + "; roof in " + ", ".join(f"`{x}`" for x in DURABLE_ROOFS) + "; and floor in "
              + ", ".join(f"`{x}`" for x in DURABLE_FLOORS), UN_HABITAT, _durable_housing,
              ("wall_material", "roof_material", "floor_material")),
    Indicator("overcrowded", "`hh_size` / `rooms_sleeping` > {persons_per_room:g} persons per "
              "sleeping room", UN_HABITAT, _overcrowded, ("hh_size", "rooms_sleeping")),
    Indicator("flood_exposed", "flood depth of the raster cell holding the household's point ≥ "
              "{flood_exposed:g} m (nodata, or a point outside the raster: unknown)", CONTRACT,
              _flood_exposed, ("flood",)),
    Indicator("hazardous_location", "the same depth ≥ {flood_high:g} m", CONTRACT,
              _hazardous_location, ("flood",)),
    Indicator("slum_household", "lacks one or more of improved water (`water_improved`), "
              "adequate sanitation (`sanitation_adequate`), sufficient living area (not "
              "`overcrowded`), durable housing (`durable_housing`), secure tenure "
              "(`tenure_secure`): true as soon as one is lacking, unknown only when none is "
              "lacking and one is unknown", UN_HABITAT, _slum_household),
]
INDICATOR_NAMES = [i.name for i in INDICATORS]
#: The needs a household may name in ``priority_needs`` (up to three).
PRIORITY_NEEDS = ("water", "toilets", "drainage", "waste", "electricity", "paths_roads",
                  "street_lighting", "health", "school", "housing", "tenure")
#: The five components of UN-Habitat's slum-household definition, as deprivations.
DEPRIVATIONS = {
    "water": ("water_improved", False), "sanitation": ("sanitation_adequate", False),
    "living_area": ("overcrowded", True), "durable_housing": ("durable_housing", False),
    "tenure": ("tenure_secure", False),
}

# Ladders: (level, rule) from the top of the ladder down
LADDERS: dict[str, list[tuple[str, str]]] = {
    "water": [
        ("safely_managed", "improved, on premises and available when needed (`water_sufficient` "
                           "= `yes`); water quality is not surveyed, so this is an upper bound"),
        ("basic", "improved, collection within {water_minutes:g} minutes round trip"),
        ("limited", "improved, collection over {water_minutes:g} minutes"),
        ("unimproved", "unprotected well or spring"),
        ("surface_water", "drinking water taken directly from surface water"),
    ],
    "sanitation": [
        ("basic", "improved facility not shared with other households (safely managed needs "
                  "excreta management data the enumeration does not collect)"),
        ("limited", "improved facility shared with other households"),
        ("unimproved", "pit without slab, hanging latrine, bucket, or flush to an open drain"),
        ("open_defecation", "no facility"),
    ],
    "hygiene": [
        ("basic", "handwashing facility with water and soap"),
        ("limited", "facility lacking soap"),
        ("none", "no facility"),
    ],
}


def compute_indicators(hh: pd.DataFrame, thresholds: Thresholds | None = None) -> pd.DataFrame:
    """Every household indicator, ladder and the deprivation count, on the frame's index.

    Parameters
    ----------
    hh
        Households with the reference answers under their short names (``water_source``,
        ``hh_size``...) and, for the flood indicators, ``flood``: the depth (m) of the raster
        cell holding the household's point (NaN where unknown).
    thresholds
        The values the rules compare with.

    Returns
    -------
    DataFrame
        One nullable-boolean column per indicator of :data:`INDICATORS`; ``water_ladder``,
        ``sanitation_ladder``, ``hygiene_ladder`` (categoricals, top level first);
        ``deprivations`` (0–5, counted over the known components) with
        ``deprivations_unknown``; ``deprived_3plus`` (three or more deprivations, Kleene);
        ``priority_<need>`` for each need of :data:`PRIORITY_NEEDS`: the household named it
        among its priorities (unknown when it named none).
    """
    t = thresholds or Thresholds()
    done: dict[str, pd.Series] = {}
    for ind in INDICATORS:
        done[ind.name] = ind.compute(hh, t, done).astype(BOOL)
    out = pd.DataFrame(done, index=hh.index)
    out["water_ladder"] = _water_ladder(hh, out)
    out["sanitation_ladder"] = _sanitation_ladder(hh, out)
    out["hygiene_ladder"] = _hygiene_ladder(hh)
    deprived = pd.DataFrame({k: (out[col] if bad_when else ~out[col])
                             for k, (col, bad_when) in DEPRIVATIONS.items()})
    count = deprived.fillna(False).astype(int).sum(axis=1)
    unknown = deprived.isna().sum(axis=1)
    out["deprivations"] = count.astype("Int64")
    out["deprivations_unknown"] = unknown.astype("Int64")
    three = pd.array(np.where(count >= 3, True, False), dtype=BOOL)
    out["deprived_3plus"] = pd.Series(three, index=hh.index).mask(
        (count < 3) & (count + unknown >= 3))
    needs = _col(hh, "priority_needs")
    for need in PRIORITY_NEEDS:
        out[f"priority_{need}"] = holds_any(needs, (need,))
    return out


def _ladder(levels: list[str], choices: list[tuple[pd.Series, str]],
            index: pd.Index) -> pd.Series:
    """The first level whose condition is true; NA when a higher one is unknown."""
    result = pd.Series(pd.NA, index=index, dtype="object")
    undecided = np.ones(len(index), dtype=bool)
    for cond, level in choices:
        c = cond.astype(BOOL)
        true = c.fillna(False).to_numpy(dtype=bool) & undecided
        result[true] = level
        # an unknown condition blocks every lower level: the household's level is unknown
        undecided &= ~true & c.notna().to_numpy()
    return pd.Series(pd.Categorical(result, categories=levels, ordered=True), index=index)


def _water_ladder(hh: pd.DataFrame, ind: pd.DataFrame) -> pd.Series:
    src = _col(hh, "water_source")
    sufficient = is_in(_col(hh, "water_sufficient"), ("yes",))
    levels = [lvl for lvl, _ in LADDERS["water"]]
    return _ladder(levels, [
        (is_in(src, ("surface_water",)), "surface_water"),
        (is_in(src, ("unprotected_well", "unprotected_spring")), "unimproved"),
        (ind["water_on_premises"] & sufficient, "safely_managed"),
        (ind["water_basic"], "basic"),
        (ind["water_improved"], "limited"),
    ], hh.index)


def _sanitation_ladder(hh: pd.DataFrame, ind: pd.DataFrame) -> pd.Series:
    levels = [lvl for lvl, _ in LADDERS["sanitation"]]
    return _ladder(levels, [
        (ind["open_defecation"], "open_defecation"),
        (~ind["sanitation_improved"], "unimproved"),
        (ind["sanitation_basic"], "basic"),
        (ind["sanitation_improved"], "limited"),
    ], hh.index)


def _hygiene_ladder(hh: pd.DataFrame) -> pd.Series:
    levels = [lvl for lvl, _ in LADDERS["hygiene"]]
    hw = _col(hh, "handwashing")
    return _ladder(levels, [
        (is_in(hw, ("water_and_soap",)), "basic"),
        (is_in(hw, ("water_only",)), "limited"),
        (is_in(hw, ("none",)), "none"),
    ], hh.index)


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------

Z95 = 1.959963984540054


def wilson(x: np.ndarray, n: np.ndarray, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a proportion x/n (95% by default); NaN where n = 0.

    lo, hi = (p + z²/2n ∓ z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n), with p = x/n.
    """
    x = np.asarray(x, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = x / n
        denom = 1 + z * z / n
        center = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo, hi = np.clip(center - half, 0, 1), np.clip(center + half, 0, 1)
    bad = n <= 0
    lo[bad], hi[bad] = np.nan, np.nan
    return lo, hi


def aggregate(households: pd.DataFrame, indicators: pd.DataFrame, by: str = "settlement_id",
              groups: Iterable[str] | None = None, min_cell_size: int = 5) -> pd.DataFrame:
    """Aggregate household indicators into one row per group, with small-cell suppression.

    Parameters
    ----------
    households
        Households with ``by`` and ``hh_size``.
    indicators
        The output of :func:`compute_indicators` on the same index.
    groups
        Every group to report (e.g. all settlement ids, with or without households); by
        default the groups present.
    min_cell_size
        k: a group with fewer than k households has ``households``, ``population`` and every
        household-based column empty; a share whose ``_n`` is below k is empty with its ``_n``.

    Returns
    -------
    DataFrame
        Indexed by ``by``: ``households``, ``population``; per indicator ``<name>_share``
        (true / (true + false)), ``<name>_n`` (true + false), ``<name>_lo`` and ``<name>_hi``
        (95% Wilson interval); ``slum_population_share`` (persons in slum households over
        persons in households whose status is known); ladder shares
        ``<ladder>_ladder_<level>_share`` over ``<ladder>_ladder_n`` households with a known
        level; ``deprived_3plus_share``/``_n``; ``priority_<need>_share``: the share of
        households naming that need among their priorities.
    """
    key = households[by]
    index = pd.Index(list(groups) if groups is not None else sorted(key.dropna().unique()),
                     name=by)
    return finish(partial_counts(households, indicators, by), index, min_cell_size)


#: Indicators the city summary also weighs by persons (``<name>_persons_true``/``_known``).
PERSON_WEIGHTED = ("flood_exposed", "hazardous_location")


def _summed_names() -> list[str]:
    return [*INDICATOR_NAMES, "deprived_3plus", *(f"priority_{n}" for n in PRIORITY_NEEDS)]


def partial_counts(households: pd.DataFrame, indicators: pd.DataFrame,
                   by: str = "settlement_id") -> pd.DataFrame:
    """The sums behind :func:`aggregate`, per group present: counts that add up across parts.

    Computed on any part of the households (a Dask partition), the frames of all parts
    concatenated and summed by group (``pd.concat(parts).groupby(level=0).sum()``) equal the
    counts of the whole, exactly: every column is a count of households or a sum of integer
    ``hh_size`` values. :func:`finish` turns them into the table.

    Returns
    -------
    DataFrame
        Indexed by ``by`` (groups with at least one household): ``households``, ``population``;
        per indicator ``<name>_true`` and ``<name>_known``; ``slum_persons`` and
        ``slum_known_persons``, ``slum_known_n``; per ladder level ``<ladder>_ladder_<level>``
        (households) and ``<ladder>_ladder_<level>_persons``, ``<ladder>_ladder_known`` and
        ``<ladder>_ladder_known_persons``; for the flood indicators ``<name>_persons_true`` and
        ``<name>_persons_known`` (the person-weighted figures of :func:`city_summary`).
    """
    # one factorisation of the groups, then a weighted bincount per column: columnar, and
    # exact (sums of 0/1 and of whole household sizes, far below 2**53)
    codes, groups = pd.factorize(households[by], sort=True)
    ok = codes >= 0
    codes = codes[ok]
    g = len(groups)
    size = np.nan_to_num(pd.to_numeric(households["hh_size"], errors="coerce")
                         .to_numpy(dtype=float)[ok])

    def total(weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(codes, weights=weights, minlength=g).astype(float)

    def flags(v: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        known = v.notna().to_numpy()[ok]
        true = v.fillna(False).to_numpy(dtype=bool)[ok] & known
        return true, known

    cols: dict[str, np.ndarray] = {"households": total(), "population": total(size)}
    for name in _summed_names():
        true, known = flags(indicators[name])
        cols[f"{name}_true"] = total(true.astype(float))
        cols[f"{name}_known"] = total(known.astype(float))
    true, known = flags(indicators["slum_household"])
    cols["slum_persons"] = total(np.where(true, size, 0.0))
    cols["slum_known_persons"] = total(np.where(known, size, 0.0))
    cols["slum_known_n"] = total(known.astype(float))
    for name in PERSON_WEIGHTED:
        true, known = flags(indicators[name])
        cols[f"{name}_persons_true"] = total(np.where(true, size, 0.0))
        cols[f"{name}_persons_known"] = total(np.where(known, size, 0.0))
    for ladder, levels in LADDERS.items():
        names = [lv for lv, _ in levels]
        level = pd.Categorical(indicators[f"{ladder}_ladder"].to_numpy(dtype=object)[ok],
                               categories=names).codes
        on = level >= 0
        cell = codes[on] * len(names) + level[on]
        n = np.bincount(cell, minlength=g * len(names)).astype(float).reshape(g, len(names))
        p = np.bincount(cell, weights=size[on], minlength=g * len(names)).reshape(
            g, len(names))
        for j, lv in enumerate(names):
            cols[f"{ladder}_ladder_{lv}"] = n[:, j]
            cols[f"{ladder}_ladder_{lv}_persons"] = p[:, j]
        cols[f"{ladder}_ladder_known"] = n.sum(axis=1)
        cols[f"{ladder}_ladder_known_persons"] = p.sum(axis=1)
    table = pd.DataFrame(cols, index=pd.Index(groups, name=by))
    return table.copy()


def finish(counts: pd.DataFrame, groups: Iterable[str],
           min_cell_size: int = 5) -> pd.DataFrame:
    """:func:`aggregate`'s table from summed :func:`partial_counts`: shares, Wilson intervals
    and small-cell suppression, computed once on the whole counts."""
    index = pd.Index(list(groups), name=counts.index.name)
    c = counts.reindex(index, fill_value=0.0)
    cols: dict[str, pd.Series] = {"households": c["households"].astype(float),
                                  "population": c["population"].astype(float)}
    for name in _summed_names():
        x = c[f"{name}_true"].astype(float)
        n = c[f"{name}_known"].astype(float)
        cols[f"{name}_share"] = x / n.where(n > 0)
        cols[f"{name}_n"] = n
        lo, hi = wilson(x.to_numpy(), n.to_numpy())
        cols[f"{name}_lo"] = pd.Series(lo, index=index)
        cols[f"{name}_hi"] = pd.Series(hi, index=index)
    num, den = c["slum_persons"].astype(float), c["slum_known_persons"].astype(float)
    cols["slum_population_share"] = num / den.where(den > 0)
    cols["_slum_known_n"] = c["slum_known_n"].astype(float)
    for ladder, levels in LADDERS.items():
        counts_l = c[[f"{ladder}_ladder_{lv}" for lv, _ in levels]].astype(float)
        n = counts_l.sum(axis=1)
        cols[f"{ladder}_ladder_n"] = n
        for level, _ in levels:
            cols[f"{ladder}_ladder_{level}_share"] = counts_l[f"{ladder}_ladder_{level}"] / \
                n.where(n > 0)
    table = pd.DataFrame(cols, index=index)
    return suppress(table, min_cell_size)


def suppress(table: pd.DataFrame, k: int) -> pd.DataFrame:
    """Blank every household-based figure computed from fewer than ``k`` households."""
    out = table.copy()
    small = out["households"] < k
    hh_cols = [c for c in out.columns if c not in ("settlement_id", "name")]
    out.loc[small, hh_cols] = np.nan
    for c in [c for c in out.columns if c.endswith("_n")]:
        base = c[:-2]
        dependent = [x for x in out.columns if x != c and (
            x.startswith(base + "_") and x.rsplit("_", 1)[-1] in ("share", "lo", "hi"))]
        if base.endswith("_ladder"):
            dependent = [x for x in out.columns if x.startswith(base + "_")
                         and x.endswith("_share")]
        few = out[c] < k
        out.loc[few, [c, *dependent]] = np.nan
    few_slum = out["_slum_known_n"] < k
    out.loc[few_slum, "slum_population_share"] = np.nan
    return out.drop(columns=["_slum_known_n"]).copy()  # one block again after the masks


# --------------------------------------------------------------------------------------------
# Docs
# --------------------------------------------------------------------------------------------

def render_docs(thresholds: Thresholds | None = None) -> str:
    """``docs/indicators.md``, generated from the definitions above."""
    t = thresholds or Thresholds()
    values = {k: getattr(t, k) for k in t.__dataclass_fields__}
    lines = [
        "# Indicators",
        "",
        "Generated from `src/profiling/indicators.py` by "
        "`python -m profiling.indicators > docs/indicators.md`; do not edit by hand.",
        "",
        "Each household indicator is true, false or unknown. Parts combine by Kleene's "
        "three-valued logic: *and* is false as soon as one part is false, *or* is true as soon "
        "as one part is true, otherwise either is unknown when a part is unknown. A settlement's "
        "`<indicator>_share` is true / (true + false) and `<indicator>_n` counts true + false; "
        "`_lo` and `_hi` are the 95% Wilson interval. Figures from fewer households than the "
        "minimum cell size are left empty.",
        "",
        "Default thresholds (set in the configuration's `indicators` section): "
        + ", ".join(f"`{k}` = {v:g}" for k, v in values.items()) + ".",
        "",
        "| indicator | true when | source |",
        "|---|---|---|",
    ]
    for ind in INDICATORS:
        lines.append(f"| `{ind.name}` | {ind.rule.format(**values)} | {ind.source} |")
    lines += ["", "`slum_population_share`: persons (`hh_size`) in slum households over persons "
              "in households whose slum status is known (SDG 11.1.1 counts people).", "",
              "`deprivations`: how many of the five slum components (improved water, adequate "
              "sanitation, sufficient living area, durable housing, secure tenure) a household "
              "lacks, counted over the known ones; `deprived_3plus`: three or more.", ""]
    for ladder, levels in LADDERS.items():
        lines += [f"## The {ladder} ladder", "", "| level | rule |", "|---|---|"]
        lines += [f"| `{lvl}` | {rule.format(**values)} |" for lvl, rule in levels]
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The settlement table (CONTRACT.md §5) and the city summary
# --------------------------------------------------------------------------------------------

def contract_columns() -> list[str]:
    """Columns CONTRACT.md §5 fixes, in order."""
    return (["settlement_id", "name", "households", "population"]
            + [f"{i}_{s}" for i in INDICATOR_NAMES for s in ("share", "n")]
            + ["slum_population_share", "flood_area_share", "flood_depth_mean", "cuf_score",
               "cuf_rank"])


def settlement_indicators(settlements: pd.DataFrame, counts: pd.DataFrame,
                          min_cell_size: int = 5,
                          exposure: pd.DataFrame | None = None) -> pd.DataFrame:
    """The settlement table: one row per settlement (every one, with households or not).

    ``counts`` are the :func:`partial_counts` of the households inside the settlements (made in
    one piece, or summed over Dask partitions); the table is made from them by :func:`finish`.
    ``exposure`` holds area-based hazard figures indexed by ``settlement_id``; its
    ``flood_area_share_exposed`` and ``flood_mean`` give the contract's ``flood_area_share`` and
    ``flood_depth_mean``. Area-based figures describe land, not households, and are never
    suppressed. ``cuf_score``/``cuf_rank`` are left empty for the prioritisation stage.
    """
    ids = settlements["settlement_id"].tolist()
    agg = finish(counts, ids, min_cell_size)
    extra: dict[str, object] = {
        "name": settlements.set_index("settlement_id").loc[ids, "name"].to_numpy(),
        "flood_area_share": np.nan, "flood_depth_mean": np.nan,
    }
    if exposure is not None and len(exposure):
        ex = exposure.reindex(ids)
        if "flood_area_share_exposed" in ex:
            extra["flood_area_share"] = ex["flood_area_share_exposed"].to_numpy()
        if "flood_mean" in ex:
            extra["flood_depth_mean"] = ex["flood_mean"].to_numpy()
        for c in ex.columns:
            if c not in ("flood_area_share_exposed", "flood_mean"):
                extra[c if c.startswith("flood") else f"hazard_{c}"] = ex[c].to_numpy()
    extra["cuf_score"] = np.nan
    extra["cuf_rank"] = pd.array([pd.NA] * len(ids), dtype="Int64")
    table = pd.concat([agg.reset_index(), pd.DataFrame(extra, index=range(len(ids)))], axis=1)
    lead = contract_columns()
    rest = [c for c in table.columns if c not in lead]
    return table[lead + rest]


def city_summary(counts: pd.DataFrame, thresholds: Thresholds | None = None,
                 min_cell_size: int = 5, published: pd.DataFrame | None = None) -> pd.DataFrame:
    """City-wide headline figures, each with numerator, denominator, unit and definition.

    ``counts`` are the settlements' summed :func:`partial_counts` (households inside a
    settlement only: households outside every settlement belong to none), indexed by
    ``settlement_id``; every figure is a sum of them, so the summary is the same whether the
    counts were made in one piece or added up over Dask partitions. With ``published`` (the
    suppressed settlement table), each figure is computed only over the settlements whose
    corresponding cell is published, and the row names the settlements left out
    (``excluded_settlements``): a suppressed settlement's figure can then never be recovered by
    subtracting the published settlements from the city total.
    """
    t = thresholds or Thresholds()
    rows: list[dict[str, object]] = []
    current: dict[str, object] = {"counts": counts, "excluded": ""}

    def restrict(column: str) -> None:
        """Use only settlements whose ``column`` is published in the settlement table."""
        if published is None or column not in published:
            current.update(counts=counts, excluded="")
            return
        shown = published.set_index("settlement_id")[column].notna()
        hidden = sorted(shown.index[~shown.to_numpy()].astype(str))
        current.update(counts=counts[counts.index.isin(shown.index[shown.to_numpy()])],
                       excluded=" ".join(hidden))

    def total(column: str) -> float:
        c = current["counts"]
        assert isinstance(c, pd.DataFrame)
        return float(c[column].sum())

    def add(name: str, num: str, den: str, n: str, unit: str, definition: str) -> None:
        x, d, k = total(num), total(den), int(total(n))
        ok = k >= min_cell_size and d > 0
        excluded = str(current["excluded"])
        note = (f"; settlements whose figure is suppressed are left out: {excluded}"
                if excluded else "")
        rows.append({"indicator": name, "numerator": x if ok else np.nan,
                     "denominator": d if ok else np.nan,
                     "value": (x / d) if ok else np.nan, "unit": unit,
                     "households": k if k >= min_cell_size else np.nan,
                     "definition": definition + note, "excluded_settlements": excluded})

    restrict("slum_household_n")
    add("sdg_11_1_1_slum_population", "slum_persons", "population", "households",
        "share of persons",
        "SDG 11.1.1: persons in slum households (UN-Habitat's five deprivations) over persons "
        "enumerated; households whose status is unknown count in the denominator only")
    add("slum_population_known_status", "slum_persons", "slum_known_persons", "slum_known_n",
        "share of persons",
        "persons in slum households over persons in households whose slum status is known")
    for ladder, levels in LADDERS.items():
        restrict(f"{ladder}_ladder_n")
        sdg = "SDG 6.1.1" if ladder == "water" else "SDG 6.2.1"
        for level, rule in levels:
            add(f"{ladder}_ladder_{level}", f"{ladder}_ladder_{level}_persons",
                f"{ladder}_ladder_known_persons", f"{ladder}_ladder_known", "share of persons",
                f"{sdg} ({ladder} ladder): persons in households at level '{level}' "
                f"({rule.format(**t.__dict__)}) over persons whose level is known")
    for name, label in (("tenure_documented", "with a tenure document"),
                        ("tenure_perceived_secure", "not fearing eviction"),
                        ("tenure_secure", "with documented and perceived secure tenure")):
        restrict(f"{name}_n")
        add(f"sdg_1_4_2_{name}", f"{name}_true", f"{name}_known", f"{name}_known",
            "share of households", f"SDG 1.4.2 style: households {label} over households whose "
            "answer is known")
    for name, label in (("flood_exposed", f"at or above {t.flood_exposed:g} m"),
                        ("hazardous_location", f"at or above {t.flood_high:g} m")):
        restrict(f"{name}_n")
        add(f"{name}_households", f"{name}_true", f"{name}_known", f"{name}_known",
            "share of households", f"households whose point's flood depth is {label} over "
            "households with a modelled depth")
        add(f"{name}_persons", f"{name}_persons_true", f"{name}_persons_known", f"{name}_known",
            "share of persons", f"persons in households whose point's flood depth is {label} "
            "over persons in households with a modelled depth")
    return pd.DataFrame(rows)


if __name__ == "__main__":  # pragma: no cover - `python -m profiling.indicators > docs/...`
    print(render_docs(), end="")
