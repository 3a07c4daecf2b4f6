"""The stages of a run as a person and a manifest see them: seconds, peak memory, progress.

:class:`Stages` times each stage of :func:`profiling.pipeline.run` and records its peak resident
memory. On Linux the kernel's high-water mark (``VmHWM``) is reset at the start of each stage
(``/proc/self/clear_refs``), so each stage's figure is its own peak, not the run's so far;
elsewhere the process's peak so far is recorded. A :class:`Progress` (the CLI's rich display, or
nothing) is told when a stage starts, how much work it has and how far it got.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


class Progress(Protocol):
    """What a stage reports: a start with its amount of work, advances, an end."""

    def start(self, name: str, total: float | None, unit: str) -> None: ...

    def advance(self, amount: float) -> None: ...

    def grow(self, amount: float) -> None: ...

    def end(self) -> None: ...


class NoProgress:
    """Progress that shows nothing (library calls, ``-q``)."""

    def start(self, name: str, total: float | None, unit: str) -> None:
        pass

    def advance(self, amount: float) -> None:
        pass

    def grow(self, amount: float) -> None:
        pass

    def end(self) -> None:
        pass


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _peak_mib() -> float:
    """The peak resident set size since the last reset (MiB)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class Stage:
    """One stage: its name, seconds, peak memory and the work it did."""

    name: str
    seconds: float = 0.0
    peak_rss_mib: float = 0.0
    work: float | None = None
    unit: str = ""
    _progress: Progress = field(default_factory=NoProgress, repr=False)

    def advance(self, amount: float = 1) -> None:
        """Report ``amount`` more of the stage's work done."""
        self._progress.advance(amount)

    def grow(self, amount: float) -> None:
        """Report ``amount`` more work found (a stage that learns its size as it goes)."""
        self.work = (self.work or 0) + amount
        self._progress.grow(amount)

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"name": self.name, "seconds": round(self.seconds, 3),
                                "peak_rss_mib": round(self.peak_rss_mib, 1)}
        if self.work is not None:
            d["work"] = self.work
            d["unit"] = self.unit
        return d


class Stages:
    """The stages of one run, in order (see the module's docstring)."""

    def __init__(self, progress: Progress | None = None) -> None:
        self.progress: Progress = progress or NoProgress()
        self.done: list[Stage] = []

    @contextmanager
    def stage(self, name: str, total: float | None = None, unit: str = "") -> Iterator[Stage]:
        """Time the block as stage ``name`` with ``total`` units of work (``unit``: rows,
        tiles, pages, files; None when it cannot be counted ahead)."""
        reset = _reset_peak()
        s = Stage(name, work=total, unit=unit, _progress=self.progress)
        self.progress.start(name, total, unit)
        t0 = time.perf_counter()
        try:
            yield s
        finally:
            s.seconds = time.perf_counter() - t0
            s.peak_rss_mib = _peak_mib()
            self.progress.end()
            self.done.append(s)
            log.debug("stage %s: %.2f s, peak %.0f MiB%s", name, s.seconds, s.peak_rss_mib,
                      "" if reset else " (process peak so far)")

    def as_manifest(self) -> list[dict[str, object]]:
        """The stages as ``run_manifest.json`` lists them."""
        return [s.as_dict() for s in self.done]
