"""What presentation reads: the computed tables of a run's output folder, nothing else.

Formatting lives here too, so the map, the PNGs and the atlas write every figure the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from profiling._errors import ConfigError
from profiling.indicators import HazardRule
from profiling.outputs import (
    CITY_SUMMARY,
    DATES,
    HEXAGONS,
    MANIFEST,
    PARAMETERS,
    PORTFOLIO,
    PRIORITIES,
    SETTLEMENT_GPKG,
    SETTLEMENT_LAYER,
    SETTLEMENT_TABLE,
    read_csv,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MapIndicator:
    """A column of the settlement table drawn as a choropleth."""

    column: str
    label: str
    kind: str  # "share", "share_area", "rank", "number", or a unit ("m", "°C")
    higher_is_worse: bool = True
    household_based: bool = True


#: The main household indicators, drawn by default (each hazard's area share follows them).
MAIN_INDICATORS: tuple[MapIndicator, ...] = (
    MapIndicator("slum_household_share", "Slum households", "share"),
    MapIndicator("water_basic_share", "Basic drinking water", "share", False),
    MapIndicator("sanitation_basic_share", "Basic sanitation", "share", False),
    MapIndicator("tenure_secure_share", "Secure tenure", "share", False),
    MapIndicator("overcrowded_share", "Overcrowded households", "share"),
)
RANK = MapIndicator("cuf_rank", "CUF priority rank (1 = first)", "rank", False)


def hazard_area_indicators(h: HazardRule) -> list[MapIndicator]:
    """A hazard's area figures (CONTRACT.md §3) for display: the shares of the modelled area
    at or above its thresholds and its mean value, in its unit. They describe land, not
    households: never suppressed."""
    out = []
    if h.exposed is not None:
        out.append(MapIndicator(f"{h.name}_area_share", f"Area where {h.words} ≥ "
                                f"{h.value(h.exposed)}", "share_area", True, False))
    if h.high is not None:
        out.append(MapIndicator(f"{h.name}_high_area_share", f"Area where {h.words} ≥ "
                                f"{h.value(h.high)}", "share_area", True, False))
    out.append(MapIndicator(h.mean_column, f"Mean {h.words} over the modelled area",
                            h.unit or "number", True, False))
    return out


def main_indicators(hazards: tuple[HazardRule, ...] = ()) -> list[MapIndicator]:
    """What the map draws by default: the main indicators, each hazard's exposed area share,
    and the CUF rank."""
    return [*MAIN_INDICATORS, *(hazard_area_indicators(h)[0] for h in hazards
                                if h.exposed is not None), RANK]


def indicator(column: str, hazards: tuple[HazardRule, ...] = ()) -> MapIndicator:
    """The display definition of a column (a generic one for columns not listed): a column
    of a hazard's area figures (``<hazard>_...`` but not ``<hazard>_exposed_...``) is about
    land, not households."""
    known = {m.column: m for m in [*MAIN_INDICATORS, RANK, *(
        m for h in hazards for m in hazard_area_indicators(h))]}
    if column in known:
        return known[column]
    kind = "share" if column.endswith("_share") else "number"
    land = any(column.startswith(f"{h.name}_") and not column.startswith(f"{h.name}_exposed")
               for h in hazards)
    return MapIndicator(column, column.replace("_", " ").capitalize(), kind,
                        household_based=not land)


def missing(x: object) -> bool:
    """True for None, NaN and pandas' NA."""
    if x is None:
        return True
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def fmt(x: object, kind: str = "share") -> str:
    """A figure as the map and atlas print it: shares as whole percentages, counts with
    thousands separators, depths in metres with two decimals; ``–`` when empty."""
    if missing(x):
        return "–"
    v = float(x)  # type: ignore[arg-type]
    if kind.startswith("share"):
        return f"{v:.0%}"
    if kind in ("metres", "m"):
        return f"{v:.2f} m"
    if kind not in ("share", "rank", "number", "share_area"):  # a unit: °C, class...
        return f"{v:,.1f} {kind}"
    if kind == "rank":
        return f"{v:.0f}"
    return f"{v:,.0f}" if float(v).is_integer() or abs(v) >= 100 else f"{v:,.2f}"


def suppressed_text(k: int, _: Callable[..., str] | None = None) -> str:
    """What replaces the figures of a settlement with fewer than k households (in the
    language of ``_``, English by default)."""
    if _ is None:
        return f"suppressed (fewer than {k} households)"
    return _("suppressed (fewer than %(k)s households)", k=k)


@dataclass
class RunTables:
    """The tables of one run's output folder that presentation reads."""

    out: Path
    settlements: pd.DataFrame  # with a geometry column (EPSG:4326) when the run had polygons
    priorities: pd.DataFrame
    city: pd.DataFrame
    parameters: dict[str, float | str]
    hexagons: pd.DataFrame
    dates: pd.DataFrame
    portfolio: pd.DataFrame | None
    #: How consent was obtained outside the form, per export that had no consent field (from
    #: the configuration; shown in the atlas).
    consent_outside_form: tuple[str, ...] = ()
    #: The run's hazards (from the configuration): their area figures, sections and legends.
    hazards: tuple[HazardRule, ...] = ()
    #: The input files the figures come from, by kind (file names only, from the
    #: configuration): the map's title block names them.
    sources: tuple[tuple[str, str], ...] = ()
    #: The community's corrections published beside the enumerated figures
    #: (``validated_figures.csv``; None when the run has none).
    validated: pd.DataFrame | None = None
    #: Each settlement's "then and now" in a comparison's later round (by settlement id:
    #: :func:`profiling.publish.change.profile_sections`); None outside a comparison.
    then_and_now: dict[str, dict[str, Any]] | None = None
    #: What the map and the PNG maps both draw (simplified polygons, class breaks), computed
    #: once by whichever draws first.
    drawn: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: The language of what people read (the configuration's ``language``).
    language: str = "en"

    @property
    def k(self) -> int:
        return int(self.parameters.get("min_cell_size", 5))

    @cached_property
    def slum_components(self) -> str:
        """The city summary's sentence on the components that decide the slum status (empty
        when the summary has none)."""
        c = self.city
        if not len(c) or "indicator" not in c.columns:
            return ""
        hit = c.loc[c["indicator"].astype(str) == "slum_components", "definition"]
        return str(hit.iloc[0]) if len(hit) and not missing(hit.iloc[0]) else ""

    def slum_components_in(self, _: Callable[..., str]) -> str:
        """:attr:`slum_components` said in the language of ``_``."""
        from profiling.indicators import component_words, components_left_out

        said = self.slum_components
        if not said or self.language == "en":
            return said
        return component_words(components_left_out(said), _)

    @property
    def has_geometry(self) -> bool:
        return "geometry" in self.settlements.columns

    def is_suppressed(self, row: pd.Series) -> bool:
        return missing(row.get("households"))

    @cached_property
    def _priority_rows(self) -> dict[str, dict[str, Any]]:
        return _rows_by_id(self.priorities)

    @cached_property
    def _date_rows(self) -> dict[str, dict[str, Any]]:
        return _rows_by_id(self.dates)

    def priority_row(self, settlement_id: str) -> dict[str, Any] | None:
        """The settlement's row of ``cuf_priorities.csv`` (None when it has none)."""
        return self._priority_rows.get(settlement_id)

    def date_row(self, settlement_id: str) -> dict[str, Any] | None:
        """The settlement's row of ``enumeration_dates.csv`` (None when it has none)."""
        return self._date_rows.get(settlement_id)

    @cached_property
    def n_ranked(self) -> int:
        """How many settlements have a CUF rank."""
        if "cuf_rank" not in self.settlements.columns:
            return 0
        return int(pd.to_numeric(self.settlements["cuf_rank"], errors="coerce").notna().sum())


def _rows_by_id(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Each settlement's first row of a table, by settlement id (one pass, not one per page)."""
    if not len(frame) or "settlement_id" not in frame.columns:
        return {}
    first = frame.drop_duplicates("settlement_id", keep="first")
    return {str(row["settlement_id"]): row for row in first.to_dict("records")}


def read_tables(out: str | Path) -> RunTables:
    """Read the settlement table (GeoPackage layer, else CSV) and the tables beside it."""
    out = Path(out)
    csv = out / SETTLEMENT_TABLE
    gpkg = out / SETTLEMENT_GPKG
    if not csv.exists():
        raise ConfigError(f"{csv} does not exist: run `profiling run` first")
    ids = {"settlement_id": str, "name": str}
    if gpkg.exists():
        import geopandas as gpd

        table: pd.DataFrame = gpd.read_file(gpkg, layer=SETTLEMENT_LAYER).to_crs(
            "EPSG:4326")
        table["settlement_id"] = table["settlement_id"].astype(str)
        table["name"] = table["name"].astype(str)
    else:
        table = read_csv(csv, dtype=ids)

    def opt(name: str) -> pd.DataFrame | None:
        p = out / name
        return read_csv(p, dtype=ids, keep_default_na=True) if p.exists() else None

    pri = opt(PRIORITIES)
    city = opt(f"{CITY_SUMMARY}.csv")
    par = opt(PARAMETERS)
    hexes = opt(HEXAGONS)
    dates = opt(DATES)
    params: dict[str, float | str] = ({str(r.parameter): _number_or_text(r.value)
                                       for r in par.itertuples()}
                                      if par is not None else {"min_cell_size": 5.0})
    return RunTables(out, table, pri if pri is not None else pd.DataFrame(),
                     city if city is not None else pd.DataFrame(), params,
                     hexes if hexes is not None else pd.DataFrame(),
                     dates if dates is not None else pd.DataFrame(), opt(PORTFOLIO),
                     hazards=run_hazards(out), validated=opt("validated_figures.csv"),
                     language=run_language(out))


def run_language(out: Path) -> str:
    """The language of the run that wrote ``out`` (its manifest's configuration; English when
    it has none, or names a language without a catalogue)."""
    from profiling.i18n import LANGUAGES

    try:
        manifest = json.loads((out / "run_manifest.json").read_text(encoding="utf-8"))
        language = str(manifest["configuration"].get("language", "en"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "en"
    return language if language in LANGUAGES else "en"


def run_hazards(out: Path) -> tuple[HazardRule, ...]:
    """The hazards of the run that wrote ``out``, as its manifest records its configuration
    (none while a run is still writing: it passes its own)."""
    from profiling.config import HazardSource

    path = out / MANIFEST
    if not path.exists() or path.stat().st_size > 16 * 2**20:
        return ()
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["configuration"]["hazards"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: its configuration's hazards cannot be read ({exc!s:.200})"
                          ) from None
    rules = []
    for e in entries if isinstance(entries, list) else []:
        try:
            rules.append(HazardSource.model_validate(e).rule())
        except ValueError as exc:  # a run of an older version, say: shown without it
            log.warning("%s: a hazard of its configuration is left out of the pages (%s)",
                        path, str(exc).splitlines()[0][:160])
    return tuple(rules)


def _number_or_text(v: object) -> float | str:
    """A parameter's value: a number, or words (the list of tenure documents)."""
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(v)


#: Names Windows reserves for devices, in any case and with any extension.
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
             *(f"lpt{i}" for i in range(1, 10))}
#: The longest settlement id used as a file name as it is (file systems allow 255 bytes).
MAX_NAME = 64


def safe_id(settlement_id: str) -> str:
    """A settlement id as a file name: the id itself when it is only ASCII letters, digits,
    ``-`` and ``_``, at most :data:`MAX_NAME` characters and not a name Windows reserves
    (``CON``, ``NUL``, ``COM1``...); otherwise those characters (every other one as ``_``, cut
    to :data:`MAX_NAME`), then ``.`` and 12 hex digits of the id's SHA-256, so that
    ``RW 01/02`` and ``RW 01-02`` never share a page (no plain id can hold the ``.``)."""
    sid = str(settlement_id)
    name = "".join(c if (c.isascii() and c.isalnum()) or c in "-_" else "_" for c in sid)
    if name == sid and sid and len(sid) <= MAX_NAME and sid.casefold() not in _RESERVED:
        return sid
    return f"{name[:MAX_NAME]}.{hashlib.sha256(sid.encode('utf-8')).hexdigest()[:12]}"


def is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not (isinstance(x, float) and math.isnan(x))


def svg_path(geom: Any, west: float, north: float, stretch: float, scale: float,
             pad: float = 0.0) -> str:
    """A polygon's rings as an SVG path: x = (lon − west) · stretch · scale + pad, y = (north −
    lat) · scale + pad (degrees to the drawing's units, longitude scaled by the cosine of the
    latitude); rings of fewer than three points are left out."""
    import numpy as np

    parts = []
    for poly in getattr(geom, "geoms", [geom]):
        for ring in [poly.exterior, *poly.interiors] if hasattr(poly, "exterior") else []:
            xy = np.asarray(ring.coords)
            if len(xy) < 3:
                continue
            x = np.round((xy[:, 0] - west) * stretch * scale + pad, 1)
            y = np.round((north - xy[:, 1]) * scale + pad, 1)
            parts.append("M" + " L".join(f"{a:g},{b:g}" for a, b in zip(x, y, strict=True))
                         + " Z")
    return " ".join(parts)
