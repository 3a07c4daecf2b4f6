"""The pipeline on Dask gives the in-process results (issue 9).

The sample city runs three ways: in process, on a ``distributed.LocalCluster`` of two worker
processes (``execution.mode: local``, as ``profiling run --workers 2``), and on a scheduler and
two workers started as separate processes on loopback (``--scheduler tcp://127.0.0.1:PORT``).
Counts must be equal exactly and shares to 1e-12: the only differences allowed are the last bits
of the coverage-weighted raster sums, whose order depends on how many threads read the tiles.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from profiling import distributed as D
from profiling._errors import ConfigError
from profiling.aggregates import hexagon_counts
from profiling.cli import app
from profiling.config import load_config, parse_config
from profiling.indicators import compute_indicators, partial_counts
from profiling.join import place
from profiling.pipeline import (
    RunResult,
    hazard_exposure,
    ingest_config,
    load_settlements,
    run,
    thresholds,
)

from conftest import REPO

pytestmark = pytest.mark.slow
DEMO = REPO / "configs" / "demo.yaml"
TABLES = ("settlement_indicators.csv", "city_summary.csv", "hexagons.csv",
          "enumeration_dates.csv")


def _run(tmp: Path, **execution: object) -> tuple[RunResult, Path]:
    cfg = load_config(DEMO)
    for k, v in execution.items():
        setattr(cfg.execution, k, v)
    return run(cfg, tmp), tmp


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    return _run(tmp_path_factory.mktemp("in_process"))


@pytest.fixture(scope="module")
def scattered() -> list[list[str]]:
    """Columns of every frame the local run sends to its workers."""
    return []


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, scattered: list[list[str]]
          ) -> tuple[RunResult, Path]:
    real = D._scatter

    def spy(client, frames, broadcast=False):  # type: ignore[no-untyped-def]
        scattered.extend([list(f.columns) for f in frames])
        return real(client, frames, broadcast)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(D, "_scatter", spy)
        # a small partition size, so the run really is cut in several partitions
        return _run(tmp_path_factory.mktemp("local"), mode="local", workers=2,
                    partition_size=500)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``dask scheduler`` and a ``dask worker`` (2 processes) as separate processes."""
    folder = tmp_path_factory.mktemp("dask")
    file = folder / "scheduler.json"
    procs = [subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not file.exists():
            if time.monotonic() > deadline or procs[0].poll() is not None:
                pytest.fail("the dask scheduler did not start within 60 s")
            time.sleep(0.2)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(file),
             "--nworkers", "2", "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1",
             "--local-directory", str(folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(scheduler_file=str(file), timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
            address = client.scheduler.address
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory, scheduler: str) -> tuple[RunResult, Path]:
    return _run(tmp_path_factory.mktemp("remote"), mode="scheduler", scheduler=scheduler)


def assert_same_outputs(a: Path, b: Path) -> None:
    for name in TABLES:
        if not (a / name).exists():
            assert not (b / name).exists()
            continue
        x, y = pd.read_csv(a / name), pd.read_csv(b / name)
        assert list(x.columns) == list(y.columns), name
        assert len(x) == len(y), name
        for c in x.columns:
            u, v = x[c], y[c]
            if c == "households" or c == "population" or c.endswith("_n") or u.dtype.kind in "iO":
                pd.testing.assert_series_equal(u, v, check_exact=True, obj=f"{name} {c}")
            else:
                np.testing.assert_allclose(u.to_numpy(float), v.to_numpy(float), rtol=0,
                                           atol=1e-12, equal_nan=True, err_msg=f"{name} {c}")


def test_local_cluster_gives_the_in_process_outputs(in_process, local):
    assert_same_outputs(in_process[1], local[1])
    assert local[0].counts == in_process[0].counts


def test_scheduler_process_gives_the_in_process_outputs(in_process, remote):
    assert_same_outputs(in_process[1], remote[1])


def test_household_counts_are_exact(in_process, local, remote):
    cols = [c for c in in_process[0].settlements.columns
            if c in ("households", "population") or c.endswith("_n")]
    for other in (local, remote):
        pd.testing.assert_frame_equal(in_process[0].settlements[cols], other[0].settlements[cols],
                                      check_exact=True)


def test_no_personal_field_reaches_a_worker(in_process, local, scattered):
    personal = set(in_process[0].ingest.personal.columns)
    assert len(scattered) > 2  # households in several partitions, and settlement chunks
    assert ["longitude", "latitude"] in scattered  # placed on the workers at ingest
    for columns in scattered:
        assert not personal & set(columns), columns
        assert set(columns) <= set(D.WORKER_COLUMNS) | set(D.SETTLEMENT_COLUMNS)
    with pytest.raises(ValueError, match="respondent_name"):
        D._check_sendable(pd.DataFrame({"hh_size": [1], "respondent_name": ["x"]}))


def test_results_do_not_depend_on_the_partitioning(scheduler):
    cfg = load_config(DEMO)
    settlements = load_settlements(cfg)
    assert settlements is not None
    hh = ingest_config(cfg, None, settlements).households
    t = thresholds(cfg)
    whole, _ = hazard_exposure(cfg, settlements, hh)
    ind = compute_indicators(whole, t)
    inside = whole["settlement_id"].notna().to_numpy()
    expected = partial_counts(whole.loc[inside], ind.loc[inside])
    cells = hexagon_counts(whole["latitude"], whole["longitude"], ind["slum_household"],
                           cfg.map.h3_resolution)
    assert cells["households"].sum() == whole["latitude"].notna().sum()
    cfg.execution.mode, cfg.execution.scheduler = "scheduler", scheduler
    with D.cluster(D.Execution.from_settings(cfg.execution)) as client:
        for size in (97, 1000, 10**6):
            cfg.execution.partition_size = size
            got = D.heavy_stages(client, cfg, settlements, hh, t)
            pd.testing.assert_frame_equal(got.counts, expected, check_exact=True,
                                          check_names=False)
            pd.testing.assert_frame_equal(got.hexagons, cells, check_exact=True)


def test_placement_on_the_workers_is_joins_placement(scheduler):
    """Points placed on the workers, in partitions, land where :func:`join.place` puts them."""
    cfg = load_config(DEMO)
    settlements = load_settlements(cfg)
    assert settlements is not None
    rng = np.random.default_rng(3)
    x0, y0, x1, y1 = settlements.frame.to_crs(4326).total_bounds
    n = 5000
    lon = rng.uniform(x0 - 0.01, x1 + 0.01, n)
    lat = rng.uniform(y0 - 0.01, y1 + 0.01, n)
    lon[::97] = np.nan  # no location: neither sent nor placed
    expected = place(lon, lat, settlements)
    assert (expected.inside >= 0).sum() > 100 and (expected.inside < 0).sum() > 100
    cfg.execution.mode, cfg.execution.scheduler = "scheduler", scheduler
    with D.cluster(D.Execution.from_settings(cfg.execution)) as client:
        got = D.placer(client, settlements, 700)(lon, lat)
    np.testing.assert_array_equal(got.inside, expected.inside)
    np.testing.assert_array_equal(got.nearest, expected.nearest)
    np.testing.assert_array_equal(got.distance, expected.distance)


def test_partitions_follow_the_hilbert_curve():
    x = np.array([0.0, 10.0, 0.1, 9.9, np.nan])
    y = np.array([0.0, 10.0, 0.1, 9.9, 5.0])
    frame = pd.DataFrame({"i": range(5)})
    parts = D.partitions(frame, 2, x, y)
    assert [sorted(p["i"]) for p in parts] == [[0, 2], [1, 3], [4]]


def test_execution_configuration():
    cfg = parse_config({"execution": {"mode": "local", "workers": 4, "partition_size": 10}})
    assert (cfg.execution.mode, cfg.execution.workers) == ("local", 4)
    assert parse_config({}).execution.mode == "in_process"
    with pytest.raises(ConfigError, match="scheduler"):
        parse_config({"execution": {"mode": "scheduler"}})
    with pytest.raises(ConfigError, match="did you mean 'workers'"):
        parse_config({"execution": {"worker": 2}})


def test_cli_refuses_workers_and_scheduler_together():
    res = CliRunner().invoke(app, ["run", str(DEMO), "--workers", "2", "--scheduler",
                                   "tcp://127.0.0.1:1"])
    assert res.exit_code == 2
    assert "not both" in res.output



def test_an_unreachable_scheduler_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "run.yaml"
    cfg.write_text(DEMO.read_text(encoding="utf-8").replace("../", f"{REPO}/")
                   + "\nexecution:\n  connect_timeout: 2\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["run", str(cfg), "--scheduler", f"tcp://127.0.0.1:{port}",
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port} within 2 s" in res.output
    assert "Traceback" not in res.output


def test_a_raster_a_worker_cannot_read_is_named(scheduler, tmp_path):
    """Workers open the rasters by path: one missing on a worker is a clear error on the client
    (the worker's error survives the trip back)."""
    cfg = load_config(DEMO)
    settlements = load_settlements(cfg)
    assert settlements is not None and cfg.hazards
    hh = ingest_config(cfg, None, settlements).households
    copy = tmp_path / "flood.tif"
    copy.write_bytes(Path(cfg.hazards[0].path).read_bytes())
    cfg.hazards[0].path = copy
    copy.unlink()  # readable when the run was checked, gone where the workers look
    cfg.execution.mode, cfg.execution.scheduler = "scheduler", scheduler
    expected = (rf"a Dask worker cannot use {copy}: hazard raster 'flood' does not exist; "
                r"every worker must read")
    with (pytest.raises(ConfigError, match=expected),
          D.cluster(D.Execution.from_settings(cfg.execution)) as client):
        D.heavy_stages(client, cfg, settlements, hh, thresholds(cfg))


def test_errors_survive_the_trip_from_a_worker():
    import pickle

    from profiling._errors import BoundaryError, FormError, InputFileError
    from profiling.hazard import HazardError

    for cls in (InputFileError, FormError, BoundaryError, HazardError):
        e = pickle.loads(pickle.dumps(cls(Path("x.tif"), "is broken")))
        assert type(e) is cls and str(e) == "x.tif: is broken" and e.path == "x.tif"


def test_a_worker_that_dies_ends_the_run_with_advice():
    import os

    import dask

    from profiling._errors import ProfilingError

    ex = D.Execution(mode="local", workers=1, partition_size=1234)
    expected = r"a Dask worker died running .* lower execution.partition_size \(now 1,234"
    with (dask.config.set({"distributed.scheduler.allowed-failures": 0}),
          pytest.raises(ProfilingError, match=expected), D.cluster(ex) as client):
        assert client is not None
        client.submit(os._exit, 1).result()  # the worker process ends, as when killed


def test_the_command_on_a_local_cluster(in_process, tmp_path):
    """`profiling run --workers 2` gives the in-process outputs, and `-q` keeps Dask quiet."""
    exe = str(Path(sys.executable).parent / "profiling")
    proc = subprocess.run([exe, "run", str(DEMO), "--workers", "2", "--out", str(tmp_path),
                           "-q"], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert_same_outputs(in_process[1], tmp_path)
    assert "Scheduler at" not in proc.stderr and "Register worker" not in proc.stderr
    assert "no secret configured" in proc.stderr  # warnings still shown


def test_workers_of_another_version_are_refused(scheduler, monkeypatch):
    import profiling

    monkeypatch.setattr(profiling, "__version__", "0.0.0+other")  # this side only
    ex = D.Execution(mode="scheduler", scheduler=scheduler)
    with pytest.raises(ConfigError, match=r"Dask workers without profiling 0\.0\.0\+other: "
                                          r"tcp://127\.0\.0\.1:\d+ \("), D.cluster(ex):
        pass


def test_a_scheduler_without_workers_is_refused():
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, dashboard_address=":0") as empty:
        ex = D.Execution(mode="scheduler", scheduler=empty.scheduler_address,
                         connect_timeout=1)
        with pytest.raises(ConfigError, match="has no workers after 1 s"), D.cluster(ex):
            pass


def test_no_cluster_is_started_without_settlements(tmp_path, caplog):
    """Without boundaries (households placed by a column) nothing runs on workers: a local
    execution starts no cluster."""
    import logging

    from conftest import household, write_csv

    survey = write_csv(tmp_path / "k.csv", [household(f"k{i}") for i in range(6)])
    cfg = parse_config({"surveys": [str(survey)], "settlement_assignment": {"by": "column"},
                        "execution": {"mode": "local", "workers": 2}})
    with caplog.at_level(logging.INFO, logger="profiling"):
        res = run(cfg, tmp_path / "out")
    assert res.counts["accepted"] == 6
    assert not [r for r in caplog.records if "Dask" in r.getMessage()]


def test_a_run_with_rosters_on_a_cluster_gives_the_in_process_persons(tmp_path):
    """The sample city with its rosters: person figures are the same on a local cluster as in
    process, and no member frame is sent to a worker (the persons are counted in the client,
    from the members it holds already)."""
    from profiling.config import MembersSource, SurveySource

    exports = REPO / "sample_data" / "exports"
    sources = [SurveySource(path=exports / "kobo_day1-4.csv",
                            members=MembersSource(path=exports / "kobo_day1-4_members.csv")),
               SurveySource(path=exports / "kobo_day3-7.xlsx", members=MembersSource()),
               SurveySource(path=exports / "odk_day6-10.zip", members=MembersSource())]
    outs = []
    sent: list[list[str]] = []
    real = D._scatter

    def spy(client, frames, broadcast=False):  # type: ignore[no-untyped-def]
        sent.extend([list(f.columns) for f in frames])
        return real(client, frames, broadcast)

    for mode in ("in_process", "local"):
        cfg = load_config(DEMO)
        cfg.surveys = sources
        cfg.execution.mode = mode
        if mode == "local":
            cfg.execution.workers, cfg.execution.partition_size = 2, 500
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(D, "_scatter", spy)
            run(cfg, tmp_path / mode)
        outs.append(tmp_path / mode)
    assert_same_outputs(*outs)
    table = pd.read_csv(outs[1] / "settlement_indicators.csv")
    assert table["persons"].sum() > 0 and "adult_tenure_documented_female_share" in table
    assert sent and not any(c.startswith("member_") for cols in sent for c in cols)
