"""One function that sequences the stages and writes a run's outputs.

The CLI, the notebooks and batch jobs call :func:`run` (or :func:`validate`); none of them holds
a rule of its own. Stages: ingest (with placement in settlements), the supervision report, the
household indicators and the settlement and city tables.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from profiling import __version__
from profiling._errors import ConfigError, DisclosureError
from profiling._publishing import disk_full, locked, os_error, swap_in
from profiling._readers import sha256_of
from profiling._stages import Progress, Stages
from profiling.aggregates import write_aggregates
from profiling.audit import NEAR_M, Checker, Finding, Secrets, audit
from profiling.config import Config, HazardSource, load_config, load_interventions
from profiling.distributed import Execution, cluster, heavy_stages, placer
from profiling.form import Form, read_xlsform, reference_form
from profiling.households import HeavyResult, household_stage, with_hazard_values
from profiling.indicators import (
    DEPRIVATIONS,
    SURVEY_INDICATORS,
    HazardRule,
    Thresholds,
    city_summary,
    compute_indicators,
    not_collected,
    settlement_indicators,
    slum_components,
)
from profiling.ingest import REJECT_COLUMNS, IngestResult, Placer, fields_not_collected, ingest
from profiling.join import Settlements, prepare, read_boundaries
from profiling.outputs import (
    BOUNDARY_FINDINGS,
    CITY_SUMMARY,
    MANIFEST,
    PARAMETERS,
    PORTFOLIO,
    PRIORITIES,
    REJECTS,
    SETTLEMENT_TABLE,
    SUPERVISION,
    read_csv,
    update_settlements,
    write_csv,
    write_settlements,
)
from profiling.prioritise import DEFAULT_CRITERIA, Criterion, CufResult, Intervention, prioritise
from profiling.supervision import supervision_report

if TYPE_CHECKING:
    from profiling.store import LoadSummary

log = logging.getLogger(__name__)



@dataclass
class RunResult:
    """What a run produced: the ingest outcome and the files written."""

    ingest: IngestResult
    outputs: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0
    settlements: pd.DataFrame | None = None
    city: pd.DataFrame | None = None

    @property
    def counts(self) -> dict[str, int]:
        """The manifest's accounting of every input row."""
        return self.ingest.counts


def load_form(cfg: Config) -> Form:
    """The configured XLSForm, or the reference questionnaire, with the configuration's privacy
    classes applied over the form's."""
    if cfg.form is None and cfg.form_language is not None:
        raise ConfigError(f"form_language {cfg.form_language!r} needs a form whose labels are "
                          "in that language (key 'form'): the reference questionnaire's are "
                          "in English only")
    form = (read_xlsform(cfg.form, cfg.form_language) if cfg.form is not None
            else reference_form())
    for name, privacy in cfg.privacy.items():
        hits = [q for q in form.questions if q == name or q.rsplit("/", 1)[-1] == name]
        if len(hits) != 1:
            raise ConfigError(f"privacy names {name!r}, which is "
                              f"{'ambiguous' if hits else 'not a field'} in {form.source}")
        form.questions[hits[0]] = replace(form.questions[hits[0]], privacy=privacy)
    return form


def load_configured(cfg: Config, exports: Sequence[str | Path] | None = None, *,
                    note: str | None = None,
                    progress: Callable[[str], None] | None = None) -> list[LoadSummary]:
    """``profiling load``: ingest ``exports`` (default: the configured surveys) with the
    configuration's form, boundaries and rules, and load each into the configured store
    (:func:`profiling.store.load_exports` stores; this sequences)."""
    from profiling.store import Provenance, load_exports, open_configured, sources_for

    sources = sources_for(cfg, exports)
    if not sources:
        raise ConfigError("nothing to load: give export files, or list them under 'surveys'")
    if cfg.boundaries is None and cfg.settlement_assignment.by == "location":
        raise ConfigError("households are placed by location, which needs 'boundaries'")
    form = load_form(cfg)
    settlements = load_settlements(cfg)
    with open_configured(cfg) as store:
        return load_exports(store, sources, form, settlements,
                            assign_by=cfg.settlement_assignment.by,
                            assign_column=cfg.settlement_assignment.column,
                            max_distance_m=cfg.max_distance_m,
                            provenance=Provenance(note=note), progress=progress)


def load_settlements(cfg: Config) -> Settlements | None:
    """The configured boundaries, checked and indexed, or None; with a store, each settlement
    a community redrew has its latest version (``profiling validation boundary``), which the
    frame's ``attrs["boundary_version"]`` names for the manifest."""
    if cfg.boundaries is None:
        return None
    frame = read_boundaries(cfg.boundaries, cfg.boundaries_layer, repair=cfg.repair_geometries)
    frame.attrs["boundary_version"] = {"version": 0}
    if cfg.store is not None and "geometry" in frame:
        frame = _redrawn(cfg, frame)
    return prepare(frame)


def _place_in_redrawn(cfg: Config, settlements: Settlements | None,
                      result: IngestResult) -> None:
    """The store's households placed again where a community redrew a boundary since they
    were loaded (their settlement as the latest boundaries have it); nothing otherwise."""
    import numpy as np

    from profiling.join import place

    if (settlements is None or not settlements.has_geometry
            or cfg.settlement_assignment.by != "location"
            or not (settlements.frame.attrs.get("boundary_version") or {}).get("version")):
        return
    hh = result.households
    placed = place(hh["longitude"].to_numpy(dtype=float), hh["latitude"].to_numpy(dtype=float),
                   settlements)
    inside = placed.inside >= 0
    hh["settlement_id"] = pd.array(np.where(inside, settlements.ids[np.maximum(
        placed.inside, 0)], None), dtype=hh["settlement_id"].dtype)
    result.counts["outside_settlements"] = int((~inside).sum())


def _redrawn(cfg: Config, frame: pd.DataFrame) -> pd.DataFrame:
    """The boundaries with the store's latest redrawn version of each settlement."""
    import shapely

    from profiling.store import open_configured

    url = str(cfg.store.url) if cfg.store is not None else ""
    if "://" not in url and not Path(url).exists():
        return frame  # no store yet: nothing was redrawn
    with open_configured(cfg, purpose="boundaries of a run") as store:
        latest = store.boundary_versions()
    ids = frame["settlement_id"].astype(str)
    latest = latest[latest["settlement_id"].isin(set(ids))]
    if latest.empty:
        return frame
    import geopandas as gpd

    geoms = gpd.GeoSeries(shapely.from_wkt(latest["wkt"].to_numpy()), crs="EPSG:4326")
    if frame.crs is not None:
        geoms = geoms.to_crs(frame.crs)
    out = frame.copy()
    at = {sid: i for i, sid in enumerate(ids)}
    for sid, geom in zip(latest["settlement_id"], geoms, strict=True):
        out.iloc[at[sid], out.columns.get_loc("geometry")] = geom
    out.attrs = dict(frame.attrs)
    out.attrs["boundary_version"] = {
        "version": int(latest["version"].max()),
        "redrawn": sorted(latest["settlement_id"].astype(str)),
        "sources": sorted(set(latest["source_file"].astype(str)))}
    return out


def _check_inputs(cfg: Config, from_store: bool = False) -> None:
    problems = []
    if not cfg.surveys and not from_store:
        problems.append("no survey export is configured (key 'surveys')")
    for s in ([] if from_store else cfg.surveys):
        if not Path(s.path).exists():
            problems.append(f"survey export {s.path} does not exist")
    for h in cfg.hazards:
        if not Path(h.path).exists():
            problems.append(f"hazard raster {h.name!r}: {h.path} does not exist")
    if cfg.boundaries is not None and not Path(cfg.boundaries).exists():
        problems.append(f"boundaries {cfg.boundaries} do not exist")
    if cfg.boundaries is None and cfg.settlement_assignment.by == "location":
        problems.append("households are placed by location, which needs 'boundaries'")
    if cfg.form is not None and not Path(cfg.form).exists():
        problems.append(f"XLSForm {cfg.form} does not exist")
    if problems:
        raise ConfigError("; ".join(problems))


def thresholds(cfg: Config) -> Thresholds:
    """The indicator thresholds of a configuration, each hazard's from its own entry."""
    return Thresholds(persons_per_room=cfg.indicators.persons_per_room,
                      water_minutes=cfg.indicators.water_minutes,
                      toilet_households=cfg.indicators.toilet_households,
                      hazards=hazard_rules(cfg),
                      tenure_documents=tuple(cfg.indicators.tenure_documents))


def hazard_rules(cfg: Config) -> tuple[HazardRule, ...]:
    """What each configured hazard's figures compare with (CONTRACT.md §3); a stack of
    scenarios is opened (metadata only) for its layers' names and return periods."""
    from profiling.hazard import open_hazard

    rules = []
    for h in cfg.hazards:
        rule = h.rule()
        if h.dimension is not None and Path(h.path).exists():
            layer = open_hazard(h)
            if layer.labels:
                rule = replace(rule, scenarios=tuple(layer.prefixes()),
                               return_periods=tuple(layer.return_periods or ()))
        rules.append(rule)
    return tuple(rules)


def with_collected(t: Thresholds, households: pd.DataFrame) -> Thresholds:
    """``t`` with the indicators whose fields no survey collected (CONTRACT.md §4), each
    warned about once: they are left out of the tables, and of the slum status."""
    gone = not_collected(households.columns)
    for name in sorted(gone):
        needs = next(i.needs for i in SURVEY_INDICATORS if i.name == name)
        absent = [f for f in needs if f not in households.columns]
        log.warning("%s is not computed: no survey of the run collected %s; it is left out of "
                    "the tables and the map%s", name, ", ".join(absent),
                    "" if name not in {c for c, _ in DEPRIVATIONS.values()}
                    else ", and the slum status is decided without it")
    return replace(t, not_collected=gone)


def ingest_config(cfg: Config, progress: Callable[[str], None] | None = None,
                  settlements: Settlements | None = None,
                  placer: Placer | None = None,
                  on_rows: Callable[[int], None] | None = None) -> IngestResult:
    """Run the ingest stage as configured (``placer``: where points are placed in the
    settlements, by default in this process)."""
    _check_inputs(cfg)
    form = load_form(cfg)
    if settlements is None:
        settlements = load_settlements(cfg)
    return ingest(cfg.surveys, form, settlements, assign_by=cfg.settlement_assignment.by,
                  assign_column=cfg.settlement_assignment.column,
                  max_distance_m=cfg.max_distance_m, progress=progress, placer=placer,
                  on_rows=on_rows)


def validate(cfg: Config, progress: Callable[[str], None] | None = None) -> IngestResult:
    """Check a configuration and read all its inputs, writing nothing."""
    return ingest_config(cfg, progress)


def run(cfg: Config, out_dir: str | Path | None = None,
        progress: Progress | None = None) -> RunResult:
    """Run the pipeline and publish its outputs to ``out_dir`` (default: the configured one).

    ``progress`` is told when each stage starts and how far it got (the CLI draws it); each
    stage's seconds and peak memory go into ``run_manifest.json`` under ``stages``.

    The run writes into a staging folder beside ``out_dir`` and, once audited, swaps it into
    place (:mod:`profiling._publishing`): ``out_dir`` holds the previous run's files until then,
    and none of them after. A second run into the same folder is refused while one writes.
    """
    t0 = time.perf_counter()
    started = datetime.now(UTC)
    out = Path(out_dir) if out_dir is not None else Path(cfg.output_dir)
    from_store = cfg.store is not None
    stages = Stages(progress)
    _check_inputs(cfg, from_store)
    with stages.stage("boundaries"):
        settlements = load_settlements(cfg)
    # without settlements there is nothing for workers to do: no cluster is started
    ex = Execution.from_settings(cfg.execution) if settlements is not None else Execution()
    # the map's hazard overlays need only the rasters: rendered meanwhile in another process
    background = _background()
    # what later stages import (the rasters' libraries, the audit's k-d tree, the store's
    # module), imported on a thread while the exports are parsed
    importing = ThreadPoolExecutor(1, thread_name_prefix="imports")
    importing.submit(_import_ahead, bool(cfg.hazards))
    overlays = None
    if settlements is not None and settlements.has_geometry:
        from profiling.publish import start_overlays

        frame = settlements.frame
        overlays = start_overlays(cfg, background, (tuple(frame.total_bounds), frame.crs))
    try:
        with locked(out) as staging:
            try:
                result = _run(cfg, staging, stages, settlements, ex, overlays, t0, started,
                              from_store, importing)
            except DisclosureError as exc:
                # published as it is, marked incomplete, so that the leak can be found
                swap_in(staging, out)
                raise DisclosureError(out, exc.findings) from None
            except OSError as exc:
                if not _writing(exc, staging):
                    raise
                raise os_error(out, exc) from None
            except Exception as exc:
                # a writer that hides the system's error (GDAL: "Failed to commit transaction")
                full = disk_full(staging)
                if full is not None:
                    raise full from exc
                raise
            swap_in(staging, out)
    finally:
        background.shutdown(wait=True, cancel_futures=True)
        importing.shutdown(wait=True)
    result.outputs = {k: out / p.relative_to(staging) for k, p in result.outputs.items()}
    return result


def _import_ahead(hazards: bool) -> None:
    """Import what the hazard stage (when there are hazards), the audit and the rejects'
    pseudonyms (the store's module) need."""
    if hazards:
        from profiling.hazard import warm

        warm()
    import scipy.spatial  # noqa: F401

    import profiling.store  # noqa: F401


def _background() -> Executor:
    """One worker for the hazard overlays: a process of its own, started by a fork server on
    Linux (a plain fork would copy this process's locks, a progress bar's among them, in
    whatever state its threads hold them) and spawned elsewhere. Not a thread: Python's
    warnings.catch_warnings() swaps the process's filters without a lock, so a library's block
    in one thread could undo rasterio's in another."""
    import multiprocessing
    import sys
    from concurrent.futures import ProcessPoolExecutor

    method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(method))


def _writing(exc: OSError, staging: Path) -> bool:
    """Whether an error of the system came from writing the outputs (not reading inputs)."""
    import errno

    name = str(exc.filename or "")
    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) or name.startswith(
        str(staging))


def _run(cfg: Config, out: Path, stages: Stages, settlements: Settlements | None,
         ex: Execution, overlays: Future[Any] | None, t0: float, started: datetime,
         from_store: bool, importing: ThreadPoolExecutor) -> RunResult:
    outputs: dict[str, Path] = {}
    with cluster(ex) as client:
        # with a store, the run analyses what `profiling load` has put in it
        with stages.stage("ingest", 0, "rows") as st:
            if from_store:
                result = store_result(cfg)
                _place_in_redrawn(cfg, settlements, result)
            else:
                place_on = (placer(client, settlements, cfg.execution.partition_size)
                            if client is not None and settlements is not None
                            and settlements.has_geometry else None)

                def read(rows: int) -> None:  # rows read, then checked and placed
                    st.grow(rows)

                result = ingest_config(cfg, None, settlements, placer=place_on, on_rows=read)
            st.work = result.counts["read"]
            st.advance(result.counts["read"])
        t = with_collected(thresholds(cfg), result.households)
        out.mkdir(parents=True, exist_ok=True)
        # what the audit looks for, indexed on another thread while the hexagons and the
        # tables are computed (Arrow's kernels and the k-d tree let go of the GIL); on a
        # cluster, the client is idle from the start
        with ThreadPoolExecutor(1, thread_name_prefix="audit-index") as indexing:
            pending: list[Future[Checker]] = []

            def index() -> None:
                if not pending:
                    pending.append(indexing.submit(_checker, cfg, result, settlements))

            if client is not None or settlements is None:
                index()
            if settlements is not None:
                heavy = (household_stages(cfg, settlements, result.households, t, stages,
                                          then=index)
                         if client is None
                         # the same stages on Dask partitions; personal fields stay here
                         else _on_cluster(stages, client, cfg, settlements, result.households,
                                          t))
            if settlements is not None and result.members is not None:
                with stages.stage("persons", len(result.members), "persons"):
                    heavy.counts = with_persons(heavy.counts, result, t)
            tables = _tables(cfg, out, stages, settlements, result, heavy if (
                settlements is not None) else None, t, from_store)
            # both threads ended before publishing forks its page renderers: no thread of
            # ours is then running, or holding a lock (an import's), in the forked processes
            index()
            checker = pending[0].result()
            importing.shutdown(wait=True)
    return _publish_and_audit(cfg, out, stages, settlements, result, tables, checker, t,
                              overlays, t0, started, outputs)


def _checker(cfg: Config, result: IngestResult, settlements: Settlements | None) -> Checker:
    """The audit's index of the enumeration's personal values and household points."""
    geometry = (settlements.frame.geometry if settlements is not None
                and settlements.has_geometry else None)
    return Checker(Secrets.from_frames(result.personal, result.households, cfg.min_cell_size,
                                       geometry, country_code=cfg.phone_country_code))


@dataclass
class _Tables:
    """What the tables stage wrote: the settlement table and city summary (None without
    settlements) and every file."""

    table: pd.DataFrame | None
    city: pd.DataFrame | None
    outputs: dict[str, Path]


def _tables(cfg: Config, out: Path, stages: Stages, settlements: Settlements | None,
            result: IngestResult, heavy: HeavyResult | None, t: Thresholds,
            from_store: bool) -> _Tables:
    """The tables stage: the settlement table and city summary, the CUF outputs, the
    aggregates, the rejects and the supervision report."""
    outputs: dict[str, Path] = {}
    table = city = None
    current = _current_validations(cfg) if from_store else None
    with stages.stage("tables"):
        if settlements is not None and heavy is not None:
            table = settlement_indicators(settlements.frame, heavy.counts, cfg.min_cell_size,
                                          heavy.zones, omit=t.not_collected,
                                          hazards=t.hazards)
            city = city_summary(heavy.counts, t, cfg.min_cell_size, published=table)
            cuf = run_cuf(cfg, _validated_counts(table, current, cfg.cuf.use_validated))
            for col in cfg.cuf.use_validated:  # the table publishes what was enumerated
                cuf.settlements[col] = table[col]
            table = cuf.settlements
            outputs.update(write_cuf(out, cuf))
            outputs.update(_write_tables(out, settlements, table, city, t, cfg.min_cell_size))
            outputs.update(write_aggregates(out, result.households, heavy.hexagons,
                                            cfg.min_cell_size))

        rejects = (result.rejects[REJECT_COLUMNS].rename(columns={"key": "household_id"})
                   if from_store  # the store's rejects already name households by keyed hash
                   else published_rejects(result.rejects, household_secret(cfg)))
        write_csv(rejects, out / REJECTS)
        outputs["rejects"] = out / REJECTS
        write_csv(supervision_report(result.submissions), out / SUPERVISION)
        outputs["supervision"] = out / SUPERVISION
        if current is not None and table is not None and len(current):
            # the community's corrections, the latest of each figure, beside the run's own
            from profiling.validation import VALIDATED, published

            write_csv(published(current, table), out / VALIDATED)
            outputs["validated_figures"] = out / VALIDATED
        findings_b = settlements.frame.attrs.get("boundary_findings") if settlements else None
        if findings_b:
            write_csv(pd.DataFrame(findings_b), out / BOUNDARY_FINDINGS)
            outputs["boundary_findings"] = out / BOUNDARY_FINDINGS
    return _Tables(table, city, outputs)


def _current_validations(cfg: Config) -> pd.DataFrame | None:
    """The store's current correction of each settlement's figure (None without a store)."""
    from profiling.store import open_configured

    if cfg.store is None:
        return None
    with open_configured(cfg, purpose="profiling run") as store:
        return store.validations()


def _validated_counts(table: pd.DataFrame, current: pd.DataFrame | None,
                      columns: Sequence[str]) -> pd.DataFrame:
    """The settlement table as the ranking reads it: the counts named in ``columns``
    (``cuf.use_validated``) replaced by the community's where a forum gave them; a settlement
    below k keeps its empty counts (nothing of it is published)."""
    if not columns or current is None or current.empty:
        return table
    out = table.copy()
    ids = out["settlement_id"].astype(str)
    for col in columns:
        given = current[current["figure"] == col].set_index("settlement_id")["validated"]
        hit = ids.isin(given.index).to_numpy() & out[col].notna().to_numpy()
        out.loc[hit, col] = ids[hit].map(given).to_numpy()
        log.info("the ranking takes %s from the community's corrections in %d settlement(s)",
                 col, int(hit.sum()))
    return out


def _publish_and_audit(cfg: Config, out: Path, stages: Stages, settlements: Settlements | None,
                       result: IngestResult, tables: _Tables, checker: Checker, t: Thresholds,
                       overlays: Future[Any] | None, t0: float, started: datetime,
                       outputs: dict[str, Path]) -> RunResult:
    table, city = tables.table, tables.city
    outputs.update(tables.outputs)
    if table is not None:
        from profiling.publish import publish

        with stages.stage("publish", len(table), "pages") as st:
            outputs.update(publish(out, cfg, on_page=st.advance, overlays=overlays))

    manifest = {
        "software": {"name": "profiling", "version": __version__},
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": {
            "surveys": [asdict(i) for i in result.inputs],
            "form": _file_entry(cfg.form),
            "boundaries": {**_file_entry(cfg.boundaries), **(
                settlements.frame.attrs.get("boundary_version") or {}
                if settlements is not None else {})},
            "hazards": [{"name": h.name, **_file_entry(h.path)} for h in cfg.hazards],
            "basemap": _file_entry(cfg.map.basemap_file),
        },
        "counts": result.counts,
        "stages": stages.as_manifest(),
        "min_cell_size": cfg.min_cell_size,
        "thresholds": t.parameters(),
        "slum_components": slum_components(t.not_collected),
        "not_collected": sorted(t.not_collected),
        "fields_not_collected": fields_not_collected(load_form(cfg), result.households.columns),
        "configuration": json.loads(cfg.model_dump_json()),
        "outputs": sorted(str(p.relative_to(out)) for p in outputs.values()),
        "status": "auditing",
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    outputs["manifest"] = out / MANIFEST
    files = [p for p in out.rglob("*") if p.is_file()]
    with stages.stage("audit", len(files), "files") as st:
        findings = audit(out, checker, on_file=st.advance)
    manifest["stages"] = stages.as_manifest()
    manifest["audit"] = {"findings": len(findings), "checked": [
        "personal values", f"coordinates within {NEAR_M:g} m of a household",
        f"figures from fewer than {cfg.min_cell_size} households"]}
    manifest["status"] = "complete" if not findings else "incomplete: the audit found disclosures"
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    seconds = time.perf_counter() - t0
    if findings:
        raise DisclosureError(out, findings)
    log.info("run finished in %.1f s: %s", seconds, result.counts)
    return RunResult(result, outputs, seconds, settlements=table, city=city)


def _on_cluster(stages: Stages, client: Any, cfg: Config, settlements: Settlements,
                households: pd.DataFrame, t: Thresholds) -> HeavyResult:
    with stages.stage("household stages (Dask)", len(households), "households"):
        return heavy_stages(client, cfg, settlements, households, t)


def with_persons(counts: pd.DataFrame, result: IngestResult, t: Thresholds) -> pd.DataFrame:
    """The settlements' counts with the roster's person counts beside them (CONTRACT.md §4):
    persons by sex and age band, and the person-level indicators, overall and by sex."""
    from profiling.roster import person_counts, person_indicators

    assert result.members is not None
    hh = result.households
    documented = next(i for i in SURVEY_INDICATORS
                      if i.name == "tenure_documented").compute(hh, t, {})
    persons = person_counts(person_indicators(result.members, hh, documented))
    return counts.join(persons, how="outer").fillna(0.0)


def store_result(cfg: Config) -> IngestResult:
    """What the configured store holds, in the form ingest returns, with the personal values
    and points the audit needs (they never reach a published file)."""
    from profiling.store import open_configured

    with open_configured(cfg, purpose="profiling run") as store:
        result = store.ingest_result()
        personal, _ = store.disclosure_reference()
    result.personal = personal
    return result


def reference_checker(cfg: Config) -> Checker:
    """The audit's checker for what the configuration's enumeration holds: the personal values
    and household points of its store (when configured) or of its exports."""
    settlements = load_settlements(cfg)
    if cfg.store is not None:
        from profiling.store import open_configured

        with open_configured(cfg, purpose="disclosure audit") as store:
            personal, households = store.disclosure_reference()
    else:
        result = ingest_config(cfg, settlements=settlements)
        personal, households = result.personal, result.households
    geometry = (settlements.frame.geometry if settlements is not None
                and settlements.has_geometry else None)
    return Checker(Secrets.from_frames(personal, households, cfg.min_cell_size, geometry,
                                       country_code=cfg.phone_country_code))


def audit_outputs(cfg: Config, out_dir: str | Path, checker: Checker | None = None,
                  cleared: Mapping[str, str] | None = None,
                  on_file: Callable[[], None] | None = None) -> list[Finding]:
    """Audit a published folder against what the configuration's enumeration holds
    (:func:`reference_checker`, unless ``checker`` is given; ``cleared``: files the checker
    already read, see :func:`profiling.audit.audit`)."""
    return audit(out_dir, checker if checker is not None else reference_checker(cfg),
                 on_file=on_file, cleared=cleared)


def reaudit(cfg: Config, out_dir: str | Path, by: str,
            written: Iterable[Path] = (), checker: Checker | None = None,
            cleared: Mapping[str, str] | None = None, stages: Stages | None = None
            ) -> list[Finding]:
    """Audit a run's folder again after ``by`` (a command) rewrote part of it, and record the
    outcome in its manifest: ``rewritten`` lists each such command with its time, findings and
    (given ``stages``) its stages, ``outputs`` gains the files ``written``, and ``status`` says
    whether the folder may still be published. Raises :class:`DisclosureError` when the audit
    finds anything."""
    out = Path(out_dir)
    stages = stages if stages is not None else Stages()
    if checker is None:
        with stages.stage("audit index", None, ""):
            checker = reference_checker(cfg)
    n = sum(1 for p in out.rglob("*") if p.is_file())
    with stages.stage("audit", n, "files") as st:
        findings = audit_outputs(cfg, out, checker, cleared, on_file=st.advance)
    path = out / MANIFEST
    if path.exists():
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest.setdefault("rewritten", []).append({
            "by": by, "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "findings": len(findings), "stages": stages.as_manifest()})
        new = {str(Path(p).resolve().relative_to(out.resolve())) for p in written}
        manifest["outputs"] = sorted(p for p in set(manifest.get("outputs", [])) | new
                                     if (out / p).exists())  # (a stale PDF may be removed)
        manifest["status"] = ("complete" if not findings
                              else "incomplete: the audit found disclosures")
        path.write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    if findings:
        raise DisclosureError(out, findings)
    return findings


def household_secret(cfg: Config) -> bytes:
    """The secret of pseudonymous household ids: the store's (``PROFILING_SECRET`` or the
    configured file), or, when none is configured, a random one for this run only."""
    from profiling.store import read_secret

    try:
        return read_secret(cfg.store.secret_file if cfg.store is not None else None)
    except ConfigError:
        if cfg.store is not None and cfg.store.secret_file is not None:
            raise
        log.warning("no secret configured (PROFILING_SECRET or store.secret_file): household "
                    "ids in rejects.csv are pseudonyms valid for this run only")
        return secrets.token_hex(32).encode()


def published_rejects(rejects: pd.DataFrame, secret: bytes) -> pd.DataFrame:
    """``rejects.csv`` as published: the submission key replaced by its keyed hash."""
    from profiling.store import pseudonyms

    out = rejects[REJECT_COLUMNS].copy()
    out.insert(2, "household_id", pseudonyms(secret, out["key"]))
    return out.drop(columns=["key"])


def hazard_exposure(cfg: Config, settlements: Settlements, households: pd.DataFrame,
                    on_tiles: Callable[[int], None] | None = None,
                    on_tile: Callable[[int], None] | None = None
                    ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Households with each hazard's value at their point (a column named after the hazard),
    and the settlements' area-based exposure (None without hazards). ``on_tiles`` learns how
    many tiles each raster will read, ``on_tile`` each one read (progress)."""
    return with_hazard_values(households, cfg.hazards, settlements.frame if (
        settlements.has_geometry) else None, on_tiles=on_tiles, on_tile=on_tile)


def household_stages(cfg: Config, settlements: Settlements, households: pd.DataFrame,
                     t: Thresholds, stages: Stages | None = None,
                     then: Callable[[], object] | None = None) -> HeavyResult:
    """The heavy stage in this process (:func:`profiling.households.household_stage`, which
    :func:`profiling.distributed.heavy_stages` runs on Dask partitions)."""
    return household_stage(households, cfg.hazards, t, cfg.map.h3_resolution,
                           polygons=settlements.frame if settlements.has_geometry else None,
                           stages=stages, then=then)


def hazard_criterion(h: HazardSource, language: str = "en") -> Criterion:
    """A hazard's CUF criterion: the share of a settlement's modelled area at or above its
    ``exposed`` threshold, weighted by its ``cuf_weight`` (named in ``language``)."""
    from profiling.i18n import gettext_for

    _ = gettext_for(language)
    rule = h.rule()
    return Criterion(h.name, f"{h.name}_area_share", float(h.cuf_weight or 0.0), True,
                     _("share of the settlement's modelled area where %(hazard)s is at or "
                       "above %(value)s", hazard=_(h.words), value=rule.value(rule.exposed)))


def run_cuf(cfg: Config, table: pd.DataFrame, budget: float | None = None,
            weights: dict[str, float] | None = None) -> CufResult:
    """The CUF stage on a settlement table, as configured (budget and weights overridable)."""
    c = cfg.cuf
    criteria = cuf_criteria(cfg, weights)
    interventions = [Intervention(**iv.model_dump()) for iv in
                     load_interventions(c.interventions)] if c.interventions else []
    # the ranking's own errors on this configuration and table are PrioritisationErrors (a
    # ConfigError: exit 2 with the message); any other error is a bug and surfaces as one
    return prioritise(table, criteria, interventions,
                      budget=c.budget if budget is None else budget,
                      settlement_cap=c.settlement_cap,
                      community_min_share=c.community_min_share, top_n=c.top_n,
                      perturbations=c.perturbations, spread=c.weight_spread, seed=c.seed,
                      min_cell_size=cfg.min_cell_size, language=cfg.language)


def cuf_criteria(cfg: Config, weights: dict[str, float] | None = None) -> list[Criterion]:
    """The ranking's criteria: the configuration's, or the defaults with each hazard that has
    a ``cuf_weight``; ``weights`` overrides weights by criterion name."""
    c = cfg.cuf
    if c.criteria:
        criteria = [Criterion(name, x.column, x.weight, x.higher_is_worse, x.label)
                    for name, x in c.criteria.items()]
    else:
        criteria = list(DEFAULT_CRITERIA)
        # each hazard with a CUF weight ranks on its exposed area share (the flood layer's is
        # 0.15 by default), among the defaults before the community's own priority
        at = next((i for i, k in enumerate(criteria) if k.name == "community"), len(criteria))
        criteria[at:at] = [hazard_criterion(h, cfg.language) for h in cfg.hazards
                           if h.cuf_weight is not None and "exposed" in h.thresholds]
    if weights:
        known = {k.name for k in criteria}
        unknown = sorted(set(weights) - known)
        if unknown:
            raise ConfigError(f"--weights names unknown criteria {', '.join(unknown)}; the "
                              f"criteria are {', '.join(sorted(known))}")
        criteria = [Criterion(k.name, k.column, weights.get(k.name, k.weight),
                              k.higher_is_worse, k.label) for k in criteria]
    return criteria


def republish(cfg: Config, out_dir: str | Path | None = None, pdf: bool = False,
              engine: str = "auto", book: str | None = None,
              progress: Progress | None = None) -> dict[str, Path]:
    """``profiling atlas``: rewrite the map, the atlas (with ``pdf``, its PDFs, printed by
    ``engine``; with ``book``, ``atlas/atlas.pdf`` in that order) and the PNG maps from an
    earlier run's tables, then audit the folder again (:func:`reaudit`). The PDFs are checked
    by the audit as they are printed, and the audit of the folder only hashes them again."""
    from profiling.publish import publish
    from profiling.publish.pdf import ENGINES, ORDERS, prune_stale, write_book, write_pdfs

    if engine not in ENGINES:
        raise ConfigError(f"--pdf-engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if book is not None and book not in ORDERS:
        raise ConfigError(f"--book {book!r}: expected one of {', '.join(ORDERS)}")
    folder = Path(out_dir) if out_dir is not None else Path(cfg.output_dir)
    stages = Stages(progress)
    with stages.stage("atlas, map and PNG maps", None, "pages") as st:
        written = publish(folder, cfg, on_page=st.advance)
    checker, cleared = None, None
    if pdf or book:
        with stages.stage("audit index", None, ""):
            checker = reference_checker(cfg)
        with stages.stage("PDF", None, "pages") as st:
            printed = write_pdfs(folder / "atlas", engine, checker, on_total=st.grow,
                                 on_pages=st.advance)
        written |= printed.files
        cleared = printed.cleared
        if book:
            with stages.stage("atlas.pdf", None, "pages") as st:
                written["atlas_book"], booked = write_book(
                    folder / "atlas", book, engine=printed.engine, checker=checker,
                    on_total=st.grow, on_pages=st.advance)
            cleared = {**cleared, **booked}
    if not book:  # pages rewritten: no PDF may be left that shows what they no longer say
        prune_stale(folder / "atlas")
    by = "profiling atlas" + (" --pdf" if pdf else "") + (f" --book {book}" if book else "")
    reaudit(cfg, folder, by, written.values(), checker=checker, cleared=cleared, stages=stages)
    return written


def reprofile(cfg: Config, ids: Sequence[str] | None = None, out_dir: str | Path | None = None,
              workers: int = 2, emit: Callable[[dict[str, Any]], None] | None = None) -> Any:
    """``profiling profiles``: regenerate the settlements' profiles whose inputs changed
    (:func:`profiling.profiles.regenerate`; every one with ``ids`` None), then audit the folder
    again when any was written."""
    from profiling.profiles import regenerate

    folder = Path(out_dir) if out_dir is not None else Path(cfg.output_dir)
    res = regenerate(folder, ids, workers, emit)
    if res.written:
        from profiling.publish.pdf import prune_stale

        prune_stale(folder / "atlas")
        reaudit(cfg, folder, "profiling profiles")
    return res


def reprioritise(cfg: Config, out_dir: str | Path | None = None, budget: float | None = None,
                 weights: dict[str, float] | None = None) -> CufResult:
    """Rerun only the CUF stage on the settlement table of an earlier run.

    Reads ``settlement_indicators.csv`` from the output folder, and rewrites the CUF outputs and
    the ``cuf_score``/``cuf_rank`` columns of the settlement table (CSV and GeoPackage layer);
    then audits the folder again (:func:`reaudit`).
    """
    out = Path(out_dir) if out_dir is not None else Path(cfg.output_dir)
    path = out / SETTLEMENT_TABLE
    if not path.exists():
        raise ConfigError(f"{path} does not exist: run `profiling run` first")
    table = read_csv(path, dtype={"settlement_id": str, "name": str})
    cuf = run_cuf(cfg, table, budget, weights)
    update_settlements(out, cuf.settlements, ["cuf_score", "cuf_rank"])
    written = write_cuf(out, cuf)
    reaudit(cfg, out, "profiling prioritise", written.values())
    return cuf


def write_cuf(out: Path, cuf: CufResult) -> dict[str, Path]:
    """``cuf_priorities.csv`` and, with a catalogue, ``cuf_portfolio.csv``."""
    write_csv(cuf.priorities, out / PRIORITIES)
    written = {"priorities": out / PRIORITIES}
    if cuf.portfolio is not None:
        t = cuf.portfolio.table.assign(method=cuf.portfolio.method,
                                       gap_to_upper_bound=cuf.portfolio.gap)
        write_csv(t, out / PORTFOLIO)
        written["portfolio"] = out / PORTFOLIO
        log.info("portfolio (%s): %d projects, cost %.0f of %.0f, %.0f beneficiaries counted "
                 "once", cuf.portfolio.method, len(t), cuf.portfolio.cost, cuf.portfolio.budget,
                 cuf.portfolio.beneficiaries)
    return written


def _write_tables(out: Path, settlements: Settlements, table: pd.DataFrame, city: pd.DataFrame,
                  t: Thresholds, k: int) -> dict[str, Path]:
    """The settlement table (CSV, GeoPackage layer and GeoParquet), the parameters and the
    city summary (CSV, JSON)."""
    geometry = None
    if settlements.has_geometry:
        geo = settlements.frame.set_index("settlement_id").geometry
        geometry = geo.reindex(table["settlement_id"]).to_numpy()
    written = write_settlements(out, table, geometry, settlements.frame.crs if (
        settlements.has_geometry) else None)
    params = {"min_cell_size": k, **t.parameters()}
    write_csv(pd.DataFrame({"parameter": list(params), "value": list(params.values())}),
              out / PARAMETERS)
    write_csv(city, out / f"{CITY_SUMMARY}.csv")
    records = [{k2: (None if isinstance(v, float) and math.isnan(v) else v)
                for k2, v in row.items()} for row in city.to_dict("records")]
    (out / f"{CITY_SUMMARY}.json").write_text(json.dumps(
        {"parameters": params, "indicators": records}, indent=2), encoding="utf-8")
    return written | {"city_csv": out / f"{CITY_SUMMARY}.csv",
                      "city_json": out / f"{CITY_SUMMARY}.json", "parameters": out / PARAMETERS}


def _file_entry(path: Path | None) -> dict[str, str | None]:
    if path is None:
        return {"path": None, "sha256": None}
    return {"path": str(path), "sha256": sha256_of(Path(path))}



# --------------------------------------------------------------------------------------------
# Two rounds of a city (CONTRACT.md §6)
# --------------------------------------------------------------------------------------------

def compare_rounds(before: str | Path, after: str | Path, out_dir: str | Path
                   ) -> dict[str, Path]:
    """``profiling compare``: each round a run's output folder, or a configuration (``.yaml``)
    that is run first, from its store or its exports, into ``OUT/rounds/before`` or
    ``OUT/rounds/after``. With both rounds given as configurations their households are
    matched (:func:`profiling.compare.match`) for the transitions, in memory only, and every
    output is audited for both rounds' personal values and points."""
    from profiling import compare as cmp

    out = Path(out_dir)
    folders: list[Path] = []
    rounds: list[tuple[Config, RunResult] | None] = []
    for role, given in (("before", Path(before)), ("after", Path(after))):
        if given.suffix.lower() in (".yaml", ".yml") and given.is_file():
            cfg = load_config(given)
            folder = out / cmp.ROUNDS / role
            log.info("%s round: running %s into %s", role, given, folder)
            rounds.append((cfg, run(cfg, folder)))
            folders.append(folder)
        else:
            rounds.append(None)
            folders.append(given)
    ran = [r for r in rounds if r is not None]
    if len(ran) < 2:
        later = rounds[1]
        return cmp.compare(folders[0], folders[1], out,
                           rounds=[f for f, r in zip(folders, rounds, strict=True) if r],
                           secrets_=_both_rounds(ran) if ran else None,
                           consent=_consent(later[0]) if later is not None else ())
    key = secrets.token_bytes(32)  # this comparison's own: the hashes die with it
    panels = tuple(_panel(cfg, result, key) for cfg, result in ran)
    return cmp.compare(folders[0], folders[1], out, panels=(panels[0], panels[1]),
                       secrets_=_both_rounds(ran), rounds=folders,
                       consent=_consent(ran[1][0]))


def _consent(cfg: Config) -> tuple[str, ...]:
    from profiling.publish import consent_statements

    return consent_statements(cfg)


def _panel(cfg: Config, result: RunResult, key: bytes) -> Any:
    """One round's households for the panel: their indicators as the run computed them
    (hazard values under their points included), and their keyed hashes."""
    from profiling.compare import panel

    hh = result.ingest.households
    located, _ = with_hazard_values(hh, cfg.hazards)
    ind = compute_indicators(located, with_collected(thresholds(cfg), hh))
    store_secret = None
    if cfg.store is not None:
        from profiling.store import read_secret

        store_secret = read_secret(cfg.store.secret_file)
    return panel(hh, result.ingest.personal, ind, key, store_secret)


def _both_rounds(ran: list[tuple[Config, RunResult]]) -> Secrets:
    """What no output of a comparison may hold: the personal values and the points of every
    round it ran."""
    cfg = ran[-1][0]
    shapes = load_settlements(cfg)
    return Secrets.from_frames(
        pd.concat([r.ingest.personal for _, r in ran], ignore_index=True),
        pd.concat([r.ingest.households[["longitude", "latitude"]] for _, r in ran],
                  ignore_index=True), max(c.min_cell_size for c, _ in ran),
        shapes.frame.geometry if shapes is not None and shapes.has_geometry else None,
        country_code=cfg.phone_country_code)
