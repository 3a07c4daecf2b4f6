"""``map.html``: the interactive map, working offline; and static PNG maps for reports.

folium builds the page (with its CDN links replaced by Leaflet files written beside it), branca
carries the project's script, and :func:`fisher_jenks` decides the class breaks. Every name and
free text reaches the page as JSON data and is put on screen with ``textContent``, never as HTML.
Households are never drawn: the optional hexagon layer reads ``hexagons.csv``, already
aggregated and suppressed by the pipeline.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import shutil
import warnings
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from profiling.config import MapSettings
from profiling.i18n import english, gettext_for
from profiling.indicators import HazardRule, hazard_words
from profiling.outputs import MAP, MAP_ASSETS
from profiling.publish._data import (
    MAIN_INDICATORS,
    MapIndicator,
    RunTables,
    fmt,
    hazard_area_indicators,
    indicator,
    main_indicators,
    missing,
    safe_id,
    suppressed_text,
)

log = logging.getLogger(__name__)

ASSETS = MAP_ASSETS
#: Sequential palette (ColorBrewer YlOrRd, 5 classes): darker is worse.
PALETTE = ["#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026"]
NO_DATA = "#d9d9d9"
HAZARD_BLUES = ["#c6dbef", "#6baed6", "#08519c"]
#: The hexagons' households per cell, light to dark (purples: no choropleth uses them).
HEX_PURPLES = ["#f2f0f7", "#cbc9e2", "#9e9ac8", "#756bb1", "#54278f"]
#: Overlay colours by kind of hazard: depths in blues, classes in browns, continuous values
#: (heat) in reds, the lightest first.
HAZARD_COLOURS = {"depth": HAZARD_BLUES,
                  "class": ["#ffffd4", "#fee391", "#fec44f", "#fe9929", "#d95f0e", "#993404"],
                  "continuous": ["#fcbba1", "#fb6a4a", "#a50f15"]}
#: Simplification tolerance for display (degrees; about 2 m at the equator).
SIMPLIFY_DEG = 2e-5


def classify(values: pd.Series, k: int = 5) -> tuple[str, list[float]]:
    """Class upper bounds of ``values`` (NaN ignored): Fisher-Jenks natural breaks, fewer
    classes when there are fewer distinct values. Returns the method's name and the bounds."""
    x = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    distinct = np.unique(x)
    if len(distinct) == 0:
        return "no values", []
    if len(distinct) <= k:
        return f"one class per value ({len(distinct)})", [float(v) for v in distinct]
    return f"Fisher-Jenks natural breaks, {k} classes", fisher_jenks(x, k)


#: Where the CUF rank's groups end: a planner reads "the top 10", "11 to 20", not natural
#: breaks of ranks; the groups widen down the list (a city of 2,000 has no use for 200 of them).
RANK_GROUP_ENDS = (10, 20, 50, 100, 200, 500, 1000)
RANK_GROUPS = "CUF rank groups"


def rank_groups(values: pd.Series) -> tuple[str, list[float]]:
    """Class upper bounds of ranks: 10, 20, 50, 100... up to the last rank, which ends the
    last group. Returns the method's name (:data:`RANK_GROUPS`) and the bounds."""
    x = pd.to_numeric(values, errors="coerce").dropna()
    if x.empty:
        return "no values", []
    last = float(x.max())
    bounds = [float(e) for e in RANK_GROUP_ENDS if e < last]
    return RANK_GROUPS, [*bounds, last]


#: Columns of the cost matrix computed at once (bounds its memory: n x this many floats).
_FJ_BLOCK = 256


def fisher_jenks(values: np.ndarray, k: int) -> list[float]:
    """The upper bounds of the ``k`` classes of ``values`` that minimise the sum of squared
    deviations from the class means (Fisher's exact optimal partition, "natural breaks").

    Dynamic programming over the sorted values with prefix sums: numpy, one block of the
    cost matrix at a time, where mapclassify's numba version spends seconds compiling on
    its first call in every process."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    k = min(k, n)
    s1 = np.concatenate([[0.0], np.cumsum(x)])
    s2 = np.concatenate([[0.0], np.cumsum(x * x)])
    starts = np.arange(n)
    # best[c][j]: the least cost of x[0..j] in c + 1 classes; first[c][j]: where its last
    # class starts
    best = np.empty((k, n))
    first = np.zeros((k, n), dtype=np.int64)
    size = np.arange(1, n + 1, dtype=float)
    best[0] = s2[1:] - s1[1:] ** 2 / size
    for c in range(1, k):
        for lo in range(0, n, _FJ_BLOCK):
            j = np.arange(lo, min(lo + _FJ_BLOCK, n))
            # the last class is x[i..j]; the classes before cover x[0..i-1]. The best start
            # never moves left as j grows (the cost is a Monge array), so i begins where the
            # block's first j found its best start, and never passes the block's last j.
            i0 = max(1, int(first[c, lo - 1])) if lo else 1
            i = starts[i0:int(j[-1]) + 1, None]
            count = (j[None, :] - i + 1).astype(float)
            ok = count >= 1
            safe = np.where(ok, count, 1.0)
            seg = (s2[j + 1][None, :] - s2[i]) - (s1[j + 1][None, :] - s1[i]) ** 2 / safe
            total = np.where(ok, best[c - 1][i - 1] + seg, np.inf)
            arg = np.argmin(total, axis=0)
            best[c, j] = total[arg, np.arange(len(j))]
            first[c, j] = arg + i0
    bounds = []
    end = n - 1
    for c in range(k - 1, -1, -1):
        bounds.append(float(x[end]))
        end = int(first[c, end]) - 1
    return bounds[::-1]


def class_of(v: float, bounds: list[float]) -> int:
    """Index of the class holding ``v`` (upper bounds inclusive), -1 when empty."""
    if missing(v) or not bounds:
        return -1
    i = int(np.searchsorted(np.asarray(bounds), float(v), side="left"))
    return min(i, len(bounds) - 1)


def colours(n: int, higher_is_worse: bool, palette: list[str] = PALETTE) -> list[str]:
    """``n`` colours of ``palette`` from light to dark (reversed when higher is better)."""
    if n == 0:
        return []  # an indicator no settlement has a value for: no class, only "no data"
    idx = (np.linspace(0, len(palette) - 1, n).round().astype(int) if n > 1
           else np.array([len(palette) - 1]))
    cols = [palette[i] for i in idx]
    return cols if higher_is_worse else cols[::-1]


def legend_labels(bounds: list[float], kind: str, method: str,
                  _: Callable[..., str] | None = None) -> list[str]:
    """Each class's words in a legend (in the language of ``_``, English by default)."""
    tr = _ or english
    if method == RANK_GROUPS:  # "top 10", "11 to 20", ..., "51 to 64"
        groups, end = [], 0
        for b in bounds:
            hi = int(b)
            groups.append(tr("top %(n)s", n=hi) if end == 0 else
                          (f"{end + 1:,}" if hi == end + 1 else
                           tr("%(lo)s to %(hi)s", lo=f"{end + 1:,}", hi=f"{hi:,}")))
            end = hi
        return groups
    if method.startswith("one class"):
        return [fmt(b, kind) for b in bounds]
    labels, lo = [], None
    for b in bounds:
        labels.append(tr("%(value)s or less", value=fmt(b, kind)) if lo is None else
                      tr("over %(lo)s to %(hi)s", lo=fmt(lo, kind), hi=fmt(b, kind)))
        lo = b
    return labels


def method_words(method: str, _: Callable[..., str] | None = None) -> str:
    """How a legend's classes were made, in the language of ``_``."""
    import re

    tr = _ or english
    jenks = re.fullmatch(r"Fisher-Jenks natural breaks, (\d+) classes", method)
    if jenks:
        return tr("Fisher-Jenks natural breaks, %(k)s classes", k=int(jenks.group(1)))
    one = re.fullmatch(r"one class per value \((\d+)\)", method)
    if one:
        return tr("one class per value (%(n)s)", n=int(one.group(1)))
    return tr(method)


def display_geometry(table: pd.DataFrame) -> Any:
    """Settlement polygons simplified for display as a coverage (no gaps or overlaps between
    neighbours: shapely's coverage simplification), coordinates to 6 decimals (10 cm)."""
    import shapely

    geoms = np.asarray(table.geometry.values, dtype=object)
    try:
        simple = shapely.coverage_simplify(geoms, SIMPLIFY_DEG, simplify_boundary=True)
    except Exception as exc:  # not a valid coverage (overlaps): simplify each polygon alone
        log.warning("settlements are not a clean coverage (%s): simplified one by one", exc)
        simple = shapely.simplify(geoms, SIMPLIFY_DEG, preserve_topology=True)
    return shapely.set_precision(simple, 1e-6)


def _display(tables: RunTables) -> Any:
    """:func:`display_geometry` of the settlements, computed once per tables."""
    if "geometry" not in tables.drawn:
        tables.drawn["geometry"] = display_geometry(tables.settlements)
    return tables.drawn["geometry"]


def _classes(tables: RunTables, m: MapIndicator) -> tuple[str, list[float]]:
    """The classes of an indicator of the settlement table, computed once per tables: rank
    groups for a rank, else :func:`classify`."""
    key = f"classes:{m.column}"
    if key not in tables.drawn:
        values = tables.settlements[m.column]
        tables.drawn[key] = rank_groups(values) if m.kind == "rank" else classify(values)
    return tables.drawn[key]


def _mapped(tables: RunTables, settings: MapSettings) -> list[MapIndicator]:
    cols = settings.indicators or [m.column for m in main_indicators(tables.hazards)]
    return [indicator(c, tables.hazards) for c in cols if c in tables.settlements.columns]


#: What the page's script writes itself (English message ids): handed to it translated.
MAP_MESSAGES = (
    "Open the settlement profile", "Households: %(n)s", "Slum households: %(share)s",
    "Households in hexagons (cells under %(k)s households left out)",
    "Funded by the CUF portfolio", "Classes: %(method)s", "no data (not modelled)",
    "no data, or %(suppressed)s", "funded by the CUF portfolio", "Households per hexagon",
    "Hazard: %(name)s, %(unit)s", "Source: %(source)s", "Enumerated from %(first)s to %(last)s",
    "Sources: ", "CUF portfolio: %(total)s in %(n)s settlements", "Persons served: %(n)s",
    "Intervention", "Units", "Cost", "Settlement", "Settlements", "Rank", "Hazard: %(name)s",
    "and %(n)s more settlements (cuf_portfolio.csv)", "Find a settlement",
    "Find a settlement by name", "No settlement named %(name)s")


def map_label(m: MapIndicator, hazards: tuple[HazardRule, ...] = (),
              _: Callable[..., str] = english) -> str:
    """How the map names an indicator, in the language of ``_``."""
    for h in hazards:
        words = hazard_words(h, _)
        if m.column == f"{h.name}_area_share" and h.exposed is not None:
            return _("Area where %(hazard)s ≥ %(value)s", hazard=words, value=h.value(h.exposed))
        if m.column == f"{h.name}_high_area_share" and h.high is not None:
            return _("Area where %(hazard)s ≥ %(value)s", hazard=words, value=h.value(h.high))
        if m.column == h.mean_column:
            return _("Mean %(hazard)s over the modelled area", hazard=words)
    return _(m.label)


def popup_rows(row: Any, k: int, hazards: tuple[HazardRule, ...] = (),
               n_ranked: int | None = None,
               _: Callable[..., str] = english) -> list[list[str]]:
    """The mini-profile of a settlement: (label, figure) pairs, no household figure when the
    settlement is suppressed; a rank says out of how many (``n_ranked``) when that is given.
    In the language of ``_`` (English by default)."""
    rows: list[list[str]] = []
    if missing(row.get("households")):
        rows.append([_("Households"), suppressed_text(k, _)])
    else:
        rows += [[_("Households"), fmt(row["households"], "number")],
                 [_("Persons"), fmt(row.get("population"), "number")]]
        for m in MAIN_INDICATORS:
            if m.household_based and m.kind == "share" and m.column in row:
                rows.append([_(m.label), fmt(row[m.column], m.kind)])
    for h in hazards:  # land, not households: shown even where households are suppressed
        m = hazard_area_indicators(h)[0]
        if m.column in row:
            rows.append([map_label(m, hazards, _), fmt(row[m.column], m.kind)])
    if "cuf_rank" in row:
        rank = row["cuf_rank"]
        if missing(rank):
            rows.append([_("CUF rank"), _("not ranked")])
        elif n_ranked:
            rows.append([_("CUF rank"), _("%(rank)s of %(n)s", rank=fmt(rank, "rank"),
                                          n=f"{n_ranked:,}")])
        else:
            rows.append([_("CUF rank"), fmt(rank, "rank")])
    return rows


def map_data(tables: RunTables, settings: MapSettings, hazards: list[dict[str, Any]]
             ) -> dict[str, Any]:
    """Everything the page's script draws, as JSON-ready data."""
    t = tables.settlements
    k = tables.k
    _ = gettext_for(tables.language)
    mapped = _mapped(tables, settings)
    layers = []
    classes: dict[str, list[int]] = {}
    for m in mapped:
        values = t[m.column]
        method, bounds = _classes(tables, m)
        cols = colours(len(bounds), m.higher_is_worse)
        classes[m.column] = [class_of(v, bounds) for v in values]
        layers.append({"key": m.column, "label": map_label(m, tables.hazards, _),
                       "method": method_words(method, _),
                       "colours": cols, "labels": legend_labels(bounds, m.kind, method, _),
                       "land": not m.household_based})
    geoms = _display(tables)
    import shapely

    features = []
    shapes = shapely.to_geojson(geoms)  # all at once
    records = t.drop(columns="geometry", errors="ignore").to_dict("records")
    funded = funded_here(tables.portfolio)
    for i, row in enumerate(records):
        sup = missing(row.get("households"))
        figs = {m.column: (suppressed_text(k, _) if sup and m.household_based
                           else fmt(row[m.column], m.kind)) for m in mapped}
        sid = str(row["settlement_id"])
        popup = popup_rows(row, k, tables.hazards, tables.n_ranked, _)
        if funded is not None:
            popup.append([_("Funded by the CUF portfolio"), funded.get(sid, _("nothing"))])
        features.append({
            "type": "Feature",
            "geometry": json.loads(shapes[i]),
            "properties": {
                "id": sid, "name": str(row["name"]),
                "href": f"atlas/{safe_id(row['settlement_id'])}.html", "suppressed": sup,
                "cls": {m.column: classes[m.column][i] for m in mapped}, "fig": figs,
                "popup": popup, "funded": funded is not None and sid in funded},
        })
    dates = tables.dates
    span = None
    if len(dates) and {"first_interview", "last_interview"} <= set(dates.columns):
        first, last = dates["first_interview"].dropna(), dates["last_interview"].dropna()
        if len(first) and len(last):
            span = [str(first.astype(str).min()), str(last.astype(str).max())]
    hex_legend = hexagon_legend(tables.hexagons, _)
    about = {"title": settings.title or _("Settlement profiles"), "dates": span,
             "sources": [[_(kind), files] for kind, files in tables.sources],
             "k": _("No figure is computed from fewer than %(k)s households.", k=k)}
    text = {} if tables.language == "en" else {m: _(m) for m in MAP_MESSAGES}
    return {"k": k, "about": about, "suppressed": suppressed_text(k, _), "no_data": NO_DATA,
            "text": text,
            "layers": layers,
            "settlements": {"type": "FeatureCollection", "features": features},
            "hexagons": hexagon_features(tables.hexagons, hex_legend["bounds"]),
            "hexagon_legend": hex_legend, "hazards": hazards,
            "portfolio": portfolio_panel(tables),
            "basemap": settings.basemap, "attribution": settings.basemap_attribution,
            "basemap_local": None}


def _words(name: object) -> str:
    return str(name).replace("_", " ")


def funded_here(portfolio: pd.DataFrame | None) -> dict[str, str] | None:
    """What the CUF portfolio funds in each settlement it funds ("water point × 2, waste
    point × 1: 12,000"); None without a portfolio."""
    if portfolio is None or not len(portfolio):
        return None
    out = {}
    for sid, g in portfolio.groupby(portfolio["settlement_id"].astype(str), sort=False):
        parts = ", ".join(f"{_words(r['intervention'])} × {fmt(r['units'], 'number')}"
                          for r in g.to_dict("records"))
        out[sid] = f"{parts}: {fmt(pd.to_numeric(g['cost']).sum(), 'number')}"
    return out


#: The settlements the map's portfolio panel lists by name (the rest are counted).
PANEL_SETTLEMENTS = 15


def portfolio_panel(tables: RunTables) -> dict[str, Any] | None:
    """The portfolio in figures, for the map's panel: its total cost, the settlements it funds
    and the persons its interventions serve, per intervention (units, cost, settlements), and
    the funded settlements in rank order (the first :data:`PANEL_SETTLEMENTS` by name)."""
    p = tables.portfolio
    if p is None or not len(p):
        return None
    p = p.assign(settlement_id=p["settlement_id"].astype(str),
                 cost=pd.to_numeric(p["cost"], errors="coerce"),
                 units=pd.to_numeric(p["units"], errors="coerce"))
    per_iv = (p.groupby("intervention", sort=False)
              .agg(units=("units", "sum"), unit=("unit", "first"), cost=("cost", "sum"),
                   settlements=("settlement_id", "nunique"))
              .sort_values("cost", ascending=False))
    pr = tables.priorities.assign(settlement_id=tables.priorities["settlement_id"].astype(str))
    pr = pr[pr["settlement_id"].isin(set(p["settlement_id"]))]
    if "cuf_rank" in pr:
        pr = pr.sort_values("cuf_rank")
    persons = pd.to_numeric(pr.get("portfolio_beneficiaries", pd.Series(dtype=float)),
                            errors="coerce")
    funded = [[str(r["name"]), "" if missing(r.get("cuf_rank")) else fmt(r["cuf_rank"], "rank"),
               fmt(p.loc[p["settlement_id"] == r["settlement_id"], "cost"].sum(), "number")]
              for r in pr.head(PANEL_SETTLEMENTS).to_dict("records")]
    n = int(p["settlement_id"].nunique())
    return {"total": fmt(p["cost"].sum(), "number"), "settlements": f"{n:,}",
            "persons": fmt(persons.sum(min_count=1), "number"),
            "interventions": [[_words(iv), f"{fmt(r['units'], 'number')} {_words(r['unit'])}",
                               fmt(r["cost"], "number"), f"{int(r['settlements']):,}"]
                              for iv, r in per_iv.iterrows()],
            "funded": funded, "more": max(0, n - len(funded))}


def hexagon_legend(hexes: pd.DataFrame, _: Callable[..., str] | None = None
                   ) -> dict[str, Any]:
    """The hexagons' classes of households per cell (natural breaks, like the choropleths),
    their purples and labels (in the language of ``_``)."""
    if hexes is None or hexes.empty:
        return {"method": method_words("no values", _), "bounds": [], "colours": [],
                "labels": []}
    method, bounds = classify(hexes["households"])
    return {"method": method_words(method, _), "bounds": bounds,
            "colours": colours(len(bounds), True, HEX_PURPLES),
            "labels": legend_labels(bounds, "number", method, _)}


def hexagon_features(hexes: pd.DataFrame, bounds: list[float]) -> list[dict[str, Any]]:
    """Published H3 cells with their counts and their class among ``bounds``
    (:func:`hexagon_legend`). Vertices are written as whole Web Mercator metres (Leaflet's own
    projection): grid geometry, never a household's point."""
    if hexes is None or hexes.empty:
        return []
    import h3
    from pyproj import Transformer

    to_merc = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    rings = [h3.cell_to_boundary(str(c)) for c in hexes["h3_cell"]]
    ends = np.cumsum([len(r) for r in rings])
    lat, lon = np.array([p for r in rings for p in r], dtype=float).reshape(-1, 2).T
    # every vertex projected at once, rounded as round() does (half to even)
    x, y = to_merc.transform(lon, lat)
    xy = np.rint(np.column_stack([x, y])).astype(np.int64).tolist()
    starts = np.r_[0, ends[:-1]]
    feats = []
    for r, a, b in zip(hexes.itertuples(), starts.tolist(), ends.tolist(), strict=True):
        feats.append({"xy": xy[a:b],
                      "households": int(r.households),
                      "cls": class_of(float(r.households), bounds),
                      "slum": fmt(r.slum_household_share, "share"),
                      "slum_value": None if missing(r.slum_household_share)
                      else float(r.slum_household_share)})
    return feats


#: The hazard overlay's long side at most (pixels): what a browser shows of a city.
OVERLAY_MAX_SIDE = 2048


def save_overlays(overlays: list[tuple[dict[str, Any], np.ndarray]], folder: Path
                  ) -> list[dict[str, Any]]:
    """Write each rendered overlay's image to ``folder``; returns what the page reads."""
    # matplotlib's object API, never pyplot: choosing a backend here would switch off a
    # notebook's inline plots for the rest of its kernel
    from matplotlib.image import imsave

    out = []
    for meta, rgba in overlays:
        imsave(folder / Path(meta["image"]).name, rgba, metadata={"Software": None})  # type: ignore[dict-item]
        out.append(meta)
    return out


#: Around the settlements, the overlay shows this share of their extent on each side.
OVERLAY_MARGIN = 0.25


def _bins(h: Any, data: np.ndarray) -> list[tuple[float, float, str]]:
    """The overlay's classes of value ``(from, to, label)``: a depth from above 0 m, through
    its ``exposed`` and ``high`` thresholds; a continuous value at and above its thresholds
    (or, without any, in three bins of equal count between its quantiles)."""
    unit = f" {h.unit}" if h.unit else ""
    if h.kind == "depth":
        lo, hi = h.thresholds.get("exposed", 0.15), h.thresholds.get("high", 0.5)
        return [(0.0, lo, f"above 0 to {lo:g}{unit}"), (lo, hi, f"{lo:g} to {hi:g}{unit}"),
                (hi, np.inf, f"{hi:g}{unit} or more")]
    cuts = sorted(v for k, v in h.thresholds.items() if k in ("exposed", "high"))
    if not cuts:
        known = data[~np.isnan(data)]
        if not len(known):
            return []
        q = np.quantile(known, [1 / 3, 2 / 3])
        cuts = sorted({float(known.min()), float(q[0]), float(q[1])})  # skewed: fewer bins
    edges = [*cuts, np.inf]
    return [(a, b, f"{a:.3g} to {b:.3g}{unit}" if np.isfinite(b) else f"{a:.3g}{unit} or more")
            for a, b in itertools.pairwise(edges)]


def _colour(h: Any, data: np.ndarray, rgba: np.ndarray) -> tuple[list[list[str]], str]:
    """Paint ``rgba`` from ``data`` by the hazard's kind; its legend and what it shows."""
    import matplotlib.colors as mcolors

    colours = HAZARD_COLOURS[h.kind]
    legend = []
    if h.kind == "class":
        vals = [v for v in np.unique(data[~np.isnan(data)]) if v != 0][:8]
        for i, v in enumerate(vals):  # the classes found, spread over the palette
            colour = colours[round(i * (len(colours) - 1) / max(len(vals) - 1, 1))]
            rgba[data == v] = _rgba(mcolors.to_rgb(colour), 0.75)
            legend.append([colour, f"class {v:g}"])
        return legend, h.words
    bins = _bins(h, data)
    for (a, b, label), colour in zip(bins, colours[-len(bins):], strict=True):
        sel = (data > a if a == 0 and h.kind == "depth" else data >= a) & (data < b)
        rgba[sel] = _rgba(mcolors.to_rgb(colour), 0.75)
        legend.append([colour, label])
    unit = {"m": "metres"}.get(h.unit or "", h.unit or "")
    return legend, f"{h.words} ({unit})" if unit else h.words


def render_overlays_apart(hazards: list[Any], around: tuple[Any, Any] | None = None
                          ) -> tuple[list[tuple[dict[str, Any], np.ndarray]],
                                     list[tuple[int, str]]]:
    """:func:`render_overlays` in a process of its own: what it logs comes back as data
    (level, message), for the run to log where its handlers are."""
    records: list[tuple[int, str]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append((record.levelno, record.getMessage()))

    keep = Keep(logging.INFO)
    package = logging.getLogger("profiling")
    package.addHandler(keep)
    try:
        # one thread: beside a run's ingest, which wants the other core
        return render_overlays(hazards, around, threads=1), records
    finally:
        package.removeHandler(keep)


def render_overlays(hazards: list[Any], around: tuple[Any, Any] | None = None,
                    threads: int | None = None) -> list[tuple[dict[str, Any], np.ndarray]]:
    """Each configured hazard raster coloured in EPSG:4326 (an RGBA array), with its legend;
    with ``around`` (bounds and CRS of the settlements), only the part of the raster around
    them (a national model is shown where the city is, at the city's resolution).

    The raster is read decimated to display resolution (:func:`profiling.hazard.preview`: at
    most :data:`OVERLAY_MAX_SIDE` pixels on the long side, one tile at a time), then warped,
    so memory does not grow with the raster's size. The legend names the source file and, for
    a stack of return periods, the one shown (the first layer)."""
    import rasterio
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    from profiling.hazard import open_hazard, preview

    out = []
    for h in hazards:
        path = Path(h.path)
        if not path.exists():
            continue
        layer = open_hazard(h)
        p = preview(layer, OVERLAY_MAX_SIDE, threads=threads, bounds=_around(around, layer.crs))
        src_h, src_w = p.values.shape
        if not src_h or not src_w:
            log.warning("%s: the raster does not reach the settlements; no overlay", path)
            continue
        west, north = p.transform.c, p.transform.f
        east, south = west + p.transform.a * src_w, north + p.transform.e * src_h
        with warnings.catch_warnings():
            # rasterio multiplies Affine transforms with `*` (affine 3.1 would have `@`)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            dst_t, w, hgt = calculate_default_transform(
                p.crs.to_wkt(), "EPSG:4326", src_w, src_h, left=min(west, east),
                bottom=min(south, north), right=max(west, east), top=max(south, north))
            data = np.full((hgt, w), np.nan, dtype="float32")
            with rasterio.Env():
                reproject(p.values, data, src_transform=p.transform, src_crs=p.crs.to_wkt(),
                          dst_transform=dst_t, dst_crs="EPSG:4326",
                          resampling=Resampling.nearest, src_nodata=np.nan, dst_nodata=np.nan)
        rgba = np.zeros((hgt, w, 4), dtype=np.uint8)
        legend, unit = _colour(h, data, rgba)
        name = f"hazard_{safe_id(h.name)}.png"
        west, north = dst_t.c, dst_t.f
        east, south = west + dst_t.a * w, north + dst_t.e * hgt
        shown = (f"return period {layer.labels[0]}" if layer.return_periods
                 else f"scenario {layer.labels[0]}" if layer.labels else None)
        out.append(({"name": h.name, "unit": unit, "legend": legend,
                     "source": path.name, "scenario": shown,
                     "image": f"{ASSETS}/{name}",
                     "bounds": [[round(south, 6), round(west, 6)], [round(north, 6),
                                                                    round(east, 6)]]}, rgba))
    return out


def _around(around: tuple[Any, Any] | None, crs: Any
            ) -> tuple[float, float, float, float] | None:
    """The settlements' bounds with a margin, in a raster's CRS."""
    if around is None:
        return None
    from pyproj import CRS
    from pyproj.transformer import Transformer

    (x0, y0, x1, y1), src_crs = around
    dx, dy = (x1 - x0) * OVERLAY_MARGIN, (y1 - y0) * OVERLAY_MARGIN
    t = Transformer.from_crs(CRS.from_user_input(src_crs), CRS.from_user_input(crs),
                             always_xy=True)
    return t.transform_bounds(x0 - dx, y0 - dy, x1 + dx, y1 + dy, densify_pts=21)


def _rgba(rgb: tuple[float, float, float], alpha: float) -> tuple[int, int, int, int]:
    r, g, b = (round(c * 255) for c in rgb)
    return r, g, b, round(alpha * 255)


def _script_json(data: object) -> str:
    """JSON safe inside a script: ``<``, ``>`` and ``&`` as unicode escapes."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def write_map(tables: RunTables, settings: MapSettings, hazards: list[Any] | None = None,
              overlays: list[tuple[dict[str, Any], np.ndarray]] | None = None
              ) -> dict[str, Path]:
    """Write ``map.html`` and its folder of scripts, styles and images; nothing is fetched.
    ``overlays``: the hazards already rendered (:func:`render_overlays`), else they are
    rendered here."""
    out = tables.out
    folder = copy_assets(out)
    t = tables.settlements
    bounds = tuple(float(v) for v in t.total_bounds) if tables.has_geometry and len(t) else None
    if overlays is None:
        around = (bounds, "EPSG:4326") if bounds is not None else None
        overlays = render_overlays(list(hazards or []), around)
    data = map_data(tables, settings, save_overlays(overlays, folder))
    if settings.basemap_file is not None and bounds is not None:
        from profiling.publish.basemap import extract

        data["basemap_local"] = extract(settings.basemap_file, bounds,  # type: ignore[arg-type]
                                        folder / "basemap")
    title = gettext_for(tables.language)("Settlement profiles: map")
    return {"map": write_page(out, data, bounds, title, tables.language)}


def copy_assets(out: Path) -> Path:
    """``out/map_files`` afresh, with Leaflet (its licence kept), the page's script and
    styles: everything the page needs but its data."""
    folder = out / ASSETS
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    static = resources.files("profiling") / "static"
    templates = resources.files("profiling") / "templates"
    lf = folder / "leaflet"
    (lf / "images").mkdir(parents=True)
    for name in ("leaflet.js", "leaflet.css", "LICENSE"):
        (lf / name).write_bytes((static / "leaflet" / name).read_bytes())
    for name in ("layers.png", "layers-2x.png", "marker-icon.png", "marker-shadow.png"):
        (lf / "images" / name).write_bytes((static / "leaflet" / "images" / name).read_bytes())
    for name in ("map.js", "map.css"):
        (folder / name).write_bytes((templates / name).read_bytes())
    return folder


def write_page(out: Path, data: dict[str, Any], bounds: tuple[float, ...] | None,
               title: str, language: str = "en") -> Path:
    """``out/map.html`` drawing ``data`` (:func:`map_data`'s form) with the assets of
    :func:`copy_assets`, viewing ``bounds`` (west, south, east, north; degrees)."""
    import branca.element as be
    import folium

    folder = out / ASSETS
    (folder / "data.js").write_text("window.PROFILING_MAP = " + _script_json(data) + ";\n",
                                    encoding="utf-8")
    if bounds is not None:
        # view bounds rounded outwards to 3 decimals (about 100 m): a view, not a place
        w, s = (math.floor(float(v) * 1000) / 1000 for v in bounds[:2])
        e, n = (math.ceil(float(v) * 1000) / 1000 for v in bounds[2:])
        location = [round((s + n) / 2, 3), round((w + e) / 2, 3)]
    else:
        location, (w, s, e, n) = [0.0, 0.0], (-1.0, -1.0, 1.0, 1.0)
    m = folium.Map(location=location, tiles=None, zoom_start=14, control_scale=True)
    m.default_js = [("leaflet", f"{ASSETS}/leaflet/leaflet.js"),
                    ("profiling_data", f"{ASSETS}/data.js"),
                    ("profiling_map", f"{ASSETS}/map.js")]
    m.default_css = [("leaflet_css", f"{ASSETS}/leaflet/leaflet.css"),
                     ("profiling_css", f"{ASSETS}/map.css")]
    m.fit_bounds([[s, w], [n, e]])
    macro = be.MacroElement()
    macro._template = be.Template(
        "{% macro script(this, kwargs) %}profilingMap({{ this._parent.get_name() }}, "
        "window.PROFILING_MAP);{% endmacro %}")
    m.add_child(macro)
    root = m.get_root()
    root.title = title  # type: ignore[attr-defined]
    html = root.render()
    if language != "en":  # folium writes no lang; a screen reader reads the page in this one
        html = html.replace("<html>", f'<html lang="{language}">', 1)
    _check_offline(html)
    path = out / MAP
    path.write_text(html, encoding="utf-8")
    return path


def _check_offline(html: str) -> None:
    import re

    remote = re.findall(r"""(?:src|href)\s*=\s*["'](?:https?:)?//[^"']+""", html)
    if remote:
        raise RuntimeError(f"map.html would fetch from outside its folder: {remote[:3]}")


def write_pngs(tables: RunTables, settings: MapSettings) -> dict[str, Path]:
    """A static PNG map per mapped indicator (``maps/<column>.png``), for reports."""
    if not tables.has_geometry or tables.settlements.empty:
        return {}
    from matplotlib.figure import Figure  # not pyplot: the caller's backend stays as it is
    from matplotlib.patches import Patch

    folder = tables.out / "maps"
    folder.mkdir(exist_ok=True)
    t = tables.settlements
    written: dict[str, Path] = {}
    geo = t.set_geometry(_display(tables))
    # the polygons are drawn once; each map recolours them (2,000 settlements: one drawing)
    fig = Figure(figsize=(8, 8), dpi=100)
    ax = fig.subplots()
    geo.plot(ax=ax, color=NO_DATA, edgecolor="#555555", linewidth=0.4)
    ax.set_axis_off()
    shapes = ax.collections[0]
    drawn = ~(geo.geometry.isna() | geo.geometry.is_empty).to_numpy()  # as geopandas draws
    for m in _mapped(tables, settings):
        method, bounds = _classes(tables, m)
        cols = colours(len(bounds), m.higher_is_worse)
        cls = [class_of(v, bounds) for v in t[m.column]]
        shapes.set_facecolor([cols[c] if c >= 0 else NO_DATA
                              for c, d in zip(cls, drawn, strict=True) if d])
        handles = [Patch(facecolor=c, edgecolor="#555555", label=lab) for c, lab in
                   zip(cols, legend_labels(bounds, m.kind, method), strict=True)]
        handles.append(Patch(facecolor=NO_DATA, edgecolor="#555555",
                             label=f"no data or {suppressed_text(tables.k)}"))
        legend = ax.legend(handles=handles, title=method, loc="upper left",
                           bbox_to_anchor=(1.0, 1.0), fontsize=8, title_fontsize=8,
                           frameon=False)
        ax.set_title(m.label)
        path = folder / f"{m.column}.png"
        fig.savefig(path, bbox_inches="tight", metadata={"Software": None})
        legend.remove()
        written[f"png_{m.column}"] = path
    return written
