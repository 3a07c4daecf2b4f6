"""The enumeration store, on both backends: a GeoPackage file and a PostGIS database.

Every test that takes ``store_url`` runs twice, once per backend. PostgreSQL is the throwaway
server of ``scripts/start_postgres.sh`` (``make test`` starts it and passes its URL in
``PROFILING_TEST_PG_URL``; without it the fixture runs the script); each test gets a database of
its own. In CI (``CI=true``) a server that cannot be started fails the tests; elsewhere they are
skipped with the reason. Concurrency and ``kill -9`` are tested with real processes.

Expected values come from ingest itself run on the same exports in one go: the store's rule is
the contract's (latest submission wins, ties to the later file) applied across loads, so loading
exports one by one must give what ingesting them together gives.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from profiling._errors import ConfigError
from profiling.cli import app
from profiling.config import MembersSource, SurveySource, load_config
from profiling.ingest import IngestResult, ingest
from profiling.pipeline import load_form, load_settlements
from profiling.store import (
    SECRET_ENV,
    Store,
    StoreError,
    _migrations,
    load_exports,
    open_store,
    pseudonyms,
    read_secret,
    submission_index,
)
from profiling.supervision import supervision_report

from conftest import household, write_csv

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
EXPORTS = [SAMPLE / "exports" / n for n in ("kobo_day1-4.csv", "kobo_day3-7.xlsx",
                                            "odk_day6-10.csv")]
START_PG = REPO / "scripts" / "start_postgres.sh"
SECRET = b"test-secret-of-the-store-0123456789"
PROVENANCE = ["source_file", "source_row"]
TABLES = ["schema_version", "store_meta", "store_columns", "loads", "load_files", "submissions",
          "households", "households_history", "personal", "rejects"]


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The URL of the template database of the throwaway PostgreSQL server."""
    url = os.environ.get("PROFILING_TEST_PG_URL")
    if url:
        return url
    try:
        proc = subprocess.run(["bash", str(START_PG)], capture_output=True, text=True,
                              timeout=900, check=False)
        problem = "" if proc.returncode == 0 else proc.stderr.strip()[-2000:]
    except (OSError, subprocess.TimeoutExpired) as exc:
        problem = str(exc)
    if problem:
        message = f"PostgreSQL with PostGIS could not be started by {START_PG}: {problem}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message + " (not in CI: the PostGIS half of the store tests is skipped)")
    return proc.stdout.strip().splitlines()[-1]


def _admin(url: str) -> Engine:
    """An engine on the server's ``postgres`` database (a template must have no session)."""
    return create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")


def _create_database(url: str) -> str:
    """A new database made from the template of ``url``; returns its URL."""
    template = make_url(url)
    name = f"store_{uuid.uuid4().hex[:12]}"
    engine = _admin(url)
    for attempt in range(20):  # another test may be copying the template at this moment
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE {name} TEMPLATE "{template.database}"')
            break
        except OperationalError:
            if attempt == 19:
                raise
            time.sleep(0.5)
    engine.dispose()
    return template.set(database=name).render_as_string(hide_password=False)


def _drop_database(url: str) -> None:
    engine = _admin(url)
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {make_url(url).database} WITH (FORCE)")
    engine.dispose()


@pytest.fixture(params=["gpkg", "postgis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty store on each backend."""
    if request.param == "gpkg":
        yield str(tmp_path / "enumeration.gpkg")
        return
    url = _create_database(request.getfixturevalue("postgres_url"))
    yield url
    _drop_database(url)


# --------------------------------------------------------------------------------------------
# The sample city, ingested once per export combination
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def city():
    cfg = load_config(REPO / "configs" / "demo.yaml")
    return cfg, load_form(cfg), load_settlements(cfg)


_INGESTED: dict[tuple[int, ...], tuple[IngestResult, pd.DataFrame]] = {}


def ingested(city, which: tuple[int, ...]) -> tuple[IngestResult, pd.DataFrame]:
    """Ingest of the sample exports ``which`` together, and its submission index."""
    if which not in _INGESTED:
        _cfg, form, settlements = city
        sources = [SurveySource(path=EXPORTS[i]) for i in which]
        result = ingest(sources, form, settlements)
        _INGESTED[which] = (result, submission_index(result))
    return _INGESTED[which]


def load_each(store: Store, city, order: tuple[int, ...]) -> list:
    out = []
    for i in order:
        result, _ = ingested(city, (i,))
        out.append(store.load(result))
    return out


def hashed(frame: pd.DataFrame) -> pd.DataFrame:
    """An ingest household frame as the store gives it: pseudonymous keys, ordered by them."""
    out = frame.copy()
    out["key"] = pd.array(pseudonyms(SECRET, out["key"]), dtype=out["key"].dtype)
    return out.sort_values("key").reset_index(drop=True)


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of every table of a store, read with plain SQL (sorted)."""
    engine = create_engine(url) if "://" in url else create_engine(f"sqlite:///{url}")
    out = {}
    with engine.connect() as conn:
        for t in TABLES:
            rows = conn.exec_driver_sql(f"SELECT * FROM {t}").fetchall()
            out[t] = sorted(tuple(str(v) for v in r) for r in rows)
    engine.dispose()
    return out


# --------------------------------------------------------------------------------------------
# Loads on the sample city
# --------------------------------------------------------------------------------------------

def test_one_load_of_all_exports_gives_ingests_households_and_counts(store_url, city):
    result, _ = ingested(city, (0, 1, 2))
    with open_store(store_url, SECRET) as store:
        summary = store.load(result)
        assert summary.counts == result.counts
        hh = store.households()
        counts = store.counts()
    pd.testing.assert_frame_equal(hh, hashed(result.households))
    expected = pd.read_json(SAMPLE / "expected_counts.json", typ="series")["counts"]
    assert counts == expected == result.counts


def test_a_geopackage_is_read_in_columns(tmp_path, city):
    """GeoPackage reads of the households go through GDAL's columnar reader (the frame above is
    then the one it gave), and give what the row-by-row reader gives."""
    result, _ = ingested(city, (0, 1, 2))
    with open_store(tmp_path / "s.gpkg", SECRET) as store:
        store.load(result)
        table = store._b.read_arrow('SELECT "key" FROM analysis_households')
        assert table is not None and table.num_rows == len(result.households)
        fast = store.households()
        personal, points = store.disclosure_reference()
        with store._connect(write=False) as conn:
            cols = store._household_columns(conn)
            slow = store._frame(conn, 'SELECT household_id AS "key", ' + ", ".join(
                store._q(n) for n, _ in cols[1:]) + " FROM households ORDER BY household_id",
                cols)
    pd.testing.assert_frame_equal(fast, slow)
    # the audit's reference: the personal values of every accepted household (the store also
    # keeps those of rejected submissions), and every point
    assert len(personal) == result.counts["accepted"] + result.counts["rejected"]
    accepted = personal[personal["key"].isin(set(result.personal["key"]))]
    pd.testing.assert_frame_equal(
        accepted.sort_values("key").reset_index(drop=True),
        result.personal.sort_values("key").reset_index(drop=True), check_dtype=False)
    assert sorted(points["longitude"]) == sorted(result.households["longitude"])


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1), (1, 2, 0)])
def test_loads_in_any_order_once_or_twice_give_the_same_store(store_url, city, order):
    together, _ = ingested(city, (0, 1, 2))
    with open_store(store_url, SECRET) as store:
        summaries = load_each(store, city, order)
        first = snapshot(store_url)
        again = load_each(store, city, order)
        assert all(s.skipped for s in again)
        assert snapshot(store_url) == first
        for s in summaries:
            c = s.counts
            assert c["read"] == c["accepted"] + c["rejected"] + c["duplicates"] + c["no_consent"]
        hh = store.households()
        counts = store.counts()
        rejects = store.rejects()
        subs = store.submissions()
    assert counts == together.counts
    assert counts["read"] == sum(s.counts["read"] for s in summaries)
    expected = hashed(together.households)
    if order == (0, 1, 2):  # the order ingest was given: the very same frame
        pd.testing.assert_frame_equal(hh, expected)
    # in another order a re-downloaded submission may come from another file: same answers
    pd.testing.assert_frame_equal(hh.drop(columns=PROVENANCE), expected.drop(columns=PROVENANCE))
    exp_rej = together.rejects.assign(key=pseudonyms(SECRET, together.rejects["key"]))
    cols = ["key", "field", "value", "action", "reason"]
    assert (sorted(map(tuple, rejects[cols].astype(str).to_numpy()))
            == sorted(map(tuple, exp_rej[cols].astype(str).to_numpy())))
    # what the run derives from the store does not depend on the order either
    assert subs["status"].value_counts().to_dict() == together.submissions[
        "status"].value_counts().to_dict()
    report = supervision_report(subs)
    assert report["accepted"].sum() == counts["accepted"]
    assert report["values_dropped"].sum() == counts["values_dropped"]


def test_state_at_rebuilds_every_earlier_state(store_url, city):
    with open_store(store_url, SECRET) as store:
        summaries = load_each(store, city, (0, 1, 2))
        states = [store.state_at(s.load_id) for s in summaries]
        assert summaries[1].changes["replaced"] > 0
        with pytest.raises(StoreError, match="no load 99"):
            store.state_at(99)
    for n, state in enumerate(states, start=1):
        result, _ = ingested(city, tuple(range(n)))
        pd.testing.assert_frame_equal(state, hashed(result.households))


def test_ingest_result_is_what_a_run_reads(store_url, city):
    """``Store.ingest_result()`` stands in for ``ingest(...)`` in a run that reads the store."""
    together, _ = ingested(city, (0, 1, 2))
    with open_store(store_url, SECRET) as store:
        load_each(store, city, (0, 1, 2))
        got = store.ingest_result()
    pd.testing.assert_frame_equal(got.households, hashed(together.households))
    assert got.counts == together.counts
    assert list(got.rejects.columns) == list(together.rejects.columns)
    assert len(got.rejects) == len(together.rejects)
    assert got.personal.empty
    assert [i.sha256 for i in got.inputs] == [i.sha256 for i in together.inputs]
    assert [i.rows for i in got.inputs] == [i.rows for i in together.inputs]
    # the evening report from the store is the one from the exports, refusals and rejected
    # submissions counted under their own enumerator and day
    pd.testing.assert_frame_equal(supervision_report(got.submissions),
                                  supervision_report(together.submissions))
    report = supervision_report(got.submissions)
    assert report["no_consent"].sum() == together.counts["no_consent"] > 0
    assert "(none)" not in set(report["enumerator"])


# --------------------------------------------------------------------------------------------
# The rule across loads, on hand-made exports
# --------------------------------------------------------------------------------------------

def _export(tmp_path: Path, name: str, *rows: dict[str, str]) -> Path:
    return write_csv(tmp_path / name, list(rows))


def _load_files(store: Store, squares, *paths: Path) -> list:
    from profiling.form import reference_form

    return load_exports(store, [SurveySource(path=p) for p in paths], reference_form(), squares)


def test_newer_replaces_older_goes_to_history_stale_changes_nothing(store_url, tmp_path,
                                                                    squares):
    a = _export(tmp_path, "a.csv", household("k1", **{"household/hh_size": "4"}),
                household("k2"))
    b = _export(tmp_path, "b.csv", household("k1", **{
        "household/hh_size": "6", "_submission_time": "2026-03-03T12:00:00"}))
    c = _export(tmp_path, "c.csv", household("k1", **{
        "household/hh_size": "9", "_submission_time": "2026-03-01T12:00:00"}), household("k3"))
    with open_store(store_url, SECRET) as store:
        s1, s2, s3 = _load_files(store, squares, a, b, c)
        assert (s1.changes["added"], s2.changes["replaced"], s3.changes["older"]) == (2, 1, 1)
        assert s3.counts == {"read": 2, "accepted": 1, "rejected": 0, "duplicates": 1,
                             "no_consent": 0, "outside_settlements": 0, "values_dropped": 0}
        hh = store.households().set_index("key")
        k1 = pseudonyms(SECRET, ["k1"])[0]
        assert hh.loc[k1, "hh_size"] == 6
        assert sorted(hh.index) == sorted(pseudonyms(SECRET, ["k1", "k2", "k3"]))
        hist = store.history("k1")
        assert hist["hh_size"].tolist() == [4, 6]
        assert hist["load_id"].tolist() == [s1.load_id, s2.load_id]
        assert hist["superseded_by"].tolist() == [s2.load_id, pd.NA]
        assert store.state_at(s1.load_id).set_index("key").loc[k1, "hh_size"] == 4
        assert store.counts() == {"read": 5, "accepted": 3, "rejected": 0, "duplicates": 2,
                                  "no_consent": 0, "outside_settlements": 0,
                                  "values_dropped": 0}


def test_a_tie_goes_to_the_later_load(store_url, tmp_path, squares):
    a = _export(tmp_path, "a.csv", household("k1", **{"household/hh_size": "4"}))
    b = _export(tmp_path, "b.csv", household("k1", **{"household/hh_size": "5"}))
    with open_store(store_url, SECRET) as store:
        _load_files(store, squares, a, b)
        assert store.households()["hh_size"].tolist() == [5]
        assert store.counts()["duplicates"] == 1


def test_a_newer_refusal_erases_the_household(store_url, tmp_path, squares):
    a = _export(tmp_path, "a.csv", household("k1", **{"household/rooms_sleeping": "99"}),
                household("k2"))
    b = _export(tmp_path, "b.csv", household("k1", **{
        "consent": "no", "_submission_time": "2026-03-04T08:00:00"}))
    c = _export(tmp_path, "c.csv", household("k1"))  # the old version downloaded again
    with open_store(store_url, SECRET) as store:
        _, s2, s3 = _load_files(store, squares, a, b, c)
        assert s2.changes["removed"] == 1 and s3.changes["older"] == 1
        k1 = pseudonyms(SECRET, ["k1"])[0]
        assert k1 not in set(store.households()["key"])
        assert store.history("k1").empty
        assert store.counts()["no_consent"] == 1 and store.counts()["accepted"] == 1
    snap = snapshot(store_url)
    fact = [r for r in snap["submissions"] if r[0] == k1]
    # only the fact and what supervision counts it by: the household id, the status, the
    # time, the load, the enumerator and the interview's times; no answer, point or name
    assert len(fact) == 1 and len(fact[0]) == 7
    _, status, when, load, enumerator, start, end = fact[0]
    assert (status, load, enumerator) == ("no_consent", "2", "E1") and when.startswith("2026-03-04")
    assert start.startswith("2026-03-02T09:00") and end.startswith("2026-03-02")
    for table in ("households", "households_history", "personal", "rejects"):
        assert not [r for r in snap[table] if k1 in r], table


def test_a_newer_rejected_submission_takes_the_household_out(store_url, tmp_path, squares):
    a = _export(tmp_path, "a.csv", household("k1"))
    b = _export(tmp_path, "b.csv", household("k1", **{
        "_gps_latitude": "", "_gps_longitude": "", "gps": "",
        "_submission_time": "2026-03-05T08:00:00"}))
    with open_store(store_url, SECRET) as store:
        _, s2 = _load_files(store, squares, a, b)
        assert s2.changes["removed"] == 1
        assert store.households().empty
        assert store.counts()["rejected"] == 1
        rej = store.rejects(raw_keys=True)
        assert rej["key"].tolist() == ["k1"] and rej["action"].tolist() == ["row_rejected"]
        assert store.history("k1")["load_id"].tolist() == [1]


def test_personal_fields_and_raw_keys_stay_in_the_personal_table(store_url, city):
    result, index = ingested(city, (0,))
    with open_store(store_url, SECRET) as store:
        store.load(result)
        view = store.households()
    personal = result.personal
    assert not set(personal.columns[1:]) & set(view.columns)
    secrets = {str(v) for v in personal.to_numpy().ravel() if pd.notna(v) and len(str(v)) > 3}
    secrets |= set(index["key"])
    snap = snapshot(store_url)
    # no table holds a personal value in clear: the personal table's are sealed too
    for table, rows in snap.items():
        text = "\n".join("\t".join(r) for r in rows)
        leaked = [v for v in secrets if v in text]
        assert not leaked, (table, leaked[:3])
    assert SECRET.decode() not in "\n".join("\t".join(r) for rows in snap.values() for r in rows)
    assert all(r[1].startswith("enc1:") for r in snap["personal"])
    # and they open with the key derived from the secret (AES-GCM, by hand)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"profiling store: personal fields, AES-256-GCM, v1").derive(SECRET)

    def opened(text: str, column: str) -> str:
        blob = base64.b64decode(text[len("enc1:"):])
        return AESGCM(key).decrypt(blob[:12], blob[12:], column.encode()).decode()

    in_personal = {opened(r[1], "submission_key") for r in snap["personal"]}
    assert set(index.loc[index["status"] != "no_consent", "key"]) == in_personal


def test_a_stolen_copy_without_the_secret_yields_no_name_or_number(store_url, tmp_path, city):
    """The GeoPackage file's bytes, or a dump of the database, taken without the secret: none
    of the personal values (names, phones, IDs, submission keys) is in it; with the secret the
    audit's reference gives them all back."""
    result, _ = ingested(city, (0,))
    with open_store(store_url, SECRET) as store:
        store.load(result)
        personal, _ = store.disclosure_reference()
    personal_cols = [c for c in result.personal.columns if c != "key"]
    assert {"respondent_name", "phone"} <= set(personal_cols)
    values = {str(v) for c in [*personal_cols, "key"] for v in result.personal[c].dropna()
              if len(str(v)) >= 6}
    assert len(values) > 1000
    if "://" in store_url:
        dump = subprocess.run(["pg_dump", "--format=plain", make_url(store_url).set(
            drivername="postgresql").render_as_string(hide_password=False)],
            capture_output=True, check=True).stdout
    else:
        dump = Path(store_url).read_bytes()
    found = [v for v in values if v.encode() in dump]
    assert not found, found[:5]
    got = personal.set_index("key").sort_index()
    want = result.personal.set_index("key").sort_index()
    pd.testing.assert_frame_equal(got.loc[want.index, personal_cols], want[personal_cols],
                                  check_dtype=False)


def test_a_store_kept_in_clear_is_sealed_when_opened_with_its_secret(tmp_path, city):
    path = tmp_path / "old.gpkg"
    result, _ = ingested(city, (0,))
    with open_store(path, SECRET) as store:
        store.load(result)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"profiling store: personal fields, AES-256-GCM, v1").derive(SECRET)
    name = "respondent_name"
    with sqlite3.connect(path) as conn:  # as an older profiling left it: in clear
        rows = conn.execute(f"SELECT household_id, submission_key, {name} FROM personal"
                            ).fetchall()

        def clear(text: str | None, column: str) -> str | None:
            if text is None:
                return None
            blob = base64.b64decode(text[len("enc1:"):])
            return AESGCM(key).decrypt(blob[:12], blob[12:], column.encode()).decode()

        conn.executemany(f"UPDATE personal SET submission_key = ?, {name} = ? "
                         "WHERE household_id = ?",
                         [(clear(k, "submission_key"), clear(n, name), h) for h, k, n in rows])
        conn.execute("DELETE FROM store_meta WHERE name = 'personal_sealed'")
    with open_store(path, SECRET) as store:
        personal, _ = store.disclosure_reference()
    with sqlite3.connect(path) as conn:
        assert all(k.startswith("enc1:") for (k,) in conn.execute(
            "SELECT submission_key FROM personal"))
        assert all(n is None or n.startswith("enc1:") for (n,) in conn.execute(
            f"SELECT {name} FROM personal"))
    want = result.personal.set_index("key")[name]
    got = personal.set_index("key")[name]
    assert got.loc[want.index].astype(object).where(got.loc[want.index].notna(), None).tolist(
        ) == want.astype(object).where(want.notna(), None).tolist()


def test_secret_is_required_checked_and_never_stored(store_url, tmp_path, monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with pytest.raises(ConfigError, match="no secret"):
        read_secret()
    with pytest.raises(ConfigError, match="does not exist"):
        read_secret(tmp_path / "missing.txt")
    (tmp_path / "short.txt").write_text("abc\n")
    with pytest.raises(ConfigError, match="at least 16"):
        read_secret(tmp_path / "short.txt")
    (tmp_path / "s.txt").write_text(SECRET.decode() + "\n")
    assert read_secret(tmp_path / "s.txt") == SECRET
    monkeypatch.setenv(SECRET_ENV, "another-secret-from-the-environment")
    assert read_secret(tmp_path / "s.txt") == b"another-secret-from-the-environment"
    open_store(store_url, SECRET).close()
    with pytest.raises(StoreError, match="another secret"):
        open_store(store_url, b"another-secret-from-the-environment")
    assert pseudonyms(SECRET, ["k1", None]).tolist() == [
        hmac.new(SECRET, b"k1", "sha256").hexdigest(), None]


# --------------------------------------------------------------------------------------------
# Failures, kill -9 and concurrent loads
# --------------------------------------------------------------------------------------------

def test_a_load_that_fails_part_way_leaves_the_store_as_it_was(store_url, city, monkeypatch):
    with open_store(store_url, SECRET) as store:
        load_each(store, city, (0,))
        before = snapshot(store_url)
        backend = type(store._b)
        original = backend.insert

        def failing(self, conn, table, frame):
            if table == "rejects":
                raise RuntimeError("disk full (simulated after the households were written)")
            return original(self, conn, table, frame)

        monkeypatch.setattr(backend, "insert", failing)
        with pytest.raises(RuntimeError, match="disk full"):
            load_each(store, city, (1,))
        monkeypatch.setattr(backend, "insert", original)
        assert snapshot(store_url) == before
        assert not load_each(store, city, (1,))[0].skipped


CHILD = textwrap.dedent("""
    import logging, sys, time
    from profiling.config import load_config
    from profiling.pipeline import load_form, load_settlements
    from profiling.config import SurveySource
    from profiling.store import load_exports, open_store, read_secret

    url, export, pause_at, hold = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])

    class Pause(logging.Handler):
        def emit(self, record):
            if pause_at and pause_at in record.getMessage():
                print("PAUSED", flush=True)
                time.sleep(hold)

    log = logging.getLogger("profiling.store")
    log.setLevel(logging.DEBUG)
    log.addHandler(Pause())
    cfg = load_config(sys.argv[5])
    with open_store(url, read_secret()) as store:
        s = load_exports(store, [SurveySource(path=export)], load_form(cfg),
                         load_settlements(cfg))[0]
    print("LOADED", s.load_id, s.skipped, flush=True)
""")


def _child(url: str, export: Path, pause_at: str = "", hold: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, SECRET_ENV: SECRET.decode()}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(export), pause_at, str(hold),
         str(REPO / "configs" / "demo.yaml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(proc: subprocess.Popen, word: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(word):
            return
    raise AssertionError(f"the child ended before {word}: {proc.stderr.read()}")  # type: ignore


def test_kill_9_in_the_middle_of_a_load_leaves_the_store_as_before(store_url, city):
    with open_store(store_url, SECRET) as store:
        load_each(store, city, (0,))
    before = snapshot(store_url)
    proc = _child(store_url, EXPORTS[1], pause_at="households written", hold=120)
    try:
        _wait_for(proc, "PAUSED")  # inside the transaction, households written
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert snapshot(store_url) == before
    with open_store(store_url, SECRET) as store:
        again = load_each(store, city, (1,))[0]
        assert not again.skipped
        state = store.households()
    pd.testing.assert_frame_equal(state, hashed(ingested(city, (0, 1))[0].households))


def test_two_loads_at_the_same_time_both_land(store_url, city):
    # two processes on a new store: both create it at once, then load
    procs = [_child(store_url, EXPORTS[0]), _child(store_url, EXPORTS[1])]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    # one holds the lock for 3 s while the other one wants it: the second waits, then lands
    first = _child(store_url, EXPORTS[2], pause_at="households written", hold=3)
    _wait_for(first, "PAUSED")
    second = _child(store_url, SAMPLE / "exports" / "kobo_day1-4.csv")  # loaded before
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, [o[1][-2000:] for o in outs]
    assert "LOADED 3 False" in outs[0][0] and "True" in outs[1][0]
    with open_store(store_url, SECRET) as store:
        hh = store.households()
        counts = store.counts()
        loads = store.status().by_load
    together = ingested(city, (0, 1, 2))[0]
    assert counts == together.counts
    assert len(loads) == 3
    pd.testing.assert_frame_equal(hh.drop(columns=PROVENANCE),
                                  hashed(together.households).drop(columns=PROVENANCE))


# --------------------------------------------------------------------------------------------
# Backends' own guarantees
# --------------------------------------------------------------------------------------------

def test_the_geopackage_opens_as_a_geopackage(tmp_path, city):
    path = tmp_path / "enumeration.gpkg"
    result, _ = ingested(city, (0,))
    with open_store(path, SECRET) as store:
        store.load(result)
    layers = dict(pyogrio.list_layers(path))
    assert layers["households"] == "Point" and layers["analysis_households"] is None
    assert "households_history" in layers and "personal" not in layers
    points = pyogrio.read_dataframe(path, layer="households")
    assert points.crs.to_epsg() == 4326 and len(points) == len(result.households)
    np.testing.assert_allclose(points.geometry.x, points["longitude"])
    np.testing.assert_allclose(points.geometry.y, points["latitude"])
    view = pyogrio.read_dataframe(path, layer="analysis_households")
    assert len(view) == len(result.households) and "respondent_name" not in view
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_the_analyst_role_reads_the_view_and_not_the_personal_table(postgres_url, city):
    url = _create_database(postgres_url)
    try:
        result, _ = ingested(city, (0,))
        with open_store(url, SECRET) as store:
            store.load(result)
        engine = create_engine(url)
        with engine.connect() as conn:
            # the points are PostGIS geometries at the households' coordinates
            off = conn.exec_driver_sql(
                "SELECT COUNT(*) FROM households WHERE ST_SRID(geom) <> 4326 OR "
                "abs(ST_X(geom) - longitude) > 1e-9 OR abs(ST_Y(geom) - latitude) > 1e-9"
            ).scalar()
            assert off == 0
            conn.exec_driver_sql(f"SET ROLE {_migrations.ANALYST_ROLE}")
            n = conn.exec_driver_sql("SELECT COUNT(*) FROM analysis_households").scalar()
            assert n == len(result.households)
            for table in ("personal", "households", "submissions"):
                with pytest.raises(Exception, match="permission denied"):
                    conn.exec_driver_sql(f"SELECT * FROM {table}")
                conn.rollback()
                conn.exec_driver_sql(f"SET ROLE {_migrations.ANALYST_ROLE}")
        engine.dispose()
    finally:
        _drop_database(url)


# --------------------------------------------------------------------------------------------
# Roles by need, the access log (issue 19)
# --------------------------------------------------------------------------------------------

HIDDEN_FROM_ANALYSTS = {"latitude", "longitude", "gps_precision", "distance_m", "submitted_at",
                        "enumerator", "source_file", "source_row"}


def _cells_by_hand(frame: pd.DataFrame, resolution: int) -> dict[str, str | None]:
    """Each household's H3 cell, one call of h3's own function per point."""
    import h3

    return {k: (h3.latlng_to_cell(float(la), float(lo), resolution)
                if pd.notna(la) and pd.notna(lo) else None)
            for k, la, lo in zip(frame["key"], frame["latitude"], frame["longitude"],
                                 strict=True)}


def test_analysts_get_the_settlement_and_an_h3_cell_and_supervisors_the_points(store_url, city):
    result, _ = ingested(city, (0, 1))
    with open_store(store_url, SECRET, h3_resolution=8) as store:
        store.load(result)
        view = store.analysis_households()
        full = store.households()
    assert not HIDDEN_FROM_ANALYSTS & set(view.columns)
    assert {"settlement_id", "h3_cell", "slum_household"} - set(view.columns) == {
        "slum_household"}  # indicators are computed later, not stored
    assert len(view) == len(result.households)
    expected = _cells_by_hand(hashed(result.households), 8)
    assert dict(zip(view["key"], view["h3_cell"].astype(object).where(view["h3_cell"].notna(),
                                                                     None),
                    strict=True)) == expected
    assert len(set(expected.values())) > 10  # the sample city spans many cells
    # a run still reads the points
    assert {"latitude", "longitude"} <= set(full.columns)
    if "://" in store_url:
        return
    layers = dict(pyogrio.list_layers(store_url))
    assert layers["supervision_households"] == "Point"
    sup = pyogrio.read_dataframe(store_url, layer="supervision_households")
    assert len(sup) == len(result.households) and "respondent_name" not in sup
    np.testing.assert_allclose(sup.geometry.x, sup["longitude"])


def test_each_role_selects_what_it_needs_and_nothing_else(postgres_url, city):
    url = _create_database(postgres_url)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    logins = {"analyst": f"ana_{uuid.uuid4().hex[:6]}", "supervisor": f"sup_{uuid.uuid4().hex[:6]}",
              "loader": f"lod_{uuid.uuid4().hex[:6]}"}
    try:
        result, _ = ingested(city, (0,))
        with admin.connect() as conn:
            for name in logins.values():
                conn.exec_driver_sql(f"CREATE ROLE {name} LOGIN PASSWORD 'pw-{name}'")
        with open_store(url, SECRET) as store:
            store.load(result)
            for role, name in logins.items():
                store.grant(role, name)
            roles = store.roles().set_index("role")["logins"].to_dict()
            with pytest.raises(StoreError, match="no login"):
                store.grant("analyst", "nobody_here")
            with pytest.raises(StoreError, match="no store role"):
                store.grant("admin", logins["analyst"])
        assert roles == logins
        allowed = {"analyst": {"analysis_households", "loads"},
                   "supervisor": {"supervision_households", "submissions", "loads"},
                   "loader": {"analysis_households", "supervision_households", "submissions",
                              "loads", "households", "personal", "households_history",
                              "rejects", "access_log"}}
        tables = sorted(set().union(*allowed.values()))
        for role, name in logins.items():
            engine = create_engine(make_url(url).set(username=name, password=f"pw-{name}"))
            with engine.connect() as conn:
                for table in tables:
                    try:
                        conn.exec_driver_sql(f"SELECT * FROM {table} LIMIT 1").fetchall()
                        ok = True
                    except Exception as exc:
                        assert "permission denied" in str(exc), exc
                        ok = False
                        conn.rollback()
                    assert ok == (table in allowed[role]), (role, table)
                if role == "analyst":
                    cols = {r[0] for r in conn.exec_driver_sql(
                        "SELECT column_name FROM information_schema.columns WHERE table_name = "
                        "'analysis_households'")}
                    assert not HIDDEN_FROM_ANALYSTS & cols and "h3_cell" in cols
                    n = conn.exec_driver_sql("SELECT COUNT(*) FROM analysis_households").scalar()
                    assert n == len(result.households)
                if role == "supervisor":
                    off = conn.exec_driver_sql(
                        "SELECT COUNT(*) FROM supervision_households WHERE "
                        "abs(ST_X(geom) - longitude) > 1e-9").scalar()
                    assert off == 0
            engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP OWNED BY {", ".join(logins.values())} CASCADE')
        admin.dispose()
        _drop_database(url)
        server = _admin(postgres_url)
        with server.connect() as conn:
            for name in logins.values():
                conn.exec_driver_sql(f"DROP ROLE IF EXISTS {name}")
        server.dispose()


def test_every_read_of_personal_data_is_logged_and_the_log_cannot_be_changed(store_url, city):
    result, _ = ingested(city, (0,))
    os.environ["PROFILING_ACCESS_REASON"] = "ward 4 supervision visit"
    try:
        with open_store(store_url, SECRET, purpose="profiling audit") as store:
            store.load(result)
            assert store.access_log().empty  # loading is not a read
            store.analysis_households()
            assert store.access_log().empty  # nothing personal in the analysts' view
            store.disclosure_reference()
            store.ingest_result()
            log_ = store.access_log()
    finally:
        del os.environ["PROFILING_ACCESS_REASON"]
    assert list(log_["command"]) == ["profiling audit"] * 2
    assert "personal fields" in log_["what"][0] and "points" in log_["what"][1]
    assert set(log_["why"]) == {"ward 4 supervision visit"}
    assert log_["os_user"].notna().all() and log_["at"].notna().all()
    assert (pd.Timestamp.now(tz="UTC") - log_["at"]).max() < pd.Timedelta(minutes=5)
    engine = create_engine(store_url if "://" in store_url else f"sqlite:///{store_url}")
    for sql in ("UPDATE access_log SET why = 'nothing'", "DELETE FROM access_log") + (
            ("TRUNCATE access_log",) if "://" in store_url else ()):
        with engine.connect() as conn, pytest.raises(Exception, match="append-only"):
            conn.exec_driver_sql(sql)
    engine.dispose()
    with open_store(store_url, SECRET) as store:
        assert len(store.access_log()) == 2


def test_a_backup_restores_into_a_new_store_identical_by_fingerprint(store_url, tmp_path,
                                                                     request, city):
    """Backed up after three loads (so there is history and an access log), restored into a
    new store of the same backend: every table's rows are the same, and the households, the
    history and the loads read back equal. A backup that does not match its manifest, or a
    restore over a store, is refused."""
    from profiling.store._backup import manifest_path, restore

    with open_store(store_url, SECRET) as store:
        load_each(store, city, (0, 1, 2))
        store.export_deidentified(tmp_path / "shared.gpkg")  # an access-log entry
        manifest = store.backup(tmp_path / "backup.bin")
        before = (store.households(), store.history(store.households()["key"].iloc[0]),
                  store.status().by_load, store.fingerprint())
    assert manifest["fingerprint"]["households_history"]["rows"] > 0
    assert manifest["fingerprint"]["access_log"]["rows"] == 2  # the export, then the backup
    postgis = "://" in store_url
    postgres_url = request.getfixturevalue("postgres_url") if postgis else ""
    target = _create_database(postgres_url) if postgis else str(tmp_path / "restored.gpkg")
    try:
        restore(target, tmp_path / "backup.bin", SECRET)
        with open_store(target, SECRET, create=False) as again:
            after = (again.households(), again.history(again.households()["key"].iloc[0]),
                     again.status().by_load, again.fingerprint())
        pd.testing.assert_frame_equal(before[0], after[0])
        pd.testing.assert_frame_equal(before[1], after[1])
        pd.testing.assert_frame_equal(before[2], after[2])
        # the restore adds its own access-log entry (and reading the history one more)
        assert {t: v for t, v in after[3].items() if t != "access_log"} == {
            t: v for t, v in before[3].items() if t != "access_log"}
        with pytest.raises(StoreError, match=r"new store|new, empty"):
            restore(target, tmp_path / "backup.bin", SECRET)
    finally:
        if postgis:
            _drop_database(target)
    # a manifest that does not match the backup: the restored store is refused
    m = json.loads(manifest_path(tmp_path / "backup.bin").read_text())
    m["fingerprint"]["personal"]["rows"] += 1
    manifest_path(tmp_path / "backup.bin").write_text(json.dumps(m))
    target = _create_database(postgres_url) if postgis else str(tmp_path / "bad.gpkg")
    try:
        with pytest.raises(StoreError, match="differs from the backup in personal"):
            restore(target, tmp_path / "backup.bin", SECRET)
    finally:
        if postgis:
            _drop_database(target)


def test_a_store_made_by_an_older_schema_opens_in_this_one(store_url, city):
    engine = create_engine(store_url if "://" in store_url else f"sqlite:///{store_url}")
    with engine.begin() as conn:
        assert _migrations.upgrade(conn, engine.dialect.name, "0.0.1", target=1) == [1]
    engine.dispose()
    with open_store(store_url, SECRET) as store:
        assert store.schema_version() == _migrations.LATEST
        load_each(store, city, (0,))
        assert store.counts()["accepted"] == ingested(city, (0,))[0].counts["accepted"]
    versions = snapshot(store_url)["schema_version"]
    assert [int(v[0]) for v in versions] == [m.version for m in _migrations.MIGRATIONS]
    assert versions[0][3] == "0.0.1"


def test_a_store_of_schema_4_gets_its_h3_cells_views_and_access_log(tmp_path, city):
    """A GeoPackage store as schema 4 left it (loaded, no cells, no access log): opened by this
    version, its households get their H3 cells (by hand: h3's own function per point), the
    analysts' view leaves the points out and the access log records reads."""
    path = tmp_path / "v4.gpkg"
    result, _ = ingested(city, (0,))
    with open_store(path, SECRET) as store:
        store.load(result)
    with sqlite3.connect(path) as conn:  # undo steps 7 and 6, then step 5
        for table in ("validations", "boundary_versions"):
            conn.execute(f"DROP TABLE {table}")
            conn.execute(f"DELETE FROM gpkg_contents WHERE table_name = '{table}'")
        conn.execute("DELETE FROM schema_version WHERE version IN (6, 7)")
        for view in ("analysis_households", "supervision_households"):
            conn.execute(f"DROP VIEW {view}")
        conn.execute("DROP TABLE access_log")
        for table in ("households", "households_history"):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN h3_cell")
        conn.execute("DELETE FROM gpkg_contents WHERE table_name IN ('access_log', "
                     "'supervision_households')")
        conn.execute("DELETE FROM gpkg_geometry_columns WHERE table_name = "
                     "'supervision_households'")
        conn.execute("DELETE FROM schema_version WHERE version = 5")
        conn.execute("DELETE FROM store_meta WHERE name = 'h3_resolution'")
        conn.execute('CREATE VIEW analysis_households AS SELECT household_id AS "key", latitude, '
                     "longitude FROM households")
    with open_store(path, SECRET) as store:
        assert store.schema_version() == _migrations.LATEST
        view = store.analysis_households()
        store.disclosure_reference()
        assert len(store.access_log()) == 1
    assert not HIDDEN_FROM_ANALYSTS & set(view.columns)
    expected = _cells_by_hand(hashed(result.households), _migrations.DEFAULT_H3_RESOLUTION)
    assert dict(zip(view["key"], view["h3_cell"].astype(object).where(view["h3_cell"].notna(),
                                                                     None),
                    strict=True)) == expected


def test_a_store_from_a_newer_profiling_is_refused(store_url):
    open_store(store_url, SECRET).close()
    engine = create_engine(store_url if "://" in store_url else f"sqlite:///{store_url}")
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO schema_version VALUES (999, 'future', "
                             "'2030-01-01T00:00:00.000Z', '9.9')")
    engine.dispose()
    with pytest.raises(StoreError, match="newer profiling"):
        open_store(store_url, SECRET)


def test_open_store_refuses_what_is_not_a_store(tmp_path):
    with pytest.raises(StoreError, match=r"\.gpkg extension"):
        open_store(tmp_path / "store.sqlite", SECRET)
    (tmp_path / "text.gpkg").write_text("not a database")
    with pytest.raises(StoreError, match="not a GeoPackage"):
        open_store(tmp_path / "text.gpkg", SECRET)
    shutil.copy(SAMPLE / "settlements.gpkg", tmp_path / "settlements.gpkg")
    with pytest.raises(StoreError, match="not an enumeration store"):
        open_store(tmp_path / "settlements.gpkg", SECRET)
    with pytest.raises(StoreError, match="postgresql"):
        open_store("mysql://host/db", SECRET)
    with pytest.raises(StoreError, match="does not exist"):
        open_store(tmp_path / "absent.gpkg", SECRET, create=False)


def test_status_and_the_deidentified_export(store_url, city, tmp_path):
    together, _ = ingested(city, (0, 1, 2))
    with open_store(store_url, SECRET) as store:
        load_each(store, city, (0, 1, 2))
        status = store.status()
        path = store.export_deidentified(tmp_path / "export" / "households.gpkg")
    assert status.counts == together.counts
    by = together.households["settlement_id"].value_counts(dropna=False)
    got = status.by_settlement.set_index("settlement_id")["households"]
    assert got.sum() == len(together.households)
    assert {k: v for k, v in got.items() if pd.notna(k)} == {
        k: v for k, v in by.items() if pd.notna(k)}
    assert status.by_load["files"].tolist() == [e.name for e in EXPORTS]
    assert status.last_load is not None and status.last_load["load_id"] == 3
    assert status.rejects["entries"].sum() == len(together.rejects)
    assert set(dict(pyogrio.list_layers(path))) == {"households", "loads"}
    out = pyogrio.read_dataframe(path, layer="households")
    assert len(out) == len(together.households)
    assert not {"latitude", "longitude", "gps_precision", "source_row", "key",
                "respondent_name", "phone", "national_id", "structure_id"} & set(out.columns)
    text = out.astype(str).to_numpy().ravel()
    assert not set(together.households["key"]) & set(text)


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------

def _config(tmp_path: Path, url: str) -> Path:
    data = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    base = REPO / "configs"
    for k in ("form", "boundaries"):
        data[k] = str((base / data[k]).resolve())
    data["surveys"] = [str(e) for e in EXPORTS]
    data.pop("hazards", None)
    (tmp_path / "secret.txt").write_text(SECRET.decode())
    data["store"] = {"url": url if "://" in url else Path(url).name, "secret_file": "secret.txt"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_cli_load_status_and_export(store_url, tmp_path, monkeypatch, city):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    (tmp_path / "cfg").mkdir()
    cfg = _config(tmp_path / "cfg", store_url)
    runner = CliRunner()
    r = runner.invoke(app, ["load", str(cfg), str(EXPORTS[0]), str(EXPORTS[1]),
                            "--note", "evening 1"])
    assert r.exit_code == 0, r.output
    assert "kobo_day1-4.csv" in r.output and "kobo_day3-7.xlsx" in r.output
    r = runner.invoke(app, ["load", str(cfg)])  # the configured surveys: two loaded before
    assert r.exit_code == 0, r.output
    assert "kobo_day1-4.csv: loaded before" in r.output
    assert "kobo_day3-7.xlsx: loaded before" in r.output
    assert "odk_day6-10.csv" in r.output and "1,088" in r.output
    r = runner.invoke(app, ["store", "status", str(cfg)])
    assert r.exit_code == 0, r.output
    assert "2,948" in r.output and "JK04" in r.output and "odk_day6-10.csv" in r.output
    r = runner.invoke(app, ["store", "export", str(cfg), str(tmp_path / "out.gpkg")])
    assert r.exit_code == 0, r.output
    assert len(pyogrio.read_dataframe(tmp_path / "out.gpkg", layer="households")) == 2948
    if "://" not in store_url:
        assert (tmp_path / "cfg" / Path(store_url).name).exists()
    # at 80 columns every figure is whole (no "2,7…") and no line is longer; the export's
    # read of the points is the access log's latest entry
    r = runner.invoke(app, ["store", "status", str(cfg)], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    assert "…" not in r.output and max(map(len, r.output.splitlines())) <= 80, r.output
    assert "2,948" in r.output and "profiling store export" in r.output
    r = runner.invoke(app, ["store", "status", str(cfg), "--json"])
    assert r.exit_code == 0, r.output
    status = json.loads(r.output)
    assert status["counts"]["accepted"] == 2948
    assert sum(s["households"] for s in status["by_settlement"]) == 2948
    assert [x["load_id"] for x in status["loads"]] == [1, 2, 3]
    assert status["access_log"][-1]["command"] == "profiling store export"
    assert "left out of a de-identified export" in status["access_log"][-1]["what"]
    r = runner.invoke(app, ["store", "roles", str(cfg)])
    assert r.exit_code == 0, r.output
    assert ("analyst" in r.output) == ("://" in store_url)
    if "://" not in store_url:
        r = runner.invoke(app, ["store", "grant", str(cfg), "analyst", "alice"])
        assert r.exit_code == 2 and "no logins" in r.output and "Traceback" not in r.output
        # backup, restore into a new store named by another configuration, and read it
        r = runner.invoke(app, ["store", "backup", str(cfg), str(tmp_path / "b" / "s.bak")])
        assert r.exit_code == 0, r.output
        data = yaml.safe_load(cfg.read_text())
        data["store"]["url"] = "restored.gpkg"
        cfg2 = cfg.with_name("restored.yaml")
        cfg2.write_text(yaml.safe_dump(data))
        r = runner.invoke(app, ["store", "restore", str(cfg2), str(tmp_path / "b" / "s.bak")])
        assert r.exit_code == 0 and "every table matches" in r.output, r.output
        r = runner.invoke(app, ["store", "status", str(cfg2), "--json"])
        assert json.loads(r.output)["counts"]["accepted"] == 2948
        r = runner.invoke(app, ["store", "restore", str(cfg2), str(tmp_path / "b" / "s.bak")])
        assert r.exit_code == 2 and "exists" in r.output and "Traceback" not in r.output
        r = runner.invoke(app, ["store", "restore", str(cfg2), str(tmp_path / "none.bak")])
        assert r.exit_code == 2 and "does not exist" in r.output
        (tmp_path / "b" / "s.bak.json").write_bytes(b"\xff{not json")
        data["store"]["url"] = "third.gpkg"
        cfg2.write_text(yaml.safe_dump(data))
        r = runner.invoke(app, ["store", "restore", str(cfg2), str(tmp_path / "b" / "s.bak")])
        assert r.exit_code == 2 and "manifest" in r.output and "Traceback" not in r.output


def test_cli_errors_are_one_paragraph(tmp_path, monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    cfg = _config(tmp_path, str(tmp_path / "s.gpkg"))
    (tmp_path / "secret.txt").unlink()
    runner = CliRunner()
    r = runner.invoke(app, ["load", str(cfg), str(EXPORTS[0])])
    assert r.exit_code == 2 and "secret file" in r.output and "Traceback" not in r.output
    data = yaml.safe_load(cfg.read_text())
    data.pop("store")
    cfg.write_text(yaml.safe_dump(data))
    r = runner.invoke(app, ["store", "status", str(cfg)])
    assert r.exit_code == 2 and "no 'store' section" in r.output
    r = runner.invoke(app, ["load", str(cfg), str(tmp_path / "missing.csv")])
    assert r.exit_code == 2 and "does not exist" in r.output


# --------------------------------------------------------------------------------------------
# Household rosters
# --------------------------------------------------------------------------------------------

def test_rosters_are_stored_with_their_households(store_url, city):
    """The sample exports with their rosters, loaded one by one in the order of a field team:
    the store keeps the members of each current household (a newer version's roster replaces
    the older's), its accounting of members is the generator's (expected_counts.json), and the
    person figures a run makes from the store are those it makes from the exports."""
    from profiling.indicators import INDICATORS, Thresholds
    from profiling.roster import person_counts, person_indicators

    _cfg, form, settlements = city
    exports = SAMPLE / "exports"
    sources = [SurveySource(path=exports / "kobo_day1-4.csv",
                            members=MembersSource(path=exports / "kobo_day1-4_members.csv")),
               SurveySource(path=exports / "kobo_day3-7.xlsx", members=MembersSource()),
               SurveySource(path=exports / "odk_day6-10.zip", members=MembersSource())]
    direct = ingest(sources, form, settlements)
    with open_store(store_url, SECRET) as store:
        load_exports(store, sources, form, settlements)
        stored = store.ingest_result()
        again = load_exports(store, sources, form, settlements)  # loaded before: no change
        assert all(s.skipped for s in again)
        assert store.ingest_result().members.equals(stored.members)
    expected = pd.read_json(SAMPLE / "expected_counts.json", typ="series")["roster_counts"]
    assert {k: stored.counts[k] for k in expected} == expected
    assert stored.members is not None and direct.members is not None
    sizes = stored.households.set_index("key")["hh_size"]
    listed = stored.members.groupby("key").size()
    assert (listed.reindex(sizes.index).fillna(0) == sizes).all()

    def persons(result: IngestResult) -> pd.DataFrame:
        hh = result.households
        doc = next(i for i in INDICATORS if i.name == "tenure_documented").compute(
            hh, Thresholds(), {})
        return person_counts(person_indicators(result.members, hh, doc))

    pd.testing.assert_frame_equal(persons(stored), persons(direct))


def test_corrections_are_kept_with_their_provenance_and_never_changed(store_url):
    """The community's corrections (issue 22): each kept with where it came from; the latest
    forum's is the current one, the earlier stays as history; loading a file twice adds
    nothing; the table refuses any change."""
    from sqlalchemy.exc import DBAPIError

    first = pd.DataFrame({
        "settlement_id": ["JK03", "JK03"], "figure": ["households", "toilets"],
        "enumerated": [234.0, 102.0], "confirmed": [False, True], "validated": [240.0, 102.0],
        "forum": ["RW 01 forum"] * 2, "forum_date": ["2026-04-02"] * 2,
        "recorded_by": ["the facilitator"] * 2, "source_row": [2, 2]})
    later = first.iloc[:1].assign(validated=238.0, forum_date="2026-05-10", source_row=7)
    with open_store(store_url, SECRET) as store:
        assert store.load_validations(first, Path("forum1.csv"), "a" * 64) == 2
        assert store.load_validations(first, Path("forum1.csv"), "a" * 64) == 0  # again
        assert store.load_validations(later, Path("forum2.csv"), "b" * 64) == 1
        current = store.validations().set_index("figure")
        assert current.loc["households", "validated"] == 238.0
        assert current.loc["households", "forum_date"] == "2026-05-10"
        assert current.loc["toilets", "validated"] == 102.0
        assert bool(current.loc["toilets", "confirmed"]) is True
        history = store.validations(history=True)
        assert len(history) == 3
        assert list(history["source_file"]) == ["forum1.csv", "forum1.csv", "forum2.csv"]
        assert list(history["source_row"]) == [2, 2, 7]
        assert list(history["validated"]) == [240.0, 102.0, 238.0]
        assert set(history["recorded_by"]) == {"the facilitator"}
        with pytest.raises(DBAPIError, match="corrections are kept"), \
                store._connect(write=True) as conn:
            conn.exec_driver_sql("UPDATE validations SET validated = 1")
        assert list(store.validations(history=True)["validated"]) == [240.0, 102.0, 238.0]


def test_redrawn_boundaries_are_versions_kept_in_order(store_url):
    import geopandas as gpd
    import shapely
    from sqlalchemy.exc import DBAPIError

    a = gpd.GeoDataFrame({"settlement_id": ["S1"]}, geometry=[shapely.box(0, 0, 1, 1)],
                         crs="EPSG:4326")
    b = gpd.GeoDataFrame({"settlement_id": ["S1", "S2"]},
                         geometry=[shapely.box(0, 0, 2, 1), shapely.box(5, 5, 6, 6)],
                         crs="EPSG:4326")
    with open_store(store_url, SECRET) as store:
        assert store.load_boundaries(a, Path("first.gpkg"), "c" * 64, forum="F1",
                                     forum_date="2026-04-01") == 1
        assert store.load_boundaries(a, Path("first.gpkg"), "c" * 64) == 0
        assert store.load_boundaries(b, Path("second.gpkg"), "d" * 64) == 2
        latest = store.boundary_versions().set_index("settlement_id")
        assert latest.loc["S1", "version"] == 2 and latest.loc["S2", "version"] == 2
        assert shapely.from_wkt(latest.loc["S1", "wkt"]).equals(shapely.box(0, 0, 2, 1))
        history = store.boundary_versions(history=True)
        assert list(zip(history["version"], history["settlement_id"], strict=True)) == [
            (1, "S1"), (2, "S1"), (2, "S2")]
        assert history["forum"].iloc[0] == "F1"
        with pytest.raises(DBAPIError, match="boundary versions are kept"), \
                store._connect(write=True) as conn:
            conn.exec_driver_sql("DELETE FROM boundary_versions")
