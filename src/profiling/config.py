"""Typed configuration: YAML files loaded into pydantic models that reject unknown keys.

Relative paths in a configuration file are resolved against the folder that holds the file, so a
configuration runs the same from any working directory.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from profiling._errors import ConfigError

if TYPE_CHECKING:
    from profiling.indicators import HazardRule

#: Default thresholds (metres) of the reference flood layer (CONTRACT.md §3).
FLOOD_THRESHOLDS = {"exposed": 0.15, "high": 0.5}
#: The reference flood layer's default weight among the CUF criteria.
FLOOD_CUF_WEIGHT = 0.15

SurveyFormat = Literal["auto", "kobo_csv", "kobo_xlsx", "odk_csv", "odk_zip", "csv", "xlsx",
                       "geojson", "gpkg"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


def _text(v: Any) -> Any:
    """An answer code as text: YAML reads ``1`` as a number and ``1.5`` as a float, while an
    export's answers are text."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return f"{v:g}" if isinstance(v, float) else str(v)
    return v


class MappingCase(_Strict):
    """One case of a field built from several columns: the field takes ``value`` (a choice name,
    or null for unknown) for a row where ``all`` of the conditions hold, or ``any`` of them.
    Each condition names a column and the answers of that column that satisfy it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    value: str | None
    all_of: dict[str, list[str]] | None = Field(default=None, alias="all")
    any_of: dict[str, list[str]] | None = Field(default=None, alias="any")

    @field_validator("value", mode="before")
    @classmethod
    def _value_text(cls, v: Any) -> Any:
        return _text(v)

    @field_validator("all_of", "any_of", mode="before")
    @classmethod
    def _answers_text(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        return {str(_text(k)): ([_text(x) for x in a] if isinstance(a, list) else [_text(a)])
                for k, a in v.items()}

    @model_validator(mode="after")
    def _one_kind(self) -> MappingCase:
        given = [x for x in (self.all_of, self.any_of) if x is not None]
        if len(given) != 1 or not given[0]:
            raise ValueError("a case gives exactly one of 'all' or 'any', naming at least one "
                             "column and its answers")
        if any(not answers for answers in given[0].values()):
            raise ValueError("each column of a case lists at least one answer")
        return self

    @property
    def conditions(self) -> dict[str, list[str]]:
        return self.all_of if self.all_of is not None else (self.any_of or {})


class FieldSource(_Strict):
    """Where a questionnaire field comes from in a survey that does not use the reference names.

    Exactly one of ``column`` (a column of the export), ``sum`` (columns added up, e.g. adults
    and children into ``hh_size``), ``coalesce`` (the first non-empty of several columns, e.g.
    a question split in two by a skip) or ``cases`` (conditions on several columns, e.g.
    handwashing from a soap column and a water column; the first case that holds gives the
    value, ``otherwise`` the value when none holds). ``values`` maps the survey's answers to the
    reference choice names, null to unknown; answers it does not list pass unchanged and are
    validated like any other. Every target is checked against the form when the run starts.
    """

    column: str | None = None
    sum: list[str] | None = None
    coalesce: list[str] | None = None
    cases: list[MappingCase] | None = None
    #: ``members``: the number of the household's rows in its roster (``hh_size``).
    count: Literal["members"] | None = None
    otherwise: str | None = None
    values: dict[str, str | None] | None = None

    @field_validator("values", mode="before")
    @classmethod
    def _values_text(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        return {str(_text(k)): _text(x) for k, x in v.items()}

    @field_validator("otherwise", mode="before")
    @classmethod
    def _otherwise_text(cls, v: Any) -> Any:
        return _text(v)

    @model_validator(mode="after")
    def _one_source(self) -> FieldSource:
        given = [x for x in (self.column, self.sum, self.coalesce, self.cases, self.count)
                 if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'column', 'sum', 'coalesce', 'cases' or "
                             "'count'")
        if self.cases is not None and not self.cases:
            raise ValueError("'cases' lists at least one case")
        if self.otherwise is not None and self.cases is None:
            raise ValueError("'otherwise' goes with 'cases'")
        return self

    @property
    def columns(self) -> list[str]:
        """The export columns this field reads."""
        if self.column is not None:
            return [self.column]
        if self.cases is not None:
            return list(dict.fromkeys(c for case in self.cases for c in case.conditions))
        return list(self.sum or self.coalesce or [])

    @property
    def targets(self) -> list[str | None]:
        """The values this mapping can give a field, as written (``values`` and ``cases``)."""
        out: list[str | None] = list((self.values or {}).values())
        if self.cases is not None:
            out += [c.value for c in self.cases] + [self.otherwise]
        return out


class MembersSource(_Strict):
    """Where a survey's household roster is (CONTRACT.md §1b): a separate file (``path``: a
    Kobo repeat CSV, an ODK Central repeat CSV, any CSV or XLSX), a sheet of the same XLSX
    workbook or a member of the same ODK Central zip (``sheet``), or, with neither, found by
    the repeat group's name (a sheet or zip member named ``members``). ``link`` is the member
    column holding the household's key (default: ``PARENT_KEY``, ``_submission__uuid``, or
    ``_parent_index`` against the household's ``_index``)."""

    path: Path | None = None
    sheet: str | None = Field(default=None, min_length=1, max_length=200)
    link: str | None = Field(default=None, min_length=1, max_length=200)
    format: SurveyFormat = "auto"
    encoding: str = "utf-8"
    na_values: list[str] = Field(default_factory=list)
    labels: Literal["auto", "names", "labels"] = "auto"
    #: Reference roster field (``member_sex``, ``member_age``, ...) -> the column(s) holding it.
    field_mapping: dict[str, str | FieldSource] | None = None

    @model_validator(mode="after")
    def _one_place(self) -> MembersSource:
        if self.path is not None and self.sheet is not None:
            raise ValueError("give the roster's 'path' or its 'sheet', not both")
        return self


class ReadLimits(_Strict):
    """How far a reader may unpack a compressed input (an XLSX workbook or a zip) before it
    refuses it as a decompression bomb. A real export stays far below these."""

    #: Unpacked bytes of all its members together (MiB).
    max_unpacked_mib: float = Field(default=4096, gt=0)
    #: Unpacked over packed size of one member above 1 MiB (text compresses 5-30 times).
    max_compression_ratio: float = Field(default=200, gt=1)
    #: An XLSX's shared-strings table, which the reader holds in memory whole (MiB).
    max_shared_strings_mib: float = Field(default=512, gt=0)


class ConsentStatement(_Strict):
    """How consent was obtained for a survey whose export has no consent field: recorded in the
    manifest and shown in the atlas. Nothing is assumed without it (CONTRACT.md §1)."""

    collected_outside_form: str = Field(min_length=1)

    @field_validator("collected_outside_form")
    @classmethod
    def _said(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("say how consent was obtained (for example 'signed forms kept at "
                             "the ward office'); a blank statement is no statement")
        return v.strip()


class SurveySource(_Strict):
    """One survey export to read."""

    path: Path
    format: SurveyFormat = "auto"
    #: ``names``: answers are choice names; ``labels``: they are labels, mapped back through the
    #: XLSForm; ``auto``: decided per file from the headers and the answers.
    labels: Literal["auto", "names", "labels"] = "auto"
    encoding: str = "utf-8"
    #: Strings read as "no answer" besides the empty cell (e.g. ``NA`` in exports made with R).
    na_values: list[str] = Field(default_factory=list)
    #: Sheet (XLSX) or layer (GeoPackage) to read; the first by default.
    layer: str | None = None
    #: Reference field (full or short name, or one of ``key``, ``submission_time``,
    #: ``latitude``, ``longitude``, ``gps_precision``) -> the column or columns that hold it.
    field_mapping: dict[str, str | FieldSource] | None = None
    #: For an export without a consent field: how consent was obtained outside the form.
    consent: ConsentStatement | None = None
    #: The household roster: one row per person (CONTRACT.md §1b).
    members: MembersSource | None = None
    #: How far its reader may unpack it (default: the configuration's ``limits``).
    limits: ReadLimits | None = None


class HazardSource(_Strict):
    """A hazard raster (CONTRACT.md §3): ``depth`` (metres, nodata = not modelled), ``class``
    (ordinal susceptibility classes) or ``continuous`` (a value in ``unit``, such as land
    surface temperature in °C). Every hazard is treated alike, by its name."""

    #: Names the columns (``<name>_exposed``, ``<name>_area_share``...): lower-case letters,
    #: digits and ``_``, starting with a letter.
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    path: Path
    kind: Literal["depth", "class", "continuous"] = "depth"
    #: Value at or above which a cell or a household counts (``exposed: 0.15`` metres, or a
    #: class number for ``class`` rasters); ``exposed`` gives ``<name>_exposed`` and
    #: ``<name>_area_share``, ``high`` ``<name>_high_area_share`` and ``hazardous_location``.
    thresholds: dict[str, float] = Field(default_factory=dict)
    #: The unit of a ``continuous`` value (``°C``); ``m`` for a depth, none for classes.
    unit: str | None = Field(default=None, max_length=16)
    #: The value in words, for tables, the map's legend and the atlas (default: from the name
    #: and kind: ``flood depth``, ``landslide class``, ``heat value``).
    label: str | None = Field(default=None, max_length=80)
    #: A weight for ranking CUF candidates on ``<name>_area_share`` (default: not a criterion,
    #: except for the reference flood layer, which the default criteria already hold).
    cuf_weight: float | None = Field(default=None, ge=0)
    #: ``class`` rasters: the class values to report (default: the integers 0-255 found).
    classes: list[float] | None = None
    #: The band to read from a multi-band file that is not a stack of scenarios (from 1).
    band: int | None = Field(default=None, ge=1)
    #: The variable to read from a NetCDF/HDF file holding several.
    variable: str | None = None
    #: A stack of scenarios in one file: the dimension that holds them (``band``,
    #: ``return_period`` or ``scenario`` for the bands of a GeoTIFF, or a NetCDF dimension).
    dimension: str | None = None
    #: The stack's layers in order as return periods (years; gives expected annual exposure) ...
    return_periods: list[float] | None = None
    #: ... or as scenario names.
    scenarios: list[str] | None = None

    @model_validator(mode="after")
    def _flood_defaults(self) -> HazardSource:
        # the only place a hazard's name decides anything: the reference layer's defaults
        if self.name == "flood" and self.kind == "depth":
            self.thresholds = {**FLOOD_THRESHOLDS, **self.thresholds}
            self.cuf_weight = FLOOD_CUF_WEIGHT if self.cuf_weight is None else self.cuf_weight
        lo, hi = self.thresholds.get("exposed"), self.thresholds.get("high")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"hazard {self.name!r}: the 'exposed' threshold ({lo:g}) is above "
                             f"the 'high' one ({hi:g}); give both (the flood layer's defaults "
                             "are exposed 0.15 and high 0.5)")
        if self.kind == "continuous" and not self.unit:
            raise ValueError(f"hazard {self.name!r} is continuous: give its 'unit' (°C, say)")
        if self.kind == "depth":
            self.unit = self.unit or "m"
        if self.label is not None and re.search(r"[<>{}\x00-\x1f]", self.label):
            raise ValueError(f"hazard {self.name!r}: 'label' must be plain text")
        if self.unit is not None and re.search(r"[<>{}\x00-\x1f]", self.unit):
            raise ValueError(f"hazard {self.name!r}: 'unit' must be plain text")
        if self.classes is not None and self.kind != "class":
            raise ValueError("'classes' applies to kind: class only")
        if self.return_periods is not None and self.scenarios is not None:
            raise ValueError("give 'return_periods' or 'scenarios', not both")
        if self.return_periods is not None:
            if any(t < 1 for t in self.return_periods):
                raise ValueError("return periods are in years and at least 1")
            if len(set(self.return_periods)) != len(self.return_periods):
                raise ValueError("return periods must differ")
        if (self.return_periods or self.scenarios) and self.dimension is None:
            self.dimension = "band"
        return self


    def rule(self) -> HazardRule:
        """What this hazard's figures compare with, for the indicators (CONTRACT.md §3)."""
        from profiling.indicators import HazardRule

        return HazardRule(self.name, self.thresholds.get("exposed"), self.thresholds.get("high"),
                          self.kind, self.unit or "", self.words)

    @property
    def words(self) -> str:
        """The value in words: the ``label``, or ``<name> depth``/``class``/``value``."""
        if self.label:
            return self.label
        return f"{self.name.replace('_', ' ')} " + {"depth": "depth", "class": "class",
                                                     "continuous": "value"}[self.kind]


class Assignment(_Strict):
    """How households are placed in settlements.

    ``location``: by their GPS point (the default). ``column``: by a column holding settlement ids
    or names, for surveys collected without GPS.
    """

    by: Literal["location", "column"] = "location"
    column: str = "settlement_reported"


class StoreConfig(_Strict):
    """The enumeration store that ``profiling load`` appends exports to.

    ``url`` is a GeoPackage path (relative paths are taken from the configuration's folder) or a
    ``postgresql+psycopg://`` URL (give the password through ``PGPASSWORD`` or ``~/.pgpass``
    rather than in the URL). The secret that makes the pseudonymous household ids is read from
    the ``PROFILING_SECRET`` environment variable, or else from ``secret_file``; it is never
    written to the store.
    """

    url: str
    secret_file: Path | None = None

    @field_serializer("url")
    def _hide_password(self, url: str) -> str:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)

    @property
    def is_database(self) -> bool:
        """Whether ``url`` names a database server rather than a GeoPackage file."""
        return "://" in self.url


class IndicatorSettings(_Strict):
    """Thresholds of the household indicators (``docs/indicators.md``)."""

    #: ``overcrowded`` when persons per sleeping room exceed this (UN-Habitat: 3).
    persons_per_room: float = Field(default=3.0, gt=0)
    #: ``water_basic`` when the water round trip takes at most this many minutes (JMP: 30).
    water_minutes: float = Field(default=30.0, ge=0)
    #: a shared toilet still counts as adequate for at most this many households (2).
    toilet_households: float = Field(default=2.0, ge=1)
    #: the ``tenure_documents`` choices that make a household's tenure documented (SDG 1.4.2
    #: leaves the list to each country; default: CONTRACT.md §4's).
    tenure_documents: list[str] = Field(
        default_factory=lambda: ["title_deed", "lease", "allotment_letter", "sale_agreement",
                                 "customary_certificate"], min_length=1, max_length=100)

    @field_validator("tenure_documents")
    @classmethod
    def _choice_names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", name):
                raise ValueError(f"{name[:80]!r} is not a choice name (letters, digits, _ . -; "
                                 "at most 64 characters)")
        return v


class CriterionConfig(_Strict):
    """A ranking criterion: a column of the settlement table, its weight and direction."""

    column: str
    weight: float = Field(ge=0)
    #: True when a higher value means a greater need (slum share); False for coverage shares.
    higher_is_worse: bool = True
    label: str = ""


class InterventionConfig(_Strict):
    """One kind of project in the intervention catalogue (``configs/interventions.yaml``)."""

    id: str
    name: str
    need: str
    unit_cost: float = Field(gt=0)
    unit: str = "unit"
    households_per_unit: float | None = Field(default=None, gt=0)
    units_per_household: float | None = Field(default=None, gt=0)
    improves: str | None = None
    improves_is_bad: bool = False
    not_advised_above: dict[str, float] = Field(default_factory=dict)
    reason_not_advised: str = ""

    @model_validator(mode="after")
    def _one_rate(self) -> InterventionConfig:
        if (self.households_per_unit is None) == (self.units_per_household is None):
            raise ValueError(f"intervention {self.id!r}: give exactly one of "
                             "'households_per_unit' or 'units_per_household'")
        return self


class CufSettings(_Strict):
    """The Community Upgrading Fund: ranking criteria, catalogue, budget and robustness."""

    #: criterion name -> column, weight, direction; the defaults when not given.
    criteria: dict[str, CriterionConfig] | None = None
    #: the intervention catalogue (YAML with a list under ``interventions``).
    interventions: Path | None = None
    budget: float = Field(default=0.0, ge=0)
    #: at most this much spent in one settlement.
    settlement_cap: float | None = Field(default=None, gt=0)
    #: at least this share of the money goes to needs the settlement's households name most.
    community_min_share: float = Field(default=0.0, ge=0, le=1)
    top_n: int = Field(default=10, ge=1)
    perturbations: int = Field(default=1000, ge=0)
    #: each weight is multiplied by a factor drawn from [1 - spread, 1 + spread].
    weight_spread: float = Field(default=0.25, ge=0, lt=1)
    seed: int = 42
    #: the settlement counts the ranking takes from the community's corrections where a forum
    #: gave them (``profiling validation load``; a run from a store): ``households``,
    #: ``population``. The published table keeps the enumerated counts.
    use_validated: list[Literal["households", "population"]] = Field(default_factory=list)


class MapSettings(_Strict):
    """The interactive map and the atlas (``map.html``, ``atlas/``)."""

    #: The map's title: the city and the enumeration ("Central Jakarta, kampung enumeration
    #: 2026"); "Settlement profiles" when not given.
    title: str | None = Field(default=None, min_length=1, max_length=200)
    #: A tile URL for a basemap (``https://{s}.tile.example/{z}/{x}/{y}.png``); none by default,
    #: so the map works with no network.
    basemap: str | None = None
    basemap_attribution: str = ""
    #: A basemap from a local file, for a map with no network: raster tiles in an MBTiles or
    #: PMTiles archive; the tiles around the settlements are copied beside the map.
    basemap_file: Path | None = None
    #: H3 resolution of the optional household-hexagon layer (9: about 0.1 km² a cell).
    h3_resolution: int = Field(default=9, ge=0, le=15)
    #: Columns of the settlement table drawn as choropleths (default: the main indicators).
    indicators: list[str] | None = None


class ExecutionSettings(_Strict):
    """Where the heavy stages run (``README.md``, "Scale out").

    ``in_process`` (the default): in this process. ``local``: a Dask cluster of ``workers``
    processes started on this machine for the run. ``scheduler``: a running Dask scheduler at
    ``scheduler`` (``tcp://host:8786``). Households are cut in partitions of about
    ``partition_size`` rows; results do not depend on it. A scheduler not reached within
    ``connect_timeout`` seconds is an error.
    """

    mode: Literal["in_process", "local", "scheduler"] = "in_process"
    workers: int = Field(default=2, ge=1)
    scheduler: str | None = None
    partition_size: int = Field(default=250_000, ge=1)
    connect_timeout: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _address(self) -> ExecutionSettings:
        if self.mode == "scheduler" and not self.scheduler:
            raise ValueError("mode: scheduler needs the scheduler's address "
                             "(scheduler: tcp://host:8786)")
        return self


class Config(_Strict):
    """A whole run of the pipeline."""

    surveys: list[SurveySource] = Field(default_factory=list)
    #: The XLSForm; the reference questionnaire when not given.
    form: Path | None = None
    #: The language of the form's labels to read (one of its ``label::LANGUAGE`` columns, by
    #: name or code: ``Français (fr)``, ``fr``): an export "with labels" in that language is
    #: mapped back through them. Default: the form's ``default_language``, else ``label``.
    form_language: str | None = Field(default=None, min_length=1, max_length=100)
    #: The language of what people read where it has its catalogue
    #: (:mod:`profiling.i18n`; so far the community validation sheets and form).
    language: Literal["en", "fr", "es", "pt"] = "en"
    #: Settlement polygons (any vector format), or, for surveys placed by a column, a CSV of
    #: ``settlement_id`` and ``name`` without geometry.
    boundaries: Path | None = None
    boundaries_layer: str | None = None
    #: Repair invalid settlement polygons (shapely.make_valid, the area change logged) instead
    #: of refusing them.
    repair_geometries: bool = False
    hazards: list[HazardSource] = Field(default_factory=list)
    output_dir: Path = Path("out")
    #: No published figure is computed from fewer households than this.
    min_cell_size: int = Field(default=5, ge=1)
    #: A household farther than this (metres) from every settlement is rejected as misplaced.
    max_distance_m: float = Field(default=1000.0, gt=0)
    settlement_assignment: Assignment = Field(default_factory=Assignment)
    #: Default field mapping for the surveys that do not give their own.
    field_mapping: dict[str, str | FieldSource] | None = None
    indicators: IndicatorSettings = Field(default_factory=IndicatorSettings)
    #: Privacy class per field (full or short name), overriding the XLSForm's ``privacy`` column:
    #: ``direct`` fields (names, phones, IDs, free text) are split off at ingest.
    privacy: dict[str, Literal["direct", "location", "sensitive", "analysis"]] = Field(
        default_factory=dict)
    cuf: CufSettings = Field(default_factory=CufSettings)
    #: Where ``profiling load`` keeps the enumeration (none: loading needs one).
    store: StoreConfig | None = None
    #: The interactive map and the atlas.
    map: MapSettings = Field(default_factory=MapSettings)
    #: Where the heavy stages run: in this process, a local Dask cluster or a Dask scheduler.
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    #: How far compressed inputs may unpack before they are refused (decompression bombs).
    limits: ReadLimits = Field(default_factory=ReadLimits)
    #: The country calling code of the enumeration's phone numbers (``62`` for Indonesia), so
    #: that the audit finds a number written in national form (``0811...``) in international
    #: form too, and the reverse.
    phone_country_code: str | None = Field(default=None, pattern=r"^\+?\d{1,3}$")

    @field_validator("surveys", mode="before")
    @classmethod
    def _survey_shorthand(cls, v: Any) -> Any:
        if isinstance(v, (str, Path)):
            v = [v]
        if isinstance(v, list):
            return [{"path": s} if isinstance(s, (str, Path)) else s for s in v]
        return v

    @model_validator(mode="after")
    def _defaults_and_checks(self) -> Config:
        names = [h.name for h in self.hazards]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"hazard names must be unique; repeated: {', '.join(sorted(dup))}")
        for s in self.surveys:
            if s.limits is None:
                s.limits = self.limits
        if self.field_mapping:
            for s in self.surveys:
                if s.field_mapping is None:
                    s.field_mapping = self.field_mapping
        return self

    def resolve_paths(self, base: Path) -> Config:
        """Return a copy whose relative paths are taken from ``base``."""

        def r(p: Path | None) -> Path | None:
            if p is None:
                return None
            return p if p.is_absolute() else (base / p)

        data = self.model_copy(deep=True)
        for s in data.surveys:
            s.path = r(s.path)  # type: ignore[assignment]
            if s.members is not None:
                s.members.path = r(s.members.path)
        for h in data.hazards:
            h.path = r(h.path)  # type: ignore[assignment]
        data.form = r(data.form)
        data.cuf.interventions = r(data.cuf.interventions)
        data.boundaries = r(data.boundaries)
        data.map.basemap_file = r(data.map.basemap_file)
        data.output_dir = r(data.output_dir)  # type: ignore[assignment]
        if data.store is not None:
            if not data.store.is_database:
                data.store.url = str(r(Path(data.store.url)))
            data.store.secret_file = r(data.store.secret_file)
        return data


def _all_keys(model: type[BaseModel], seen: set[type] | None = None) -> set[str]:
    seen = seen or set()
    keys = set(model.model_fields)
    seen.add(model)
    for sub in (Config, SurveySource, HazardSource, Assignment, FieldSource, StoreConfig,
                IndicatorSettings, CufSettings, CriterionConfig, InterventionConfig,
                MapSettings, ExecutionSettings):
        if sub not in seen:
            keys |= _all_keys(sub, seen)
    return keys


def _explain(exc: ValidationError, source: str) -> str:
    known = sorted(_all_keys(Config))
    lines = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            lines.append(f"unknown key {loc!r}{hint}")
        elif err["type"] == "missing":
            lines.append(f"missing key {loc!r}")
        else:
            value = err.get("input")
            shown = repr(value) if not isinstance(value, (dict, list)) else "(the section)"
            lines.append(f"{loc or '(top level)'}: {err['msg']} (value {shown})")
    return f"{source}: invalid configuration: " + "; ".join(lines)


def parse_config(data: dict[str, Any], source: str = "configuration",
                 base: Path | None = None) -> Config:
    """Validate a configuration mapping; relative paths are resolved against ``base``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a configuration must be a mapping of keys to values")
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source)) from None
    return cfg.resolve_paths(base) if base is not None else cfg


def load_config(path: str | Path) -> Config:
    """Read a YAML configuration file; relative paths are taken from the file's folder."""
    path = Path(path)
    data = _read_yaml(path, "the configuration file")
    if data is None:
        raise ConfigError(f"{path}: the configuration file is empty")
    return parse_config(data, str(path), path.parent.resolve())


class _Loader(yaml.SafeLoader):
    """YAML's safe loader with YAML 1.2's booleans: only ``true`` and ``false``. In YAML 1.1
    ``yes``, ``no``, ``on`` and ``off`` are booleans too, which would turn a survey's answer
    codes (``values: {Y: yes, N: no}``) into True and False."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool",
                              re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


def _read_yaml(path: Path, what: str) -> Any:
    """A YAML file's content; errors name the file, and the line and column of a syntax error."""
    if not path.exists():
        raise ConfigError(f"{path}: {what} does not exist")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: "
                          f"{getattr(exc, 'problem', exc)}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def load_interventions(path: str | Path) -> list[InterventionConfig]:
    """Read an intervention catalogue: YAML with a list of interventions under
    ``interventions``."""
    path = Path(path)
    data = _read_yaml(path, "the intervention catalogue")
    items = data.get("interventions") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: expected a list of interventions under 'interventions'")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(InterventionConfig.model_validate(item))
        except ValidationError as exc:
            raise ConfigError(_explain(exc, f"{path}, intervention {i + 1}")) from None
    ids = [x.id for x in out]
    dup = sorted({x for x in ids if ids.count(x) > 1})
    if dup:
        raise ConfigError(f"{path}: intervention ids must be unique; repeated: {', '.join(dup)}")
    return out
