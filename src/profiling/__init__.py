"""profiling: from a slum enumeration to settlement profiles and upgrading decisions.

The pipeline, in the order data flows through it:

- :mod:`profiling.form`: the reference questionnaire and XLSForm reading.
- :mod:`profiling.ingest`: reading exports, de-duplication, consent, validation.
- :mod:`profiling.join`: households to settlements.
- :mod:`profiling.supervision`: the field-supervision report.
- :mod:`profiling.pipeline`: one function that sequences the stages and writes the outputs.
- :mod:`profiling.cli`: the ``profiling`` command, a thin layer over the pipeline.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from profiling._errors import (
    BoundaryError,
    ConfigError,
    DisclosureError,
    FormError,
    HazardError,
    InputFileError,
    OutputError,
    PrioritisationError,
    ProfilingError,
    StoreError,
)

try:
    __version__ = version("profiling")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "BoundaryError",
    "ConfigError",
    "DisclosureError",
    "FormError",
    "HazardError",
    "InputFileError",
    "OutputError",
    "PrioritisationError",
    "ProfilingError",
    "StoreError",
    "__version__",
]
