"""The ``profiling`` command: a thin layer over :mod:`profiling.pipeline`.

Bad input ends with a one-paragraph message and a non-zero exit code, never a traceback
(``-v`` adds the traceback of an unexpected error, for a bug report).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from profiling import __version__
from profiling._errors import ConfigError, ProfilingError
from profiling.config import Config, load_config, parse_config

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Profile settlements from a household enumeration.")
err = Console(stderr=True)
out = Console()
EXIT_INPUT, EXIT_BUG = 2, 3


def _logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]",
                        handlers=[RichHandler(console=err, show_path=False)], force=True)


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


Verbose = Annotated[int, typer.Option("--verbose", "-v", count=True,
                                      help="More detail (-vv for debugging).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")]


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


@app.command()
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
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Run the whole pipeline and write its outputs."""
    from profiling import pipeline

    _logging(verbose, quiet)
    try:
        cfg = _config(config, survey, form, boundaries, hazard, out_dir)
        bar, task = _progress(len(cfg.surveys))
        with bar:
            result = pipeline.run(cfg, progress=lambda _: bar.advance(task))  # type: ignore[arg-type]
    except Exception as exc:
        _fail(exc, verbose)
        return
    if not quiet:
        out.print(_counts_table(result.counts))
        out.print(f"outputs written to {Path(cfg.output_dir)} in {result.seconds:.1f} s")


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="YAML configuration.")],
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Check a configuration and read its inputs, writing nothing."""
    from profiling import pipeline

    _logging(verbose, quiet)
    try:
        cfg = load_config(config)
        bar, task = _progress(len(cfg.surveys))
        with bar:
            result = pipeline.validate(cfg, progress=lambda _: bar.advance(task))  # type: ignore[arg-type]
    except Exception as exc:
        _fail(exc, verbose)
        return
    if not quiet:
        out.print(_counts_table(result.counts))
        out.print(f"{config}: valid; {result.counts['rejected']:,} rows would be rejected and "
                  f"{result.counts['values_dropped']:,} values dropped (nothing written)")


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


def main() -> None:  # pragma: no cover - entry point
    app()
    sys.exit(0)
