"""The heavy household stage, defined once: hazard values under the points, the household
indicators, and what leaves the stage, its counts.

:func:`household_stage` runs in this process for the whole city (``profiling run``) and on a
Dask worker for one spatial partition (:func:`profiling.distributed.household_task`): the same
code either way, so the two paths cannot drift apart. Only counts leave it: per settlement
(:func:`profiling.indicators.partial_counts`) and per H3 cell
(:func:`profiling.aggregates.hexagon_counts`), which add up exactly across partitions.

The household columns it reads are declared by the indicators (:func:`fields_read`): a worker
receives those, the point and the settlement id, and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from profiling._errors import ConfigError
from profiling._stages import Stages
from profiling.indicators import Thresholds, compute_indicators, fields_read, partial_counts

if TYPE_CHECKING:
    import geopandas as gpd

    from profiling.config import HazardSource

#: The household columns the stage reads: the indicators' declared fields, the point and the
#: settlement the household was placed in.
STAGE_COLUMNS = (*fields_read(), "longitude", "latitude", "settlement_id")


@dataclass
class HeavyResult:
    """What the heavy stage gives back, in process or summed over Dask partitions: the
    settlements' area-based hazard statistics (None without hazards or polygons), their
    :func:`profiling.indicators.partial_counts` (households inside a settlement) and the
    :func:`profiling.aggregates.hexagon_counts` (every household with a point)."""

    zones: pd.DataFrame | None
    counts: pd.DataFrame
    hexagons: pd.DataFrame


def with_hazard_values(households: pd.DataFrame, hazards: Sequence[HazardSource],
                       polygons: gpd.GeoDataFrame | None = None, threads: int | None = None,
                       on_tiles: Callable[[int], None] | None = None,
                       on_tile: Callable[[int], None] | None = None
                       ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Households with each hazard's value at their point (a column named after the hazard),
    and, with ``polygons``, the settlements' area-based exposure, in one pass over the
    raster tiles (:func:`profiling.hazard.exposure`)."""
    if not hazards:
        return households, None
    from profiling import hazard

    clash = sorted(h.name for h in hazards if h.name in households.columns)
    if clash:
        raise ConfigError(f"hazard name(s) {', '.join(clash)} are also columns of the "
                          "households (survey fields): name each hazard otherwise")

    zones, points = hazard.exposure(polygons, households["longitude"].to_numpy(dtype=float),
                                    households["latitude"].to_numpy(dtype=float), hazards,
                                    threads=threads, on_tiles=on_tiles, on_tile=on_tile)
    values = hazard.value_columns(points, hazards)
    values.index = households.index
    return pd.concat([households, values], axis=1), (zones if polygons is not None else None)


def household_stage(households: pd.DataFrame, hazards: Sequence[HazardSource], t: Thresholds,
                    h3_resolution: int = 9, *, polygons: gpd.GeoDataFrame | None = None,
                    threads: int | None = None, stages: Stages | None = None,
                    then: Callable[[], object] | None = None) -> HeavyResult:
    """Hazard exposure, the household indicators and their settlement and hexagon counts, each
    a timed stage of ``stages``. Households outside every settlement (no settlement id) are
    counted in hexagons but in no settlement. ``then`` is called once the counts are done
    (a caller starts other work there, for the core the hexagons leave idle)."""
    from profiling.aggregates import hexagon_counts

    stages = stages or Stages()
    n = len(households)
    with stages.stage("hazard exposure", 0, "tiles") as st:
        households, zones = with_hazard_values(households, hazards, polygons, threads,
                                               st.grow, st.advance)
    with stages.stage("indicators", n, "households"):
        ind = compute_indicators(households, t)
    with stages.stage("counts", n, "households"):
        # households outside every settlement (no settlement id) belong to no group
        counts = partial_counts(households, ind, "settlement_id")
    if then is not None:
        then()
    with stages.stage("hexagons", n, "households"):
        cells = hexagon_counts(households["latitude"], households["longitude"],
                               ind["slum_household"], h3_resolution)
    return HeavyResult(zones, counts, cells)


def stage_frame(households: pd.DataFrame) -> pd.DataFrame:
    """The households as the stage sees them: :data:`STAGE_COLUMNS` only (those present)."""
    return households[[c for c in STAGE_COLUMNS if c in households.columns]]


