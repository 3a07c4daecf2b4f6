"""The settlement atlas: ``atlas/index.html`` and one page per settlement (jinja2).

Templates autoescape everything, so a name or a free text shows as the characters it holds. A
print stylesheet makes each page one A4 sheet printed on both sides (figures on the front, data
quality and definitions on the back), in type no smaller than 7 pt; :mod:`profiling.publish.pdf`
prints them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from profiling.i18n import english, environment, gettext_for
from profiling.indicators import (
    LADDERS,
    PRIORITY_NEEDS,
    SOURCE_SHORT,
    HazardRule,
    Indicator,
    Thresholds,
    city_label,
    hazard_words,
    indicator_label,
    indicators_for,
    level_label,
    plain_rule,
    sections,
)
from profiling.publish._data import (
    MAIN_INDICATORS,
    RunTables,
    fmt,
    hazard_area_indicators,
    missing,
    safe_id,
    suppressed_text,
    svg_path,
)
from profiling.roster import PERSON_LABELS, PERSON_SECTION

log = logging.getLogger(__name__)

LADDER_COLOURS = {
    "water": ["#08519c", "#4292c6", "#fdae6b", "#e6550d", "#a63603"],
    "sanitation": ["#006d2c", "#74c476", "#fdae6b", "#a63603"],
    "hygiene": ["#54278f", "#fdae6b", "#a63603"],
}
LADDER_TITLES = {"water": "Drinking water (JMP ladder)", "sanitation": "Sanitation (JMP ladder)",
                 "hygiene": "Hygiene (JMP ladder)"}
#: Sections counted in persons (from the household roster): title -> (unit, indicators).
PERSON_SECTIONS = {PERSON_SECTION: ("adults", list(PERSON_LABELS))}
#: The roster's counts of persons shown among a page's key figures.
PERSON_FIGURES = [("persons", "Persons listed in the household rosters"),
                  ("persons_female", "Women and girls"), ("persons_male", "Men and boys"),
                  ("persons_age_0_17", "Aged under 18"), ("persons_age_18_59", "Aged 18 to 59"),
                  ("persons_age_60_plus", "Aged 60 or more")]


#: A translation function: ``_(message, **values)`` (:func:`profiling.i18n.gettext_for`).
Gettext = Callable[..., str]
#: Units of the sections' tables: (head of the shares' column, head of the counts' column).
SECTION_HEADS = {"households": ("Share of households", "Households known"),
                 "adults": ("Share of adults", "Adults known")}


def _environment(language: str = "en") -> Any:
    return environment(language)


def _area_row(h: HazardRule, row: Any, _: Gettext) -> dict[str, str]:
    """One hazard's area figures on a page: the shares of the modelled area at or above its
    thresholds (with the thresholds) and its mean, in its unit; ``–`` where not computed."""
    figures = {m.column: fmt(row.get(m.column), m.kind) for m in hazard_area_indicators(h)}
    return {"hazard": hazard_words(h, _),
            "exposed": "" if h.exposed is None else
            f"{figures[f'{h.name}_area_share']} (≥ {h.value(h.exposed)})",
            "high": "" if h.high is None else
            f"{figures[f'{h.name}_high_area_share']} (≥ {h.value(h.high)})",
            "mean": figures[h.mean_column]}


def _labels(indicators: list[Indicator], hazards: tuple[HazardRule, ...],
            _: Gettext) -> dict[str, str]:
    """How the page names each share: the indicators' labels (the registry's) and the roster's
    person-level ones, in the page's language."""
    return {**{n: _(label) for n, label in PERSON_LABELS.items()},
            **{i.name: indicator_label(i, hazards, _) for i in indicators}}


#: A share's 95% interval is shown beside it where it is wider than this either side (a small
#: sample: about fewer than 100 households for a share near one half).
INTERVAL_SHOWN_FROM = 0.10


def city_shares(tables: RunTables) -> dict[str, float]:
    """Each share of the settlement table over the whole city, by indicator: the households
    (or persons) for whom it holds, summed over the settlements whose share is published,
    over their known ones (a settlement under the minimum cell size adds nothing: its
    figures are empty). Computed once for the atlas."""
    if "city_shares" in tables.drawn:
        return tables.drawn["city_shares"]
    import numpy as np

    t = tables.settlements
    out: dict[str, float] = {}
    for col in t.columns:
        name = str(col).removesuffix("_share")
        if not str(col).endswith("_share") or f"{name}_n" not in t.columns:
            continue
        share = pd.to_numeric(t[col], errors="coerce").to_numpy(dtype=float)
        n = pd.to_numeric(t[f"{name}_n"], errors="coerce").to_numpy(dtype=float)
        ok = ~np.isnan(share) & ~np.isnan(n) & (n > 0)
        if ok.any():
            out[name] = float(np.rint(share[ok] * n[ok]).sum() / n[ok].sum())
    tables.drawn["city_shares"] = out
    return out


def intervals(tables: RunTables) -> dict[str, dict[str, str]]:
    """Each published share's 95% Wilson interval in words (``21–49%``), by indicator and
    settlement id, where it is wider than :data:`INTERVAL_SHOWN_FROM` on a side (a small
    sample): one vectorised pass over the settlement table for the whole atlas."""
    if "intervals" in tables.drawn:
        return tables.drawn["intervals"]
    import numpy as np

    from profiling.indicators import wilson

    t = tables.settlements
    ids = t["settlement_id"].astype(str).to_numpy()
    out: dict[str, dict[str, str]] = {}
    for col in t.columns:
        name = str(col).removesuffix("_share")
        if not str(col).endswith("_share") or f"{name}_n" not in t.columns:
            continue
        share = pd.to_numeric(t[col], errors="coerce").to_numpy(dtype=float)
        n = pd.to_numeric(t[f"{name}_n"], errors="coerce").to_numpy(dtype=float)
        ok = ~np.isnan(share) & ~np.isnan(n) & (n > 0)
        lo, hi = wilson(np.rint(share[ok] * n[ok]), n[ok])
        wide = np.maximum(share[ok] - lo, hi - share[ok]) > INTERVAL_SHOWN_FROM
        out[name] = {sid: f"{a:.0%}–{b:.0%}".replace("%–", "–")
                     for sid, a, b in zip(ids[ok][wide], lo[wide], hi[wide], strict=True)}
    tables.drawn["intervals"] = out
    return out


def _share_rows(row: Any, names: list[str], k: int, labels: dict[str, str], _: Gettext,
                city: dict[str, float], shown: dict[str, dict[str, str]]
                ) -> list[dict[str, str]]:
    rows = []
    for n in names:
        if f"{n}_share" not in row:
            continue
        share, count = row[f"{n}_share"], row.get(f"{n}_n")
        rows.append({"label": labels.get(n, n), "share": fmt(share, "share"),
                     "interval": shown.get(n, {}).get(str(row["settlement_id"]), ""),
                     "city": fmt(city.get(n), "share"),
                     "n": fmt(count, "number") if not missing(count) else
                     _("fewer than %(k)s known", k=k)})
    return rows


def _words(rule: str, params: dict[str, float | str]) -> str:
    """A rule with its thresholds filled in (``{water_minutes:g}`` -> ``30``)."""
    try:
        return rule.format(**params)
    except (KeyError, ValueError, IndexError):
        return rule


def _ladder(row: Any, name: str, params: dict[str, float | str], _: Gettext) -> dict[str, Any]:
    levels = LADDERS[name]
    parts = []
    widths: list[float] = []
    for (level, rule), colour in zip(levels, LADDER_COLOURS[name], strict=False):
        v = row.get(f"{name}_ladder_{level}_share")
        widths.append(0.0 if missing(v) else float(v))
        parts.append({"level": _(level_label(level)), "rule": _words(rule, params),
                      "colour": colour,
                      "width": 0.0 if missing(v) else round(float(v) * 100, 2),
                      "text": fmt(v, "share")})
    n = row.get(f"{name}_ladder_n")
    known = not missing(n) and any(w > 0 for w in widths)
    return {"title": _(LADDER_TITLES[name]), "parts": parts, "known": known,
            "n": fmt(n, "number") if not missing(n) else ""}


def _cuf_block(tables: RunTables, sid: str, prow: dict[str, Any] | None,
               needs: list[tuple[float, str, str, str]], _: Gettext) -> dict[str, Any]:
    """The CUF block's figures beyond the rank: how firm the rank is under perturbed weights,
    what the portfolio funds here and at what cost, and whether the community's most named
    need is among it (and, when it is not, what the portfolio did instead)."""
    out: dict[str, Any] = {"robust": "", "funded": "", "top_need": ""}
    if prow is None:
        return out
    top = next((c for c in prow if c.startswith("p_top_")), None)
    lo: Any = prow.get("rank_p05")
    hi: Any = prow.get("rank_p95")
    if top is not None and not missing(prow.get(top)) and not missing(lo) and not missing(hi):
        n = top.removeprefix("p_top_")
        where = (_("rank %(rank)s", rank=int(lo)) if int(lo) == int(hi) else
                 _("ranks %(lo)s–%(hi)s", lo=int(lo), hi=int(hi)))
        out["robust"] = _("Weights moved at random by up to a quarter: top %(n)s in %(share)s "
                          "of runs; %(where)s in 9 of 10.", n=n, share=fmt(prow[top], "share"),
                          where=where)
    cost: Any = prow.get("portfolio_cost")
    served: Any = prow.get("portfolio_beneficiaries")
    if not missing(cost) and float(cost) > 0:
        out["funded"] = (_("Funded: %(cost)s, serving %(served)s persons:",
                           cost=fmt(cost, "number"), served=fmt(served, "number"))
                         if not missing(served) else
                         _("Funded: %(cost)s:", cost=fmt(cost, "number")))
    port = tables.portfolio
    reason: Any = prow.get("top_need_reason")
    if not missing(reason) and not missing(prow.get("top_need")):
        # why, as the portfolio decided it (cuf_priorities.csv, in the run's language)
        out["top_need"] = _("Most named need, %(need)s: %(reason)s.",
                            need=_(str(prow["top_need"])), reason=reason)
    elif needs and port is not None and "need" in port.columns:
        need, key = needs[0][1], needs[0][3]
        here = port.loc[port["settlement_id"].astype(str) == sid, "need"].astype(str)
        if (here == key).any():
            out["top_need"] = _("Most named need, %(need)s: funded here.", need=need)
        elif (port["need"].astype(str) == key).any():
            out["top_need"] = _("Most named need, %(need)s: funded elsewhere, not here (the "
                                "budget goes where it serves the most persons).", need=need)
        else:
            out["top_need"] = _("Most named need, %(need)s: funded nowhere in the city (the "
                                "budget goes where it serves the most persons).", need=need)
    return out


#: The profile's locator map: its box (SVG units), and how coarse the city's outline is drawn
#: (a fraction of the box's side).
LOCATOR_SIDE = 120
LOCATOR_TOLERANCE = 0.004
#: The most vertices the city's outline is drawn with on each page.
LOCATOR_MAX_POINTS = 600


def locator(tables: RunTables) -> dict[str, Any] | None:
    """What every profile's locator map draws, computed once for the atlas: the city's outline
    (the settlements dissolved, simplified) and each settlement's own outline, as SVG paths in
    a box of :data:`LOCATOR_SIDE` (longitude scaled by the cosine of the city's latitude, so
    that shapes keep their proportions); None without polygons."""
    if "locator" in tables.drawn:
        return tables.drawn["locator"]
    out = None
    t = tables.settlements
    if tables.has_geometry and len(t) and not t.geometry.is_empty.all():
        import math

        import numpy as np
        import shapely

        w, s, e, n = (float(v) for v in t.total_bounds)
        stretch = math.cos(math.radians((s + n) / 2))
        span = max((e - w) * stretch, n - s, 1e-9)
        scale = LOCATOR_SIDE * 0.94 / span
        pad = LOCATOR_SIDE * 0.03
        width = round((e - w) * stretch * scale + 2 * pad, 1)
        height = round((n - s) * scale + 2 * pad, 1)

        def path(geom: Any) -> str:
            return svg_path(geom, w, n, stretch, scale, pad)

        geoms = np.asarray(t.geometry.values, dtype=object)
        tolerance = LOCATOR_TOLERANCE * span / stretch
        city = shapely.simplify(shapely.union_all(shapely.make_valid(geoms)), tolerance)
        if shapely.get_num_coordinates(city) > LOCATOR_MAX_POINTS:
            # settlements scattered over a city: their outline would be every one of them on
            # every page; the hull around them (following its bays) tells where just as well
            city = shapely.simplify(shapely.concave_hull(city, ratio=0.2), tolerance)
        own = shapely.simplify(geoms, 0.5 / scale)  # half a unit of the box: what shows
        centres = shapely.centroid(geoms)
        out = {"width": width, "height": height, "city": path(city),
               "paths": {str(sid): path(g) for sid, g in zip(t["settlement_id"], own,
                                                             strict=True)},
               "dots": {str(sid): (round((c.x - w) * stretch * scale + pad, 1),
                                   round((n - c.y) * scale + pad, 1))
                        for sid, c in zip(t["settlement_id"], centres, strict=True)
                        if not c.is_empty}}
    tables.drawn["locator"] = out
    return out


def locator_of(tables: RunTables, sid: str) -> dict[str, Any] | None:
    """One settlement's locator map (:func:`locator`): the city's outline and its own."""
    where = locator(tables)
    if where is None or sid not in where["paths"]:
        return None
    return {"width": where["width"], "height": where["height"], "city": where["city"],
            "here": where["paths"][sid], "dot": where["dots"].get(sid)}


def settlement_context(tables: RunTables, row: Any) -> dict[str, Any]:
    """Everything one settlement's page shows, formatted, in the run's language."""
    _ = gettext_for(tables.language)
    k = tables.k
    sid = str(row["settlement_id"])
    sup = missing(row.get("households"))
    prow = tables.priority_row(sid)
    drow = tables.date_row(sid)
    needs: list[tuple[float, str, str, str]] = []
    if not sup:
        for need in PRIORITY_NEEDS:
            v = row.get(f"priority_{need}_share")
            if not missing(v):
                needs.append((float(v), _(need.replace("_", " ")), fmt(v, "share"), need))
        needs.sort(key=lambda x: -x[0])
    unknown = []
    indicators = indicators_for(Thresholds(hazards=tables.hazards))
    labels = _labels(indicators, tables.hazards, _)
    if not sup:
        hh = float(row["households"])
        for ind in indicators:
            n = row.get(f"{ind.name}_n")
            if not missing(n):
                unknown.append({"label": labels.get(ind.name, ind.name),
                                "unknown": fmt(hh - float(n), "number")})
    thresholds = tables.parameters
    defs = [{"name": i.name, "label": labels.get(i.name, i.name),
             "rule": plain_rule(i, thresholds, tables.hazards, _),
             "source": _(SOURCE_SHORT.get(i.source, i.source))} for i in indicators]
    cited = {i.source: None for i in indicators}
    checked = []
    v = tables.validated
    if v is not None and len(v) and not sup:
        for r in v[v["settlement_id"].astype(str) == sid].to_dict("records"):
            checked.append({"label": str(r["label"]), "enumerated": fmt(r["enumerated"],
                                                                         "number"),
                            "validated": fmt(r["validated"], "number"),
                            "said": _("confirmed") if str(r["confirmed"]) == "True"
                            else _("corrected"),
                            "where": f"{r['forum']}, {r['forum_date']}"})
    sections_shown = {}
    city, shown = city_shares(tables), intervals(tables)
    if not sup:
        for title, unit, rows in [
                *((t, "households", _share_rows(row, [i.name for i in inds], k, labels, _,
                                                city, shown))
                  for t, inds in sections(indicators).items()),
                *((t, u, _share_rows(row, names, k, labels, _, city, shown))
                  for t, (u, names) in PERSON_SECTIONS.items())]:
            if rows:
                share_head, known_head = SECTION_HEADS[unit]
                sections_shown[_(title)] = {"share_head": _(share_head),
                                            "known_head": _(known_head), "rows": rows}
    return {
        "then_and_now": (tables.then_and_now or {}).get(sid),
        "validated": checked,
        "id": sid, "name": str(row["name"]), "suppressed": sup, "k": k,
        "locator": locator_of(tables, sid),
        "suppressed_text": suppressed_text(k, _),
        "key_figures": [] if sup else [
            (_("Households"), fmt(row["households"], "number"), ""),
            (_("Persons"), fmt(row.get("population"), "number"), ""),
            (_("Slum households"), fmt(row.get("slum_household_share"), "share"),
             fmt(city.get("slum_household"), "share") if "slum_household" in city else ""),
            (_("Persons in slum households"), fmt(row.get("slum_population_share"), "share"),
             city_values(tables).get("slum_population_over_known_status", "")),
            *((_(label), fmt(row[c], "number"), "") for c, label in PERSON_FIGURES
              if c in row and not missing(row[c])),
        ],
        "area": [_area_row(h, row, _) for h in tables.hazards],
        "ladders": [] if sup else [_ladder(row, n, tables.parameters, _) for n in LADDERS],
        "sections": sections_shown,
        "needs": needs,
        "rank": None if missing(row.get("cuf_rank")) else fmt(row["cuf_rank"], "rank"),
        "n_ranked": tables.n_ranked,
        "explanation": "" if prow is None or missing(prow.get("explanation"))
        else str(prow["explanation"]),
        "cuf": _cuf_block(tables, sid, prow, needs, _),
        "interventions": [] if prow is None or missing(prow.get("recommended_interventions"))
        else [s.strip() for s in str(prow["recommended_interventions"]).split(";") if s.strip()],
        "unknown": unknown,
        "dates": None if drow is None else (str(drow["first_interview"]),
                                            str(drow["last_interview"])),
        "definitions": defs,
        "sources": [(_(SOURCE_SHORT[x]), _(x)) for x in cited if x in SOURCE_SHORT],
        "consent_outside_form": list(tables.consent_outside_form),
        "slum_components": tables.slum_components_in(_),
    }


def city_values(tables: RunTables) -> dict[str, str]:
    """The city summary's figures (``city_summary.csv``) as shares, by indicator (those
    without a value left out); read once for the atlas."""
    if "city_values" not in tables.drawn:
        c = tables.city
        tables.drawn["city_values"] = ({} if not len(c) or "indicator" not in c.columns else {
            str(r.indicator): fmt(r.value, "share") for r in c.itertuples()
            if not missing(r.value)})
    return tables.drawn["city_values"]


def render_page(tables: RunTables, row: Any, env: Any = None) -> tuple[str, str]:
    """One settlement's page: its file name (``<settlement_id>.html``) and its HTML."""
    env = env or _environment(tables.language)
    ctx = settlement_context(tables, row)
    return f"{safe_id(ctx['id'])}.html", env.get_template("atlas_page.html").render(s=ctx)


#: Pages rendered per task, and the smallest atlas worth rendering in several processes.
CHUNK = 100
PARALLEL_FROM = 400
_SHARED: RunTables | None = None  # the tables a forked renderer reads (set before the fork)


def _render_pages(records: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """Render and write the pages of ``records``: (settlement id, file, index row) each."""
    tables = _SHARED
    assert tables is not None
    page = _environment(tables.language).get_template("atlas_page.html")
    folder = tables.out / "atlas"
    done = []
    for row in records:
        ctx = settlement_context(tables, row)
        path = folder / f"{safe_id(ctx['id'])}.html"
        path.write_text(page.render(s=ctx), encoding="utf-8")
        sup = ctx["suppressed"]
        done.append((ctx["id"], path.name, {
            "id": ctx["id"], "name": ctx["name"], "href": path.name,
            "households": "" if sup else fmt(row["households"], "number"),
            "households_value": "" if sup else float(row["households"]),
            "shares": [("" if sup else fmt(row.get(c), "share"),
                        "" if sup or missing(row.get(c)) else float(row[c]))
                       for c in _index_shares(tables)],
            "hazards": [(fmt(row.get(c), "share"), "" if missing(row.get(c))
                         else float(row[c])) for c in _index_hazards(tables)],
            "rank": ctx["rank"] or "", "rank_value": ctx["rank"] or "",
            "suppressed": sup}))
    return done


def _index_shares(tables: RunTables) -> list[str]:
    """The main household shares that the run has, a column each in the atlas index."""
    return [m.column for m in MAIN_INDICATORS if m.column in tables.settlements.columns]


#: The city figures the atlas index opens with, when the run has them (in this order).
HEADLINE = ("sdg_11_1_1_slum_population", "sdg_1_4_2_tenure_secure",
            "hazardous_location_persons")


def _index_hazards(tables: RunTables) -> list[str]:
    """The hazards' exposed area shares, a column each in the atlas index."""
    return [f"{h.name}_area_share" for h in tables.hazards if h.exposed is not None]


#: The index chart's drawing area (SVG units) and margins: left, top, right, bottom.
CHART_W, CHART_H = 640, 260
CHART_MARGIN = (64, 12, 12, 40)


def index_chart(tables: RunTables, _: Gettext | None = None) -> dict[str, Any] | None:
    """The atlas index's chart: each ranked settlement whose slum share is published, its
    CUF rank across and its share of slum households up, filled where the portfolio funds it.
    None when no settlement has both figures."""
    t = tables.settlements
    if "cuf_rank" not in t or "slum_household_share" not in t:
        return None
    rank = pd.to_numeric(t["cuf_rank"], errors="coerce")
    share = pd.to_numeric(t["slum_household_share"], errors="coerce")
    ok = rank.notna() & share.notna()
    if not ok.any():
        return None
    left, top, right, bottom = CHART_MARGIN
    w, h = CHART_W - left - right, CHART_H - top - bottom
    last = max(int(rank.max()), 2)
    funded = (set(tables.portfolio["settlement_id"].astype(str))
              if tables.portfolio is not None else set())

    def x(r: float) -> float:
        return round(left + (r - 1) / (last - 1) * w, 1)

    def y(v: float) -> float:
        return round(top + (1 - v) * h, 1)

    tr = _ or english
    points = [{"cx": x(float(r)), "cy": y(float(v)), "funded": str(sid) in funded,
               "title": tr("%(name)s: rank %(rank)s, slum households %(share)s", name=name,
                           rank=int(r), share=fmt(v, "share"))}
              for sid, name, r, v in zip(t.loc[ok, "settlement_id"], t.loc[ok, "name"],
                                         rank[ok], share[ok], strict=True)]
    step = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
                if last / s <= 10)
    x_ticks = [{"x": x(r), "label": f"{r:,}"} for r in [1, *range(step, last + 1, step)]]
    y_ticks = [{"y": y(v), "label": f"{v:.0%}"} for v in (0, 0.25, 0.5, 0.75, 1)]
    return {"width": CHART_W, "height": CHART_H, "left": left, "top": top, "right": left + w,
            "bottom": top + h, "points": points, "x_ticks": x_ticks, "y_ticks": y_ticks,
            "has_funded": bool(funded), "n": len(points)}


def write_atlas(tables: RunTables, on_page: Callable[[], None] | None = None,
                workers: int | None = None) -> dict[str, Path]:
    """``atlas/index.html`` and ``atlas/<settlement_id>.html``; returns what was written.
    ``on_page`` is called after each settlement's page (progress). A large atlas is rendered
    in ``workers`` forked processes (default: the usable cores), in chunks of pages."""
    global _SHARED
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor
    from contextlib import nullcontext

    from profiling.join import usable_cores

    env = _environment(tables.language)
    folder = tables.out / "atlas"
    folder.mkdir(exist_ok=True)
    from importlib import resources

    css = (resources.files("profiling") / "templates" / "atlas.css").read_bytes()
    (folder / "atlas.css").write_bytes(css)
    written: dict[str, Path] = {}
    records = tables.settlements.drop(columns="geometry", errors="ignore").to_dict("records")
    chunks = [records[i:i + CHUNK] for i in range(0, len(records), CHUNK)]
    n = workers if workers is not None else usable_cores()
    tables.priority_row(""), tables.date_row(""), tables.n_ranked  # built once, then forked
    locator(tables), city_shares(tables), intervals(tables), city_values(tables)
    _SHARED = tables
    results: list[list[tuple[str, str, dict[str, Any]]]] = []
    parallel = n > 1 and len(records) >= PARALLEL_FROM and os.name == "posix"
    try:
        with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork")) if (
                parallel) else nullcontext() as pool:
            mapper = pool.map if pool is not None else map
            for done in mapper(_render_pages, chunks):
                results.append(done)
                for _ in done:
                    if on_page is not None:
                        on_page()
    finally:
        _SHARED = None
    rows = []
    for done in results:
        for sid, name, index_row in done:
            written[f"atlas_{sid}"] = folder / name
            rows.append(index_row)
    _ = gettext_for(tables.language)
    city, by_name = [], {}
    c = tables.city
    if len(c):
        for r in c.itertuples():
            name = str(r.indicator)
            if name == "slum_components":  # said once, in words, under the table
                continue
            unit = str(getattr(r, "unit", ""))
            kind = "share" if "share" in unit else "number"
            by_name[name] = {"indicator": city_label(name, tables.hazards, _),
                             "value": fmt(r.value, kind),
                             # the definitions in words: the code names' backticks left out
                             "definition": str(r.definition).replace("`", "")}
            city.append(by_name[name])
    t = tables.settlements
    headline = [{"label": _("Settlements"), "value": fmt(len(t), "number")}]
    published = t["households"].dropna() if "households" in t else t.iloc[:0, :0]
    if len(published):  # suppressed settlements' counts are empty: they add nothing
        headline.append({"label": _("Households enumerated, in settlements of at least "
                                    "%(k)s households", k=tables.k),
                         "value": fmt(published.sum(), "number")})
    if tables.n_ranked:
        headline.append({"label": _("Settlements ranked for the Community Upgrading Fund"),
                         "value": fmt(tables.n_ranked, "number")})
    headline += [{"label": by_name[n]["indicator"], "value": by_name[n]["value"]}
                 for n in HEADLINE if n in by_name]
    labels = {m.column: _(m.label) for m in MAIN_INDICATORS}
    index = env.get_template("atlas_index.html").render(
        settlements=rows, city=city, k=tables.k, headline=headline,
        has_portfolio=tables.portfolio is not None,
        share_columns=[labels[col] for col in _index_shares(tables)],
        hazard_columns=[_("Area where %(hazard)s ≥ %(value)s", hazard=hazard_words(h, _),
                          value=h.value(h.exposed)) for h in tables.hazards
                        if h.exposed is not None],
        consent_outside_form=list(tables.consent_outside_form),
        slum_components=tables.slum_components_in(_), chart=index_chart(tables, _))
    (folder / "index.html").write_text(index, encoding="utf-8")
    written["atlas_index"] = folder / "index.html"
    return written
