"""The ``profiling`` command: a thin layer over :mod:`profiling.pipeline`.

Bad input ends with a one-paragraph message and a non-zero exit code, never a traceback
(``-v`` adds the traceback of an unexpected error, for a bug report).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from profiling import __version__
from profiling._errors import ConfigError, ProfilingError
from profiling.config import Config, load_config, parse_config

if TYPE_CHECKING:
    import pandas as pd

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Profile settlements from a household enumeration.")
err = Console(stderr=True)
out = Console()


def _example(*commands: str) -> str:
    """A command's help ends with an example (or several) of its use."""
    lines = [c.strip() for c in commands]
    return "Example" + ("s" if len(lines) > 1 else "") + ":  " + "   or   ".join(
        f"[bold]{c}[/]" for c in lines)


def _show_version(value: bool) -> None:
    if value:
        out.print(f"profiling {__version__}")
        raise typer.Exit()


@app.callback(epilog=_example("profiling run configs/demo.yaml --out out/demo",
                              "profiling COMMAND --help"))
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_show_version, is_eager=True,
        help="Print the version and exit.")] = False) -> None:
    """Profile settlements from a household enumeration."""


#: The example at the end of each command's help.
EXAMPLES = {
    "run": _example(
        "profiling run configs/demo.yaml --out out/demo",
        "profiling run --survey kobo.csv --boundaries settlements.gpkg --hazard "
        "flood=depth.tif --out out/quick"),
    "validate": _example(
        "profiling validate configs/demo.yaml"),
    "prioritise": _example(
        "profiling prioritise configs/demo.yaml --budget 100000 --weights slum=0.4,people=0.1"),
    "atlas": _example(
        "profiling atlas configs/demo.yaml --pdf",
        "profiling atlas configs/demo.yaml --book rank"),
    "load": _example(
        "profiling load configs/city.yaml exports/day1.csv exports/day2.csv"),
    "mapping_draft": _example(
        "profiling mapping draft other_survey.csv members.csv --form its_form.xls "
        "--out draft.yaml"),
    "store_status": _example(
        "profiling store status configs/city.yaml --json"),
    "store_backup": _example(
        "profiling store backup configs/city.yaml backups/2026-03-02.bak"),
    "store_restore": _example(
        "profiling store restore configs/new-store.yaml backups/2026-03-02.bak"),
    "store_roles": _example(
        "profiling store roles configs/city.yaml"),
    "store_grant": _example(
        "profiling store grant configs/city.yaml analyst alice"),
    "store_export": _example(
        "profiling store export configs/city.yaml deidentified.gpkg"),
    "profiles": _example(
        "profiling profiles configs/demo.yaml --settlement S01 --settlement S02"),
    "audit": _example(
        "profiling audit out/demo --config configs/demo.yaml"),
    "compare": _example(
        "profiling compare round2026.yaml round2028.yaml --out out/change"),
    "version": _example(
        "profiling version"),
    "validation_pack": _example(
        "profiling validation pack configs/city.yaml --settlement JK03 --settlement JK08"),
    "validation_load": _example(
        "profiling validation load configs/city.yaml forum_answers.xlsx"),
    "validation_boundary": _example(
        "profiling validation boundary configs/city.yaml redrawn.gpkg --forum 'RW 01 forum' "
        "--date 2026-04-02"),
}
EXIT_INPUT, EXIT_BUG = 2, 3


def _logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler = RichHandler(console=err, show_path=False)
    if verbose < 2:
        # Dask's scheduler and workers narrate every connection at INFO: only with -vv. A
        # filter on the handler, since importing distributed resets its loggers' levels.
        handler.addFilter(lambda r: r.levelno >= logging.WARNING or not (
            r.name == "distributed" or r.name.startswith("distributed.")))
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]", handlers=[handler],
                        force=True)
    # what a user cannot act on: pyogrio's "Created 2,000 records" on every layer written
    for name in ("pyogrio", "pyogrio._io", "fiona", "rasterio"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)


def _fail(exc: BaseException, verbose: int) -> None:
    if isinstance(exc, ProfilingError):
        err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(EXIT_INPUT)
    if verbose:
        err.print_exception()
    err.print(f"[bold red]internal error:[/] {exc.__class__.__name__}: {exc}. This is a bug in "
              "profiling, not in your data; please report it with the output of the same "
              "command run with -v.", soft_wrap=True)
    raise typer.Exit(EXIT_BUG)


def _allocator() -> None:
    """Arrow's memory from jemalloc where the wheel has it (Linux, macOS), unless the user
    chose a pool (``ARROW_DEFAULT_MEMORY_POOL``). pyarrow's default, mimalloc, hands freed
    memory back to the system at once: a city's ingest then spends a third of its time in
    the kernel faulting the same pages in again (benchmarks/bench_city.py: ingest 19 s with
    mimalloc, 13 s with jemalloc; peak 2.8 against 2.4 GiB). The variable is set for the
    processes this one starts (Dask workers, the overlay renderer) too."""
    import os

    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    import pyarrow as pa

    if "jemalloc" in pa.supported_memory_backends():
        os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "jemalloc"
        pa.set_memory_pool(pa.jemalloc_memory_pool())


@contextmanager
def _guard(verbose: int, quiet: bool) -> Iterator[None]:
    """Every command's frame: logging as asked, Arrow's allocator (:func:`_allocator`), and
    any error turned into :func:`_fail`'s one-paragraph message and exit code (typer's own
    exits pass through)."""
    _logging(verbose, quiet)
    _allocator()
    try:
        yield
    except typer.Exit:
        raise
    except Exception as exc:
        _fail(exc, verbose)


def _config(config: Path | None, survey: list[Path] | None, form: Path | None,
            boundaries: Path | None, hazard: list[str] | None, out_dir: Path | None) -> Config:
    if config is not None:
        cfg = load_config(config)
        if survey or form or boundaries or hazard:
            raise ConfigError("give either a configuration file or --survey/--form/--boundaries/"
                              "--hazard options, not both")
    else:
        if not survey:
            raise ConfigError("give a configuration file, or at least one --survey FILE")
        hazards = []
        for h in hazard or []:
            name, sep, path = h.partition("=")
            if not sep or not name or not path:
                raise ConfigError(f"--hazard {h!r}: expected NAME=PATH, e.g. flood=depth.tif")
            hazards.append({"name": name, "path": path})
        data: dict[str, object] = {"surveys": [str(s) for s in survey], "hazards": hazards}
        if form is not None:
            data["form"] = str(form)
        if boundaries is not None:
            data["boundaries"] = str(boundaries)
        cfg = parse_config(data, "command-line options", Path.cwd())
    if out_dir is not None:
        cfg.output_dir = out_dir
    return cfg


def _execution(cfg: Config, workers: int | None, scheduler: str | None) -> None:
    if workers is not None and scheduler is not None:
        raise ConfigError("give --workers N (a local Dask cluster) or --scheduler ADDRESS (a "
                          "running one), not both")
    if workers is not None:
        if workers < 1:
            raise ConfigError(f"--workers {workers}: expected at least 1 worker")
        cfg.execution.mode, cfg.execution.workers = "local", workers
    elif scheduler is not None:
        if not scheduler.strip():
            raise ConfigError("--scheduler: expected an address such as tcp://host:8786")
        cfg.execution.mode, cfg.execution.scheduler = "scheduler", scheduler


Verbose = Annotated[int, typer.Option("--verbose", "-v", count=True,
                                      help="More detail (-vv for debugging).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")]


class _StageBar:
    """A run's stages on a rich progress display: one bar per stage (rows, tiles, pages or
    files), each finished bar left with its time."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task: TaskID | None = None

    def start(self, name: str, total: float | None, unit: str) -> None:
        self.task = self.bar.add_task(name, total=total, unit=unit)

    def advance(self, amount: float) -> None:
        if self.task is not None:
            self.bar.advance(self.task, amount)

    def grow(self, amount: float) -> None:
        if self.task is not None:
            total = self.bar.tasks[self.task].total or 0
            self.bar.update(self.task, total=total + amount)

    def end(self) -> None:
        if self.task is not None:
            t = self.bar.tasks[self.task]
            self.bar.update(self.task, total=t.total if t.total is not None else t.completed,
                            completed=t.total if t.total is not None else t.completed)
            self.bar.stop_task(self.task)
        self.task = None


def _stage_bar(quiet: bool) -> tuple[Progress | None, _StageBar | None]:
    if quiet:
        return None, None
    bar = Progress(TextColumn("{task.description:<24}"), BarColumn(),
                   MofNCompleteColumn(), TextColumn("{task.fields[unit]}"),
                   TimeElapsedColumn(), console=err, transient=False)
    return bar, _StageBar(bar)


def _progress(total: int) -> tuple[Progress, object]:
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn(
        "{task.completed}/{task.total}"), TimeElapsedColumn(), console=err, transient=True)
    task = bar.add_task("reading exports", total=total)
    return bar, task


def _counts_table(counts: dict[str, int]) -> Table:
    t = Table(title="Every input row accounted for", show_header=False)
    for k, v in counts.items():
        t.add_row(k, f"{v:,}")
    return t


def _coverage_table(frame: pd.DataFrame, persons: bool = False) -> Table:
    from profiling.indicators import coverage
    from profiling.roster import member_coverage

    who = "adult members" if persons else "households"
    t = Table(title="What the run can compute (from the adult members of the accepted "
              "households)" if persons else "What the run can compute (from the accepted "
              "households)")
    t.add_column("indicator")
    t.add_column("status")
    t.add_column(f"{who} with its fields", justify="right")
    for name, status, have, n in (member_coverage(frame) if persons else coverage(frame)):
        share = have / n if n else 0.0
        pct = f"{share:.1%}" if share < 0.999 or status == "computable" else ">99.9%"
        t.add_row(name, status, "" if status == "not collected" else f"{have:,} of {n:,} ({pct})")
    return t


@app.command(epilog=EXAMPLES["run"])
def run(
    config: Annotated[Path | None, typer.Argument(help="YAML configuration.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output directory.")] = None,
    survey: Annotated[list[Path] | None, typer.Option(help="A survey export (repeatable).")
                      ] = None,
    form: Annotated[Path | None, typer.Option(help="The XLSForm (default: the reference).")
                    ] = None,
    boundaries: Annotated[Path | None, typer.Option(help="Settlement boundaries.")] = None,
    hazard: Annotated[list[str] | None, typer.Option(help="NAME=PATH of a hazard raster "
                                                          "(repeatable).")] = None,
    workers: Annotated[int | None, typer.Option(help="Run the heavy stages on a local Dask "
                                                     "cluster of N worker processes.")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Run the heavy stages on the Dask "
                                                       "scheduler at ADDRESS "
                                                       "(tcp://host:8786).")] = None,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Run the whole pipeline and write its outputs."""
    from profiling import pipeline

    with _guard(verbose, quiet):
        cfg = _config(config, survey, form, boundaries, hazard, out_dir)
        _execution(cfg, workers, scheduler)
        bar, stages = _stage_bar(quiet)
        if bar is None:
            result = pipeline.run(cfg)
        else:
            with bar:
                result = pipeline.run(cfg, progress=stages)
    if not quiet:
        out.print(_counts_table(result.counts))
        out.print(f"outputs written to {Path(cfg.output_dir)} in {result.seconds:.1f} s")


@app.command(epilog=EXAMPLES["validate"])
def validate(
    config: Annotated[Path, typer.Argument(help="YAML configuration.")],
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Check a configuration and read its inputs, writing nothing."""
    from profiling import pipeline

    with _guard(verbose, quiet):
        cfg = load_config(config)
        bar, task = _progress(len(cfg.surveys))
        with bar:
            result = pipeline.validate(cfg, progress=lambda _: bar.advance(task))  # type: ignore[arg-type]
    if not quiet:
        out.print(_counts_table(result.counts))
        out.print(_coverage_table(result.households))
        if result.members is not None:
            out.print(_coverage_table(result.members, persons=True))
        out.print(f"{config}: valid; {result.counts['rejected']:,} rows would be rejected and "
                  f"{result.counts['values_dropped']:,} values dropped (nothing written)")


def _weights(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--weights {text!r}: expected NAME=NUMBER pairs separated by "
                              "commas, e.g. slum=0.3,water=0.2") from None
        if not sep or not name.strip():
            raise ConfigError(f"--weights {text!r}: expected NAME=NUMBER pairs")
    return out


@app.command(epilog=EXAMPLES["prioritise"])
def prioritise(
    config: Annotated[Path, typer.Argument(help="YAML configuration.")],
    budget: Annotated[float | None, typer.Option(help="Budget (default: the configured one).")
                      ] = None,
    weights: Annotated[str | None, typer.Option(help="Criterion weights, e.g. "
                                                     "slum=0.3,water=0.2 (others unchanged).")
                       ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output directory of the run.")
                       ] = None,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Rerun only the CUF ranking and portfolio on an earlier run's settlement table."""
    from profiling import pipeline

    with _guard(verbose, quiet):
        cfg = load_config(config)
        cuf = pipeline.reprioritise(cfg, out_dir, budget, _weights(weights))
    if not quiet:
        top = cuf.priorities.dropna(subset=["cuf_rank"]).head(10)
        t = Table(title="CUF priorities (top 10)")
        for col in ("cuf_rank", "settlement_id", "name", "cuf_score"):
            t.add_column(col)
        for _, r in top.iterrows():
            t.add_row(str(int(r["cuf_rank"])), str(r["settlement_id"]), str(r["name"]),
                      f"{r['cuf_score']:.3f}")
        out.print(t)
        if cuf.portfolio is not None:
            p = cuf.portfolio
            out.print(f"portfolio ({p.method}): {len(p.table)} projects, cost {p.cost:,.0f} of "
                      f"{p.budget:,.0f}, {p.beneficiaries:,.0f} persons served (counted once)")


@app.command(epilog=EXAMPLES["atlas"])
def atlas(
    config: Annotated[Path, typer.Argument(help="YAML configuration.")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output directory of the run.")
                       ] = None,
    pdf: Annotated[bool, typer.Option(
        "--pdf", help="Also print each atlas page to PDF (atlas/pdf/), skipping those up to "
                      "date.")] = False,
    book: Annotated[str | None, typer.Option(
        "--book", metavar="rank|name",
        help="Also bind every profile into atlas/atlas.pdf, with contents and page numbers, "
             "in CUF rank or name order (prints the PDFs first).")] = None,
    engine: Annotated[str, typer.Option(
        "--pdf-engine", metavar="auto|chromium|weasyprint",
        help="What prints the PDFs: Chromium (fast), WeasyPrint, or auto: Chromium when it "
             "can be started, else WeasyPrint.")] = "auto",
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Rewrite the map, the settlement atlas and the PNG maps from an earlier run's tables (then
    audit the folder again)."""
    from profiling import pipeline

    with _guard(verbose, quiet):
        cfg = load_config(config)
        folder = Path(out_dir) if out_dir is not None else Path(cfg.output_dir)
        bar, stages = _stage_bar(quiet)
        if bar is None:
            written = pipeline.republish(cfg, folder, pdf, engine, book)
        else:
            with bar:
                written = pipeline.republish(cfg, folder, pdf, engine, book, progress=stages)
    if not quiet:
        pdfs = sum(1 for k in written if k.startswith("pdf_"))
        out.print(f"map, atlas ({sum(1 for k in written if k.startswith('atlas_'))} pages)"
                  + (f" and {pdfs} PDFs" if pdfs else "")
                  + (" and atlas/atlas.pdf" if book else "") + f" written to {folder}")


@app.command(epilog=EXAMPLES["load"])
def load(
    config: Annotated[Path, typer.Argument(help="YAML configuration with a 'store' section.")],
    exports: Annotated[list[Path] | None, typer.Argument(
        help="Exports to load, one load each, in this order (default: the configured "
             "surveys).")] = None,
    note: Annotated[str | None, typer.Option(help="A note kept with the load.")] = None,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Append exports to the enumeration store (a file loaded before changes nothing)."""
    from profiling import pipeline

    with _guard(verbose, quiet):
        cfg = load_config(config)
        n = len(exports) if exports else len(cfg.surveys)
        bar, task = _progress(n)
        with bar:
            summaries = pipeline.load_configured(
                cfg, exports, note=note,
                progress=lambda _: bar.advance(task))  # type: ignore[arg-type]
    if not quiet:
        t = Table(title="Loads")
        cols = ["load", "file", "read", "accepted", "rejected", "duplicates", "no_consent",
                "added", "replaced", "removed", "older"]
        for c in cols:
            t.add_column(c, justify="left" if c == "file" else "right")
        for s in summaries:
            if s.skipped:
                continue
            t.add_row(str(s.load_id), ", ".join(s.files),
                      *[f"{s.counts[k]:,}" for k in cols[2:7]],
                      *[f"{s.changes[k]:,}" for k in cols[7:]])
        if t.rows:
            out.print(t)
        for s in summaries:
            if s.skipped:
                out.print(f"{', '.join(s.files)}: loaded before (same sha256); nothing changed",
                          soft_wrap=True)


mapping_app = typer.Typer(no_args_is_help=True,
                          help="Field mappings for surveys of other questionnaires.")
app.add_typer(mapping_app, name="mapping")


@mapping_app.command("draft", epilog=EXAMPLES["mapping_draft"])
def mapping_draft(
    exports: Annotated[list[Path], typer.Argument(help="The household export, then (if it "
                                                       "is a separate file) its roster.")],
    form: Annotated[Path | None, typer.Option(help="The survey's own XLSForm: its labels "
                                                   "help match columns.")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the draft here "
                                                                "(default: print it).")] = None,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Draft a configuration with a field mapping to start from: columns and answer codes
    matched to the reference questionnaire, the rest left as TODO comments."""
    from profiling.draft import draft

    with _guard(verbose, quiet):
        if len(exports) > 2:
            raise ConfigError("give one household export, and at most one roster file")
        d = draft(exports, form)
        if out_file is None:
            sys.stdout.write(d.text)
        else:
            out_file.write_text(d.text, encoding="utf-8")
    if out_file is not None and not quiet:
        found = [f for f, c in d.survey.mapping.items() if c not in d.survey.recognised]
        out.print(f"{out_file}: {len(found)} fields matched, {len(d.survey.todo_fields)} left "
                  "as TODO" + (f"; a roster linked by {d.link}" if d.members else ""))


store_app = typer.Typer(no_args_is_help=True, help="Inspect and export the enumeration store.")
app.add_typer(store_app, name="store")


@store_app.command("status", epilog=EXAMPLES["store_status"])
def store_status(
    config: Annotated[Path, typer.Argument(help="YAML configuration with a 'store' section.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON, for "
                                                         "scripts and monitoring.")] = False,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """What the store holds: households by settlement and by load, rejects, the last load and
    the latest reads of personal data."""
    from profiling import store

    with _guard(verbose, quiet), store.open_configured(load_config(config),
                                                       "profiling store status") as st:
        status = st.status()
    if as_json:
        import json

        print(json.dumps(status.as_json(), indent=2, default=str))
        return
    out.print(f"store {status.where} ({status.backend}, schema version "
              f"{status.schema_version})", soft_wrap=False)
    out.print(_counts_table(status.counts))
    loads = status.by_load
    when = _dates(loads["finished_at"]) if len(loads) else loads["finished_at"]
    out.print(_narrow("Loads (added / replaced / removed: what each changed)", {
        "load": loads["load_id"], "finished (UTC)": when, "read": loads["read"],
        "accepted": loads["accepted"], "rejected": loads["rejected"],
        "dupl.": loads["duplicates"],
        "+ / ~ / -": [f"{a:,} / {r:,} / {d:,}" for a, r, d in zip(
            loads["added"], loads["replaced"], loads["removed"], strict=True)]}))
    for lid, files in zip(loads["load_id"], loads["files"], strict=True):
        out.print(f"  load {lid}: {files}", highlight=False)
    out.print(_narrow("Households by settlement", {
        "settlement": status.by_settlement["settlement_id"].fillna("(outside every settlement)"),
        "households": status.by_settlement["households"]}))
    out.print(_narrow("Current rejects", {c: status.rejects[c] for c in status.rejects.columns}))
    acc = status.access
    out.print(_narrow("Latest reads of personal data (access log)", {
        "at (UTC)": _dates(acc["at"]) if len(acc) else [],
        "who": [f"{o if d is None or d != d else d}@{h}" for d, o, h in zip(
            acc.get("db_user", []), acc.get("os_user", []), acc.get("host", []), strict=True)],
        "command": acc.get("command", []), "what": acc.get("what", [])}))
    last = status.last_load
    out.print(f"last load: {last['load_id']} ({last['files']}) finished {last['finished_at']} "
              f"by {last['loaded_by']}" if last else "no load yet", highlight=False)


def _dates(values: object) -> list[str]:
    """Times as ``YYYY-MM-DD HH:MM`` (UTC), blank where unknown."""
    import pandas as pd

    t = pd.to_datetime(pd.Series(values), utc=True, errors="coerce", format="mixed")
    return [v.strftime("%Y-%m-%d %H:%M") if v is not pd.NaT and v == v else "" for v in t]


def _narrow(title: str, columns: dict[str, Any]) -> Table:
    """A table that reads at 80 columns: numbers right-aligned and never cut (an ellipsis in
    "2,7…" hides the figure), text folded onto more lines instead."""
    import pandas as pd

    t = Table(title=title, title_justify="left", pad_edge=False, collapse_padding=True)
    cells = {name: ["" if v is None or (not isinstance(v, str) and pd.isna(v))
                    else f"{v:,}" if isinstance(v, (int, float)) and not isinstance(v, bool)
                    else str(v) for v in pd.Series(list(values), dtype=object)]
             for name, values in columns.items()}
    for name, vals in cells.items():
        numeric = bool(vals) and all(v == "" or v.replace(",", "").replace(".", "").isdigit()
                                     for v in vals)
        width = max([len(v) for v in vals] + [len(name)]) if numeric else None
        t.add_column(name, justify="right" if numeric else "left", overflow="fold",
                     min_width=width, no_wrap=numeric)
    for row in zip(*cells.values(), strict=True):
        t.add_row(*row)
    return t


@store_app.command("backup", epilog=EXAMPLES["store_backup"])
def store_backup(
    config: Annotated[Path, typer.Argument(help="YAML configuration with a 'store' section.")],
    backup_file: Annotated[Path, typer.Argument(help="The backup to write (its manifest is "
                                                     "written beside it, FILE.json).")],
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Back the store up (SQLite's online backup, or pg_dump) with a manifest of its
    fingerprint, against which a restore is checked. Keep the secret apart from it."""
    from profiling import store

    with _guard(verbose, quiet), store.open_configured(load_config(config),
                                                       "profiling store backup") as st:
        manifest = st.backup(backup_file)
    if not quiet:
        n = manifest["fingerprint"]["households"]["rows"]
        out.print(f"{n:,} households, every table and its fingerprint backed up to "
                  f"{backup_file}", highlight=False)


@store_app.command("restore", epilog=EXAMPLES["store_restore"])
def store_restore(
    config: Annotated[Path, typer.Argument(help="YAML configuration whose 'store' is the new "
                                                "store to restore into.")],
    backup_file: Annotated[Path, typer.Argument(help="A backup made by `profiling store "
                                                     "backup`.")],
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Restore a backup into the configured store, which must be new (a GeoPackage path that
    does not exist, or an empty database), and check every table against the backup's
    fingerprint."""
    from profiling.store import read_secret
    from profiling.store._backup import restore

    with _guard(verbose, quiet):
        cfg = load_config(config)
        if cfg.store is None:
            raise ConfigError("the configuration has no 'store' section to restore into")
        manifest = restore(cfg.store.url, backup_file, read_secret(cfg.store.secret_file))
    if not quiet:
        n = manifest["fingerprint"]["households"]["rows"]
        where = cfg.store.url if "://" not in str(cfg.store.url) else "the database"
        out.print(f"{n:,} households restored into {where}; every table matches the backup",
                  highlight=False)


@store_app.command("roles", epilog=EXAMPLES["store_roles"])
def store_roles(
    config: Annotated[Path, typer.Argument(help="YAML configuration with a 'store' section.")],
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """The store's roles, what each may read and the logins that hold them (PostGIS)."""
    from profiling import store

    with _guard(verbose, quiet), store.open_configured(load_config(config),
                                                       "profiling store roles") as st:
        roles = st.roles()
    out.print(_narrow("Roles of the store", {c: roles[c] for c in roles.columns}))


@store_app.command("grant", epilog=EXAMPLES["store_grant"])
def store_grant(
    config: Annotated[Path, typer.Argument(help="YAML configuration with a 'store' section.")],
    role: Annotated[str, typer.Argument(help="analyst, supervisor or loader.")],
    user: Annotated[str, typer.Argument(help="An existing login of the database server.")],
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Give a login a role of the store (PostGIS): analyst (settlement and H3 cell, nothing
    personal), supervisor (points and interview times) or loader (everything)."""
    from profiling import store

    with _guard(verbose, quiet), store.open_configured(load_config(config),
                                                       "profiling store grant") as st:
        st.grant(role, user)
    if not quiet:
        out.print(f"{user} now holds the {role} role of the store", highlight=False)


@store_app.command("export", epilog=EXAMPLES["store_export"])
def store_export(
    config: Annotated[Path, typer.Argument(help="YAML configuration with a 'store' section.")],
    out_file: Annotated[Path, typer.Argument(help="The GeoPackage to write (.gpkg).")],
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Write a de-identified GeoPackage: no personal fields, no true locations."""
    from profiling import store

    with _guard(verbose, quiet), store.open_configured(load_config(config),
                                                       "profiling store export") as st:
        path = st.export_deidentified(out_file)
        n = st.counts()["accepted"]
    if not quiet:
        out.print(f"{n:,} households written to {path} (de-identified)")


@app.command(epilog=EXAMPLES["profiles"])
def profiles(
    config: Annotated[Path, typer.Argument(help="YAML configuration.")],
    all_: Annotated[bool, typer.Option("--all", help="Every settlement.")] = False,
    settlement: Annotated[list[str] | None, typer.Option(help="A settlement id (repeatable).")
                          ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output directory of the run.")
                       ] = None,
    workers: Annotated[int, typer.Option(help="Parallel processes.")] = 2,
    jsonl: Annotated[bool, typer.Option(help="Print the JSON-lines events on stdout.")] = False,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Regenerate settlement profiles in parallel, skipping those whose inputs did not change.

    Exit code 0 when every profile was written or up to date, 1 when any failed (the others are
    finished first), 2 on bad input.
    """
    import json

    from profiling import pipeline

    with _guard(verbose, quiet):
        if all_ == bool(settlement):
            raise ConfigError("give either --all or one or more --settlement ID")
        cfg = load_config(config)
        emit = (lambda e: print(json.dumps(e), flush=True)) if jsonl else None
        res = pipeline.reprofile(cfg, None if all_ else settlement, out_dir, workers, emit)
    if not quiet and not jsonl:
        if not res.written and not res.failed:
            out.print(f"nothing to do: {len(res.skipped)} profile(s) up to date")
        else:
            out.print(f"{len(res.written)} profile(s) written, {len(res.skipped)} up to date, "
                      f"{len(res.failed)} failed")
        for sid, why in res.failed.items():
            err.print(f"[bold red]failed:[/] {sid}: {why}", highlight=False)
    if not res.ok:
        raise typer.Exit(1)


@app.command(epilog=EXAMPLES["audit"])
def audit(
    output_dir: Annotated[Path, typer.Argument(help="A run's output folder.")],
    config: Annotated[Path, typer.Option("--config", help="The run's configuration: its store "
                                                         "(or exports) hold what must not leak."
                                         )],
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Scan every published file for personal values, household locations and small cells.

    Exit code 0 when nothing is found, 1 when anything is (each finding is printed with its file
    and place, never the value), 2 on bad input.
    """
    from profiling import pipeline

    with _guard(verbose, quiet):
        if not output_dir.is_dir():
            raise ConfigError(f"{output_dir} is not a folder")
        findings = pipeline.audit_outputs(load_config(config), output_dir)
    for f in findings:
        out.print(str(f), highlight=False, soft_wrap=True)
    if findings:
        err.print(f"[bold red]{len(findings)} finding(s):[/] do not publish {output_dir}")
        raise typer.Exit(1)
    if not quiet:
        out.print(f"{output_dir}: nothing personal or re-identifiable found")


@app.command(epilog=EXAMPLES["compare"])
def compare(
    before: Annotated[Path, typer.Argument(
        help="The earlier round: a run's output folder, or its configuration (.yaml), which "
             "is run first and gives the households for the panel.")],
    after: Annotated[Path, typer.Argument(
        help="The later round: a run's output folder, or its configuration (.yaml).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where the comparison is written.")],
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Compare two enumerations of a city: per settlement and indicator, the change and its
    95 % interval, and the settlements added, removed or redrawn; given both rounds'
    configurations, also how the households found in both rounds changed (CONTRACT §6)."""
    from profiling.compare import CHANGE_BY_SETTLEMENT
    from profiling.pipeline import compare_rounds

    with _guard(verbose, quiet):
        written = compare_rounds(before, after, out_dir)
    if not quiet:
        from profiling.outputs import read_csv

        table = read_csv(written["change_by_settlement"])
        called = int((table["changed"].astype(str) == "True").sum())
        out.print(f"{called} change(s) whose 95 % interval excludes 0, over "
                  f"{table['settlement_id'].nunique()} settlements; written to {out_dir} "
                  f"({CHANGE_BY_SETTLEMENT} and the rest)")


validation_app = typer.Typer(
    no_args_is_help=True,
    help="The community validation round: a sheet and a form for each settlement's forum, and "
         "the forum's corrections kept beside the enumeration.")
app.add_typer(validation_app, name="validation")


def _run_folder(cfg: Config, run_dir: Path | None) -> Path:
    return Path(run_dir) if run_dir is not None else Path(cfg.output_dir)


@validation_app.command("pack", epilog=EXAMPLES["validation_pack"])
def validation_pack(
    config: Annotated[Path, typer.Argument(help="YAML configuration.")],
    settlement: Annotated[list[str] | None, typer.Option(
        "--settlement", help="A settlement to make a sheet for (repeat it; default: every "
                             "settlement with published figures).")] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Where the pack goes (default: the output folder's name + "
                      "'-validation', beside it).")] = None,
    run_dir: Annotated[Path | None, typer.Option(
        "--run", help="The finished run whose figures the sheets carry (default: the "
                      "configured output folder).")] = None,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Write the sheets a settlement's forum checks its profile with (figures to confirm or
    correct, the boundary), and the same questions as an XLSForm for a phone."""
    from profiling.validation import pack

    with _guard(verbose, quiet):
        cfg = load_config(config)
        run = _run_folder(cfg, run_dir)
        dest = out_dir or run.parent / f"{run.name}-validation"
        written = pack(run, dest, settlement, cfg.language)
    if not quiet:
        out.print(f"{len(written) - 2} sheet(s), index.html and validation_form.xlsx written "
                  f"to {dest}", soft_wrap=True, markup=False)


@validation_app.command("load", epilog=EXAMPLES["validation_load"])
def validation_load(
    config: Annotated[Path, typer.Argument(help="YAML configuration with a 'store' section.")],
    corrections: Annotated[Path, typer.Argument(
        help="The validation form's export (CSV or XLSX).")],
    run_dir: Annotated[Path | None, typer.Option(
        "--run", help="The finished run the forum checked (default: the configured output "
                      "folder).")] = None,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Keep a forum's corrections in the store, each with its forum, date and recorder, beside
    the enumerated figures (never over them); every row not taken is listed with its reason."""
    from profiling._readers import sha256_of
    from profiling.outputs import SETTLEMENT_TABLE, read_csv
    from profiling.store import open_configured
    from profiling.validation import read_corrections

    with _guard(verbose, quiet):
        cfg = load_config(config)
        run = _run_folder(cfg, run_dir)
        if not (run / SETTLEMENT_TABLE).exists():
            raise ConfigError(f"{run}: no {SETTLEMENT_TABLE}; the corrections are held against "
                              "the run the forum checked (`profiling run`, or --run DIR)")
        table = read_csv(run / SETTLEMENT_TABLE, dtype={"settlement_id": str, "name": str})
        frame, rejects = read_corrections(Path(corrections), table)
        with open_configured(cfg, purpose="profiling validation load") as store:
            added = store.load_validations(frame, Path(corrections),
                                           sha256_of(Path(corrections)))
    if not quiet:
        from rich.text import Text

        # a file's name and its cells are text, never markup
        if added == 0 and len(frame):
            out.print(f"{corrections}: loaded before (same sha256); nothing changed",
                      soft_wrap=True, markup=False)
        else:
            out.print(f"{added:,} correction(s) kept from {corrections}", soft_wrap=True,
                      markup=False)
        if len(rejects):
            t = Table(title="Not taken")
            for c in ("row", "field", "value", "action", "reason"):
                t.add_column(c)
            for r in rejects.to_dict("records"):
                t.add_row(*(Text(str(v)) for v in (r["source_row"], r["field"],
                                                   str(r["value"])[:40], r["action"],
                                                   r["reason"])))
            out.print(t)


@validation_app.command("boundary", epilog=EXAMPLES["validation_boundary"])
def validation_boundary(
    config: Annotated[Path, typer.Argument(help="YAML configuration with a 'store' section.")],
    redrawn: Annotated[Path, typer.Argument(
        help="The redrawn boundaries: a GeoPackage or GeoJSON with settlement_id and name.")],
    forum: Annotated[str | None, typer.Option(help="The forum that redrew them.")] = None,
    date: Annotated[str | None, typer.Option(help="Its date (YYYY-MM-DD).")] = None,
    recorded_by: Annotated[str | None, typer.Option(
        "--recorded-by", help="Who recorded them.")] = None,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Keep boundaries a community redrew as a new version in the store: the next runs use
    it for those settlements, and their manifests name the version."""
    import re

    from profiling._readers import sha256_of
    from profiling.join import read_boundaries
    from profiling.store import open_configured
    from profiling.validation import read_redrawn

    with _guard(verbose, quiet):
        cfg = load_config(config)
        if cfg.boundaries is None:
            raise ConfigError("the configuration has no boundaries to redraw")
        if date is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
            raise ConfigError(f"--date {date!r}: not a date (YYYY-MM-DD)")
        known = read_boundaries(cfg.boundaries, cfg.boundaries_layer,
                                repair=cfg.repair_geometries)["settlement_id"].astype(str)
        frame, rejects = read_redrawn(Path(redrawn), list(known))
        if frame.empty:
            raise ConfigError(f"{redrawn}: no feature has the id of a configured settlement")
        with open_configured(cfg, purpose="profiling validation boundary") as store:
            version = store.load_boundaries(frame, Path(redrawn), sha256_of(Path(redrawn)),
                                            forum=forum, forum_date=date,
                                            recorded_by=recorded_by)
    if not quiet:
        if version == 0:
            out.print(f"{redrawn}: loaded before (same sha256); nothing changed",
                      soft_wrap=True, markup=False)
        else:
            out.print(f"boundary version {version}: {len(frame):,} settlement(s) redrawn "
                      f"({', '.join(frame['settlement_id'][:10])})", soft_wrap=True,
                      markup=False)
        for r in rejects.to_dict("records"):
            out.print(f"feature {r['source_row']}: settlement_id {r['value']!r}: "
                      f"{r['reason']}", soft_wrap=True, markup=False)


@app.command(epilog=EXAMPLES["version"])
def version() -> None:
    """Print the version."""
    out.print(__version__)


def main() -> None:  # pragma: no cover - entry point
    app()
    sys.exit(0)
