"""Batch regeneration of settlement profiles (the atlas pages), for schedulers.

:func:`regenerate` renders the profiles of the chosen settlements in parallel processes, from the
tables of a finished run. Each profile's inputs (its row of the settlement table, its CUF
priorities and portfolio rows, its enumeration dates, the run's parameters, the templates and the
software version) are hashed; a profile whose file exists and whose inputs have the hash recorded
in ``atlas/profiles_state.json`` is skipped. The state is written after every profile, so a batch
that is interrupted resumes where it stopped. Every event is appended as one JSON line to
``atlas/profiles.jsonl``. A failing profile does not stop the others; the batch reports it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from profiling import __version__

log = logging.getLogger(__name__)

STATE = "profiles_state.json"
LOG = "profiles.jsonl"
TEMPLATES = ("atlas_page.html", "atlas.css")


@dataclass
class BatchResult:
    """What a batch did: settlement ids written, skipped (up to date) and failed (with why)."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no profile failed."""
        return not self.failed


def _canonical(frame: pd.DataFrame | None, column: str, sid: str) -> list[dict[str, Any]]:
    if frame is None or frame.empty or column not in frame:
        return []
    rows = frame.loc[frame[column].astype(str) == sid]
    rows = rows.drop(columns=[c for c in ("geometry",) if c in rows.columns])
    return json.loads(rows.to_json(orient="records", double_precision=15))


def input_hashes(tables: Any, ids: Sequence[str]) -> dict[str, str]:
    """sha256 of everything a settlement's profile is made from, per settlement id."""
    folder = resources.files("profiling") / "templates"
    common = hashlib.sha256(__version__.encode())
    for name in TEMPLATES:
        common.update((folder / name).read_bytes())
    common.update(json.dumps(tables.parameters, sort_keys=True).encode())
    out = {}
    for sid in ids:
        h = common.copy()
        pieces = {
            "settlement": _canonical(tables.settlements, "settlement_id", sid),
            "priorities": _canonical(tables.priorities, "settlement_id", sid),
            "portfolio": _canonical(tables.portfolio, "settlement_id", sid),
            "dates": _canonical(tables.dates, "settlement_id", sid),
        }
        h.update(json.dumps(pieces, sort_keys=True, default=str).encode())
        out[sid] = h.hexdigest()
    return out


# -- worker side -------------------------------------------------------------------------------

_TABLES: Any = None


def _init(out_dir: str) -> None:
    global _TABLES
    from profiling.publish._data import read_tables

    _die_with_parent()
    _TABLES = read_tables(out_dir)


def _die_with_parent() -> None:
    """On Linux, end this worker when the batch that started it is killed (``kill -9`` of the
    batch would otherwise leave its workers waiting for work forever)."""
    if sys.platform != "linux":
        return
    import contextlib
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):  # a libc without prctl
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _render(sid: str) -> tuple[str, float]:
    from profiling.publish.atlas import render_page

    t0 = time.perf_counter()
    table = _TABLES.settlements
    rows = table.loc[table["settlement_id"].astype(str) == sid]
    if rows.empty:
        raise KeyError(f"settlement {sid!r} is not in the settlement table")
    name, html = render_page(_TABLES, rows.iloc[0])
    folder = Path(_TABLES.out) / "atlas"
    folder.mkdir(exist_ok=True)
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, folder / name)
    return name, time.perf_counter() - t0


# -- the batch -----------------------------------------------------------------------------------

def regenerate(out_dir: str | Path, ids: Sequence[str] | None = None, workers: int = 2,
               emit: Callable[[dict[str, Any]], None] | None = None) -> BatchResult:
    """Regenerate the profiles of ``ids`` (all settlements when None) in ``workers`` processes.

    Returns what was written, skipped and failed; ``emit`` receives each JSON-lines event too.
    """
    from profiling.publish._data import read_tables, safe_id

    out = Path(out_dir)
    tables = read_tables(out)
    known = [str(x) for x in tables.settlements["settlement_id"]]
    wanted = list(dict.fromkeys(known if ids is None else [str(i) for i in ids]))
    folder = out / "atlas"
    folder.mkdir(exist_ok=True)
    state_path = folder / STATE
    state: dict[str, str] = json.loads(state_path.read_text()) if state_path.exists() else {}
    hashes = input_hashes(tables, [i for i in wanted if i in known])
    result = BatchResult()
    log_file = (folder / LOG).open("a", encoding="utf-8")

    def event(**fields: Any) -> None:
        record = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **fields}
        log_file.write(json.dumps(record) + "\n")
        log_file.flush()
        if emit is not None:
            emit(record)

    def save_state() -> None:
        tmp = folder / f".{STATE}.tmp"
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, state_path)

    todo = []
    for sid in wanted:
        page = folder / f"{safe_id(sid)}.html"
        if sid in hashes and state.get(sid) == hashes[sid] and page.exists():
            result.skipped.append(sid)
            event(event="profile", settlement_id=sid, status="skipped", reason="up to date")
        else:
            todo.append(sid)
    event(event="batch_start", to_render=len(todo), up_to_date=len(result.skipped),
          workers=workers)
    try:
        if todo:
            with ProcessPoolExecutor(max_workers=max(1, workers), initializer=_init,
                                     initargs=(str(out),)) as pool:
                futures = {pool.submit(_render, sid): sid for sid in todo}
                for fut in as_completed(futures):
                    sid = futures[fut]
                    try:
                        name, seconds = fut.result()
                    except Exception as exc:  # one profile failing must not stop the batch
                        result.failed[sid] = f"{exc.__class__.__name__}: {exc}"
                        state.pop(sid, None)
                        event(event="profile", settlement_id=sid, status="failed",
                              error=result.failed[sid])
                        continue
                    state[sid] = hashes[sid]
                    save_state()
                    result.written.append(sid)
                    event(event="profile", settlement_id=sid, status="written", file=name,
                          seconds=round(seconds, 3))
        event(event="batch_end", written=len(result.written), skipped=len(result.skipped),
              failed=len(result.failed))
    finally:
        log_file.close()
    return result
