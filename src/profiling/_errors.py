"""The error family of the pipeline.

Every error the pipeline raises on user input derives from :class:`ProfilingError`, and also from
the builtin it resembles, so that callers can catch either. Messages name the file, the row, the
field and the value, and say what was expected. Personal values never appear in a message.
"""

from __future__ import annotations

from pathlib import Path


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
