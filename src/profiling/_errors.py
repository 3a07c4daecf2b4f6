"""The error family of the pipeline.

Every error the pipeline raises on user input derives from :class:`ProfilingError`, and also from
the builtin it resembles, so that callers can catch either. Messages name the file, the row, the
field and the value, and say what was expected. Personal values never appear in a message.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


class ProfilingError(Exception):
    """Root of every error the pipeline raises on bad input or configuration."""


class ConfigError(ProfilingError, ValueError):
    """A configuration file or option is wrong (unknown key, bad value, missing input)."""


class InputFileError(ProfilingError, ValueError):
    """An input file cannot be read as what it claims to be (empty, truncated, bad encoding)."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # raised on a Dask worker, the error is pickled to the client: rebuild it from its parts
        return (self.__class__, (self.path, self.problem))


class FormError(InputFileError):
    """The XLSForm is malformed or an export does not belong to it."""


class BoundaryError(InputFileError):
    """Settlement boundaries are unusable (missing columns, duplicate ids, CRS problems)."""


class HazardError(InputFileError):
    """A hazard raster is unusable (no CRS, unreadable, bands that do not match the configuration,
    rotated grid the kernels cannot handle, ...)."""


class PrioritisationError(ConfigError):
    """The CUF ranking or portfolio cannot be made from this configuration and table (no
    criterion readable, a negative budget, constraints that cannot all be met)."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"CUF prioritisation: {problem}")


class StoreError(ProfilingError, RuntimeError):
    """The store cannot be opened or written (wrong file, wrong secret, unreachable server)."""


class OutputError(ProfilingError, OSError):
    """The output location cannot be written: not a folder, not writable, full."""


class DisclosureError(ProfilingError):
    """The audit found personal or re-identifiable data in a run's outputs (``findings``: the
    audit's findings, each naming a file and where in it, never the value)."""

    def __init__(self, out: str | Path, findings: Sequence[Any]) -> None:
        self.findings = list(findings)
        shown = "\n".join(str(f) for f in self.findings[:10])
        more = (f"\n... and {len(self.findings) - 10} more" if len(self.findings) > 10 else "")
        super().__init__(f"{out}: the disclosure audit found {len(self.findings)} problem(s); "
                         f"the run is not marked complete and nothing should be published:\n"
                         f"{shown}{more}")
