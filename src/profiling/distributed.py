"""Scale out: the heavy stages of :func:`profiling.pipeline.run` on a Dask cluster.

Where one machine is not enough, the same pipeline runs its heavy stages on Dask workers: the
placement of the households' points in the settlements at ingest (:func:`placer`), then per
spatial partition of the households the hazard values under their points, their indicators and
the per-settlement and per-hexagon counts (:func:`heavy_stages`), and per spatial chunk of the
settlements their coverage-weighted hazard statistics. Every task calls the functions the
in-process path calls (:func:`profiling.join.place`, :func:`profiling.hazard.exposure`,
:func:`profiling.indicators.compute_indicators`, :func:`profiling.indicators.partial_counts`,
:func:`profiling.aggregates.hexagon_counts`); this module holds no rule of its own, only the
cutting, the sending and the adding up. Only counts come back.

Results do not depend on the partitioning: the per-settlement sums are counts of households and
sums of integer household sizes, added exactly, and shares, Wilson intervals and suppression are
computed once on the sums (:func:`profiling.indicators.finish`,
:func:`profiling.indicators.city_summary`, :func:`profiling.aggregates.hexagon_table`). Hazard
rasters are opened by the workers themselves from their paths (the same path must be readable on
every worker: a shared or replicated file system), and each task reads only the raster tiles its
points and polygons touch.

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

from profiling._errors import ConfigError, InputFileError, ProfilingError
from profiling.form import PERSONAL_FIELDS
from profiling.households import STAGE_COLUMNS, HeavyResult, household_stage, stage_frame
from profiling.indicators import Thresholds, compute_indicators, partial_counts

if TYPE_CHECKING:
    import geopandas as gpd
    from distributed import Client

    from profiling.config import Config, ExecutionSettings, HazardSource
    from profiling.ingest import Placer
    from profiling.join import Settlements

log = logging.getLogger(__name__)

#: Short names of the personal questions: never sent to a worker.
PERSONAL = frozenset(f.rsplit("/", 1)[-1] for f in PERSONAL_FIELDS)
#: The only household columns a worker receives: the answers the indicators declare they read,
#: the point and the settlement it was placed in (:data:`profiling.households.STAGE_COLUMNS`).
WORKER_COLUMNS = STAGE_COLUMNS
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
    connect_timeout: float = 30.0

    @classmethod
    def from_settings(cls, s: ExecutionSettings) -> Execution:
        """The execution of a configuration's ``execution`` section."""
        return cls(s.mode, s.workers, s.scheduler, s.partition_size, s.connect_timeout)


@contextmanager
def cluster(execution: Execution) -> Iterator[Client | None]:
    """A Dask client for the execution (None in process); a local cluster is closed on exit,
    a remote scheduler is left running. A worker that dies under a task (most often out of
    memory) ends the run with an error that says what to change."""
    if execution.mode == "in_process":
        yield None
        return
    try:
        with _connect(execution) as client:
            yield client
    except Exception as exc:
        from distributed import KilledWorker

        if isinstance(exc, KilledWorker):
            raise ProfilingError(
                f"a Dask worker died running {exc.task!r} (most often it ran out of memory): "
                f"give each worker more memory, or lower execution.partition_size (now "
                f"{execution.partition_size:,} households)") from None
        raise


@contextmanager
def _connect(execution: Execution) -> Iterator[Client]:
    """The client of a local cluster started here, or of a running scheduler."""
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
        client = Client(execution.scheduler, timeout=execution.connect_timeout)
    except (OSError, ValueError) as exc:  # unreachable; or not an address at all
        raise ConfigError(f"cannot reach the Dask scheduler at {execution.scheduler} within "
                          f"{execution.connect_timeout:g} s ({exc}); start one with `dask "
                          "scheduler` or check the address") from None
    with client:
        _check_workers(client, execution)
        log.info("Dask scheduler %s: %d workers", execution.scheduler,
                 len(client.scheduler_info().get("workers", {})))
        yield client


def _check_workers(client: Client, execution: Execution) -> None:
    """A running scheduler has workers, and they run this version of profiling: refused with a
    clear error otherwise, instead of tasks waiting for ever or failing on the workers."""
    import profiling

    try:
        client.wait_for_workers(1, timeout=execution.connect_timeout)
    except (TimeoutError, OSError):
        raise ConfigError(f"the Dask scheduler at {execution.scheduler} has no workers after "
                          f"{execution.connect_timeout:g} s; start some with `dask worker "
                          f"{execution.scheduler}`") from None

    def installed() -> str | None:  # defined here, so that it travels by value
        try:
            import profiling as p
        except ImportError:
            return None
        return str(p.__version__)

    versions = client.run(installed)
    ours = profiling.__version__
    wrong = {w: v for w, v in versions.items() if v != ours}
    if wrong:
        found = ", ".join(f"{w} ({'not installed' if v is None else v})"
                          for w, v in sorted(wrong.items()))
        raise ConfigError(f"Dask workers without profiling {ours}: {found}; install the same "
                          "version in the workers' environment")


# --------------------------------------------------------------------------------------------
# What is sent
# --------------------------------------------------------------------------------------------

def worker_frame(households: pd.DataFrame) -> pd.DataFrame:
    """The households as workers see them: :data:`WORKER_COLUMNS` only (those present)."""
    return stage_frame(households)


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
                   h3_resolution: int = 9) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One partition through :func:`profiling.households.household_stage` (the stage a run in
    process calls for the whole city); only its partial settlement and hexagon counts return
    to the client (a few rows a settlement and a cell; no household leaves the worker)."""
    r = household_stage(part, hazards, t, h3_resolution, threads=1)
    return r.counts, r.hexagons


def zone_task(chunk: gpd.GeoDataFrame, hazards: Sequence[HazardSource]) -> pd.DataFrame:
    """One chunk of settlements: their coverage-weighted hazard statistics."""
    from profiling import hazard

    zones, _ = hazard.exposure(chunk, None, None, hazards, threads=1)
    return zones


def place_task(part: pd.DataFrame, settlements: gpd.GeoDataFrame
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points placed in the settlements by :func:`profiling.join.place`: the partition's row
    positions, then ``inside``, ``nearest`` and ``distance`` (indices into the settlements in
    :func:`profiling.join.prepare`'s order, which the client shares)."""
    from profiling.join import place

    p = place(part["longitude"].to_numpy(dtype=float), part["latitude"].to_numpy(dtype=float),
              _prepared(settlements))
    return part.index.to_numpy(), p.inside, p.nearest, p.distance


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

def placer(client: Client, settlements: Settlements, size: int) -> Placer:
    """A :data:`profiling.ingest.Placer` that places points on the workers: Hilbert-ordered
    partitions of about ``size`` points, each joined against the settlements (sent once to
    every worker) by :func:`place_task`; only the points' coordinates leave the client."""
    from profiling.join import Placement

    remote: list[Any] = []

    def run(lon: np.ndarray, lat: np.ndarray) -> Placement:
        n = len(lon)
        inside = np.full(n, -1, np.int64)
        nearest = np.full(n, -1, np.int64)
        distance = np.full(n, np.nan)
        ok = np.isfinite(lon) & np.isfinite(lat)
        if not ok.any():
            return Placement(inside, nearest, distance)
        if not remote:  # the settlements go to the workers once, on the first call
            remote.extend(_scatter(client, [settlements.frame[list(SETTLEMENT_COLUMNS)]],
                                   broadcast=True))
        points = pd.DataFrame({"longitude": lon[ok], "latitude": lat[ok]},
                              index=np.flatnonzero(ok))
        parts = partitions(points, size, points["longitude"].to_numpy(),
                           points["latitude"].to_numpy())
        for rows, i, j, d in client.gather(client.map(
                place_task, _scatter(client, parts), settlements=remote[0], pure=False)):
            inside[rows], nearest[rows], distance[rows] = i, j, d
        return Placement(inside, nearest, distance)

    return run


def add_counts(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Partial counts (of at least one part) added up: exact (counts and sums of integers)."""
    if not parts:
        raise ValueError("no partial counts to add")
    return pd.concat(list(parts)).groupby(level=0, sort=True).sum()


def heavy_stages(client: Client, cfg: Config, settlements: Settlements,
                 households: pd.DataFrame, t: Thresholds) -> HeavyResult:
    """Hazard exposure, household indicators, settlement and hexagon counts on the Dask
    ``client``'s workers; equal to the in-process path (counts exactly, shares to rounding).
    Only :data:`WORKER_COLUMNS` of the households are sent; only counts come back."""
    ex = Execution.from_settings(cfg.execution)
    hazards = list(cfg.hazards)
    send = worker_frame(households)
    parts = partitions(send, ex.partition_size, send["longitude"].to_numpy(dtype=float),
                       send["latitude"].to_numpy(dtype=float))
    log.info("%d households in %d spatial partitions", len(send), len(parts))
    futures = client.map(household_task, _scatter(client, parts), hazards=hazards, t=t,
                         h3_resolution=cfg.map.h3_resolution, pure=False)
    zone_futures = []
    if hazards and settlements.has_geometry:
        chunks = settlement_chunks(settlements.frame, max(1, -(-len(settlements.frame)
                                                              // (4 * _n_workers(client)))))
        zone_futures = client.map(zone_task, _scatter(client, chunks), hazards=hazards,
                                  pure=False)
    try:
        results = client.gather(futures)
        zone_parts = client.gather(zone_futures)
    except InputFileError as exc:  # the client read the same file: the worker cannot
        raise ConfigError(f"a Dask worker cannot use {exc.path}: {exc.problem}; every worker "
                          "must read the hazard rasters at the same path as this machine (a "
                          "shared or replicated file system)") from None
    if results:
        counts = add_counts([r[0] for r in results])
        cells = add_counts([r[1] for r in results])
    else:
        counts, cells = empty_counts(t), empty_hexagons()
    zones = None
    if hazards:
        ids = pd.Index(settlements.frame["settlement_id"].to_numpy(), name="settlement_id")
        from profiling.hazard import concat_zones

        zones = (concat_zones(zone_parts).reindex(ids) if zone_parts
                 else pd.DataFrame(index=ids))
    return HeavyResult(zones, counts, cells)


def empty_counts(t: Thresholds) -> pd.DataFrame:
    """Settlement partial counts of no household (every column, no row)."""
    none = pd.DataFrame({"settlement_id": pd.Series([], dtype="string"),
                         "hh_size": pd.Series([], dtype=float)})
    return partial_counts(none, compute_indicators(none, t), "settlement_id")


def empty_hexagons() -> pd.DataFrame:
    """Hexagon partial counts of no household."""
    from profiling.aggregates import hexagon_counts

    e = pd.Series([], dtype=float)
    return hexagon_counts(e, e, pd.Series([], dtype="boolean"))


def _n_workers(client: Client) -> int:
    return max(1, len(client.scheduler_info().get("workers", {})))
