"""Comparing two enumerations of a city (CONTRACT.md §6): what changed, and where it is sure.

``profiling compare BEFORE AFTER --out DIR`` reads two runs' output folders: their settlement
tables (already suppressed below k and audited) and their boundaries. It writes

- ``change_by_settlement.csv``: per settlement (matched on ``settlement_id``) and household
  indicator, the share before and after with its ``_n``, the change (after − before) and its
  95 % interval by Newcombe's hybrid score method (:func:`newcombe`, from the two Wilson
  intervals); a change is ``changed`` only when its interval excludes 0. A row whose ``before_n``
  or ``after_n`` is below k has every figure empty.
- ``settlement_changes.csv``: settlements only in BEFORE (``removed``), only in AFTER
  (``added``), or whose boundary changed (``boundary_changed``, with both areas in m²): they are
  reported, never silently joined.
- ``change_city.csv``: the city summary's shares before and after, and the change (with
  Newcombe's interval for a share of households) (:func:`change_city`).
- ``cuf_results.csv``: for each intervention of BEFORE's portfolio and the indicator it improves,
  the person-weighted shares in the funded and the other settlements, before and after, and the
  difference in differences with its 95 % interval (:func:`cuf_results`).
- ``compare_manifest.json``: both inputs (their manifests' sha256 and status), households in
  each round, k.

- ``transitions.csv``: when both rounds are given as configurations, the households found in
  both (:func:`match`), per settlement and indicator: how many were false before and are true
  now, and the other three ways (:func:`transitions`). Output folders hold no households, so
  two folders give no transitions (the manifest says so).

A round given as a configuration (a ``.yaml`` file) is run first, from its store or its
exports, into ``OUT/rounds/before`` or ``OUT/rounds/after`` (a whole, audited run: tables,
map and atlas), and its households are kept in memory for the panel. Households are matched
on a keyed hash (HMAC-SHA256 under a key made for this comparison and never written) of their
structure id, trimmed, its spaces collapsed and upper-cased, where both rounds have one; else
on the keyed hash of the submission key (``uuid:`` dropped). A structure id that holds
several households in a round matches none of them. The pairs never leave the process: only
counts of at least k households are written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from profiling._errors import ConfigError
from profiling.indicators import SLUM, SURVEY_INDICATORS, is_hazard_indicator, wilson
from profiling.outputs import (
    CITY_SUMMARY,
    MANIFEST,
    PORTFOLIO,
    SETTLEMENT_GPKG,
    SETTLEMENT_LAYER,
    SETTLEMENT_TABLE,
    read_csv,
    write_csv,
)

if TYPE_CHECKING:
    from profiling.audit import Secrets

log = logging.getLogger(__name__)

CHANGE_BY_SETTLEMENT = "change_by_settlement.csv"
CUF_RESULTS = "cuf_results.csv"
CHANGE_CITY = "change_city.csv"
CITY_COLUMNS = ["indicator", "unit", "before", "after", "change", "change_lo", "change_hi",
                "changed", "definition"]
CUF_COLUMNS = ["intervention", "indicator", "funded_settlements", "funded_before",
               "funded_after", "unfunded_before", "unfunded_after", "did", "did_lo", "did_hi"]
Z95 = 1.959963984540054
SETTLEMENT_CHANGES = "settlement_changes.csv"
COMPARE_MANIFEST = "compare_manifest.json"
TRANSITIONS = "transitions.csv"
#: Where a round given as a configuration is run, inside the comparison's folder.
ROUNDS = "rounds"
TRANSITION_COLUMNS = ["settlement_id", "indicator", "matched", "false_to_true", "true_to_false",
                      "stayed_true", "stayed_false"]
CHANGE_COLUMNS = ["settlement_id", "name", "indicator", "before_share", "before_n", "after_share",
                  "after_n", "change", "change_lo", "change_hi", "changed"]
#: A boundary whose area or shape moved by more than this (m²) has changed.
BOUNDARY_TOLERANCE_M2 = 1.0


def newcombe(x1: np.ndarray, n1: np.ndarray, x2: np.ndarray, n2: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The difference p2 − p1 of two independent proportions and its 95 % interval by
    Newcombe's hybrid score method (1998, method 10), from the Wilson intervals
    (l1, u1) and (l2, u2) of each:

        lo = d − sqrt((p2 − l2)² + (u1 − p1)²),  hi = d + sqrt((u2 − p2)² + (p1 − l1)²)

    NaN where either n is 0."""
    x1, n1, x2, n2 = (np.asarray(a, dtype=float) for a in (x1, n1, x2, n2))
    with np.errstate(invalid="ignore", divide="ignore"):
        p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1)
    l2, u2 = wilson(x2, n2)
    d = p2 - p1
    lo = d - np.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    hi = d + np.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return d, lo, hi


@dataclass
class Run:
    """One round as its output folder holds it."""

    folder: Path
    table: pd.DataFrame
    manifest: dict
    manifest_sha256: str

    @classmethod
    def read(cls, folder: Path, role: str) -> Run:
        table_path, manifest_path = folder / SETTLEMENT_TABLE, folder / MANIFEST
        if not table_path.exists() or not manifest_path.exists():
            raise ConfigError(f"{role} {folder}: not a run's output folder (no "
                              f"{SETTLEMENT_TABLE} or {MANIFEST}); give the folder "
                              "`profiling run` wrote")
        raw = manifest_path.read_bytes()
        try:
            manifest = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{role} {manifest_path}: not valid JSON ({exc!s:.120})") from None
        if not isinstance(manifest, dict) or manifest.get("status") != "complete":
            raise ConfigError(f"{role} {folder}: the run is not complete (status "
                              f"{manifest.get('status') if isinstance(manifest, dict) else '?'!r})"
                              ": only an audited run can be compared")
        table = read_csv(table_path, dtype={"settlement_id": str, "name": str})
        if "settlement_id" not in table.columns:
            raise ConfigError(f"{role} {table_path}: has no settlement_id column")
        return cls(folder, table, manifest, hashlib.sha256(raw).hexdigest())

    @property
    def k(self) -> int:
        return int(self.manifest.get("min_cell_size", 5))


def indicators_in(table: pd.DataFrame) -> list[str]:
    """The household indicators (CONTRACT.md §4, the hazards' included) a settlement table
    publishes, in the registry's order."""
    names = [i.name for i in SURVEY_INDICATORS]
    names += [str(c)[:-2] for c in table.columns
              if str(c).endswith("_n") and is_hazard_indicator(str(c)[:-2])]
    names.append(SLUM.name)
    return [n for n in dict.fromkeys(names) if f"{n}_share" in table and f"{n}_n" in table]


def change_by_settlement(before: pd.DataFrame, after: pd.DataFrame, k: int) -> pd.DataFrame:
    """One row per settlement in both rounds and indicator in both tables (§6)."""
    b, a = before.set_index("settlement_id"), after.set_index("settlement_id")
    ids = [s for s in a.index if s in b.index]
    rows = []
    for name in [n for n in indicators_in(before) if n in indicators_in(after)]:
        bs, bn = b.loc[ids, f"{name}_share"].astype(float), b.loc[ids, f"{name}_n"].astype(float)
        as_, an = a.loc[ids, f"{name}_share"].astype(float), a.loc[ids, f"{name}_n"].astype(float)
        d, lo, hi = newcombe(np.round(bs * bn), bn, np.round(as_ * an), an)
        ok = (bn >= k).to_numpy() & (an >= k).to_numpy()
        frame = pd.DataFrame({
            "settlement_id": ids, "name": a.loc[ids, "name"].to_numpy(), "indicator": name,
            "before_share": bs.to_numpy(), "before_n": bn.to_numpy(),
            "after_share": as_.to_numpy(), "after_n": an.to_numpy(), "change": d,
            "change_lo": lo, "change_hi": hi})
        figures = CHANGE_COLUMNS[3:10]
        frame.loc[~ok, figures] = np.nan
        changed = pd.array((lo > 0) | (hi < 0), dtype="boolean")
        frame["changed"] = pd.Series(changed).where(ok, pd.NA)
        rows.append(frame)
    if not rows:
        return pd.DataFrame(columns=CHANGE_COLUMNS)
    return pd.concat(rows, ignore_index=True)[CHANGE_COLUMNS]


def change_city(before: Path, after: Path) -> pd.DataFrame | None:
    """The city summary's figures (SDG 11.1.1, the JMP ladders, SDG 1.4.2, hazard exposure)
    before and after. A share of households has Newcombe's interval of its change (numerator
    and denominator are counts of households); a share of persons has none (persons come in
    households, not independently). None when either run has no city summary."""
    paths = [p / f"{CITY_SUMMARY}.csv" for p in (before, after)]
    if not all(p.exists() for p in paths):
        return None
    b, a = (read_csv(p).set_index("indicator") for p in paths)
    rows = []
    for name in [i for i in a.index if i in b.index]:
        unit = str(a.loc[name, "unit"])
        if not unit.startswith("share"):
            continue
        vb, va = float(b.loc[name, "value"]), float(a.loc[name, "value"])
        lo = hi = math.nan
        if unit == "share of households":
            _, l_, h_ = newcombe(np.array([b.loc[name, "numerator"]]),
                                 np.array([b.loc[name, "denominator"]]),
                                 np.array([a.loc[name, "numerator"]]),
                                 np.array([a.loc[name, "denominator"]]))
            lo, hi = float(l_[0]), float(h_[0])
        rows.append({"indicator": name, "unit": unit, "before": vb, "after": va,
                     "change": va - vb, "change_lo": lo, "change_hi": hi,
                     "changed": (lo > 0 or hi < 0) if lo == lo else None,
                     "definition": a.loc[name, "definition"]})
    return pd.DataFrame(rows, columns=CITY_COLUMNS)


def settlement_changes(before: Run, after: Run) -> pd.DataFrame:
    """Settlements added, removed, or whose boundary changed (areas in m²)."""
    b = before.table.set_index("settlement_id")
    a = after.table.set_index("settlement_id")
    rows = [{"settlement_id": s, "name": b.loc[s, "name"], "change": "removed",
             "area_before_m2": np.nan, "area_after_m2": np.nan}
            for s in b.index if s not in a.index]
    rows += [{"settlement_id": s, "name": a.loc[s, "name"], "change": "added",
              "area_before_m2": np.nan, "area_after_m2": np.nan}
             for s in a.index if s not in b.index]
    shapes = [_shapes(r.folder) for r in (before, after)]
    if all(s is not None for s in shapes):
        sb, sa = shapes
        assert sb is not None and sa is not None
        both = [s for s in sa.index if s in sb.index]
        crs = sb.estimate_utm_crs()
        pb, pa = sb.loc[both].to_crs(crs), sa.loc[both].to_crs(crs)
        moved = pb.geometry.symmetric_difference(pa.geometry, align=True).area
        for s in both:
            if moved.loc[s] > BOUNDARY_TOLERANCE_M2:
                rows.append({"settlement_id": s, "name": a.loc[s, "name"],
                             "change": "boundary_changed",
                             "area_before_m2": float(pb.loc[s].geometry.area),
                             "area_after_m2": float(pa.loc[s].geometry.area)})
    return pd.DataFrame(rows, columns=["settlement_id", "name", "change", "area_before_m2",
                                       "area_after_m2"])


def _group_share(table: pd.DataFrame, ids: list[str], name: str, k: int
                 ) -> tuple[float, float]:
    """A person-weighted share over settlements (each settlement's share weighted by its
    population, only where its figure is published: ``_n`` at least k) and the households
    it rests on."""
    if not ids or f"{name}_share" not in table:
        return math.nan, 0.0
    t = table.loc[ids]
    share, n = t[f"{name}_share"].astype(float), t[f"{name}_n"].astype(float)
    pop = t["population"].astype(float)
    ok = share.notna() & (n >= k) & (pop > 0)
    if not ok.any():
        return math.nan, 0.0
    return float((share[ok] * pop[ok]).sum() / pop[ok].sum()), float(n[ok].sum())


def cuf_results(before: Run, after: Run, k: int) -> pd.DataFrame | None:
    """For each intervention of BEFORE's portfolio and the indicator it improves: the
    person-weighted share in the settlements it funded and in those where nothing funded
    improves that indicator, before and after,
    and the difference in differences with a 95 % interval by the delta method (the four
    shares taken as independent, each with variance p(1 − p) / n over its households). None
    when BEFORE has no portfolio, or one written before portfolios named what they improve."""
    path = before.folder / PORTFOLIO
    if not path.exists():
        return None
    portfolio = read_csv(path, dtype={"settlement_id": str, "improves": str})
    if "improves" not in portfolio.columns:
        log.warning("%s names no indicator per intervention (an older run): no CUF results",
                    path)
        return None
    b, a = before.table.set_index("settlement_id"), after.table.set_index("settlement_id")
    both = [s for s in a.index if s in b.index]
    rows = []
    funded_any = portfolio.dropna(subset=["improves"])
    for (iv, ind), g in funded_any.groupby(["intervention", "improves"], sort=True):
        funded = [s for s in both if s in set(g["settlement_id"])]
        # the comparison: settlements where nothing was funded for this indicator (another
        # intervention improving it would bias the difference towards 0)
        touched = set(funded_any.loc[funded_any["improves"] == ind, "settlement_id"])
        unfunded = [s for s in both if s not in touched]
        shares = [_group_share(t, ids, str(ind), k) for ids in (funded, unfunded)
                  for t in (b, a)]
        (fb, _), (fa, _), (ub, _), (ua, _) = shares
        did = (fa - fb) - (ua - ub)
        var = sum(p * (1 - p) / n if n > 0 else math.nan for p, n in shares)
        half = Z95 * math.sqrt(var) if var == var else math.nan
        rows.append({"intervention": iv, "indicator": ind, "funded_settlements": len(funded),
                     "funded_before": fb, "funded_after": fa, "unfunded_before": ub,
                     "unfunded_after": ua, "did": did, "did_lo": did - half,
                     "did_hi": did + half})
    return pd.DataFrame(rows, columns=CUF_COLUMNS)


@dataclass
class Panel:
    """One round's households as the panel needs them, in memory only: each one's settlement,
    the keyed hashes it can be matched on, and its indicators (true, false or unknown)."""

    settlement_id: np.ndarray
    structure: np.ndarray
    key: np.ndarray
    indicators: pd.DataFrame


def _structure_ids(values: pd.Series) -> pd.Series:
    """Structure ids as painted and as typed are compared trimmed, their spaces collapsed
    and upper-cased ("jk09 - 0192 " is "JK09 - 0192"); blank is none."""
    s = values.astype("string").str.strip().str.replace(r"\s+", " ", regex=True).str.upper()
    return s.mask(s == "")


def panel(households: pd.DataFrame, personal: pd.DataFrame, indicators: pd.DataFrame,
          secret: bytes, store_secret: bytes | None = None) -> Panel:
    """One round's panel: its households (``key``: the submission key, or with
    ``store_secret`` the store's pseudonymous id of it), their personal fields (``key``: the
    submission key; ``structure_id``) and indicators (on the households' rows), with the keyed
    hashes under ``secret`` (this comparison's key)."""
    from profiling.store import pseudonyms

    hh = households.reset_index(drop=True)
    raw_keys = (personal["key"].astype(object) if "key" in personal
                else pd.Series(dtype=object))
    ids = (pd.Series(pseudonyms(store_secret, raw_keys), index=personal.index)
           if store_secret is not None else raw_keys)
    structure = (_structure_ids(personal["structure_id"]) if "structure_id" in personal
                 else pd.Series(pd.NA, index=personal.index, dtype="string"))
    by_id = pd.DataFrame({"id": ids.to_numpy(), "key": raw_keys.astype(str).str.removeprefix(
        "uuid:").to_numpy(), "structure": structure.to_numpy()}).drop_duplicates("id")
    linked = by_id.set_index("id").reindex(hh["key"].astype(object).to_numpy())
    return Panel(settlement_id=hh["settlement_id"].astype(object).to_numpy(),
                 structure=pseudonyms(secret, linked["structure"].astype(object).where(
                     linked["structure"].notna(), None)),
                 key=pseudonyms(secret, linked["key"].astype(object).where(
                     linked["key"].notna(), None)),
                 indicators=indicators.reset_index(drop=True))


def match(before: Panel, after: Panel) -> tuple[np.ndarray, np.ndarray, str]:
    """The households found in both rounds, as positions in each, and the rule in words.

    First on the structure id, where a household has one that no other household of its round
    shares, and the other round has the same; then, among the rest, on the submission key,
    where one of the two has no structure id (a re-visit with the same form). A structure id
    held by several households of a round matches none of them."""
    def unique(p: Panel) -> tuple[pd.Series, np.ndarray]:
        s = pd.Series(p.structure, dtype=object)
        shared = s.notna() & s.duplicated(keep=False)
        return s.where(~shared), shared.to_numpy()

    bs, b_shared = unique(before)
    as_, a_shared = unique(after)
    left = pd.DataFrame({"s": bs, "b": np.arange(len(bs))}).dropna(subset=["s"])
    right = pd.DataFrame({"s": as_, "a": np.arange(len(as_))}).dropna(subset=["s"])
    by_structure = left.merge(right, on="s")
    b_done = np.zeros(len(bs), bool)
    a_done = np.zeros(len(as_), bool)
    b_done[by_structure["b"].to_numpy()] = True
    a_done[by_structure["a"].to_numpy()] = True
    kb = pd.DataFrame({"k": before.key, "b": np.arange(len(bs)), "hs": bs.notna().to_numpy()})
    ka = pd.DataFrame({"k": after.key, "a": np.arange(len(as_)), "hs": as_.notna().to_numpy()})
    kb = kb[~b_done & ~b_shared & kb["k"].notna().to_numpy()]
    ka = ka[~a_done & ~a_shared & ka["k"].notna().to_numpy()]
    by_key = kb.merge(ka, on="k", suffixes=("_b", "_a"))
    # both with a structure id, and not the same one: two structures, not one household
    by_key = by_key[~(by_key["hs_b"] & by_key["hs_a"])]
    b_pos = np.concatenate([by_structure["b"].to_numpy(), by_key["b"].to_numpy()])
    a_pos = np.concatenate([by_structure["a"].to_numpy(), by_key["a"].to_numpy()])
    rule = (f"the keyed hash of structure_id where both rounds have one "
            f"({len(by_structure)} households), else of the submission key "
            f"({len(by_key)}); a structure id held by several households of a round matches "
            f"none ({int(b_shared.sum())} before, {int(a_shared.sum())} after)")
    return b_pos.astype(np.int64), a_pos.astype(np.int64), rule


def transitions(before: Panel, after: Panel, b_pos: np.ndarray, a_pos: np.ndarray,
                names: list[str], settlements: list[str], k: int) -> pd.DataFrame:
    """Per settlement (the household's in the later round) and indicator, the matched
    households known in both rounds and how each went (§6). A row with fewer than k of them has
    every figure empty; a row where any of the four counts is 1 to k − 1 shows ``matched``
    only, so that no small count can be had by subtraction."""
    where = pd.Series(after.settlement_id[a_pos], dtype=object)
    keep = where.isin(settlements).to_numpy()
    rows = []
    for name in names:
        if name not in before.indicators or name not in after.indicators:
            continue
        was = before.indicators[name].to_numpy(dtype=object, na_value=None)[b_pos]
        now = after.indicators[name].to_numpy(dtype=object, na_value=None)[a_pos]
        known = keep & pd.notna(was) & pd.notna(now)
        frame = pd.DataFrame({"settlement_id": where[known].to_numpy(),
                              "was": was[known].astype(bool), "now": now[known].astype(bool)})
        counts = pd.DataFrame({
            "false_to_true": ~frame["was"] & frame["now"],
            "true_to_false": frame["was"] & ~frame["now"],
            "stayed_true": frame["was"] & frame["now"],
            "stayed_false": ~frame["was"] & ~frame["now"]}).astype(int)
        counts["settlement_id"] = frame["settlement_id"]
        g = counts.groupby("settlement_id").sum().reindex(
            [s for s in settlements if s in set(frame["settlement_id"])])
        g.insert(0, "matched", g.sum(axis=1))
        g = g.astype(float)
        small = (g[TRANSITION_COLUMNS[3:]] > 0) & (g[TRANSITION_COLUMNS[3:]] < k)
        g.loc[small.any(axis=1), TRANSITION_COLUMNS[3:]] = np.nan
        g.loc[g["matched"] < k, TRANSITION_COLUMNS[2:]] = np.nan
        g = g.reset_index()
        g.insert(1, "indicator", name)
        rows.append(g)
    if not rows:
        return pd.DataFrame(columns=TRANSITION_COLUMNS)
    out = pd.concat(rows, ignore_index=True)[TRANSITION_COLUMNS]
    for c in TRANSITION_COLUMNS[2:]:
        out[c] = out[c].astype("Int64")
    return out


def _years(before: Run, after: Run) -> tuple[str, str]:
    """How the pages call the two rounds: the years their interviews began, where the rounds
    began in different years ("2026", "2028"), else "before" and "after"."""
    years = []
    for r in (before, after):
        path = r.folder / "enumeration_dates.csv"
        first = read_csv(path)["first_interview"] if path.exists() else pd.Series(dtype=str)
        found = first.dropna().astype(str).str.extract(r"^(\d{4})")[0].dropna()
        years.append(min(found) if len(found) else "")
    if all(years) and years[0] != years[1]:
        return years[0], years[1]
    return "before", "after"


def _polygons(folder: Path) -> Any:
    """A run's settlement polygons in EPSG:4326, for the map (None without a GeoPackage)."""
    shapes = _shapes(folder)
    if shapes is None:
        return None
    shapes = shapes.to_crs(4326) if shapes.crs is not None else shapes
    return shapes.reset_index()


def _shapes(folder: Path) -> Any:
    """A run's settlement polygons by id (None without a GeoPackage: placed by column)."""
    path = folder / SETTLEMENT_GPKG
    if not path.exists():
        return None
    import geopandas as gpd

    layer = gpd.read_file(path, layer=SETTLEMENT_LAYER, columns=["settlement_id"])
    layer["settlement_id"] = layer["settlement_id"].astype(str)
    return layer.set_index("settlement_id")


def compare(before_dir: str | Path, after_dir: str | Path, out_dir: str | Path, *,
            panels: tuple[Panel, Panel] | None = None, secrets_: Secrets | None = None,
            rounds: Sequence[Path] = (), consent: Sequence[str] = ()) -> dict[str, Path]:
    """Compare two runs' output folders into ``out_dir`` (CONTRACT.md §6); with ``panels``
    (both rounds' households), the transitions too. The outputs are audited (with
    ``secrets_``: for both rounds' personal values and points; ``rounds``: the runs' folders
    inside ``out_dir``, each audited on its own) before they are left in place. ``consent``:
    how the later round's consent was obtained outside its form, kept in its profiles when they
    are written again with their "then and now"."""
    from profiling.audit import Secrets, audit

    out = Path(out_dir)
    before = Run.read(Path(before_dir), "BEFORE")
    after = Run.read(Path(after_dir), "AFTER")
    k = max(before.k, after.k)
    out.mkdir(parents=True, exist_ok=True)
    change = change_by_settlement(before.table, after.table, k)
    moved = settlement_changes(before, after)
    written = {"change_by_settlement": write_csv(change, out / CHANGE_BY_SETTLEMENT),
               "settlement_changes": write_csv(moved, out / SETTLEMENT_CHANGES)}
    city = change_city(before.folder, after.folder)
    if city is not None:
        written["change_city"] = write_csv(city, out / CHANGE_CITY)
    cuf = cuf_results(before, after, k)
    if cuf is not None:
        written["cuf_results"] = write_csv(cuf, out / CUF_RESULTS)
    matching = ("not matched: a round given as an output folder holds no households; give "
                "both rounds as configurations for transitions.csv")
    households: dict[str, int | None] = {}
    moves = None
    if panels is not None:
        pb, pa = panels
        b_pos, a_pos, matching = match(pb, pa)
        both = [s for s in after.table["settlement_id"].astype(str)
                if s in set(before.table["settlement_id"].astype(str))]
        names = [n for n in indicators_in(before.table) if n in indicators_in(after.table)]
        moves = transitions(pb, pa, b_pos, a_pos, names, both, k)
        written["transitions"] = write_csv(moves, out / TRANSITIONS)
        # a count below k is a small cell, even city-wide
        households = {"matched": len(b_pos) if len(b_pos) >= k else None}
        del pb, pa, b_pos, a_pos
    manifest = {
        "inputs": {role: {"folder": str(r.folder), "manifest_sha256": r.manifest_sha256,
                          "status": r.manifest.get("status"),
                          "households": (r.manifest.get("counts") or {}).get("accepted")}
                   for role, r in (("before", before), ("after", after))},
        "min_cell_size": k,
        "households": households,
        "matching": {"settlements": "settlement_id", "households": matching},
        "outputs": sorted(p.name for p in written.values()),
    }
    (out / COMPARE_MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    written["manifest"] = out / COMPARE_MANIFEST
    from profiling.publish._data import run_hazards
    from profiling.publish.change import write_change_atlas

    profiles = (Path(os.path.relpath(after.folder / "atlas", out / "atlas")).as_posix()
                if after.folder.resolve().is_relative_to(out.resolve()) else None)
    pages = write_change_atlas(out, before.table, after.table, change, k=k,
                               hazards=run_hazards(after.folder), transitions=moves, city=city,
                               settlement_changes=moved, cuf=cuf, profiles=profiles,
                               years=_years(before, after))
    written["atlas"] = pages["index"]
    if profiles is not None:
        # a round this comparison ran: its profiles gain their "then and now"
        from profiling.publish._data import read_tables
        from profiling.publish.atlas import write_atlas
        from profiling.publish.change import profile_sections

        tables = read_tables(after.folder)
        tables.consent_outside_form = tuple(consent)
        tables.then_and_now = profile_sections(
            change, moves, k=k, hazards=tables.hazards, years=_years(before, after),
            pages=Path(os.path.relpath(out / "atlas", after.folder / "atlas")).as_posix())
        write_atlas(tables)
    shapes = _polygons(after.folder)
    if shapes is not None:
        from profiling.publish.change import write_change_map

        written["map"] = write_change_map(out, shapes, before.table, after.table, change, k=k,
                                          hazards=run_hazards(after.folder),
                                          years=_years(before, after))
    secrets_ = secrets_ or Secrets({}, np.zeros(0), np.zeros(0), k)
    inside = tuple(Path(r).relative_to(out).parts[0] for r in rounds)
    findings = audit(out, secrets_, exclude=inside)
    for r in rounds:  # a run's own folder: its vendored assets are known there
        findings += audit(r, secrets_)
    if findings:
        from profiling._errors import DisclosureError

        raise DisclosureError(out, findings)
    return written
