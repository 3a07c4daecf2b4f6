"""Then and now: the comparison of two enumerations as people read it (issue 22).

:func:`write_change_atlas` writes ``atlas/index.html`` and ``atlas/<settlement_id>.html`` into a
comparison's folder (:mod:`profiling.compare`), from its tables only (already suppressed below
k): the city's figures before and after, what the Community Upgrading Fund's interventions
changed against the other settlements, the settlements added, removed or redrawn, and for each
settlement in both rounds its "then and now": every indicator before and after with the change
and its 95 % interval in words, and, where the households were matched, how many of them
gained and lost each. Text only: every value is escaped by the templates.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from profiling.indicators import HazardRule, Thresholds, city_label, indicators_for
from profiling.publish._data import fmt, missing, safe_id, suppressed_text

#: Indicators that are bad news when true (the others are good news, but for those in
#: :data:`NEUTRAL`, which are neither).
WORSE_WHEN_TRUE = {"overcrowded", "slum_household", "open_defecation", "hazardous_location"}
NEUTRAL = {"female_headed"}


def _environment() -> Any:
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("profiling", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)


def labels(hazards: Sequence[HazardRule]) -> dict[str, str]:
    """Each household indicator named in words, from the registry."""
    return {i.name: i.label or i.name for i in indicators_for(Thresholds(hazards=tuple(hazards)))}


def worse_when_true(name: str, hazards: Sequence[HazardRule]) -> bool | None:
    """Whether a rise of ``name`` is bad news (None: neither)."""
    if name in NEUTRAL:
        return None
    return name in WORSE_WHEN_TRUE or any(name == f"{h.name}_exposed" for h in hazards)


def _city_worse(name: str) -> bool | None:
    """Whether a rise of a city summary figure is bad news (None: a ladder's level, say)."""
    if "slum" in name or "hazardous" in name or "_exposed_" in name:
        return True
    return False if name.startswith("sdg_1_4_2") else None


def verdict(change: object, lo: object, hi: object, worse: bool | None) -> str:
    """The change in words: better, worse, up or down where its interval excludes 0;
    otherwise no clear change; nothing to say where the figures are suppressed."""
    if missing(change) or missing(lo) or missing(hi):
        return "too few households to tell"
    if float(lo) <= 0 <= float(hi):  # type: ignore[arg-type]
        return "no clear change"
    up = float(change) > 0  # type: ignore[arg-type]
    if worse is None:
        return "up" if up else "down"
    return "worse" if up == worse else "better"


def _signed(x: object) -> str:
    """A change of a share in percentage points, signed: whole points, or one decimal below
    one point (so that a change that is not zero never reads "+0" or "-0")."""
    v = float(x) * 100  # type: ignore[arg-type]
    if v == 0:
        return "0"
    text = f"{v:+.0f}" if abs(v) >= 0.95 else f"{v:+.1f}"
    return text.replace("-", "−")


def _points(x: object) -> str:
    return "–" if missing(x) else f"{_signed(x)} points"


def _interval(lo: object, hi: object) -> str:
    """A 95 % interval of a change: "−5 to +3 points"; empty when there is none."""
    return "" if missing(lo) or missing(hi) else f"{_signed(lo)} to {_signed(hi)} points"


def _change_rows(rows: pd.DataFrame, names: dict[str, str],
                 hazards: Sequence[HazardRule]) -> list[dict[str, str]]:
    out = []
    for r in rows.to_dict("records"):
        out.append({
            "label": names.get(str(r["indicator"]), str(r["indicator"])),
            "before": fmt(r["before_share"]), "after": fmt(r["after_share"]),
            "change": _points(r["change"]),
            "interval": _interval(r["change_lo"], r["change_hi"]),
            "verdict": verdict(r["change"], r["change_lo"], r["change_hi"],
                               worse_when_true(str(r["indicator"]), hazards))})
    return out


def _transition_rows(rows: pd.DataFrame | None, names: dict[str, str], k: int
                     ) -> list[dict[str, str]]:
    if rows is None:
        return []
    out = []
    for r in rows.to_dict("records"):
        if missing(r["matched"]):
            continue
        label = names.get(str(r["indicator"]), str(r["indicator"]))
        if missing(r["false_to_true"]):
            out.append({"label": label, "matched": fmt(r["matched"], "number"),
                        "gained": f"counts below {k} not shown", "lost": ""})
            continue
        was_false = int(r["false_to_true"]) + int(r["stayed_false"])
        was_true = int(r["true_to_false"]) + int(r["stayed_true"])
        out.append({"label": label, "matched": fmt(r["matched"], "number"),
                    "gained": f"{int(r['false_to_true']):,} of {was_false:,}",
                    "lost": f"{int(r['true_to_false']):,} of {was_true:,}"})
    return out


def profile_sections(change: pd.DataFrame, transitions: pd.DataFrame | None, *, k: int,
                     hazards: Sequence[HazardRule] = (), years: tuple[str, str] = ("before",
                                                                                    "now"),
                     pages: str = "") -> dict[str, dict[str, Any]]:
    """Each settlement's "then and now" section of its profile in the later round: every
    indicator before and after with the change in words, and the link to its page of the
    comparison (``pages``: where those are, relative to the profiles)."""
    names = labels(hazards)
    out = {}
    for sid, rows in change.groupby(change["settlement_id"].astype(str)):
        out[sid] = {"years": list(years), "rows": _change_rows(rows, names, hazards),
                    "href": f"{pages}/{safe_id(sid)}.html" if pages else "",
                    "matched": transitions is not None}
    return out


def write_change_atlas(out: Path, before: pd.DataFrame, after: pd.DataFrame,
                       change: pd.DataFrame, *, k: int, hazards: Sequence[HazardRule] = (),
                       transitions: pd.DataFrame | None = None,
                       city: pd.DataFrame | None = None,
                       settlement_changes: pd.DataFrame | None = None,
                       cuf: pd.DataFrame | None = None,
                       profiles: str | None = None, years: tuple[str, str] = ("before", "now")
                       ) -> dict[str, Path]:
    """The then-and-now pages of a comparison in ``out/atlas``; ``before`` and ``after``, the
    two settlement tables; ``profiles``, where the later round's profiles are, relative to
    the pages (a link on each); ``years``, how the two rounds are called."""
    env = _environment()
    names = labels(hazards)
    folder = out / "atlas"
    folder.mkdir(parents=True, exist_ok=True)
    css = (resources.files("profiling") / "templates" / "atlas.css").read_bytes()
    (folder / "atlas.css").write_bytes(css)
    b = before.set_index(before["settlement_id"].astype(str))
    a = after.set_index(after["settlement_id"].astype(str))
    by_sid = {str(s): g for s, g in change.groupby(change["settlement_id"].astype(str))}
    moves = ({str(s): g for s, g in transitions.groupby(transitions["settlement_id"].astype(str))}
             if transitions is not None and len(transitions) else {})
    redrawn = ({str(r["settlement_id"]): str(r["change"]) for r in
                settlement_changes.to_dict("records")} if settlement_changes is not None else {})
    page = env.get_template("change_page.html")
    written: dict[str, Path] = {}
    index_rows = []
    for sid in [s for s in a.index if s in b.index]:
        rows = _change_rows(by_sid.get(sid, change.iloc[:0]), names, hazards)
        ctx = {
            "id": sid, "name": str(a.loc[sid, "name"]), "years": years, "k": k,
            "households": [fmt(b.loc[sid, "households"], "number"),
                           fmt(a.loc[sid, "households"], "number")],
            "suppressed": [missing(b.loc[sid, "households"]), missing(a.loc[sid, "households"])],
            "suppressed_text": suppressed_text(k),
            "rows": rows, "moves": _transition_rows(moves.get(sid), names, k),
            "matched_rounds": transitions is not None,
            "redrawn": redrawn.get(sid) == "boundary_changed",
            "profile": None if profiles is None else f"{profiles}/{safe_id(sid)}.html",
        }
        path = folder / f"{safe_id(sid)}.html"
        path.write_text(page.render(s=ctx), encoding="utf-8")
        written[sid] = path
        index_rows.append({"id": sid, "name": ctx["name"], "href": path.name,
                           "households": ctx["households"],
                           "better": sum(r["verdict"] == "better" for r in rows),
                           "worse": sum(r["verdict"] == "worse" for r in rows)})
    city_rows = []
    if city is not None:
        for r in city.to_dict("records"):
            name = str(r["indicator"])
            city_rows.append({
                "label": city_label(name, hazards), "before": fmt(r["before"]),
                "after": fmt(r["after"]), "change": _points(r["change"]),
                "interval": _interval(r["change_lo"], r["change_hi"]),
                "verdict": ("" if missing(r["change_lo"]) else verdict(
                    r["change"], r["change_lo"], r["change_hi"], _city_worse(name)))})
    cuf_rows = []
    if cuf is not None:
        for r in cuf.to_dict("records"):
            ind = str(r["indicator"])
            cuf_rows.append({
                "intervention": str(r["intervention"]).replace("_", " "),
                "indicator": names.get(ind, ind),
                "funded": fmt(r["funded_settlements"], "number"),
                "funded_change": f"{fmt(r['funded_before'])} → {fmt(r['funded_after'])}",
                "others_change": f"{fmt(r['unfunded_before'])} → {fmt(r['unfunded_after'])}",
                "did": _points(r["did"]),
                "interval": _interval(r["did_lo"], r["did_hi"]),
                "verdict": verdict(r["did"], r["did_lo"], r["did_hi"],
                                   worse_when_true(ind, hazards))})
    gone = [] if settlement_changes is None else [
        {"id": str(r["settlement_id"]), "name": str(r["name"]),
         "change": {"removed": "only in the earlier round", "added": "only in the later round",
                    "boundary_changed": "boundary redrawn"}.get(str(r["change"]),
                                                                str(r["change"]))}
        for r in settlement_changes.to_dict("records")]
    index = env.get_template("change_index.html").render(
        years=years, k=k, city=city_rows, cuf=cuf_rows, changes=gone, settlements=index_rows,
        households=[fmt(pd.to_numeric(t["households"], errors="coerce").sum(min_count=1),
                        "number") for t in (before, after)],
        matched_rounds=transitions is not None)
    (folder / "index.html").write_text(index, encoding="utf-8")
    written["index"] = folder / "index.html"
    return written


#: The change map's colours: better, no clear change, worse (or down, none, up).
CHANGE_COLOURS = ["#2166ac", "#f7f7f7", "#b2182b"]


def write_change_map(out: Path, shapes: Any, before: pd.DataFrame, after: pd.DataFrame,
                     change: pd.DataFrame, *, k: int, hazards: Sequence[HazardRule] = (),
                     years: tuple[str, str] = ("before", "now"), title: str = "") -> Path:
    """``out/map.html``: the settlements of both rounds (``shapes``: the later round's
    polygons, EPSG:4326, with ``settlement_id``), a layer per main indicator coloured by
    whether it got better, worse, or showed no clear change (its 95 % interval), offline."""
    import json

    import shapely

    from profiling.publish._data import MAIN_INDICATORS
    from profiling.publish.maps import NO_DATA, copy_assets, display_geometry, write_page

    names = labels(hazards)
    b = before.set_index(before["settlement_id"].astype(str))
    a = after.set_index(after["settlement_id"].astype(str))
    shapes = shapes[shapes["settlement_id"].astype(str).isin(set(a.index) & set(b.index))]
    shapes = shapes.reset_index(drop=True)
    rows = change.set_index([change["settlement_id"].astype(str), change["indicator"]])
    mapped = [m.column.removesuffix("_share") for m in MAIN_INDICATORS
              if m.column.endswith("_share") and m.column.removesuffix("_share")
              in set(change["indicator"])]
    layers: list[dict[str, Any]] = []
    for ind in mapped:
        worse = worse_when_true(ind, hazards)
        words = (["down", "no clear change", "up"] if worse is None else
                 ["better", "no clear change", "worse"])
        layers.append({"key": ind, "label": f"Change: {names.get(ind, ind)}",
                       "method": "the change's 95 % interval", "colours": CHANGE_COLOURS,
                       "labels": words, "land": False})
    geoms = shapely.to_geojson(display_geometry(shapes)) if len(shapes) else []
    features = []
    for i, sid in enumerate(shapes["settlement_id"].astype(str)):
        cls, fig = {}, {}
        popup = [["Households " + y, "–" if missing(t.loc[sid, "households"]) else
                  fmt(t.loc[sid, "households"], "number")] for y, t in zip(years, (b, a),
                                                                           strict=True)]
        for layer, ind in zip(layers, mapped, strict=True):
            r = rows.loc[(sid, ind)] if (sid, ind) in rows.index else None
            if r is None or missing(r["change"]):
                cls[ind], fig[ind] = -1, "too few households to tell"
                continue
            v = verdict(r["change"], r["change_lo"], r["change_hi"], worse_when_true(ind,
                                                                                    hazards))
            cls[ind] = list(layer["labels"]).index(v)
            fig[ind] = (f"{fmt(r['before_share'])} → {fmt(r['after_share'])} "
                        f"({_points(r['change'])}, {v})")
            popup.append([names.get(ind, ind),
                          f"{fmt(r['before_share'])} → {fmt(r['after_share'])}, {v}"])
        features.append({"type": "Feature", "geometry": json.loads(geoms[i]), "properties": {
            "id": sid, "name": str(a.loc[sid, "name"]), "href": f"atlas/{safe_id(sid)}.html",
            "suppressed": False, "cls": cls, "fig": fig, "popup": popup}})
    data = {"k": k, "suppressed": suppressed_text(k), "no_data": NO_DATA, "layers": layers,
            "about": {"title": title or f"Then and now: {years[0]} and {years[1]}",
                      "dates": None, "sources": [],
                      "k": f"No figure is computed from fewer than {k} households."},
            "settlements": {"type": "FeatureCollection", "features": features},
            "hexagons": [], "hexagon_legend": {"colours": [], "labels": [], "method": "",
                                               "bounds": []},
            "hazards": [], "portfolio": None, "basemap": None, "attribution": None}
    copy_assets(out)
    bounds = tuple(float(v) for v in shapes.total_bounds) if len(shapes) else None
    return write_page(out, data, bounds, "Then and now: map")
