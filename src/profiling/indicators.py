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

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from profiling.config import FLOOD_THRESHOLDS  # the reference layer's, where config sets them
from profiling.i18n import english

BOOL = "boolean"

#: Sources cited by the definitions.
UN_HABITAT = "UN-Habitat, SDG 11.1.1 metadata (2021) and the 2002 expert group"
JMP_WATER = "WHO/UNICEF JMP drinking-water ladder (2017; SDG 6.1.1)"
JMP_SAN = "WHO/UNICEF JMP sanitation ladder (2017; SDG 6.2.1)"
JMP_HYG = "WHO/UNICEF JMP hygiene ladder (2017; SDG 6.2.1)"
SDG_142 = "UN-Habitat and World Bank, SDG 1.4.2 metadata"
CONTRACT = "CONTRACT.md §4 (this project's enumeration contract)"
#: Each source in a few words, for a table that cites it on every row (the full text once).
SOURCE_SHORT = {UN_HABITAT: "UN-Habitat", JMP_WATER: "JMP water", JMP_SAN: "JMP sanitation",
                JMP_HYG: "JMP hygiene", SDG_142: "SDG 1.4.2", CONTRACT: "Contract §4"}


@dataclass(frozen=True)
class HazardRule:
    """What one hazard's figures compare with (CONTRACT.md §3): its name, the ``exposed`` and
    ``high`` thresholds (either may be absent), its kind and unit, and its value in words
    (``flood depth``, ``landslide susceptibility class``, ``land surface temperature``)."""

    name: str
    exposed: float | None = None
    high: float | None = None
    kind: str = "depth"
    unit: str = "m"
    words: str = ""
    #: a stack of scenarios: the households' value column of each (``flood_rp10``...), the
    #: first being the one ``<name>_exposed`` reads; with ``return_periods`` (years, in the
    #: same order), the expected annual exposure is computed too
    scenarios: tuple[str, ...] = ()
    return_periods: tuple[float, ...] = ()

    @property
    def column(self) -> str:
        """The households' column the indicators read: the value under the point (for a
        stack, the first scenario's)."""
        return self.scenarios[0] if self.scenarios else self.name

    def value(self, v: float | None) -> str:
        """A threshold with its unit: ``0.15 m``, ``35 °C``, ``3``."""
        return "" if v is None else f"{v:g} {self.unit}".strip()

    @property
    def mean_column(self) -> str:
        """The settlement column of the mean value: ``<name>_depth_mean`` for a depth (the
        flood layer's ``flood_depth_mean``), ``<name>_mean`` otherwise."""
        return f"{self.name}_depth_mean" if self.kind == "depth" else f"{self.name}_mean"


#: The reference flood layer's rule (CONTRACT.md §3), the default of :class:`Thresholds`.
FLOOD = HazardRule("flood", FLOOD_THRESHOLDS["exposed"], FLOOD_THRESHOLDS["high"], "depth", "m",
                   "flood depth")


@dataclass(frozen=True)
class Thresholds:
    """The values the rules compare with; every output states the ones used."""

    #: ``overcrowded`` when persons per sleeping room exceed this (UN-Habitat: more than 3).
    persons_per_room: float = 3.0
    #: ``water_basic`` when the round trip takes at most this many minutes (JMP: 30).
    water_minutes: float = 30.0
    #: a shared toilet is still ``sanitation_adequate`` for at most this many households.
    toilet_households: float = 2.0
    #: the hazards and their thresholds: ``<name>_exposed`` for each with an ``exposed``
    #: threshold, ``hazardous_location`` over those with a ``high`` one.
    hazards: tuple[HazardRule, ...] = (FLOOD,)
    #: the documents that make a household ``tenure_documented`` (SDG 1.4.2 leaves the list
    #: to each country; the default is CONTRACT.md §4's).
    tenure_documents: tuple[str, ...] = (
        "title_deed", "lease", "allotment_letter", "sale_agreement", "customary_certificate")
    #: indicators whose fields the run's surveys never collected (:func:`not_collected`):
    #: left out of every table, and the slum status is decided without their components.
    not_collected: frozenset[str] = frozenset()

    def parameters(self) -> dict[str, float | str]:
        """The settings as a run states them (``parameters.csv``): numbers, and the document
        list in words."""
        out: dict[str, float | str] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "tenure_documents":
                out[f.name] = ", ".join(f"`{x}`" for x in v)
            elif f.name == "hazards":
                for h in v:
                    out |= {f"{h.name}_{k}": getattr(h, k) for k in ("exposed", "high")
                            if getattr(h, k) is not None}
            elif isinstance(v, (int, float)):
                out[f.name] = v
        return out


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
    return _holding(values, {"any": tuple(tokens)})["any"]


def holds_each(values: pd.Series, tokens: Iterable[str]) -> dict[str, pd.Series]:
    """:func:`holds_any` for each token alone, from one split of the answers (a need named
    among a household's priorities, for every need, in one pass instead of one per need)."""
    return _holding(values, {t: (t,) for t in tokens})


def _holding(values: pd.Series, groups: dict[str, tuple[str, ...]]) -> dict[str, pd.Series]:
    """Per group of tokens, whether each answer holds any of them (NA where unanswered): the
    answers are split on white space once, their few distinct words dictionary-encoded, and
    each group is a lookup of word codes."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(values.astype("string"), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    lists = pc.utf8_split_whitespace(arr)
    parent = np.asarray(pc.list_parent_indices(lists))
    words = pc.dictionary_encode(pc.list_flatten(lists))
    codes = np.asarray(words.indices.fill_null(-1))
    vocabulary = {w: i for i, w in enumerate(words.dictionary.to_pylist())}
    known = np.asarray(pc.is_valid(arr))
    out = {}
    for name, tokens in groups.items():
        hit = np.isin(codes, [vocabulary[t] for t in tokens if t in vocabulary])
        has = np.bincount(parent[hit], minlength=len(arr)) > 0
        out[name] = pd.Series(pd.array(has, dtype=BOOL), index=values.index).mask(~known)
    return out


# --------------------------------------------------------------------------------------------
# The definitions
# --------------------------------------------------------------------------------------------

UNIMPROVED_WATER = ("unprotected_well", "unprotected_spring", "surface_water")
IMPROVED_SANITATION = ("flush_sewer", "flush_septic", "flush_pit", "flush_unknown", "vip_latrine",
                       "pit_slab", "composting")
DURABLE_WALLS = ("concrete_block", "brick_fired", "stone", "cement_plastered")
DURABLE_ROOFS = ("concrete", "tiles", "iron_sheet", "asbestos")
DURABLE_FLOORS = ("cement", "tiles", "wood")
TENURE_DOCUMENTS = Thresholds.tenure_documents


@dataclass(frozen=True)
class Indicator:
    """A household indicator: its name, rule in words, source and vectorised function."""

    name: str
    rule: str
    source: str
    compute: Callable[[pd.DataFrame, Thresholds, dict[str, pd.Series]], pd.Series]
    needs: tuple[str, ...] = field(default=())
    #: further fields it reads when they are there (none of them is needed to compute it)
    reads: tuple[str, ...] = field(default=())
    #: read from hazard rasters (``needs`` names their value columns), not from the surveys
    hazard: bool = False
    #: how the map and the atlas name it, and the atlas section it stands in
    label: str = ""
    section: str = ""


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
    return holds_any(_col(hh, "tenure_documents"), t.tenure_documents)


def _tenure_perceived_secure(hh: pd.DataFrame, t: Thresholds,
                             d: dict[str, pd.Series]) -> pd.Series:
    return is_in(_col(hh, "eviction_fear"), ("no",))


def _tenure_secure(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    return d["tenure_documented"] | d["tenure_perceived_secure"]


def _durable_housing(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    return (is_in(_col(hh, "wall_material"), DURABLE_WALLS)
            & is_in(_col(hh, "roof_material"), DURABLE_ROOFS)
            & is_in(_col(hh, "floor_material"), DURABLE_FLOORS))


def _overcrowded(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    size = pd.to_numeric(_col(hh, "hh_size"), errors="coerce").astype(float)
    rooms = pd.to_numeric(_col(hh, "rooms_sleeping"), errors="coerce").astype(float)
    return compare(size / rooms, np.greater, t.persons_per_room)


def _female_headed(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    return is_in(_col(hh, "hh_head_sex"), ("female",))


def _exposed(h: HazardRule, hh: pd.DataFrame, t: Thresholds,
             d: dict[str, pd.Series]) -> pd.Series:
    assert h.exposed is not None
    return compare(_col(hh, h.column), np.greater_equal, h.exposed)


def _hazardous_location(rules: tuple[HazardRule, ...], hh: pd.DataFrame, t: Thresholds,
                        d: dict[str, pd.Series]) -> pd.Series:
    """Kleene "or" over the hazards: true when any value is at or above its ``high``
    threshold, false when every value is known and below, unknown otherwise."""
    out = pd.Series(pd.array([False] * len(hh), dtype=BOOL), index=hh.index)
    for h in rules:
        assert h.high is not None
        out = out | compare(_col(hh, h.column), np.greater_equal, h.high)
    return out


def hazard_indicators(rules: Sequence[HazardRule]) -> list[Indicator]:
    """The household indicators of the configured hazards (CONTRACT.md §3): ``<name>_exposed``
    for each hazard with an ``exposed`` threshold, and ``hazardous_location`` over every hazard
    with a ``high`` one."""
    out = [Indicator(f"{h.name}_exposed", f"{h.words} of the raster cell holding the "
                     f"household's point ≥ {h.value(h.exposed)}" + (
                         f" in scenario {h.column.removeprefix(h.name + '_')}" if h.scenarios
                         else "") + " (nodata, or a point outside the raster: unknown)",
                     CONTRACT, partial(_exposed, h), (h.column,), hazard=True,
                     label=f"Households where {h.words} ≥ {h.value(h.exposed)}",
                     section=HAZARD_SECTION)
           for h in rules if h.exposed is not None]
    high = tuple(h for h in rules if h.high is not None)
    if high:
        out.append(Indicator(
            "hazardous_location", "under the household's point, " + "; or ".join(
                f"{h.words} ≥ {h.value(h.high)}" for h in high) + (
                " (true as soon as one is; false when every value is known and below)"
                if len(high) > 1 else ""),
            CONTRACT, partial(_hazardous_location, high), tuple(h.column for h in high),
            hazard=True, label="Households in a hazardous location (" + "; or ".join(
                f"{h.words} ≥ {h.value(h.high)}" for h in high) + ")",
            section=HAZARD_SECTION))
    return out


def is_hazard_indicator(name: str) -> bool:
    """Whether an indicator is read from a hazard raster (CONTRACT.md §3 names them
    ``<hazard>_exposed`` and ``hazardous_location``); a stack's expected annual exposure
    (``<hazard>_expected_annual_exposure``, a probability) is not one of them."""
    return name == "hazardous_location" or name.endswith("_exposed")


def _slum_household(hh: pd.DataFrame, t: Thresholds, d: dict[str, pd.Series]) -> pd.Series:
    """Deprived on any collected component (Kleene "or" of the deprivations); unknown for
    every household when no component was collected."""
    parts = [d[col] if bad_when else ~d[col] for comp, (col, bad_when) in DEPRIVATIONS.items()
             if comp in slum_components(t.not_collected)]
    out = pd.Series(pd.array([pd.NA] * len(hh), dtype=BOOL), index=hh.index)
    if parts:
        out = parts[0]
        for p in parts[1:]:
            out = out | p
    return out


SURVEY_INDICATORS: list[Indicator] = [
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
              ("toilet_type", "toilet_shared"),  # a shared toilet's users may be unknown
              reads=("toilet_households",)),
    Indicator("open_defecation", "`toilet_type` = `no_facility`", JMP_SAN, _open_defecation,
              ("toilet_type",)),
    Indicator("handwashing_basic", "`handwashing` = `water_and_soap` (observed)", JMP_HYG,
              _handwashing_basic, ("handwashing",)),
    Indicator("waste_collected", "`waste_disposal` is `collected_door` or `collected_point`",
              CONTRACT, _waste_collected, ("waste_disposal",)),
    Indicator("electricity_access", "`electricity` is not `none`", CONTRACT,
              _electricity_access, ("electricity",)),
    Indicator("tenure_documented", "`tenure_documents` holds any of {tenure_documents} (the "
              "configuration's `indicators: tenure_documents`)", SDG_142, _tenure_documented,
              ("tenure_documents",)),
    Indicator("tenure_perceived_secure", "`eviction_fear` = `no` (`dont_know` counts as false)",
              SDG_142, _tenure_perceived_secure, ("eviction_fear",)),
    Indicator("tenure_secure", "`tenure_documented` or `tenure_perceived_secure`: evidence of "
              "documentation, or de facto or perceived protection against forced eviction",
              UN_HABITAT, _tenure_secure, ("tenure_documents", "eviction_fear")),
    Indicator("durable_housing", "wall in " + ", ".join(f"`{x}`" for x in DURABLE_WALLS)
              + "; roof in " + ", ".join(f"`{x}`" for x in DURABLE_ROOFS) + "; and floor in "
              + ", ".join(f"`{x}`" for x in DURABLE_FLOORS), UN_HABITAT, _durable_housing,
              ("wall_material", "roof_material", "floor_material")),
    Indicator("overcrowded", "`hh_size` / `rooms_sleeping` > {persons_per_room:g} persons per "
              "sleeping room", UN_HABITAT, _overcrowded, ("hh_size", "rooms_sleeping")),
    Indicator("female_headed", "the head of household is female: the roster's member whose "
              "`member_relation` is `head`, or `hh_head_sex` without a roster", CONTRACT,
              _female_headed, ("hh_head_sex",)),
]
SLUM = Indicator("slum_household", "lacks one or more of improved water (`water_improved`), "
              "adequate sanitation (`sanitation_adequate`), sufficient living area (not "
              "`overcrowded`), durable housing (`durable_housing`), secure tenure "
              "(`tenure_secure`): true as soon as one is lacking, unknown only when none is "
              "lacking and one is unknown; a component the surveys never collected is left "
              "out (the run names the components it used)", UN_HABITAT, _slum_household)


#: Fields read beside the indicators' own: the ladders' (water available when needed, the
#: handwashing facility), the priorities', and the household size every count weighs persons by.
OTHER_READS = ("water_sufficient", "handwashing", "priority_needs", "hh_size")


def fields_read() -> tuple[str, ...]:
    """Every survey field the household computation reads (:func:`compute_indicators` and
    :func:`partial_counts`), as the indicators declare them: what a Dask worker receives."""
    out: dict[str, None] = {}
    for ind in SURVEY_INDICATORS:
        out |= dict.fromkeys((*ind.needs, *ind.reads))
    return (*out, *(f for f in OTHER_READS if f not in out))


#: The atlas's sections of household shares, in order, and how each indicator is named there
#: and on the map: (section, label) by indicator.
SECTION_ORDER = ("Tenure", "Housing and overcrowding", "Services", "Hazard exposure of households",
                 "Households")
HAZARD_SECTION = "Hazard exposure of households"
_SHOWN = {
    "tenure_documented": ("Tenure", "Tenure documented"),
    "tenure_perceived_secure": ("Tenure", "No fear of eviction"),
    "tenure_secure": ("Tenure", "Secure tenure (documented or no fear of eviction)"),
    "durable_housing": ("Housing and overcrowding", "Durable housing"),
    "overcrowded": ("Housing and overcrowding", "Overcrowded"),
    "slum_household": ("Housing and overcrowding", "Slum households (UN-Habitat)"),
    "water_improved": ("Services", "Improved water source"),
    "water_basic": ("Services", "Basic drinking water"),
    "water_on_premises": ("Services", "Water on premises"),
    "sanitation_improved": ("Services", "Improved sanitation"),
    "sanitation_basic": ("Services", "Basic sanitation"),
    "sanitation_adequate": ("Services", "Adequate sanitation (UN-Habitat)"),
    "open_defecation": ("Services", "Open defecation"),
    "handwashing_basic": ("Services", "Handwashing with water and soap"),
    "waste_collected": ("Services", "Waste collected"),
    "electricity_access": ("Services", "Electricity"),
    "female_headed": ("Households", "Households headed by a woman"),
}
SURVEY_INDICATORS = [replace(i, section=_SHOWN[i.name][0], label=_SHOWN[i.name][1])
                     for i in SURVEY_INDICATORS]
SLUM = replace(SLUM, section=_SHOWN[SLUM.name][0], label=_SHOWN[SLUM.name][1])


def indicators_for(t: Thresholds) -> list[Indicator]:
    """Every household indicator of a run, in the tables' order: the survey-based ones, the
    hazards' (:func:`hazard_indicators` of ``t.hazards``), then ``slum_household``."""
    return [*SURVEY_INDICATORS, *hazard_indicators(t.hazards), SLUM]


def sections(indicators: Iterable[Indicator]) -> dict[str, list[Indicator]]:
    """The indicators by atlas section, in :data:`SECTION_ORDER` and the registry's order."""
    out: dict[str, list[Indicator]] = {name: [] for name in SECTION_ORDER}
    for ind in indicators:
        out.setdefault(ind.section, []).append(ind)
    return {k: v for k, v in out.items() if v}


#: The indicators with the default thresholds (the reference flood layer as the one hazard).
INDICATORS: list[Indicator] = indicators_for(Thresholds())
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

def not_collected(columns: Iterable[str]) -> frozenset[str]:
    """The indicators whose fields no survey of the run collected: any of the survey fields an
    indicator needs is missing from ``columns`` (the households' columns: a field that is
    present but blank was collected, and its answers are unknown)."""
    have = set(columns)
    return frozenset(i.name for i in SURVEY_INDICATORS if i.needs
                     and not set(i.needs) <= have)


def coverage(households: pd.DataFrame) -> list[tuple[str, str, int, int]]:
    """What a run can compute from these households, indicator by indicator (the survey-based
    ones; the hazard ones come from the rasters): ``(name, status, have, of)`` where status is
    ``computable`` (every household has the fields it needs), ``partly`` (``have`` of the
    ``of`` households have them all) or ``not collected`` (a field it needs has no column)."""
    gone = not_collected(households.columns)
    n = len(households)
    out = []
    for ind in SURVEY_INDICATORS:
        if not ind.needs:
            continue
        if ind.name in gone:
            out.append((ind.name, "not collected", 0, n))
            continue
        have = households[list(ind.needs)].notna().all(axis=1).to_numpy()
        out.append((ind.name, "computable" if n and have.all() else "partly",
                    int(have.sum()), n))
    return out


def slum_components(missing: Iterable[str] = ()) -> list[str]:
    """The slum components (:data:`DEPRIVATIONS`) whose indicator was collected."""
    gone = set(missing)
    return [comp for comp, (col, _) in DEPRIVATIONS.items() if col not in gone]


def component_words(missing: Iterable[str] = (), _: Callable[..., str] | None = None) -> str:
    """Which components decide the slum status, in a sentence (the city summary's note and
    the atlas say it), in the language of ``_`` (English by default)."""
    tr = _ or english
    used = slum_components(missing)
    left = [c for c in DEPRIVATIONS if c not in used]
    words = ", ".join(tr(c.replace("_", " ")) for c in used) or tr("none")
    if not left:
        return tr("Slum status is decided on all five components: %(words)s.", words=words)
    return tr("Slum status is decided on the components the surveys collected: %(words)s; not "
              "collected: %(left)s. A household is counted as a slum household when it lacks "
              "one of those collected, so the share is a lower bound of UN-Habitat's "
              "five-component figure.",
              words=words, left=", ".join(tr(c.replace("_", " ")) for c in left))


def components_left_out(sentence: str) -> list[str]:
    """The indicators of the slum components that :func:`component_words` (in English) says
    were not collected: how a later reader of the city summary says it again in another
    language."""
    head = "not collected: "
    if head not in sentence:
        return []
    said = sentence.split(head, 1)[1].split(".", 1)[0].split(", ")
    return [DEPRIVATIONS[c][0] for c in DEPRIVATIONS if c.replace("_", " ") in said]


#: How a ladder level is named where its key is not plain enough.
LEVEL_LABELS = {"safely_managed_upper_bound": "safely managed (upper bound: quality not tested)"}


def level_label(level: str) -> str:
    """A ladder level in words (``safely_managed_upper_bound``: says it is an upper bound)."""
    return LEVEL_LABELS.get(level, level.replace("_", " "))


#: The city summary's figures in plain words, by the summary's ``indicator`` name; ladder
#: levels and hazards are named by :func:`city_label`.
CITY_LABELS = {
    "sdg_11_1_1_slum_population": "Persons living in slum households (SDG 11.1.1)",
    "slum_population_over_known_status":
        "Persons living in slum households, of those whose slum status is known",
    "slum_components": "Slum components used",
    "sdg_1_4_2_tenure_documented": "Households with a tenure document (as SDG 1.4.2 (a))",
    "sdg_1_4_2_tenure_perceived_secure": "Households not fearing eviction (as SDG 1.4.2 (b))",
    "sdg_1_4_2_tenure_secure": "Households with secure tenure (documented or not fearing "
                               "eviction)",
    "hazardous_location_households": "Households in a hazardous location",
    "hazardous_location_persons": "Persons in households in a hazardous location",
}
_LADDER_WORDS = {"water": "Drinking water", "sanitation": "Sanitation", "hygiene": "Hygiene"}


def city_label(name: str, hazards: Sequence[HazardRule] = (),
               _: Callable[..., str] | None = None) -> str:
    """A city summary figure named in words: the registry's label, a ladder's level
    ("Drinking water: basic"), or a hazard's households or persons exposed; in the language
    of ``_`` (English by default)."""
    tr = _ or english
    if name in CITY_LABELS:
        return tr(CITY_LABELS[name])
    for ladder, words in _LADDER_WORDS.items():
        if name.startswith(f"{ladder}_ladder_"):
            return (f"{tr(words)}: "
                    f"{tr(level_label(name.removeprefix(f'{ladder}_ladder_')))}")
    for h in hazards:
        for unit, who in (("households", "Households where %(hazard)s ≥ %(value)s"),
                          ("persons", "Persons in households where %(hazard)s ≥ %(value)s")):
            if name == f"{h.name}_exposed_{unit}" and h.exposed is not None:
                return tr(who, hazard=hazard_words(h, tr), value=h.value(h.exposed))
    return name.replace("_", " ").capitalize()


# Ladders: (level, rule) from the top of the ladder down
LADDERS: dict[str, list[tuple[str, str]]] = {
    "water": [
        ("safely_managed_upper_bound", "improved, on premises and available when needed "
                                       "(`water_sufficient` = `yes`); water quality is not "
                                       "tested, so an upper bound of JMP's safely managed"),
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
        ("limited", "water but no soap (JMP: lacking soap or water; the form cannot record "
                    "soap without water)"),
        ("none", "no facility"),
    ],
}


def compute_indicators(hh: pd.DataFrame, thresholds: Thresholds | None = None) -> pd.DataFrame:
    """Every household indicator, ladder and the deprivation count, on the frame's index.

    Parameters
    ----------
    hh
        Households with the reference answers under their short names (``water_source``,
        ``hh_size``...) and, for each hazard's indicators, a column named after the hazard
        (``flood``): the value of the raster cell holding the household's point (NaN where
        unknown).
    thresholds
        The values the rules compare with, and the indicators the surveys never collected
        (``not_collected``: all unknown here, and left out of the slum status).

    Returns
    -------
    DataFrame
        One nullable-boolean column per indicator of :data:`INDICATORS`; ``water_ladder``,
        ``sanitation_ladder``, ``hygiene_ladder`` (categoricals, top level first);
        ``deprivations`` (0–5, counted over the known components that were collected) with
        ``deprivations_unknown``; ``deprived_3plus`` (three or more deprivations, Kleene);
        ``priority_<need>`` for each need of :data:`PRIORITY_NEEDS`: the household named it
        among its priorities (unknown when it named none).
    """
    t = thresholds or Thresholds()
    done: dict[str, pd.Series] = {}
    for ind in indicators_for(t):
        done[ind.name] = (pd.Series(pd.array([pd.NA] * len(hh), dtype=BOOL), index=hh.index)
                          if ind.name in t.not_collected else ind.compute(hh, t, done)
                          .astype(BOOL))
    out = pd.DataFrame(done, index=hh.index)
    out["water_ladder"] = _water_ladder(hh, out)
    out["sanitation_ladder"] = _sanitation_ladder(hh, out)
    out["hygiene_ladder"] = _hygiene_ladder(hh)
    used = slum_components(t.not_collected)
    deprived = pd.DataFrame({k: (out[col] if bad_when else ~out[col])
                             for k, (col, bad_when) in DEPRIVATIONS.items() if k in used},
                            index=hh.index)
    count = deprived.fillna(False).astype(int).sum(axis=1)
    unknown = deprived.isna().sum(axis=1)
    out["deprivations"] = count.astype("Int64")
    out["deprivations_unknown"] = unknown.astype("Int64")
    three = pd.array(np.where(count >= 3, True, False), dtype=BOOL)
    out["deprived_3plus"] = pd.Series(three, index=hh.index).mask(
        (count < 3) & (count + unknown >= 3))
    for need, named in holds_each(_col(hh, "priority_needs"), PRIORITY_NEEDS).items():
        out[f"priority_{need}"] = named
    for h in t.hazards:
        if h.return_periods and h.exposed is not None:
            out[f"{h.name}{ANNUAL}"] = expected_annual_exposure(hh, h)
    return out


#: The suffix of a hazard's expected annual exposure (a household's yearly probability).
ANNUAL = "_expected_annual_exposure"


def expected_annual_exposure(hh: pd.DataFrame, h: HazardRule) -> pd.Series:
    """Each household's expected annual exposure to a stack of return periods: the area under
    its risk curve of being at or above ``exposed`` (1 in a scenario where its value is, else
    0), the trapezoidal rule over the exceedance probabilities 1/T with the rarest scenario
    held to 0 (:func:`profiling.hazard.expected_annual`): the probability, per year, that the
    household is exposed. NaN where a scenario's value is unknown."""
    from profiling.hazard import expected_annual

    assert h.exposed is not None
    values = np.vstack([pd.to_numeric(_col(hh, c), errors="coerce").to_numpy(dtype=float)
                        for c in h.scenarios])
    flags = np.where(np.isnan(values), np.nan, (values >= h.exposed).astype(float))
    return pd.Series(expected_annual(flags, h.return_periods), index=hh.index)


def _ladder(levels: list[str], choices: list[tuple[pd.Series, str]],
            index: pd.Index) -> pd.Series:
    """The first level whose condition is true; NA when a higher one is unknown."""
    codes = np.full(len(index), -1, dtype=np.int8)
    undecided = np.ones(len(index), dtype=bool)
    for cond, level in choices:
        c = cond.astype(BOOL)
        true = c.fillna(False).to_numpy(dtype=bool) & undecided
        codes[true] = levels.index(level)
        # an unknown condition blocks every lower level: the household's level is unknown
        undecided &= ~true & c.notna().to_numpy()
    return pd.Series(pd.Categorical.from_codes(codes, categories=levels, ordered=True),
                     index=index)


def _water_ladder(hh: pd.DataFrame, ind: pd.DataFrame) -> pd.Series:
    src = _col(hh, "water_source")
    sufficient = is_in(_col(hh, "water_sufficient"), ("yes",))
    levels = [lvl for lvl, _ in LADDERS["water"]]
    return _ladder(levels, [
        (is_in(src, ("surface_water",)), "surface_water"),
        (is_in(src, ("unprotected_well", "unprotected_spring")), "unimproved"),
        (ind["water_on_premises"] & sufficient, "safely_managed_upper_bound"),
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


def _summed_names(hazards: Iterable[str] = ()) -> list[str]:
    """The indicators counted per settlement: the survey-based ones, the hazard ones given
    (``<hazard>_exposed``, ``hazardous_location``), ``slum_household`` and the rest."""
    return [*(i.name for i in SURVEY_INDICATORS), *hazards, SLUM.name, "deprived_3plus",
            *(f"priority_{n}" for n in PRIORITY_NEEDS)]


def _hazards_in(columns: Iterable[object], suffix: str = "", annual: bool = False) -> list[str]:
    """The hazard indicators among ``columns`` (an indicator frame's, or counts' with the
    ``suffix`` their counts carry), in order; with ``annual``, the expected annual exposures
    instead."""
    names = [str(c)[:len(str(c)) - len(suffix)] for c in columns if str(c).endswith(suffix)]
    return [n for n in names if (n.endswith(ANNUAL) if annual else is_hazard_indicator(n))]


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
        ``<ladder>_ladder_known_persons``; for the hazard indicators ``<name>_persons_true`` and
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
    hazards = _hazards_in(indicators.columns)
    for name in _summed_names(hazards):
        true, known = flags(indicators[name])
        cols[f"{name}_true"] = total(true.astype(float))
        cols[f"{name}_known"] = total(known.astype(float))
    true, known = flags(indicators["slum_household"])
    cols["slum_persons"] = total(np.where(true, size, 0.0))
    cols["slum_known_persons"] = total(np.where(known, size, 0.0))
    cols["slum_known_n"] = total(known.astype(float))
    for c in _hazards_in(indicators.columns, annual=True):
        p = indicators[c].to_numpy(dtype=float)[ok]  # a probability per household and year
        known = ~np.isnan(p)
        cols[f"{c}_true"] = total(np.where(known, p, 0.0))  # expected households a year
        cols[f"{c}_known"] = total(known.astype(float))
        cols[f"{c}_persons_true"] = total(np.where(known, p * size, 0.0))
        cols[f"{c}_persons_known"] = total(np.where(known, size, 0.0))
    for name in hazards:  # the city summary weighs hazard exposure by persons too
        true, known = flags(indicators[name])
        cols[f"{name}_persons_true"] = total(np.where(true, size, 0.0))
        cols[f"{name}_persons_known"] = total(np.where(known, size, 0.0))
    for ladder, levels in LADDERS.items():
        names = [lv for lv, _ in levels]
        col = indicators[f"{ladder}_ladder"]
        level = (col.cat.codes.to_numpy()[ok] if isinstance(col.dtype, pd.CategoricalDtype)
                 and list(col.cat.categories) == names else pd.Categorical(
                     col.to_numpy(dtype=object)[ok], categories=names).codes)
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
    for name in _summed_names(_hazards_in(c.columns, "_persons_true")):
        x = c[f"{name}_true"].astype(float)
        n = c[f"{name}_known"].astype(float)
        cols[f"{name}_share"] = x / n.where(n > 0)
        cols[f"{name}_n"] = n
        lo, hi = wilson(x.to_numpy(), n.to_numpy())
        cols[f"{name}_lo"] = pd.Series(lo, index=index)
        cols[f"{name}_hi"] = pd.Series(hi, index=index)
    for name in _hazards_in(c.columns, "_persons_true", annual=True):
        # the expected share of households exposed in a year (a mean of probabilities: no
        # binomial interval)
        x, n = c[f"{name}_true"].astype(float), c[f"{name}_known"].astype(float)
        cols[f"{name}_share"], cols[f"{name}_n"] = x / n.where(n > 0), n
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
    if "persons" in c.columns:  # a roster was read: persons, and the person-level shares
        from profiling.roster import person_columns

        cols.update(person_columns(c))
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
    values = t.parameters()
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
        "Default settings (the configuration's `indicators` section; a hazard's come from its "
        "`thresholds`, here the reference flood layer's): " + ", ".join(
            f"`{k}` = {v:g}" if isinstance(v, float | int) else f"`{k}` = {v}"
            for k, v in values.items()) + ".",
        "",
        "| indicator | true when | source |",
        "|---|---|---|",
    ]
    for ind in indicators_for(t):
        lines.append(f"| `{ind.name}` | {ind.rule.format(**values)} | {ind.source} |")
    lines += ["", "`slum_population_share`: persons (`hh_size`) in slum households over persons "
              "in households whose slum status is known (SDG 11.1.1 counts people).", "",
              "`deprivations`: how many of the five slum components (improved water, adequate "
              "sanitation, sufficient living area, durable housing, secure tenure) a household "
              "lacks, counted over the known ones; `deprived_3plus`: three or more.", ""]
    lines += ["## Components not collected", "",
              "A component whose fields no survey of the run has (a WASH survey without tenure "
              "questions, say) is *not collected*, which is not the same as unknown: the "
              "indicators that need those fields are left out of the settlement table, the city "
              "summary and the map, with one warning each, and `slum_household` is decided on "
              "the collected components only, as UN-Habitat does for household surveys without "
              "a tenure module. `run_manifest.json` lists them (`slum_components`, "
              "`not_collected`), the city summary has a `slum_components` note and the atlas "
              "says it in a sentence. A field that is collected but left blank stays unknown. "
              "The CUF ranking drops a criterion read from an indicator that was not "
              "collected, and `cuf_priorities.csv` says so (`criteria_left_out`).", ""]
    from profiling.roster import AGE_BANDS, PERSON_INDICATORS

    lines += ["## Person-level indicators (from the household roster)", "",
              "With a roster (CONTRACT.md §1b: one row per person), each member is true, false "
              "or unknown, and a settlement's share counts persons: `<name>_share`/`_n` over "
              "all, and `<name>_female_share`/`_female_n`, `<name>_male_share`/`_male_n` by "
              "`member_sex`, each empty with its `_n` when that `_n` is below k. Adults are "
              "members aged 18 or more; a member whose age is unknown is counted in none.", "",
              "| indicator | true for |", "|---|---|"]
    lines += [f"| `{name}` | {rule} |" for name, rule in PERSON_INDICATORS.items()]
    lines += ["", "Persons are counted in `persons`, `persons_female`, `persons_male` and by age "
              "band: " + ", ".join(f"`persons_age_{b}`" for b, _, _ in AGE_BANDS) + ".", ""]
    for ladder, levels in LADDERS.items():
        lines += [f"## The {ladder} ladder", "", "| level | rule |", "|---|---|"]
        lines += [f"| `{lvl}`{f' ({LEVEL_LABELS[lvl]})' if lvl in LEVEL_LABELS else ''} | "
                  f"{rule.format(**values)} |" for lvl, rule in levels]
        lines.append("")
    lines += ["## Sources, versions and where this tool departs from them", ""]
    lines += [f"- **{name}**: {text}" for name, text in SOURCES]
    lines += ["", "Departures, and why:", ""]
    lines += [f"- {text}" for text in DEPARTURES]
    lines.append("")
    return "\n".join(lines)


#: The texts the definitions follow, with the version each rule was checked against.
SOURCES = [
    ("SDG 11.1.1", "UN-Habitat, SDG indicator 11.1.1 metadata, 2021 revision (proportion of "
     "urban population living in slums, informal settlements or inadequate housing), whose "
     "slum-household components come from the UN-Habitat, Cities Alliance and UNSD expert "
     "group meeting on slum indicators (Nairobi, 2002): improved water, improved sanitation, "
     "sufficient living area, durable housing and secure tenure. Secure tenure there is "
     "\"evidence of documentation that can prove secure tenure status, or de facto or perceived "
     "protection against forced evictions\": hence `tenure_secure` = documented **or** "
     "perceived secure."),
    ("JMP ladders", "WHO/UNICEF Joint Monitoring Programme, *Progress on drinking water, "
     "sanitation and hygiene: 2017 update and SDG baselines*: the service ladders for "
     "drinking water (safely managed, basic, limited, unimproved, surface water), sanitation "
     "(safely managed, basic, limited, unimproved, open defecation) and hygiene (basic, "
     "limited, no facility)."),
    ("SDG 1.4.2", "UN-Habitat and World Bank, SDG indicator 1.4.2 metadata: (a) the share of "
     "adults with legally recognised documentation of their tenure rights and (b) the share "
     "who perceive their rights to land as secure, reported separately (by sex). The list of "
     "documents that count is each country's: here `indicators: tenure_documents` in the "
     "configuration, the contract's list by default. The household-level `tenure_documented` "
     "and `tenure_perceived_secure` follow the two parts; the person-level figures need a "
     "roster."),
]

#: Where the tool departs from those texts, and why.
DEPARTURES = [
    "Sufficient living area counts **sleeping** rooms (`rooms_sleeping`): SDG 11.1.1 counts "
    "habitable rooms, which the reference form does not ask for. Sleeping rooms are fewer, so "
    "`overcrowded` can be true where the habitable-room rule would not be.",
    "`sanitation_adequate` accepts a toilet shared by at most `toilet_households` (2) "
    "households: the two-household rule of the 2018 wording of the 11.1.1 metadata. JMP's "
    "`sanitation_basic` accepts no sharing at all.",
    "Packaged (bottled, sachet) and delivered water count as **improved**, as the JMP counts "
    "them.",
    "The water ladder's top rung is an **upper bound** of JMP's *safely managed*: that rung "
    "needs water free from faecal and priority chemical contamination, which the enumeration "
    "does not test. It is named `safely_managed_upper_bound` in every table and \"safely "
    "managed (upper bound: quality not tested)\" in the map and the atlas.",
    "The sanitation ladder stops at *basic*: *safely managed* needs data on the emptying and "
    "treatment of excreta that the enumeration does not collect.",
    "JMP's *limited* hygiene rung is a facility lacking soap **or** water. The reference "
    "form's choices (`water_and_soap`, `water_only`, `none`) cannot record soap without "
    "water, so `limited` here is water without soap. A survey that does record soap without "
    "water can map that answer to `water_only` with a field mapping's `values`: it is then "
    "counted as limited, as the JMP counts it.",
    "An answer of `dont_know` to `eviction_fear` counts as not perceiving tenure as secure "
    "(false), not as unknown (CONTRACT.md §4): a household that cannot say it is protected "
    "from eviction is not counted as protected.",
]


# --------------------------------------------------------------------------------------------
# The settlement table (CONTRACT.md §5) and the city summary
# --------------------------------------------------------------------------------------------

def contract_columns(hazards: Sequence[HazardRule] = (FLOOD,)) -> list[str]:
    """Columns CONTRACT.md §5 fixes, in order, with the area figures of ``hazards`` (§3)."""
    names = [i.name for i in indicators_for(Thresholds(hazards=tuple(hazards)))]
    return (["settlement_id", "name", "households", "population"]
            + [f"{i}_{s}" for i in names for s in ("share", "n")]
            + ["slum_population_share", *(c for h in hazards for c in area_columns(h)),
               "cuf_score", "cuf_rank"])


def area_columns(h: HazardRule) -> list[str]:
    """A hazard's area-based settlement columns (CONTRACT.md §3): ``<name>_area_share`` (at or
    above ``exposed``), ``<name>_high_area_share`` (at or above ``high``) and the mean value
    (:attr:`HazardRule.mean_column`)."""
    return ([f"{h.name}_area_share"] if h.exposed is not None else []) + (
        [f"{h.name}_high_area_share"] if h.high is not None else []) + [h.mean_column]


def _area_names(h: HazardRule) -> dict[str, str]:
    """Exposure columns (:mod:`profiling.hazard`) to the settlement table's names: those of
    the layer the household indicators read (a stack's first scenario, ``flood_rp10_...``)."""
    return {f"{h.column}_area_share_exposed": f"{h.name}_area_share",
            f"{h.column}_area_share_high": f"{h.name}_high_area_share",
            f"{h.column}_mean": h.mean_column}


def settlement_indicators(settlements: pd.DataFrame, counts: pd.DataFrame,
                          min_cell_size: int = 5,
                          exposure: pd.DataFrame | None = None,
                          omit: Iterable[str] = (),
                          hazards: Sequence[HazardRule] = (FLOOD,)) -> pd.DataFrame:
    """The settlement table: one row per settlement (every one, with households or not).

    ``counts`` are the :func:`partial_counts` of the households inside the settlements (made in
    one piece, or summed over Dask partitions); the table is made from them by :func:`finish`.
    ``exposure`` holds area-based hazard figures indexed by ``settlement_id``
    (:mod:`profiling.hazard`'s columns); each of ``hazards`` gets its :func:`area_columns`
    (empty without exposure), and the other exposure columns (coverage, maximum, classes,
    scenarios) follow under their own names. Area-based figures describe land, not
    households, and are never suppressed. ``cuf_score``/``cuf_rank`` are left empty for the
    prioritisation stage. The indicators of ``omit`` (not collected: :func:`not_collected`)
    have no columns.
    """
    ids = settlements["settlement_id"].tolist()
    agg = finish(counts, ids, min_cell_size)
    gone = [f"{i}_{s}" for i in omit for s in ("share", "n", "lo", "hi")]
    if gone:
        agg = agg.drop(columns=gone, errors="ignore").copy()  # one block again
    extra: dict[str, object] = {
        "name": settlements.set_index("settlement_id").loc[ids, "name"].to_numpy()}
    extra |= {c: np.nan for h in hazards for c in area_columns(h)}
    if exposure is not None and len(exposure):
        ex = exposure.reindex(ids)
        names = {k: v for h in hazards for k, v in _area_names(h).items()}
        # a stack's scenario columns stay, beside the contract's names for the first one
        stacked = {k for h in hazards if h.scenarios for k in _area_names(h)}
        for c in ex.columns:
            extra[names.get(c, c)] = ex[c].to_numpy()
            if c in stacked:
                extra[c] = ex[c].to_numpy()
    extra["cuf_score"] = np.nan
    extra["cuf_rank"] = pd.array([pd.NA] * len(ids), dtype="Int64")
    table = pd.concat([agg.reset_index(), pd.DataFrame(extra, index=range(len(ids)))], axis=1)
    lead = [c for c in contract_columns(hazards) if c in table.columns]
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

    gone = t.not_collected
    restrict("slum_household_n")
    add("sdg_11_1_1_slum_population", "slum_persons", "population", "households",
        "share of persons",
        "SDG 11.1.1: persons in slum households (UN-Habitat's deprivations) over all persons "
        "enumerated in the settlements, households whose slum status is unknown included in "
        "the denominator")
    add("slum_population_over_known_status", "slum_persons", "slum_known_persons",
        "slum_known_n", "share of persons",
        "the SDG 11.1.1 figure above with another denominator: persons in slum households over "
        "persons in households whose slum status is known (households whose status is "
        "unknown left out of both)")
    rows.append({"indicator": "slum_components", "numerator": np.nan, "denominator": np.nan,
                 "value": np.nan, "unit": "note", "households": np.nan,
                 "definition": component_words(gone), "excluded_settlements": ""})
    for ladder, levels in LADDERS.items():
        restrict(f"{ladder}_ladder_n")
        sdg = "SDG 6.1.1" if ladder == "water" else "SDG 6.2.1"
        for level, rule in levels:
            add(f"{ladder}_ladder_{level}", f"{ladder}_ladder_{level}_persons",
                f"{ladder}_ladder_known_persons", f"{ladder}_ladder_known", "share of persons",
                f"{sdg} ({ladder} ladder): persons in households at level "
                f"'{level_label(level)}' ({rule.format(**t.parameters())}) over persons whose "
                "level is known")
    for name, label in (("tenure_documented", "with a tenure document"),
                        ("tenure_perceived_secure", "not fearing eviction"),
                        ("tenure_secure", "with a tenure document or not fearing eviction")):
        if name in gone:
            continue
        restrict(f"{name}_n")
        add(f"sdg_1_4_2_{name}", f"{name}_true", f"{name}_known", f"{name}_known",
            "share of households", f"SDG 1.4.2 style: households {label} over households whose "
            "answer is known")
    if "persons" in counts.columns:  # a roster: SDG 1.4.2 as it is reported, per adult, by sex
        from profiling.roster import PERSON_INDICATORS, SEXES

        for name, rule in PERSON_INDICATORS.items():
            for part, who in (("", "adults"), *((f"_{s}", f"{s} adults") for s in SEXES)):
                restrict(f"{name}{part}_n")
                add(f"sdg_1_4_2_{name}{part}", f"{name}{part}_true", f"{name}{part}_known",
                    f"{name}{part}_known", "share of adults",
                    f"SDG 1.4.2, per adult: {who} for whom it holds over {who} whose answer "
                    f"is known; it holds for {rule}")
    for h in t.hazards:
        name = f"{h.name}{ANNUAL}"
        if f"{name}_true" not in counts.columns:
            continue
        restrict(f"{name}_n")
        periods = ", ".join(f"{x:g}" for x in h.return_periods)
        add(f"{name}_households", f"{name}_true", f"{name}_known", f"{name}_known",
            "share of households a year", f"the expected share of households whose point's "
            f"{h.words} is at or above {h.value(h.exposed)} in a year: each household's "
            f"yearly probability from the scenarios of {periods} years (the area under its "
            "risk curve), summed, over households whose value is known in every scenario")
        add(f"{name}_persons", f"{name}_persons_true", f"{name}_persons_known",
            f"{name}_known", "share of persons a year", "the same, of persons")
    for name, label, unknown in _hazard_words(t.hazards):
        restrict(f"{name}_n")
        add(f"{name}_households", f"{name}_true", f"{name}_known", f"{name}_known",
            "share of households", f"households whose point's {label} over households "
            f"{unknown}")
        add(f"{name}_persons", f"{name}_persons_true", f"{name}_persons_known", f"{name}_known",
            "share of persons", f"persons in households whose point's {label} over persons "
            f"in households {unknown}")
    return pd.DataFrame(rows)


def _hazard_words(rules: Sequence[HazardRule]) -> list[tuple[str, str, str]]:
    """``(indicator, what holds, whose value is known)`` of each hazard indicator, in words."""
    out = [(f"{h.name}_exposed", f"{h.words} is at or above {h.value(h.exposed)}",
            f"with a modelled {h.words}") for h in rules if h.exposed is not None]
    high = [h for h in rules if h.high is not None]
    if high:
        out.append(("hazardous_location", " or ".join(
            f"{h.words} is at or above {h.value(h.high)}" for h in high),
            "whose location is known to be hazardous or not"))
    return out


if __name__ == "__main__":  # pragma: no cover - `python -m profiling.indicators > docs/...`
    print(render_docs(), end="")


# --------------------------------------------------------------------------------------------
# In words people read (the atlas's definitions; translated through profiling.i18n)
# --------------------------------------------------------------------------------------------

#: Each household indicator's rule in plain words, for the back of a profile: the message id
#: (English) that the catalogues translate, its ``{parameter}`` filled from the run's settings.
#: The rules in code names (:attr:`Indicator.rule`) stay the reference of the tables.
PLAIN_RULES = {
    "water_improved": "The main drinking water comes from a protected source: piped water, a "
                      "public tap, a borehole, a protected well or spring, rainwater, or "
                      "delivered or packaged water; not an unprotected well or spring, nor "
                      "surface water.",
    "water_basic": "Improved water that takes {water_minutes:g} minutes or less to collect, "
                   "there and back, queueing included.",
    "water_on_premises": "Improved water piped into the dwelling or its yard, or found on the "
                         "premises.",
    "sanitation_improved": "A toilet that keeps excreta away from people: flushing to a sewer, "
                           "a septic tank or a pit, a ventilated pit latrine, a pit latrine "
                           "with a slab, or a composting toilet.",
    "sanitation_basic": "An improved toilet not shared with other households (a shared one is "
                        "only 'limited').",
    "sanitation_adequate": "An improved toilet, not shared or shared by no more than "
                           "{toilet_households:g} households.",
    "open_defecation": "The household has no toilet at all.",
    "handwashing_basic": "Water and soap were seen at a place to wash hands at the dwelling.",
    "waste_collected": "The household's waste is collected, at the door or at a collection "
                       "point.",
    "electricity_access": "The household has electricity of any kind: the grid, solar power or "
                          "a generator.",
    "tenure_documented": "The household holds a document that can prove its tenure: "
                         "{documents}.",
    "tenure_perceived_secure": "The household does not fear eviction in the next five years "
                               "(not knowing counts as a fear).",
    "tenure_secure": "Tenure documented, or no fear of eviction: either one is evidence of "
                     "secure tenure.",
    "durable_housing": "Walls of concrete blocks, fired bricks, stone or plastered cement; a "
                       "roof of concrete, tiles, iron sheets or asbestos; and a floor of "
                       "cement, tiles or wood.",
    "overcrowded": "More than {persons_per_room:g} persons for each room used for sleeping.",
    "female_headed": "The head of the household is a woman.",
    "slum_household": "The household lacks at least one of: improved water, adequate "
                      "sanitation, enough living space (not overcrowded), durable housing, "
                      "secure tenure. A component the surveys did not collect is left out.",
}
#: The tenure documents of CONTRACT.md §4 in words (other choices: their code, in words).
DOCUMENT_WORDS = {"title_deed": "a title deed", "lease": "a lease",
                  "allotment_letter": "an allotment letter", "sale_agreement": "a sale agreement",
                  "customary_certificate": "a customary certificate",
                  "rent_receipt": "a rent receipt"}
#: A hazard indicator's rule in plain words: ``%(hazard)s``, ``%(value)s`` (translated whole).
PLAIN_EXPOSED = ("The %(hazard)s at the household's location is %(value)s or more (unknown "
                 "where the map has no value there).")
PLAIN_HAZARDOUS = ("At the household's location, %(rules)s: true as soon as one of them "
                   "holds.")


def hazard_words(h: HazardRule, _: Callable[..., str] = english) -> str:
    """The hazard's value in words, in the language of ``_`` (its configured label as given)."""
    return _(h.words or h.name)


def indicator_label(ind: Indicator, hazards: Sequence[HazardRule] = (),
                    _: Callable[..., str] = english) -> str:
    """How the atlas names an indicator, in the language of ``_``."""
    by_name = {h.name: h for h in hazards}
    name = ind.name.removesuffix("_exposed")
    if ind.hazard and name in by_name and ind.name.endswith("_exposed"):
        h = by_name[name]
        return _("Households where %(hazard)s ≥ %(value)s", hazard=hazard_words(h, _),
                 value=h.value(h.exposed))
    if ind.name == "hazardous_location":
        rules = _("; or ").join(f"{hazard_words(h, _)} ≥ {h.value(h.high)}" for h in hazards
                                if h.high is not None)
        return _("Households in a hazardous location (%(rules)s)", rules=rules)
    return _(ind.label or ind.name)


def plain_rule(ind: Indicator, params: Mapping[str, Any], hazards: Sequence[HazardRule] = (),
               _: Callable[..., str] = english) -> str:
    """An indicator's rule in plain words, in the language of ``_``, its settings filled."""
    by_name = {h.name: h for h in hazards}
    name = ind.name.removesuffix("_exposed")
    if ind.hazard and ind.name.endswith("_exposed") and name in by_name:
        h = by_name[name]
        return _(PLAIN_EXPOSED, hazard=hazard_words(h, _), value=h.value(h.exposed))
    if ind.name == "hazardous_location":
        rules = _("; or ").join(_("%(hazard)s is %(value)s or more", hazard=hazard_words(h, _),
                                  value=h.value(h.high)) for h in hazards if h.high is not None)
        return _(PLAIN_HAZARDOUS, rules=rules)
    if ind.name not in PLAIN_RULES:
        return ind.rule
    docs = [str(d).strip(" `") for d in str(params.get("tenure_documents", "")).split(",")
            if str(d).strip(" `")]
    values = {**params, "documents": ", ".join(
        _(DOCUMENT_WORDS.get(d, d.replace("_", " "))) for d in docs)}
    try:
        return _(PLAIN_RULES[ind.name]).format(**values)
    except (KeyError, ValueError, IndexError):
        return _(PLAIN_RULES[ind.name])
