"""Scale out: the heavy stages of :func:`profiling.pipeline.run` on a Dask cluster.

Where one machine is not enough, the same pipeline runs its heavy stages on Dask workers: the
hazard values under the households and the per-household indicators per spatial partition of
the households, the settlements' coverage-weighted hazard statistics per spatial chunk of the
settlements, and the per-settlement counts behind the settlement table. Every task calls the
functions the in-process path calls (:func:`profiling.join.place`,
:func:`profiling.hazard.exposure`, :func:`profiling.indicators.compute_indicators`,
:func:`profiling.indicators.partial_counts`); this module holds no rule of its own, only the
cutting, the sending and the adding up.

Results do not depend on the partitioning: the per-settlement sums are counts of households and
sums of integer household sizes, added exactly, and shares, Wilson intervals and suppression are
computed once on the sums (:func:`profiling.indicators.finish`). Hazard rasters are opened by the
workers themselves from their paths (the same path must be readable on every worker: a shared or
replicated file system), and each task reads only the raster tiles its points and polygons touch.

What reaches a worker: the households' answers needed by the indicators, their coordinates and
settlement (:data:`WORKER_COLUMNS`), the settlement polygons and the hazard configuration.
Personal fields (``IngestResult.personal``), submission keys, enumerators and timestamps stay on
the client, as do store reads and output writes. Every frame sent goes through :func:`_scatter`,
which refuses a frame with any other column.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from profiling._errors import ConfigError
from profiling.form import PERSONAL_FIELDS, REFERENCE_FIELDS
from profiling.indicators import Thresholds, compute_indicators, partial_counts

if TYPE_CHECKING:
    import geopandas as gpd
    from distributed import Client

    from profiling.config import Config, ExecutionSettings, HazardSource
    from profiling.join import Settlements

log = logging.getLogger(__name__)

#: Short names of the personal questions: never sent to a worker.
PERSONAL = frozenset(f.rsplit("/", 1)[-1] for f in PERSONAL_FIELDS)
#: Interview metadata that no computation on a worker needs.
_METADATA = frozenset({"start", "end", "enumerator", "consent", "gps", "settlement_reported"})
#: The only household columns a worker receives: the answers the indicators read, the point and
#: the settlement it was placed in.
WORKER_COLUMNS = tuple(
    [n for n in (f.rsplit("/", 1)[-1] for f in REFERENCE_FIELDS)
     if n not in PERSONAL and n not in _METADATA]
    + ["longitude", "latitude", "settlement_id"])
#: Settlement columns a worker receives.
SETTLEMENT_COLUMNS = ("settlement_id", "geometry")
#: Hilbert curve precision (2**16 cells a side over the households' extent).
HILBERT_LEVEL = 16


@dataclass(frozen=True)
class Execution:
    """Where the heavy stages run: ``in_process``, ``local`` (``workers`` processes on this
    machine) or ``scheduler`` (the address of a running Dask scheduler)."""

    mode: str = "in_process"
    workers: int = 2
    scheduler: str | None = None
    partition_size: int = 250_000

    @classmethod
    def from_settings(cls, s: ExecutionSettings) -> Execution:
        """The execution of a configuration's ``execution`` section."""
        return cls(s.mode, s.workers, s.scheduler, s.partition_size)


@contextmanager
def cluster(execution: Execution) -> Iterator[Client | None]:
    """A Dask client for the execution (None in process); a local cluster is closed on exit,
    a remote scheduler is left running."""
    if execution.mode == "in_process":
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - a declared dependency
        raise ConfigError("execution on Dask needs the 'distributed' package: "
                          "pip install 'dask[distributed]' dask-geopandas") from None
    if execution.mode == "local":
        with LocalCluster(n_workers=execution.workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as lc, Client(lc) as client:
            log.info("local Dask cluster: %d workers", execution.workers)
            yield client
        return
    if execution.mode != "scheduler" or not execution.scheduler:
        raise ConfigError(f"execution mode {execution.mode!r}: expected in_process, local or "
                          "scheduler (with the scheduler's address)")
    try:
        client = Client(execution.scheduler, timeout=30)
    except OSError as exc:
        raise ConfigError(f"cannot reach the Dask scheduler at {execution.scheduler} "
                          f"({exc}); start one with `dask scheduler` or check the address"
                          ) from None
    with client:
        log.info("Dask scheduler %s: %d workers", execution.scheduler,
                 len(client.scheduler_info().get("workers", {})))
        yield client


# --------------------------------------------------------------------------------------------
# What is sent
# --------------------------------------------------------------------------------------------

def worker_frame(households: pd.DataFrame) -> pd.DataFrame:
    """The households as workers see them: :data:`WORKER_COLUMNS` only (those present)."""
    return households[[c for c in WORKER_COLUMNS if c in households.columns]]


def _check_sendable(frame: pd.DataFrame) -> None:
    allowed = set(WORKER_COLUMNS) | set(SETTLEMENT_COLUMNS)
    extra = sorted(str(c) for c in frame.columns if c not in allowed or c in PERSONAL)
    if extra:
        raise ValueError(f"refusing to send the columns {', '.join(extra)} to Dask workers: "
                         "only answers, points and settlements leave the client")


def _scatter(client: Client, frames: list[Any], broadcast: bool = False) -> list[Any]:
    """Send frames to the workers (the one way data leaves the client), checked first."""
    for f in frames:
        if isinstance(f, pd.DataFrame):
            _check_sendable(f)
    return list(client.scatter(frames, broadcast=broadcast))


# --------------------------------------------------------------------------------------------
# Spatial partitions
# --------------------------------------------------------------------------------------------

def hilbert_keys(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Distance along a Hilbert curve over the points' extent (dask-geopandas' encoding); -1
    for points that are not finite (households placed by a column)."""
    import dask_geopandas
    import geopandas as gpd

    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    keys = np.full(len(x), -1, np.int64)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return keys
    pts = gpd.GeoSeries(gpd.points_from_xy(x[ok], y[ok]))
    d = dask_geopandas.from_geopandas(pts, npartitions=1).hilbert_distance(
        total_bounds=pts.total_bounds, level=HILBERT_LEVEL).compute(scheduler="sync")
    keys[ok] = np.asarray(d, np.int64)
    return keys


def partitions(frame: pd.DataFrame, size: int, x: np.ndarray, y: np.ndarray
               ) -> list[pd.DataFrame]:
    """Rows in Hilbert order of ``(x, y)`` cut into about ``len / size`` parts of equal size
    (each keeps its rows' index); rows without a point come last."""
    n = len(frame)
    if n == 0:
        return []
    keys = hilbert_keys(x, y)
    keys = np.where(keys < 0, np.iinfo(np.int64).max, keys)
    order = np.argsort(keys, kind="stable")
    k = max(1, math.ceil(n / max(1, size)))
    return [frame.iloc[chunk] for chunk in np.array_split(order, k) if len(chunk)]


def settlement_chunks(settlements: gpd.GeoDataFrame, size: int) -> list[gpd.GeoDataFrame]:
    """Settlement polygons (id and geometry) cut into spatially compact chunks of about
    ``size``, so that each worker reads a compact part of a raster."""
    frame = settlements[list(SETTLEMENT_COLUMNS)]
    c = frame.geometry.representative_point()
    return partitions(frame, size, c.x.to_numpy(), c.y.to_numpy())


# --------------------------------------------------------------------------------------------
# Tasks (run on the workers; each calls the in-process functions)
# --------------------------------------------------------------------------------------------

def household_task(part: pd.DataFrame, hazards: Sequence[HazardSource], t: Thresholds,
                   keep: bool = True
                   ) -> tuple[pd.DataFrame | None, pd.DataFrame | None, pd.DataFrame]:
    """One partition: the hazard values under its points, its indicators and its partial
    settlement counts. With ``keep=False`` only the counts come back (a few rows a settlement).
    """
    values = None
    if hazards:
        from profiling import hazard

        _, points = hazard.exposure(None, part["longitude"].to_numpy(dtype=float),
                                    part["latitude"].to_numpy(dtype=float), hazards, threads=1)
        values = hazard.value_columns(points, hazards)
        values.index = part.index
        part = pd.concat([part, values], axis=1)
    ind = compute_indicators(part, t)
    inside = part["settlement_id"].notna().to_numpy()
    counts = partial_counts(part.loc[inside], ind.loc[inside], "settlement_id")
    return (values, ind, counts) if keep else (None, None, counts)


def zone_task(chunk: gpd.GeoDataFrame, hazards: Sequence[HazardSource]) -> pd.DataFrame:
    """One chunk of settlements: their coverage-weighted hazard statistics."""
    from profiling import hazard

    zones, _ = hazard.exposure(chunk, None, None, hazards, threads=1)
    return zones


def place_task(part: pd.DataFrame, settlements: gpd.GeoDataFrame) -> pd.DataFrame:
    """Households placed in the settlements by :func:`profiling.join.place` (``settlement_id``:
    the settlement holding the point, NA outside every one); for inputs not placed at ingest."""
    from profiling.join import place

    s = _prepared(settlements)
    p = place(part["longitude"].to_numpy(dtype=float), part["latitude"].to_numpy(dtype=float), s)
    ids = s.frame["settlement_id"].to_numpy(dtype=object)
    sid = np.where(p.inside >= 0, ids[np.maximum(p.inside, 0)], None)
    return part.assign(settlement_id=pd.array(sid, dtype="string"))


_PREPARED: dict[int, tuple[object, Settlements]] = {}


def _prepared(settlements: gpd.GeoDataFrame) -> Settlements:
    """The settlements indexed once per worker process (the same object arrives per task)."""
    from profiling.join import prepare

    hit = _PREPARED.get(id(settlements))
    if hit is not None and hit[0] is settlements:
        return hit[1]
    _PREPARED.clear()
    s = prepare(settlements)
    _PREPARED[id(settlements)] = (settlements, s)
    return s


# --------------------------------------------------------------------------------------------
# The pipeline's heavy stages
# --------------------------------------------------------------------------------------------

@dataclass
class HeavyResult:
    """What :func:`heavy_stages` gives back to the pipeline: households with the hazard values
    at their points, the settlements' hazard statistics (None without hazards), the household
    indicators and the summed settlement counts (:func:`profiling.indicators.partial_counts`)."""

    households: pd.DataFrame
    zones: pd.DataFrame | None
    indicators: pd.DataFrame
    counts: pd.DataFrame


def add_counts(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Partial settlement counts added up: exact (counts and sums of integers)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        raise ValueError("no partial counts to add")
    return pd.concat(parts).groupby(level=0, sort=True).sum()


def heavy_stages(cfg: Config, settlements: Settlements, households: pd.DataFrame,
                 t: Thresholds) -> HeavyResult:
    """Hazard exposure, household indicators and settlement counts on Dask, as configured in
    ``cfg.execution``; equal to the in-process path (counts exactly, shares to rounding)."""
    ex = Execution.from_settings(cfg.execution)
    hazards = list(cfg.hazards)
    with cluster(ex) as client:
        if client is None:
            raise ConfigError("heavy_stages runs on Dask; execution mode is in_process")
        send = worker_frame(households)
        parts = partitions(send, ex.partition_size, send["longitude"].to_numpy(dtype=float),
                           send["latitude"].to_numpy(dtype=float))
        log.info("%d households in %d spatial partitions", len(send), len(parts))
        futures = client.map(household_task, _scatter(client, parts), hazards=hazards, t=t,
                             pure=False)
        zone_futures = []
        if hazards and settlements.has_geometry:
            chunks = settlement_chunks(settlements.frame, max(1, -(-len(settlements.frame)
                                                                  // (4 * _n_workers(client)))))
            zone_futures = client.map(zone_task, _scatter(client, chunks), hazards=hazards,
                                      pure=False)
        results = client.gather(futures)
        zone_parts = client.gather(zone_futures)
    if results:
        ind = pd.concat([r[1] for r in results]).loc[households.index]
        counts = add_counts([r[2] for r in results])
    else:
        ind = compute_indicators(households, t)
        counts = partial_counts(households, ind, "settlement_id")
    out = households
    if hazards and results:
        values = pd.concat([r[0] for r in results]).loc[households.index]
        out = pd.concat([households, values], axis=1)
    zones = None
    if hazards:
        ids = pd.Index(settlements.frame["settlement_id"].to_numpy(), name="settlement_id")
        zones = (pd.concat(zone_parts).reindex(ids) if zone_parts
                 else pd.DataFrame(index=ids))
    return HeavyResult(out, zones, ind, counts)


def _n_workers(client: Client) -> int:
    return max(1, len(client.scheduler_info().get("workers", {})))
