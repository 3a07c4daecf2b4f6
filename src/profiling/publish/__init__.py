"""Publish a run: ``map.html``, the settlement atlas and PNG maps, read from its tables.

Presentation reads the computed tables of the output folder (CONTRACT.md §5) and nothing else:
never the households, never personal data. folium, branca, jinja2 and matplotlib are imported
here only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

from profiling.config import Config

log = logging.getLogger(__name__)

__all__ = ["publish", "start_overlays"]


def _beside() -> Executor:
    """One forked process for work beside this one's (POSIX), or this thread elsewhere."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    if os.name != "posix":
        return ThreadPoolExecutor(1)
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))


def consent_statements(cfg: Config) -> tuple[str, ...]:
    """The configured statements of consent collected outside the form, once each."""
    said = [s.consent.collected_outside_form for s in cfg.surveys if s.consent is not None]
    return tuple(dict.fromkeys(said))


def start_overlays(cfg: Config, pool: Executor, around: tuple[Any, Any] | None = None
                   ) -> Future[Any] | None:
    """Start rendering the hazard overlays on ``pool`` (they read only the rasters, mostly in
    GDAL, which releases the GIL: a run renders them while it ingests); ``around``: the
    settlements' bounds and CRS."""
    if not cfg.hazards:
        return None
    from profiling.publish.maps import render_overlays_apart

    return pool.submit(render_overlays_apart, list(cfg.hazards), around)


def input_sources(cfg: Config) -> tuple[tuple[str, str], ...]:
    """(kind, file names) of the inputs of a configuration: its surveys, boundaries and
    hazard rasters. Names only, never a folder: where the files lie is nobody's business."""
    out = []
    if cfg.surveys:
        out.append(("Household enumeration", ", ".join(Path(s.path).name for s in cfg.surveys)))
    if cfg.boundaries is not None:
        out.append(("Settlement boundaries", Path(cfg.boundaries).name))
    if cfg.hazards:
        out.append(("Hazards", ", ".join(f"{h.name} ({Path(h.path).name})" for h in cfg.hazards)))
    if cfg.map.basemap_file is not None:
        out.append(("Basemap", Path(cfg.map.basemap_file).name))
    return tuple(out)


def publish(out_dir: str | Path, cfg: Config,
            on_page: Callable[[], None] | None = None,
            overlays: Future[Any] | None = None) -> dict[str, Path]:
    """Write ``map.html`` (with ``map_files/``), ``maps/*.png`` and ``atlas/`` to ``out_dir``
    from the tables already there (the PDFs: :mod:`profiling.publish.pdf`). ``on_page`` is
    called after each settlement's atlas page (progress); ``overlays``, the hazard overlays
    being rendered already (:func:`start_overlays`)."""
    from profiling.publish._data import read_tables
    from profiling.publish.atlas import write_atlas
    from profiling.publish.maps import write_map, write_pngs

    tables = read_tables(out_dir)
    tables.consent_outside_form = consent_statements(cfg)
    tables.hazards = tuple(h.rule() for h in cfg.hazards)
    tables.sources = input_sources(cfg)
    tables.language = cfg.language
    written: dict[str, Path] = {}
    written.update(write_atlas(tables, on_page))
    if tables.has_geometry:
        rendered = None
        if overlays is not None:
            rendered, notes = overlays.result()
            for level, message in notes:  # logged by the process that rendered them
                log.log(level, "%s", message)
        # the PNG maps in a forked process while this one writes the map (both draw alone,
        # on one core each)
        with _beside() as pool:
            pngs = pool.submit(write_pngs, tables, cfg.map)
            written.update(write_map(tables, cfg.map, cfg.hazards, rendered))
            written.update(pngs.result())
    log.info("published %d files: map, atlas and PNG maps", len(written))
    return written
