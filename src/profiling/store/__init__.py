"""The enumeration store: what ingest accepted, kept between loads, for analysis to read.

Enumeration runs for weeks; field teams download exports every evening and load them. The store
holds every household once, with the contract's rule (CONTRACT.md §1) applied across loads: the
same submission key is one household, the latest submission time wins, and on a tie the later
load wins (the later file in the order given). A load of an older version of a known key is a
duplicate and changes nothing current; a newer version replaces the current row, which moves to
``households_history`` so that any earlier state can be rebuilt (:meth:`Store.state_at`). A
newer submission that is rejected or refused takes the household out of the analysis; a refusal
also erases what the store held about that household (consent withdrawn: only the fact of the
refusal is kept).

Every load is one transaction that records its provenance (files, sha256, rows, times, software
version, who) and what it changed; loading a file already loaded changes nothing, and a load that
dies part-way leaves the store as it was. Two loads at the same time run one after the other.

Households are identified by a pseudonymous id, HMAC-SHA256(secret, submission key), with the
secret kept outside the store (``PROFILING_SECRET`` or a file named in the configuration). The
raw submission key and the personal fields live only in the ``personal`` table; analysis reads
the ``analysis_households`` view, which has neither (on PostGIS the ``profiling_analyst`` role
can read the view and not the personal table).

Backends: one GeoPackage file by default (it opens in QGIS as it is), or PostGIS for a city
office, chosen by a ``postgresql+psycopg://`` URL; the code and the tests are the same for both.

Tables: ``schema_version``, ``store_meta``, ``store_columns`` (the questionnaire's columns and
their pandas dtypes), ``loads``, ``load_files``, ``submissions`` (the current submission of every
known key, with its status), ``households`` (current, with the WGS84 point), ``households_history``
(replaced versions, with the load that replaced them), ``personal``, ``rejects`` (rejected rows and
dropped values of each load); the view ``analysis_households``.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from profiling import __version__
from profiling._errors import ConfigError, StoreError
from profiling._readers import STRING, sha256_of
from profiling.aggregates import h3_cells
from profiling.config import Config, SurveySource
from profiling.form import Form
from profiling.ingest import (
    MEMBER_LINK,
    MEMBER_ROW,
    REJECT_COLUMNS,
    ROW_REJECTED,
    VALUE_DROPPED,
    IngestResult,
    InputSummary,
    ingest,
)
from profiling.join import Settlements
from profiling.store import _migrations
from profiling.store._backends import Backend, GeoPackage, PostGIS
from profiling.store._migrations import (
    ANALYST_ROLE,
    LATEST,
    ROLES,
    SUPERVISOR_ROLE,
    now,
    register_gpkg_layer,
)
from profiling.store._sealed import personal_key, seal, unseal

log = logging.getLogger(__name__)

#: Environment variable that holds the secret of the pseudonymous household ids.
SECRET_ENV = "PROFILING_SECRET"
#: How many of the latest reads of personal data ``store status`` shows.
STATUS_ACCESS_ROWS = 5
#: Environment variable that gives the reason recorded with each read of personal data.
REASON_ENV = "PROFILING_ACCESS_REASON"
#: The shortest secret accepted (characters).
MIN_SECRET_LENGTH = 16
#: The view analysis reads: the households without personal fields, keyed by pseudonymous id,
#: located by settlement and H3 cell only (``profiling_analyst``).
HOUSEHOLDS_VIEW = "analysis_households"
#: The view field supervision reads: the households with their points and interview times,
#: nothing of the personal table (``profiling_supervisor``).
SUPERVISION_VIEW = "supervision_households"
#: Household columns the analysis view leaves out: the point and whatever narrows it (its
#: precision, the distance to the nearest settlement), the interview times and who made the
#: interview (supervision's business), the way back to a raw export's row.
NOT_FOR_ANALYSTS = ("latitude", "longitude", "gps_precision", "distance_m", "submitted_at",
                    "start", "end", "enumerator", "source_file", "source_row")
#: Columns of the household frame a de-identified export leaves out (true location, the way
#: back to a row of a raw export).
NOT_EXPORTED = ("latitude", "longitude", "gps_precision", "source_file", "source_row")
_RESERVED = {"fid", "household_id", "load_id", "superseded_by", "geom", "submission_key"}
_CHECK = b"profiling store: secret check"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_LOGIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,62}")
COUNT_KEYS = ("read", "accepted", "rejected", "duplicates", "no_consent", "outside_settlements",
              "values_dropped")


# --------------------------------------------------------------------------------------------
# The secret and the pseudonymous ids
# --------------------------------------------------------------------------------------------

def read_secret(secret_file: str | Path | None = None) -> bytes:
    """The secret of the pseudonymous ids: ``$PROFILING_SECRET``, else the file's content.

    Surrounding whitespace is ignored. It must be at least :data:`MIN_SECRET_LENGTH` characters;
    it is never written to the store, and the same secret must be used for every load of a store.
    """
    value = os.environ.get(SECRET_ENV, "").strip()
    source = f"the environment variable {SECRET_ENV}"
    if not value and secret_file is not None:
        path = Path(secret_file)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"the store's secret file {path} does not exist; create it (e.g. "
                              "`python -c 'import secrets; print(secrets.token_hex(32))' > "
                              f"{path}`) and keep it outside the store, or set {SECRET_ENV}")
        value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise ConfigError(f"no secret for the pseudonymous household ids: set {SECRET_ENV} or "
                          "name a file in the configuration (store: secret_file: ...); keep "
                          "it outside the store and use the same one for every load")
    if len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(f"the secret in {source} is {len(value)} characters long; use at "
                          f"least {MIN_SECRET_LENGTH} (e.g. 64 random hexadecimal digits)")
    return value.encode("utf-8")


def pseudonyms(secret: bytes, keys: pd.Series | Sequence[str]) -> np.ndarray:
    """HMAC-SHA256(secret, key) in hexadecimal for each submission key (None stays None).

    The HMAC is computed from SHA-256 states primed once with the padded secret (RFC 2104),
    which is twice as fast as :func:`hmac.digest` per key and gives the same value.
    """
    values = keys.tolist() if isinstance(keys, pd.Series) else list(keys)
    block = secret if len(secret) <= 64 else hashlib.sha256(secret).digest()
    block = block.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def one(k: object) -> str | None:
        if k is None or k is pd.NA or k != k:
            return None
        i = inner.copy()
        i.update(str(k).encode("utf-8"))
        o = outer.copy()
        o.update(i.digest())
        return o.hexdigest()

    return np.array([one(k) for k in values], dtype=object)


def _order(ids: np.ndarray) -> np.ndarray:
    """Positions that sort ids (strings)."""
    return np.asarray(pc.sort_indices(pa.array(ids, type=pa.string(), from_pandas=True)))


def _member(values: Any, of: Any) -> np.ndarray:
    """Whether each of ``values`` (strings, None) is one of ``of``, as a boolean array."""
    def arrow(v: Any) -> pa.Array:
        return pa.array(np.asarray(v, dtype=object), type=pa.string(), from_pandas=True)

    return np.asarray(pc.fill_null(pc.is_in(arrow(values), value_set=arrow(of)), False),
                      dtype=bool)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------

@dataclass
class Provenance:
    """Who loads and why; the files' names, sha256 and rows come from the ingest result."""

    loaded_by: str = field(default_factory=lambda: _who())
    note: str | None = None


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no user name in this environment
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass
class LoadSummary:
    """What one load did.

    ``counts`` is the load's accounting (read = accepted + rejected + duplicates + no_consent),
    where a submission older than the store's version of its key counts as a duplicate.
    ``changes``: ``added`` households new to the analysis, ``replaced`` by a newer version,
    ``removed`` by a newer submission that is rejected or refused, ``older`` submissions that
    changed nothing, ``rejects`` entries stored.
    """

    load_id: int | None
    files: list[str]
    skipped: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    changes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class _Incoming:
    """What one load writes, prepared before the write lock is taken; rows in id order."""

    #: every distinct keyed submission: household_id, status, submitted_at
    submissions: pd.DataFrame
    #: accepted households: household_id, geom (the backend's encoding), row (in the frame)
    households: pd.DataFrame
    #: household_id, submission_key and the direct fields (accepted and rejected submissions)
    personal: pd.DataFrame
    #: rejects with household_id in place of the key
    rejects: pd.DataFrame
    #: rejected rows without a key (malformed records, no submission key)
    unkeyed: int
    #: The roster's members of the accepted households (None without a roster).
    members: pd.DataFrame | None = None


@dataclass
class StoreStatus:
    """What a store holds."""

    where: str
    backend: str
    schema_version: int
    counts: dict[str, int]
    by_settlement: pd.DataFrame
    by_load: pd.DataFrame
    rejects: pd.DataFrame
    last_load: dict[str, Any] | None
    #: The latest reads of personal data (:meth:`Store.access_log`).
    access: pd.DataFrame = field(default_factory=pd.DataFrame)

    def as_json(self) -> dict[str, Any]:
        """The status for scripts and monitoring (``profiling store status --json``)."""
        def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return json.loads(frame.to_json(orient="records", date_format="iso"))

        return {"store": self.where, "backend": self.backend,
                "schema_version": self.schema_version, "counts": self.counts,
                "by_settlement": rows(self.by_settlement), "loads": rows(self.by_load),
                "rejects": rows(self.rejects), "access_log": rows(self.access)}


# --------------------------------------------------------------------------------------------
# Column registry: the questionnaire's columns and their pandas dtypes
# --------------------------------------------------------------------------------------------

def _dtype_name(dtype: Any) -> str:
    if isinstance(dtype, pd.StringDtype):
        return f"string[{dtype.storage}]" if dtype.na_value is pd.NA else "str"
    return str(dtype)


def _role(dtype_name: str) -> str:
    """SQL role of a pandas dtype: int, float, bool, time or text."""
    d = dtype_name.lower()
    if d.startswith("datetime64"):
        return "time"
    if d in ("boolean", "bool"):
        return "bool"
    if d.startswith(("int", "uint")):
        return "int"
    if d.startswith("float"):
        return "float"
    return "text"


def _to_sql(frame: pd.DataFrame, columns: Sequence[tuple[str, str]], ms: bool = False,
            take: np.ndarray | None = None) -> dict[str, list[Any]]:
    """The frame's columns in SQL form: times as ISO 8601 text in UTC (to the millisecond with
    ``ms``, as GeoPackage's DATETIME has it; to the microsecond otherwise), text as Python
    objects; only the rows at positions ``take`` when it is given, in that order."""
    out: dict[str, list[Any]] = {}
    for name, dtype in columns:
        s = frame[name] if name in frame.columns else pd.Series(None, index=frame.index,
                                                                dtype=object)
        role = _role(dtype)
        if role == "time":
            t = pd.to_datetime(s, utc=True).dt.tz_localize(None).to_numpy("datetime64[us]")
            txt = np.datetime_as_string(t, unit="ms" if ms else "us", timezone="UTC").astype(
                object)
            txt[np.isnat(t)] = None
        else:
            txt = s.to_numpy(dtype=object, na_value=None)
        out[name] = (txt if take is None else txt[take]).tolist()
    return out


def _from_sql(values: Sequence[Any], dtype: str) -> pd.Series:
    """One column read back from either backend (a sequence of Python values, None for
    missing), with the dtype it had in the frame loaded. Built through Arrow: no Python loop."""
    role = _role(dtype)
    if role == "time":
        arr = (pa.array(values, type=pa.string())  # GeoPackage: ISO 8601 text
               if any(isinstance(v, str) for v in values[:100])
               else pa.array(values, type=pa.timestamp("us", "UTC")))
    elif role == "bool":
        first = next((v for v in values if v is not None), None)
        arr = (pa.array(values, type=pa.bool_()) if isinstance(first, bool)  # PostGIS
               else pa.array(values, type=pa.int8()))  # SQLite's 0 and 1
    elif role == "int":
        arr = pa.array(values, type=pa.int64())
    elif role == "float":
        arr = pa.array(values, type=pa.float64())
    elif dtype == "object":
        return pd.Series(list(values), dtype=object)
    else:
        arr = pa.array(values, type=pa.string())
    return _from_arrow(arr, dtype)


def _from_arrow(arr: pa.Array | pa.ChunkedArray, dtype: str) -> pd.Series:
    """One column as Arrow (from :func:`_from_sql`, or read by GDAL), with its frame dtype."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    role = _role(dtype)
    if role == "time":
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            s = pd.to_datetime(pd.Series(arr.cast(pa.string())), utc=True, format="ISO8601")
        else:
            s = pd.to_datetime(pd.Series(arr.cast(pa.timestamp("us", "UTC")).to_pandas()),
                               utc=True)
    elif role == "bool":
        s = pd.Series(arr if pa.types.is_boolean(arr.type) else arr.cast(pa.bool_())).astype(
            "boolean")
    elif role == "int":
        arr = arr.cast(pa.int64())
        if arr.null_count and not dtype[:1].isupper():
            dtype = "Int64"
        s = pd.Series(arr).astype("Int64")
    elif role == "float":
        s = pd.Series(arr.cast(pa.float64()).to_numpy(zero_copy_only=False))
    elif dtype == "object":
        s = pd.Series(arr.to_pylist(), dtype=object)
    else:
        s = pd.Series(pd.arrays.ArrowStringArray(arr.cast(pa.string())))
    return s.astype(dtype)


def _frame_of(rows: Sequence[Sequence[Any]], columns: Sequence[tuple[str, str]]
              ) -> pd.DataFrame:
    """Rows read from the store as a frame with the registered dtypes."""
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    return pd.DataFrame({name: _from_sql(c, dtype)
                         for (name, dtype), c in zip(columns, cols, strict=True)})


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------

def open_store(url_or_path: str | Path, secret: bytes, *, create: bool = True,
               h3_resolution: int | None = None, purpose: str = "a Python session") -> Store:
    """Open (and create or upgrade) a store.

    Parameters
    ----------
    url_or_path
        A GeoPackage path (``.gpkg``) or a ``postgresql+psycopg://`` URL.
    secret
        The secret of the pseudonymous ids (:func:`read_secret`); a store refuses a secret
        other than the one it was made with.
    create
        Make a new store where there is none (otherwise that is an error).
    h3_resolution
        The H3 resolution of the analysts' location cells, for a new store (a store keeps
        the one it was made with; default :data:`_migrations.DEFAULT_H3_RESOLUTION`).
    purpose
        The command or reason its reads of personal data are recorded under (``access_log``).
    """
    target = str(url_or_path)
    if "://" in target:
        scheme = target.split("://", 1)[0]
        if scheme in ("postgresql", "postgres"):
            target = "postgresql+psycopg://" + target.split("://", 1)[1]
        elif scheme != "postgresql+psycopg":
            raise StoreError(f"store url {target.split('@')[-1]!r}: expected a GeoPackage path "
                             "or a postgresql+psycopg:// URL")
        backend: Backend = PostGIS.open(target)
    else:
        path = Path(target)
        if path.suffix.lower() != ".gpkg":
            raise StoreError(f"store {path}: a GeoPackage store needs the .gpkg extension")
        if path.is_dir():
            raise StoreError(f"store {path} is a folder, not a GeoPackage file")
        if path.exists() and path.stat().st_size > 0:
            with path.open("rb") as f:
                head = f.read(72)
            if not head.startswith(b"SQLite format 3\x00") or head[68:72] != b"GPKG":
                raise StoreError(f"store {path} exists and is not a GeoPackage; give the path "
                                 "of a store made by `profiling load`, or a new file")
        elif not create:
            raise StoreError(f"store {path} does not exist")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        backend = GeoPackage.open(path)
    store = Store(backend, secret, h3_resolution, purpose)
    try:
        store._open(create)
    except BaseException:
        store.close()
        raise
    return store


def open_configured(cfg: Config, purpose: str = "a Python session") -> Store:
    """The store named by a configuration, with its secret (``purpose``: what its reads of
    personal data are recorded as, e.g. the command)."""
    if cfg.store is None:
        raise ConfigError("the configuration has no 'store' section; add e.g. "
                          "`store: {url: enumeration.gpkg}` (a GeoPackage beside the "
                          "configuration) or a postgresql+psycopg:// URL")
    return open_store(cfg.store.url, read_secret(cfg.store.secret_file),
                      h3_resolution=cfg.map.h3_resolution, purpose=purpose)


class Store:
    """An open enumeration store (use :func:`open_store`); a context manager."""

    def __init__(self, backend: Backend, secret: bytes, h3_resolution: int | None = None,
                 purpose: str = "a Python session") -> None:
        self._b = backend
        self._secret = secret
        self._h3 = h3_resolution
        self._key = personal_key(secret)
        #: What the reads of personal data are recorded as being for (``access_log.command``).
        self.purpose = purpose

    # -- plumbing -----------------------------------------------------------------------------
    @property
    def where(self) -> str:
        """The GeoPackage path or the URL (password hidden)."""
        return self._b.where

    @property
    def where_url(self) -> str:
        """The GeoPackage path or the URL with its password (for pg_dump; never printed)."""
        if self._b.dialect == "sqlite":
            return self._b.where
        return self._b.engine.url.render_as_string(hide_password=False)

    @property
    def backend(self) -> str:
        """``geopackage`` or ``postgis``."""
        return "geopackage" if self._b.dialect == "sqlite" else "postgis"

    def close(self) -> None:
        """Release the connections."""
        self._b.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _connect(self, write: bool) -> Iterator[Connection]:
        try:
            with self._b.engine.connect() as conn:
                (self._b.begin_write if write else self._b.begin_read)(conn)
                yield conn
                if write:
                    conn.commit()
                else:
                    conn.rollback()
        except OperationalError as exc:
            raise StoreError(f"store {self.where}: {_first_line(exc)}") from None

    @property
    def _ms(self) -> bool:
        """Whether times are kept to the millisecond (GeoPackage) rather than the microsecond."""
        return self._b.dialect == "sqlite"

    def _q(self, name: str) -> str:
        return self._b.quote(name)

    def _p(self, sql: str) -> str:
        """SQL written with ``?`` placeholders in the driver's style."""
        return sql if self._b.mark == "?" else sql.replace("?", self._b.mark)

    def _rows(self, conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(conn.exec_driver_sql(self._p(sql), tuple(params)).fetchall())

    def _open(self, create: bool) -> None:
        with self._connect(write=True) as conn:
            version = _migrations.current_version(conn, self._b.dialect)
            if version == 0 and self._b.dialect == "sqlite" and conn.exec_driver_sql(
                    "SELECT COUNT(*) FROM sqlite_master").scalar():
                raise StoreError(f"store {self.where} is a GeoPackage but not an enumeration "
                                 "store (it has no schema_version table); give a new file name")
            if version == 0 and not create:
                raise StoreError(f"store {self.where} holds no enumeration store")
            if version > LATEST:
                raise StoreError(f"store {self.where} has schema version {version}, made by a "
                                 f"newer profiling than this one ({__version__}, schema "
                                 f"{LATEST}); upgrade profiling")
            if version == 0 and self._b.dialect != "sqlite":
                try:
                    conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS postgis")
                except DBAPIError as exc:
                    raise StoreError(f"store {self.where}: PostGIS is not available in this "
                                     f"database ({_first_line(exc)}); a database "
                                     "administrator can run CREATE EXTENSION postgis") from None
            applied = _migrations.upgrade(conn, self._b.dialect, __version__)
            if applied:
                log.info("store %s: schema steps %s applied", self.where, applied)
                if version > 0:  # the views of an older store, as this version makes them
                    self._refresh_view(conn)
            check = hmac.digest(self._secret, _CHECK, "sha256").hex()
            stored = conn.exec_driver_sql(self._p(
                "SELECT value FROM store_meta WHERE name = ?"), ("secret_check",)).scalar()
            if stored is None:
                conn.exec_driver_sql(self._p("INSERT INTO store_meta VALUES (?, ?)"),
                                     ("secret_check", check))
                conn.exec_driver_sql(self._p("INSERT INTO store_meta VALUES (?, ?)"),
                                     ("created_at", now()))
                if self._h3 is not None:
                    conn.exec_driver_sql(self._p(
                        "UPDATE store_meta SET value = ? WHERE name = 'h3_resolution'"),
                        (str(self._h3),))
                self._refresh_view(conn)
            elif not hmac.compare_digest(stored, check):
                raise StoreError(f"store {self.where} was made with another secret: household "
                                 "ids would not match; use the secret this store was made with")
            if conn.exec_driver_sql(self._p("SELECT value FROM store_meta WHERE name = ?"),
                                    ("personal_sealed",)).scalar() is None:
                self._seal_existing(conn)
                conn.exec_driver_sql(self._p("INSERT INTO store_meta VALUES (?, ?)"),
                                     ("personal_sealed", now()))

    def _seal_existing(self, conn: Connection) -> None:
        """Seal the personal fields a store made before they were sealed holds in clear
        (once, as it is opened with its secret). Its file may keep the old text in free pages
        until SQLite reuses them: VACUUM the GeoPackage afterwards."""
        names = [n for n, _ in self._columns(conn, "personal")]
        rows = self._rows(conn, "SELECT household_id, submission_key"
                          + "".join(f", {self._q(n)}" for n in names) + " FROM personal")
        if not rows:
            return
        cols = list(zip(*rows, strict=True))
        sealed = [seal(c, n, self._key) for c, n in zip(cols[1:], ["submission_key", *names],
                                                         strict=True)]
        sets = ", ".join(f"{self._q(n)} = ?" for n in ["submission_key", *names])
        conn.exec_driver_sql(self._p(f"UPDATE personal SET {sets} WHERE household_id = ?"),
                             [(*vals, hid) for hid, *vals in zip(cols[0], *sealed,
                                                                 strict=True)])
        log.warning("store %s: the personal fields of %d households sealed (they were kept in "
                    "clear by an older profiling)", self.where, len(rows))

    def _h3_resolution(self, conn: Connection) -> int:
        """The H3 resolution of the analysts' cells, fixed when the store was made."""
        value = conn.exec_driver_sql(self._p("SELECT value FROM store_meta WHERE name = ?"),
                                     ("h3_resolution",)).scalar()
        return int(value) if value is not None else _migrations.DEFAULT_H3_RESOLUTION

    def schema_version(self) -> int:
        """The store's schema version."""
        with self._connect(write=False) as conn:
            return _migrations.current_version(conn, self._b.dialect)

    # -- columns --------------------------------------------------------------------------------
    def _columns(self, conn: Connection, table: str) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self._rows(
            conn, "SELECT name, dtype FROM store_columns WHERE table_name = ? ORDER BY position",
            (table,))]

    def _ensure_columns(self, conn: Connection, table: str, frame: pd.DataFrame,
                        tables: Sequence[str]) -> list[tuple[str, str]]:
        """Add the frame's new columns to ``tables`` (registered under ``table``)."""
        have = self._columns(conn, table)
        known = dict(have)
        added: list[tuple[str, str]] = []
        types = _migrations.types(self._b.dialect)
        for name in frame.columns:
            dtype = _dtype_name(frame[name].dtype)
            if name in known:
                if _role(known[name]) != _role(dtype):
                    raise StoreError(f"store {self.where}: column {name!r} holds "
                                     f"{known[name]} values, and this load brings {dtype}; "
                                     "was the questionnaire changed?")
                continue
            if name in _RESERVED:
                raise StoreError(f"the questionnaire has a field named {name!r}, a name the "
                                 "store uses itself; rename it with a field_mapping")
            if self._b.dialect != "sqlite" and len(name.encode()) > 63:
                raise StoreError(f"column {name!r} is longer than PostgreSQL's 63 bytes")
            for t in tables:
                conn.exec_driver_sql(f"ALTER TABLE {t} ADD COLUMN {self._q(name)} "
                                     f"{types[_role(dtype)]}")
            conn.exec_driver_sql(self._p("INSERT INTO store_columns VALUES (?, ?, ?, ?)"),
                                 (table, name, dtype, len(have) + len(added)))
            added.append((name, dtype))
        if added and table == "households":
            self._refresh_view(conn)
        return have + added

    def _refresh_view(self, conn: Connection) -> None:
        """The analysts' view (no point, no interview times: the settlement and the H3 cell)
        and the supervisors' (the points and times), each over the current households; on a
        GeoPackage both are layers, on PostGIS each is granted to its role."""
        names = [n for n, _ in self._columns(conn, "households")]
        plain = "".join(f", {self._q(n)}" for n in names if n not in NOT_FOR_ANALYSTS)
        every = "".join(f", {self._q(n)}" for n in names)
        for view in (HOUSEHOLDS_VIEW, SUPERVISION_VIEW):
            conn.exec_driver_sql(f"DROP VIEW IF EXISTS {view}")
        conn.exec_driver_sql(f'CREATE VIEW {HOUSEHOLDS_VIEW} AS SELECT household_id AS "key"'
                             f"{plain}, h3_cell FROM households")
        # fid first: GeoPackage readers take a view's first integer column as its key
        conn.exec_driver_sql(f'CREATE VIEW {SUPERVISION_VIEW} AS SELECT fid, household_id AS '
                             f'"key"{every}, geom FROM households')
        if self._b.dialect == "sqlite":
            register_gpkg_layer(conn, HOUSEHOLDS_VIEW, "attributes",
                                "households for analysis: no personal fields, pseudonymous ids, "
                                "located by settlement and H3 cell")
            register_gpkg_layer(conn, SUPERVISION_VIEW, "features",
                                "households for field supervision: points and interview times, "
                                "no personal fields")
            return
        for view, role in ((HOUSEHOLDS_VIEW, ANALYST_ROLE), (SUPERVISION_VIEW, SUPERVISOR_ROLE)):
            if conn.exec_driver_sql(self._p("SELECT 1 FROM pg_roles WHERE rolname = ?"),
                                    (role,)).first():
                conn.exec_driver_sql(f"GRANT SELECT ON {view} TO {role}")
        if conn.exec_driver_sql(self._p("SELECT 1 FROM pg_roles WHERE rolname = ?"),
                                (ROLES["loader"],)).first():
            conn.exec_driver_sql(f"GRANT SELECT ON {HOUSEHOLDS_VIEW}, {SUPERVISION_VIEW} TO "
                                 f"{ROLES['loader']}")

    # -- loading --------------------------------------------------------------------------------
    def loaded_sha256s(self) -> set[str]:
        """The sha256 of every file loaded so far."""
        with self._connect(write=False) as conn:
            return {r[0] for r in self._rows(conn, "SELECT sha256 FROM load_files")}

    def load(self, result: IngestResult, provenance: Provenance | None = None) -> LoadSummary:
        """Merge one ingest result into the store, in one transaction.

        Parameters
        ----------
        result
            Ingest of one or more exports (:func:`profiling.ingest.ingest`), which has already
            resolved the duplicates within them.
        provenance
            Who loads, and a note.

        Returns
        -------
        LoadSummary
            ``skipped`` when every file of ``result`` was loaded before (nothing changes).
        """
        t0 = time.perf_counter()
        prov = provenance or Provenance()
        files = [Path(i.path).name for i in result.inputs]
        if not result.inputs:
            raise StoreError("nothing to load: the ingest result names no export")
        inc = self._incoming(result, submission_index(result))
        log.debug("load prepared in %.1f s (ids, points, rows)", time.perf_counter() - t0)
        with self._connect(write=True) as conn:
            log.debug("store %s: write lock held", self.where)
            known = {r[0]: r[1] for r in self._rows(conn, (
                "SELECT sha256, load_id FROM load_files WHERE sha256 IN ("
                + ", ".join("?" * len(result.inputs)) + ")"), [i.sha256 for i in result.inputs])}
            if len(known) == len(result.inputs):
                log.info("already loaded (load %s): %s", sorted(set(known.values())),
                         ", ".join(files))
                return LoadSummary(None, files, skipped=True,
                                   seconds=time.perf_counter() - t0)
            if known:
                raise StoreError("some of these files were loaded before and some not: "
                                 + ", ".join(f"{Path(i.path).name} (load {known[i.sha256]})"
                                             for i in result.inputs if i.sha256 in known)
                                 + "; load the new files on their own")
            load_id = self._begin_load(conn, result, prov)
            summary = self._merge(conn, load_id, result, inc)
            summary.files = files
            summary.seconds = time.perf_counter() - t0
            log.info("load %d (%s): %s; %s", load_id, ", ".join(files), summary.counts,
                     summary.changes)
        log.debug("store %s: load %d committed (%.1f s)", self.where, load_id,
                  time.perf_counter() - t0)
        return summary

    def _incoming(self, result: IngestResult, idx: pd.DataFrame) -> _Incoming:
        """Everything a load writes, prepared before the lock is taken."""
        hh = result.households
        ids = pseudonyms(self._secret, idx["key"])
        known = pd.Index(idx["key"].astype(object).to_numpy(), dtype=object)
        if not known.is_unique:
            raise StoreError("the submission index lists a key twice; ingest resolves "
                             "duplicates within a load")
        # rows are written in the order of their ids (SQLite then appends to its indexes):
        # the ids are sorted once, other rows are ordered by the rank of their key's id
        order = _order(ids)
        rank = np.empty(len(ids), dtype=np.int64)
        rank[order] = np.arange(len(ids))

        def ids_of(keys: pd.Series) -> tuple[np.ndarray, np.ndarray]:
            """The ids of keys (those of the index hashed once, others here), and ranks."""
            k = keys.astype(object).to_numpy()
            pos = known.get_indexer(k)
            out = np.full(len(k), None, dtype=object)
            hit = pos >= 0
            out[hit] = ids[pos[hit]]
            miss = ~hit & pd.notna(k)
            if miss.any():
                out[miss] = pseudonyms(self._secret, list(k[miss]))
            return out, np.where(hit, rank[np.maximum(pos, 0)], len(ids) + np.arange(len(k)))

        def text(column: str) -> pd.Series:
            v = (idx[column].astype("string").to_numpy(dtype=object, na_value=None)
                 if column in idx.columns else np.full(len(idx), None, dtype=object))
            return pd.Series(v[order], dtype=object)

        subs = pd.DataFrame({"household_id": pd.Series(ids[order], dtype=object),
                             "status": pd.Series(idx["status"].to_numpy()[order], dtype=object),
                             "submitted_at": pd.to_datetime(idx["submitted_at"], utc=True)
                             .iloc[order].reset_index(drop=True),
                             "enumerator": text("enumerator"),
                             "interview_start": text("start"), "interview_end": text("end")})
        hh_ids, hh_rank = ids_of(hh["key"]) if len(hh) else (np.array([], dtype=object),
                                                             np.array([], dtype=np.int64))

        def coordinate(name: str) -> np.ndarray:
            if name not in hh.columns:
                return np.full(len(hh), np.nan)
            return np.asarray(pd.to_numeric(hh[name], errors="coerce"), dtype=float)

        households = pd.DataFrame({
            "household_id": pd.Series(hh_ids, dtype=object),
            "geom": pd.Series(self._b.points(coordinate("longitude"), coordinate("latitude")),
                              dtype=object),
            "row": np.arange(len(hh))}).iloc[np.argsort(hh_rank, kind="stable")]
        personal = result.personal
        p_ids, p_rank = ids_of(personal["key"])
        rejected = idx.loc[idx["status"] == "rejected", "key"]
        r_ids, r_rank = ids_of(rejected)
        pers = pd.concat([
            personal.drop(columns=["key"]).assign(
                household_id=pd.Series(p_ids, dtype=object, index=personal.index),
                submission_key=personal["key"].astype(object)),
            pd.DataFrame({"household_id": pd.Series(r_ids, dtype=object),
                          "submission_key": pd.Series(rejected.to_numpy(), dtype=object)})],
            ignore_index=True)
        pers = pers.iloc[np.argsort(np.concatenate([p_rank, r_rank]), kind="stable")]
        rej = result.rejects
        rejects = pd.DataFrame({
            "household_id": ids_of(rej["key"])[0],
            "file": rej["file"].astype(object), "row": rej["row"].astype("Int64"),
            "field": rej["field"].astype(object), "value": rej["value"].astype(object),
            "action": rej["action"].astype(object), "reason": rej["reason"].astype(object)})
        # rows without a key that are households' (a roster's rejected members are not)
        unkeyed = int(((rej["action"] == ROW_REJECTED) & rej["key"].isna()
                       & ~rej["field"].isin([MEMBER_LINK, MEMBER_ROW])).sum())
        members = None
        if result.members is not None:
            mem = result.members
            m_ids, m_rank = ids_of(mem["key"])
            members = mem.drop(columns=["key"]).assign(
                household_id=pd.Series(m_ids, dtype=object, index=mem.index),
                position=mem.groupby("key", sort=False).cumcount().to_numpy() + 1
            ).iloc[np.argsort(m_rank, kind="stable")]
        return _Incoming(subs, households, pers, rejects, unkeyed, members)

    def _begin_load(self, conn: Connection, result: IngestResult, prov: Provenance) -> int:
        load_id = int(conn.exec_driver_sql(self._p(
            "INSERT INTO loads (started_at, software_version, loaded_by, note) "
            "VALUES (?, ?, ?, ?) RETURNING load_id"),
            (now(), __version__, prov.loaded_by, prov.note)).scalar_one())
        self._b.insert(conn, "load_files", pd.DataFrame({
            "load_id": load_id, "position": range(len(result.inputs)),
            "file_name": [Path(i.path).name for i in result.inputs],
            "path": [str(i.path) for i in result.inputs],
            "sha256": [i.sha256 for i in result.inputs],
            "format": [i.format for i in result.inputs],
            "rows": [int(i.rows) for i in result.inputs],
            "labels": [i.labels for i in result.inputs],
            "columns_used": [int(i.columns_used) for i in result.inputs],
            "columns_ignored": [json.dumps(i.columns_ignored) for i in result.inputs],
        }, dtype=object))
        return load_id

    def _known(self, conn: Connection, ids: pd.Series) -> pd.DataFrame:
        """The store's current submission of each of ``ids`` that it knows."""
        cols = ["household_id", "status_prev", "submitted_at_prev"]
        if not conn.exec_driver_sql("SELECT 1 FROM submissions LIMIT 1").first():
            return pd.DataFrame(columns=cols)
        conn.exec_driver_sql(self._b.temp_table("incoming_ids", "household_id TEXT PRIMARY KEY"))
        self._b.insert(conn, "incoming_ids", pd.DataFrame({"household_id": ids.to_numpy()}))
        rows = self._rows(conn, "SELECT s.household_id, s.status, s.submitted_at FROM "
                                "submissions s JOIN incoming_ids i ON i.household_id = "
                                "s.household_id")
        if self._b.dialect == "sqlite":
            conn.exec_driver_sql("DROP TABLE temp.incoming_ids")
        return _frame_of(rows, [("household_id", "object"), ("status_prev", "object"),
                                ("submitted_at_prev", "datetime64[us, UTC]")])

    def _merge(self, conn: Connection, load_id: int, result: IngestResult,
               inc: _Incoming) -> LoadSummary:
        q = self._q
        subs = inc.submissions
        known = self._known(conn, subs["household_id"])
        m = subs.merge(known, on="household_id", how="left") if len(known) else subs.assign(
            status_prev=pd.Series(pd.NA, index=subs.index, dtype=object),
            submitted_at_prev=pd.Series(pd.NaT, index=subs.index, dtype="datetime64[us, UTC]"))
        t, prev_t = m["submitted_at"], m["submitted_at_prev"]
        is_known = m["status_prev"].notna()
        # the latest submission wins; on a tie the later load (this one); no time = the oldest
        wins = ~is_known | prev_t.isna() | (t.notna() & (t >= prev_t)).fillna(False)
        wins = wins.to_numpy(dtype=bool)
        winners = m.loc[wins]
        stale = m.loc[~wins]
        was_acc = (winners["status_prev"] == "accepted").to_numpy()
        now_acc = (winners["status"] == "accepted").to_numpy()
        log.debug("load %d: %d incoming, %d newer or new, %d older", load_id, len(m),
                  len(winners), len(stale))

        # 1. the versions this load replaces go to history; a refusal erases the household
        moving = winners.loc[winners["status_prev"].notna()]
        if len(moving):
            conn.exec_driver_sql(self._b.temp_table(
                "winners", "household_id TEXT PRIMARY KEY, prev TEXT, status TEXT"))
            self._b.insert(conn, "winners", pd.DataFrame({
                "household_id": moving["household_id"].to_numpy(),
                "prev": moving["status_prev"].astype(object).to_numpy(),
                "status": moving["status"].astype(object).to_numpy()}))
            hcols = "".join(f", {q(n)}" for n, _ in self._columns(conn, "households"))
            sel = "SELECT household_id FROM winners"
            conn.exec_driver_sql(
                f"INSERT INTO households_history (household_id, load_id, superseded_by, geom, "
                f"h3_cell{hcols}) SELECT household_id, load_id, {load_id}, geom, h3_cell{hcols} "
                "FROM households "
                f"WHERE household_id IN ({sel} WHERE prev = 'accepted' AND status <> "
                "'no_consent')")
            for sql in (f"DELETE FROM households WHERE household_id IN ({sel} WHERE prev = "
                        "'accepted')",
                        # a newer version brings its own roster (a refusal erases it)
                        f"DELETE FROM members WHERE household_id IN ({sel})",
                        f"DELETE FROM personal WHERE household_id IN ({sel})",
                        f"DELETE FROM submissions WHERE household_id IN ({sel})",
                        f"DELETE FROM households_history WHERE household_id IN ({sel} WHERE "
                        "status = 'no_consent')",
                        f"DELETE FROM rejects WHERE household_id IN ({sel} WHERE status = "
                        "'no_consent')"):
                conn.exec_driver_sql(sql)
            if self._b.dialect == "sqlite":
                conn.exec_driver_sql("DROP TABLE temp.winners")

        # 2. the new current submissions and households
        self._b.insert(conn, "submissions", pd.DataFrame({
            "household_id": winners["household_id"].to_numpy(),
            "status": winners["status"].astype(object).to_numpy(),
            "submitted_at": _to_sql(winners, [("submitted_at", "datetime64[us, UTC]")],
                                    self._ms)["submitted_at"],
            "load_id": load_id,
            **{c: winners[c].to_numpy(dtype=object)
               for c in ("enumerator", "interview_start", "interview_end")}}))
        win_ids = winners["household_id"].to_numpy(dtype=object)
        frame = result.households
        hh = inc.households
        every = len(winners) == len(m)  # nothing older than the store's: all rows are written
        if not every:
            hh = hh.loc[_member(hh["household_id"], win_ids)]
        if len(frame):
            cols = self._ensure_columns(conn, "households", frame.drop(columns=["key"]),
                                        ["households", "households_history"])
            rows = hh["row"].to_numpy()
            cells = h3_cells(frame["latitude"].to_numpy()[rows] if "latitude" in frame else
                             np.full(len(rows), np.nan), frame["longitude"].to_numpy()[rows]
                             if "longitude" in frame else np.full(len(rows), np.nan),
                             self._h3_resolution(conn))
            self._b.insert(conn, "households", {
                "household_id": hh["household_id"].to_numpy(), "load_id": [load_id] * len(hh),
                "geom": hh["geom"].to_numpy(), "h3_cell": cells,
                **_to_sql(frame, [c for c in cols if c[0] in frame.columns], self._ms,
                          take=hh["row"].to_numpy())})
            log.debug("load %d: %d households written", load_id, len(hh))
        log.debug("load %d: personal fields", load_id)
        pers = inc.personal
        if not every:
            pers = pers.loc[_member(pers["household_id"], win_ids)]
        if len(pers):
            # personal fields are kept as text, sealed (profiling.store._sealed)
            direct = pers.drop(columns=["household_id", "submission_key"]).astype(STRING)
            pcols = self._ensure_columns(conn, "personal", direct, ["personal"])
            values = _to_sql(direct, [c for c in pcols if c[0] in direct.columns], self._ms)
            self._b.insert(conn, "personal", {
                "household_id": pers["household_id"].to_numpy(),
                "submission_key": seal(pers["submission_key"], "submission_key", self._key),
                "load_id": [load_id] * len(pers),
                **{name: seal(v, name, self._key) for name, v in values.items()}})
        mem = inc.members
        if mem is not None and len(mem):
            if not every:
                mem = mem.loc[_member(mem["household_id"], win_ids)]
            fields = mem.drop(columns=["household_id", "position"])
            mcols = self._ensure_columns(conn, "members", fields, ["members"])
            self._b.insert(conn, "members", {
                "household_id": mem["household_id"].to_numpy(),
                "load_id": [load_id] * len(mem), "position": mem["position"].to_numpy(),
                **_to_sql(mem, [c for c in mcols if c[0] in mem.columns], self._ms)})
            log.debug("load %d: %d members written", load_id, len(mem))
        rej = inc.rejects
        if not every:
            rej = rej.loc[rej["household_id"].isna().to_numpy()
                          | _member(rej["household_id"], win_ids)]
        self._b.insert(conn, "rejects", rej.assign(load_id=load_id))

        log.debug("load %d: rejects written", load_id)

        # 3. the load's accounting and what it changed
        c = result.counts
        stale_by = stale["status"].value_counts()
        counts = {
            "read": int(c["read"]),
            "accepted": int(c["accepted"]) - int(stale_by.get("accepted", 0)),
            "rejected": int(c["rejected"]) - int(stale_by.get("rejected", 0)),
            "duplicates": int(c["duplicates"]) + len(stale),
            "no_consent": int(c["no_consent"]) - int(stale_by.get("no_consent", 0)),
            "outside_settlements": int(frame["settlement_id"].iloc[hh["row"].to_numpy()]
                                       .isna().sum()) if len(hh) else 0,
            "values_dropped": int((rej["action"] == VALUE_DROPPED).sum()),
        }
        if "members_read" in c:
            conn.exec_driver_sql(self._p(
                "UPDATE loads SET members_read = ?, members_rejected = ? WHERE load_id = ?"),
                (int(c["members_read"]), int(c["members_rejected"]), load_id))
        changes = {"added": int((now_acc & ~was_acc).sum()),
                   "replaced": int((now_acc & was_acc).sum()),
                   "removed": int((~now_acc & was_acc).sum()),
                   "older": len(stale), "rejects": len(rej)}
        conn.exec_driver_sql(self._p(
            "UPDATE loads SET finished_at = ?, read = ?, accepted = ?, rejected = ?, "
            "duplicates = ?, no_consent = ?, outside_settlements = ?, values_dropped = ?, "
            "unkeyed_rejected = ?, added = ?, replaced = ?, removed = ?, older = ? "
            "WHERE load_id = ?"),
            (now(), *[counts[k] for k in COUNT_KEYS], inc.unkeyed,
             changes["added"], changes["replaced"], changes["removed"], changes["older"],
             load_id))
        if self._b.dialect == "sqlite":
            conn.exec_driver_sql(self._p("UPDATE gpkg_contents SET last_change = ?"), (now(),))
        return LoadSummary(load_id, [], counts=counts, changes=changes)

    # -- reading --------------------------------------------------------------------------------
    def _frame(self, conn: Connection, sql: str, columns: list[tuple[str, str]],
               params: Sequence[Any] = ()) -> pd.DataFrame:
        return _frame_of(self._rows(conn, sql, params), columns)

    def _household_columns(self, conn: Connection) -> list[tuple[str, str]]:
        return [("key", _dtype_name(STRING)), *self._columns(conn, "households")]

    def households(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The current households, as ingest returns them (same columns and dtypes, points
        included), with ``key`` the pseudonymous household id; ordered by it. With ``columns``,
        ``key`` and those of them the store has (a lighter read). What a run reads; an
        analyst's login reads :data:`HOUSEHOLDS_VIEW` instead (:meth:`analysis_households`)."""
        with self._connect(write=False) as conn:
            cols = self._household_columns(conn)
            if columns is not None:
                cols = [c for c in cols if c[0] == "key" or c[0] in set(columns)]
            sel = ", ".join('household_id AS "key"' if n == "key" else self._q(n)
                            for n, _ in cols)
            return self._read_frame(conn, f"SELECT {sel} FROM households ORDER BY household_id",
                                    cols)

    def _read_frame(self, conn: Connection, sql: str, columns: list[tuple[str, str]]
                    ) -> pd.DataFrame:
        """:meth:`_frame` for a read transaction (``conn`` opened with ``write=False``, and
        having read already): on a GeoPackage in bulk, through GDAL's columnar reader. GDAL
        takes no SQLite lock of its own; this transaction's shared lock keeps every load from
        writing the file until the read is done. Never inside a load: GDAL would not see the
        load's own uncommitted rows."""
        table = self._b.read_arrow(sql)
        if table is not None and table.column_names == [n for n, _ in columns]:
            return pd.DataFrame({n: _from_arrow(table.column(n), dtype) for n, dtype in columns})
        return self._frame(conn, sql, columns)

    # -- backups -----------------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, dict[str, Any]]:
        """Each table's row count and the SHA-256 of its rows (in a canonical order): two
        stores with the same fingerprint hold the same households, history, loads, personal
        fields, rejects, members and access log."""
        out: dict[str, dict[str, Any]] = {}
        with self._connect(write=False) as conn:
            for table in FINGERPRINTED:
                rows = sorted(repr(tuple(_canonical(v) for v in r)) for r in conn.exec_driver_sql(
                    f"SELECT * FROM {table}"))
                digest = hashlib.sha256()
                for r in rows:
                    digest.update(r.encode("utf-8"))
                    digest.update(b"\n")
                out[table] = {"rows": len(rows), "sha256": digest.hexdigest()}
        return out

    def backup(self, path: str | Path) -> dict[str, Any]:
        """Back the store up into ``path`` with a manifest of its fingerprint
        (:func:`profiling.store._backup.backup`)."""
        from profiling.store._backup import backup

        return backup(self, path)

    # -- roles (PostGIS) -------------------------------------------------------------------------
    def grant(self, role: str, user: str) -> None:
        """Give the login ``user`` a role of the store: ``analyst`` (the analysis view:
        settlement and H3 cell, no point, nothing personal), ``supervisor`` (points and
        interview times, nothing personal) or ``loader`` (everything, the personal table
        included). PostGIS only: a GeoPackage is one file, readable whole or not at all."""
        if self._b.dialect == "sqlite":
            raise StoreError(f"store {self.where} is a GeoPackage, which has no logins: whoever "
                             "can read the file reads all of it. Give analysts a de-identified "
                             "export (profiling store export) or use a PostGIS store")
        if role not in ROLES:
            raise StoreError(f"no store role {role!r}: the roles are "
                             f"{', '.join(ROLES)}")
        if not _LOGIN.fullmatch(user):
            raise StoreError(f"{user!r} is not a login name (letters, digits, _ . - only)")
        with self._connect(write=True) as conn:
            if not conn.exec_driver_sql(self._p(
                    "SELECT 1 FROM pg_roles WHERE rolname = ? AND rolcanlogin"), (user,)).first():
                raise StoreError(f"the server has no login {user!r}: a database administrator "
                                 f"creates it (CREATE ROLE \"{user}\" LOGIN PASSWORD '...'), "
                                 "then grant it a role")
            conn.exec_driver_sql(f'GRANT {ROLES[role]} TO "{user}"')
        log.info("store %s: %s granted the %s role", self.where, user, role)

    def roles(self) -> pd.DataFrame:
        """The store's roles, what each reads and the logins that hold it (PostGIS; on a
        GeoPackage one row: whoever reads the file)."""
        reads = {"analyst": f"{HOUSEHOLDS_VIEW} (settlement and H3 cell, no point), loads",
                 "supervisor": f"{SUPERVISION_VIEW} (points, interview times), submissions, "
                               "loads",
                 "loader": "every table, the personal one included"}
        if self._b.dialect == "sqlite":
            return pd.DataFrame({"role": ["(file)"], "reads": ["everything: a GeoPackage has "
                                                              "no logins"], "logins": [""]})
        with self._connect(write=False) as conn:
            members = self._rows(conn, (
                "SELECT r.rolname, m.rolname FROM pg_auth_members a JOIN pg_roles r ON "
                "r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member WHERE r.rolname IN ("
                + ", ".join("?" for _ in ROLES) + ") ORDER BY m.rolname"), list(ROLES.values()))
        held: dict[str, list[str]] = {}
        for r, m in members:
            held.setdefault(str(r), []).append(str(m))
        return pd.DataFrame({"role": list(ROLES), "reads": [reads[r] for r in ROLES],
                             "logins": [", ".join(held.get(ROLES[r], [])) for r in ROLES]})

    # -- the access log -------------------------------------------------------------------------
    def record_access(self, what: str) -> None:
        """Record a read of personal data (the personal table, or the households' points):
        who (the database login and the system user), when, what, and why (:attr:`purpose`).
        Written in a transaction of its own before the read, so a read that fails is still
        recorded; the log refuses every change (triggers of schema step 5)."""
        os_user: str | None
        try:
            os_user = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (a container)
            os_user = str(os.getuid()) if hasattr(os, "getuid") else None
        with self._connect(write=True) as conn:
            db_user = (None if self._b.dialect == "sqlite"
                       else conn.exec_driver_sql("SELECT session_user").scalar())
            conn.exec_driver_sql(self._p(
                "INSERT INTO access_log (at, db_user, os_user, host, command, what, why) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)"),
                (now(), db_user, os_user, socket.gethostname(), self.purpose, what,
                 os.environ.get(REASON_ENV) or None))

    def load_validations(self, corrections: pd.DataFrame, source: Path, sha256: str) -> int:
        """Keep a forum's corrections (:func:`profiling.validation.read_corrections`), each
        with the file it came from, in one transaction; a file loaded before adds nothing.
        Returns the corrections added. Earlier corrections are never changed: the latest one
        of a settlement's figure is the current one (:meth:`validations`)."""
        cols = ["source_row", "settlement_id", "figure", "enumerated", "confirmed",
                "validated", "forum", "forum_date", "recorded_by"]
        with self._connect(write=True) as conn:
            if self._rows(conn, self._p("SELECT 1 FROM validations WHERE source_sha256 = ? "
                                        "LIMIT 1"), (sha256,)):
                return 0
            at = now()
            values = [(at, source.name, sha256, int(r["source_row"]), str(r["settlement_id"]),
                       str(r["figure"]), None if pd.isna(r["enumerated"])
                       else float(r["enumerated"]), bool(r["confirmed"]),
                       float(r["validated"]), str(r["forum"]), str(r["forum_date"]),
                       str(r["recorded_by"])) for r in corrections[cols].to_dict("records")]
            if values:
                conn.exec_driver_sql(self._p(
                    "INSERT INTO validations (loaded_at, source_file, source_sha256, "
                    "source_row, settlement_id, figure, enumerated, confirmed, validated, "
                    "forum, forum_date, recorded_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                    "?)"), values)
        return len(values)

    def validations(self, history: bool = False) -> pd.DataFrame:
        """The community's corrections: the current one of each settlement's figure (the
        latest forum, then the latest loaded), or with ``history`` every one ever loaded, in
        the order they were loaded."""
        cols = [("settlement_id", "str"), ("figure", "str"), ("enumerated", "float64"),
                ("confirmed", "bool"), ("validated", "float64"), ("forum", "str"),
                ("forum_date", "str"), ("recorded_by", "str"), ("source_file", "str"),
                ("source_row", "int64"), ("loaded_at", "datetime64[us, UTC]"),
                ("fid", "int64")]
        with self._connect(write=False) as conn:
            frame = self._frame(conn, "SELECT " + ", ".join(c for c, _ in cols)
                                + " FROM validations ORDER BY fid", cols)
        if history or frame.empty:
            return frame
        latest = frame.sort_values(["forum_date", "fid"]).groupby(
            ["settlement_id", "figure"], sort=True).tail(1)
        return latest.sort_values(["settlement_id", "figure"]).reset_index(drop=True)

    def load_boundaries(self, redrawn: pd.DataFrame, source: Path, sha256: str, *,
                        forum: str | None = None, forum_date: str | None = None,
                        recorded_by: str | None = None) -> int:
        """Keep redrawn boundaries (``settlement_id`` and a WGS84 ``geometry``) as the next
        version, in one transaction; a file loaded before adds nothing (0). Returns the new
        version's number."""
        with self._connect(write=True) as conn:
            if self._rows(conn, "SELECT 1 FROM boundary_versions WHERE source_sha256 = ? "
                                "LIMIT 1", (sha256,)):
                return 0
            version = int(self._rows(conn, "SELECT COALESCE(MAX(version), 0) FROM "
                                           "boundary_versions")[0][0]) + 1
            at = now()
            values = [(version, at, source.name, sha256, str(sid), geom.wkt, forum, forum_date,
                       recorded_by) for sid, geom in zip(redrawn["settlement_id"],
                                                          redrawn.geometry, strict=True)]
            conn.exec_driver_sql(self._p(
                "INSERT INTO boundary_versions (version, loaded_at, source_file, "
                "source_sha256, settlement_id, wkt, forum, forum_date, recorded_by) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?)"), values)
        return version

    def boundary_versions(self, history: bool = False) -> pd.DataFrame:
        """The redrawn boundaries: the latest version of each settlement redrawn, or with
        ``history`` every one, oldest first (``wkt``: the polygon in EPSG:4326)."""
        cols = [("version", "int64"), ("settlement_id", "str"), ("wkt", "str"),
                ("source_file", "str"), ("forum", "str"), ("forum_date", "str"),
                ("loaded_at", "datetime64[us, UTC]"), ("fid", "int64")]
        with self._connect(write=False) as conn:
            frame = self._frame(conn, "SELECT " + ", ".join(c for c, _ in cols)
                                + " FROM boundary_versions ORDER BY fid", cols)
        if history or frame.empty:
            return frame
        return frame.groupby("settlement_id", sort=True).tail(1).reset_index(drop=True)

    def access_log(self, last: int | None = None) -> pd.DataFrame:
        """The reads of personal data recorded, oldest first (``last``: only the latest)."""
        cols = [("at", "datetime64[us, UTC]"), ("db_user", "str"), ("os_user", "str"),
                ("host", "str"), ("command", "str"), ("what", "str"), ("why", "str")]
        limit = f" LIMIT {int(last)}" if last is not None else ""
        with self._connect(write=False) as conn:
            frame = self._frame(conn, "SELECT at, db_user, os_user, host, command, what, why "
                                      f"FROM access_log ORDER BY fid DESC{limit}", cols)
        return frame.iloc[::-1].reset_index(drop=True)

    def analysis_households(self) -> pd.DataFrame:
        """The analysts' view: the current households without their points, interview times
        or the way back to an export's row; located by ``settlement_id`` and ``h3_cell``."""
        with self._connect(write=False) as conn:
            cols = [c for c in self._household_columns(conn) if c[0] not in NOT_FOR_ANALYSTS]
            cols.append(("h3_cell", _dtype_name(STRING)))
            sel = ", ".join(self._q(n) for n, _ in cols)
            return self._read_frame(conn, f'SELECT {sel} FROM {HOUSEHOLDS_VIEW} ORDER BY "key"',
                                    cols)

    def disclosure_reference(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """What must never be published, for the disclosure audit only: the personal table
        (submission keys and direct fields) and the households' points. Nothing else reads it.
        The read is recorded in the access log."""
        self.record_access("personal fields and household points (disclosure audit)")
        with self._connect(write=False) as conn:
            cols = [("key", _dtype_name(STRING)), *self._columns(conn, "personal")]
            sel = "".join(f", {self._q(n)}" for n, _ in cols[1:])
            personal = self._read_frame(conn, f'SELECT submission_key AS "key"{sel} FROM '
                                              "personal ORDER BY household_id", cols)
        for name, _ in cols:
            personal[name] = pd.array(unseal(
                personal[name].to_numpy(dtype=object, na_value=None),
                "submission_key" if name == "key" else name, self._key, self.where),
                dtype=STRING)
        households = self.households(["longitude", "latitude"]).reindex(
            columns=["longitude", "latitude"])
        return personal, households

    def state_at(self, load_id: int) -> pd.DataFrame:
        """The households as they were right after load ``load_id`` (same frame as
        :meth:`households`). Households whose consent was later withdrawn are not rebuilt.
        The read of their points is recorded in the access log."""
        self.record_access(f"household points as of load {int(load_id)}")
        with self._connect(write=False) as conn:
            if not self._rows(conn, "SELECT 1 FROM loads WHERE load_id = ? AND finished_at IS "
                                    "NOT NULL", (load_id,)):
                raise StoreError(f"store {self.where} has no load {load_id}")
            cols = self._household_columns(conn)
            sel = ", ".join(self._q(n) for n, _ in cols[1:])
            return self._frame(conn, (
                f'SELECT household_id AS "key", {sel} FROM households WHERE load_id <= ? '
                f'UNION ALL SELECT household_id AS "key", {sel} FROM households_history '
                'WHERE load_id <= ? AND superseded_by > ? ORDER BY "key"'), cols,
                (load_id, load_id, load_id))

    def history(self, household: str) -> pd.DataFrame:
        """Every version of one household (by submission key or pseudonymous id), oldest first,
        with the load that brought it and the load that replaced it (``superseded_by``).
        The read of its points is recorded in the access log."""
        self.record_access("one household's versions, points included")
        hid = household if _HEX64.match(household) else pseudonyms(self._secret, [household])[0]
        with self._connect(write=False) as conn:
            cols = self._household_columns(conn)
            sel = ", ".join(self._q(n) for n, _ in cols[1:])
            extra = [("load_id", "int64"), ("superseded_by", "Int64")]
            return self._frame(conn, (
                f'SELECT household_id, {sel}, load_id, superseded_by FROM households_history '
                f"WHERE household_id = ? UNION ALL SELECT household_id, {sel}, load_id, NULL "
                "FROM households WHERE household_id = ? ORDER BY load_id"),
                cols + extra, (hid, hid))

    def rejects(self, raw_keys: bool = False) -> pd.DataFrame:
        """The current rejects (those of the current submission of each key, and rows without a
        key), in ``rejects.csv``'s columns plus ``load_id``; ``key`` is the pseudonymous id, or
        the submission key with ``raw_keys`` (it reads the personal table, and that read is
        recorded in the access log)."""
        if raw_keys:
            self.record_access("submission keys of the rejects (personal table)")
        key = "p.submission_key" if raw_keys else "r.household_id"
        join = " LEFT JOIN personal p ON p.household_id = r.household_id" if raw_keys else ""
        cols = [("file", "str"), ("row", "Int64"), ("key", "str"), ("field", "str"),
                ("value", "str"), ("action", "str"), ("reason", "str"), ("load_id", "int64")]
        with self._connect(write=False) as conn:
            frame = self._frame(conn, (
                f"SELECT r.file, r.row, {key}, r.field, r.value, r.action, r.reason, r.load_id "
                f"FROM rejects r LEFT JOIN submissions s ON s.household_id = r.household_id"
                f"{join} WHERE r.household_id IS NULL OR s.load_id = r.load_id "
                "ORDER BY r.load_id, r.fid"), cols)
        if raw_keys:
            frame["key"] = unseal(frame["key"].to_numpy(dtype=object), "submission_key",
                                  self._key, self.where)
        return frame.sort_values(["load_id", "file", "row", "field"], kind="stable"
                                 ).reset_index(drop=True)

    def counts(self) -> dict[str, int]:
        """The manifest's accounting for the store as a whole: every row of every load is
        accepted (a current household), rejected, a duplicate or a refusal."""
        with self._connect(write=False) as conn:
            return self._counts(conn)

    def _counts(self, conn: Connection) -> dict[str, int]:
        one = conn.exec_driver_sql(
            "SELECT (SELECT COALESCE(SUM(read), 0) FROM loads WHERE finished_at IS NOT NULL), "
            "(SELECT COALESCE(SUM(unkeyed_rejected), 0) FROM loads), "
            "(SELECT COUNT(*) FROM households), "
            "(SELECT COUNT(*) FROM submissions WHERE status = 'rejected'), "
            "(SELECT COUNT(*) FROM submissions WHERE status = 'no_consent'), "
            "(SELECT COUNT(*) FROM rejects r JOIN submissions s ON s.household_id = "
            "r.household_id AND s.load_id = r.load_id WHERE r.action = 'value_dropped')"
        ).one()
        read, unkeyed, accepted, rejected, refused, dropped = (int(v) for v in one)
        outside = 0
        if any(n == "settlement_id" for n, _ in self._columns(conn, "households")):
            outside = int(conn.exec_driver_sql(
                "SELECT COUNT(*) FROM households WHERE settlement_id IS NULL").scalar_one())
        rejected += unkeyed
        out = {"read": read, "accepted": accepted, "rejected": rejected,
               "duplicates": read - accepted - rejected - refused, "no_consent": refused,
               "outside_settlements": outside, "values_dropped": dropped}
        m_read, m_rejected = conn.exec_driver_sql(
            "SELECT SUM(members_read), SUM(members_rejected) FROM loads WHERE finished_at IS "
            "NOT NULL").one()
        if m_read is not None:  # a load brought a roster: every member row read is kept
            # (its household is current), rejected (it linked to none) or dropped
            kept = int(conn.exec_driver_sql(
                "SELECT COUNT(*) FROM members m JOIN households h ON h.household_id = "
                "m.household_id").scalar_one())
            out |= {"members_read": int(m_read), "members_kept": kept,
                    "members_rejected": int(m_rejected or 0),
                    "members_dropped": int(m_read) - kept - int(m_rejected or 0)}
        return out

    def submissions(self) -> pd.DataFrame:
        """One row per current submission, in the columns of ``IngestResult.submissions`` (what
        the supervision report reads; ``key`` is the pseudonymous household id). Of refusals and
        rejected submissions the store keeps their status, time, enumerator and interview
        times only."""
        cols = ["key", "status", "submitted_at", "settlement_mismatch", "gps_precision",
                "settlement_id", "enumerator", "start", "end", "values_dropped"]
        hh = self.households(cols)
        with self._connect(write=False) as conn:
            other = self._frame(conn, (
                'SELECT household_id AS "key", status, submitted_at, enumerator, '
                'interview_start AS "start", interview_end AS "end" FROM submissions '
                "WHERE status <> 'accepted' ORDER BY household_id"),
                [("key", "object"), ("status", "object"),
                 ("submitted_at", "datetime64[us, UTC]"), ("enumerator", "string"),
                 ("start", "string"), ("end", "string")])
        rej = self.rejects()
        dropped = rej.loc[rej["action"] == VALUE_DROPPED].groupby("key").size()
        acc = pd.DataFrame({c: hh[c] if c in hh.columns else pd.NA for c in cols[3:-1]},
                           index=hh.index)
        acc.insert(0, "key", hh["key"].astype(object))
        acc.insert(1, "status", "accepted")
        acc.insert(2, "submitted_at", hh["submitted_at"] if "submitted_at" in hh.columns
                   else pd.NaT)
        acc["values_dropped"] = hh["key"].map(dropped).fillna(0).astype(int).to_numpy()
        other = other.assign(values_dropped=0)
        return pd.concat([acc, other], ignore_index=True)[cols]

    def ingest_result(self) -> IngestResult:
        """What the store holds, in the form ingest returns: households from the analysis view,
        current rejects (pseudonymous keys), submissions, the store's counts and the files
        loaded. ``personal`` is empty: analysis never reads it. The read of the households'
        points is recorded in the access log."""
        self.record_access("household points (a run's analysis)")
        with self._connect(write=False) as conn:
            files = self._rows(conn, "SELECT path, format, sha256, rows, labels, columns_used, "
                                     "columns_ignored FROM load_files ORDER BY load_id, position")
            counts = self._counts(conn)
        inputs = [InputSummary(str(p), str(f), str(s), int(r), str(lab or ""), int(u or 0),
                               json.loads(ig) if ig else []) for p, f, s, r, lab, u, ig in files]
        members = self.members()
        return IngestResult(self.households(), pd.DataFrame(columns=["key"]),
                            self.rejects()[REJECT_COLUMNS], self.submissions(), counts, inputs,
                            members)

    def members(self) -> pd.DataFrame | None:
        """The rosters of the current households (``key``: the pseudonymous household id, and
        the roster fields as ingest returns them), in household and roster order; None when no
        load brought a roster."""
        with self._connect(write=False) as conn:
            cols = self._columns(conn, "members")
            if not cols:
                return None
            sel = "".join(f", m.{self._q(n)}" for n, _ in cols)
            return self._frame(conn, (
                f'SELECT m.household_id AS "key"{sel} FROM members m JOIN households h ON '
                "h.household_id = m.household_id ORDER BY m.household_id, m.position"),
                [("key", _dtype_name(STRING)), *cols])

    def status(self) -> StoreStatus:
        """Households by settlement and by load, rejects, the last load and the accounting."""
        with self._connect(write=False) as conn:
            counts = self._counts(conn)
            has_settlement = any(n == "settlement_id" for n, _ in self._columns(conn,
                                                                                  "households"))
            by_settlement = pd.DataFrame.from_records(self._rows(conn, (
                "SELECT settlement_id, COUNT(*) FROM households GROUP BY settlement_id "
                "ORDER BY settlement_id") if has_settlement else
                "SELECT NULL, COUNT(*) FROM households"), columns=["settlement_id", "households"])
            by_settlement = by_settlement.loc[by_settlement["households"] > 0]
            load_cols = ["load_id", "started_at", "finished_at", "loaded_by", "note",
                         *COUNT_KEYS, "added", "replaced", "removed", "older"]
            by_load = pd.DataFrame.from_records(self._rows(conn, (
                "SELECT " + ", ".join(f"l.{c}" for c in load_cols) + ", (SELECT COUNT(*) FROM "
                "households h WHERE h.load_id = l.load_id) FROM loads l WHERE l.finished_at IS "
                "NOT NULL ORDER BY l.load_id")), columns=[*load_cols, "households_now"])
            names = self._rows(conn, "SELECT load_id, file_name FROM load_files ORDER BY "
                                     "load_id, position")
            version = _migrations.current_version(conn, self._b.dialect)
        files: dict[int, list[str]] = {}
        for lid, name in names:
            files.setdefault(int(lid), []).append(str(name))
        by_load.insert(1, "files", by_load["load_id"].map(lambda i: ", ".join(files.get(i, []))))
        rej = self.rejects()
        rejects = (rej.groupby(["action", "field"]).size().rename("entries").reset_index()
                   if len(rej) else pd.DataFrame(columns=["action", "field", "entries"]))
        last = by_load.iloc[-1].to_dict() if len(by_load) else None
        return StoreStatus(self.where, self.backend, version, counts, by_settlement, by_load,
                           rejects, last, self.access_log(last=STATUS_ACCESS_ROWS))

    def export_deidentified(self, path: str | Path) -> Path:
        """Write a de-identified GeoPackage: layer ``households`` (the analysis view without
        the true location and without the way back to a raw export's row; pseudonymous ids) and
        layer ``loads`` (provenance). Nothing of the personal table is read; the points are
        read and left out, and that read is recorded in the access log."""
        self.record_access(f"household points, left out of a de-identified export "
                           f"({Path(path).name})")
        import pyogrio

        path = Path(path)
        if path.suffix.lower() != ".gpkg":
            raise StoreError(f"{path}: the export is a GeoPackage and needs the .gpkg extension")
        hh = self.households().drop(columns=list(NOT_EXPORTED), errors="ignore").rename(
            columns={"key": "household_id"})
        loads = self.status().by_load.drop(columns=["loaded_by"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".partial.gpkg")
        tmp.unlink(missing_ok=True)
        pyogrio.write_dataframe(_for_ogr(hh), tmp, layer="households", driver="GPKG")
        pyogrio.write_dataframe(_for_ogr(loads), tmp, layer="loads", driver="GPKG", append=True)
        tmp.replace(path)
        log.info("de-identified export of %d households written to %s", len(hh), path)
        return path


def _for_ogr(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable columns in the forms GDAL writes (numbers as floats where missing, text as
    objects, booleans as 0/1 with gaps as missing)."""
    out = {}
    for c in frame.columns:
        s = frame[c]
        if isinstance(s.dtype, pd.BooleanDtype):
            s = s.astype("Int8")
        if isinstance(s.dtype, pd.StringDtype) or s.dtype == object:
            s = s.astype(object).where(s.notna(), None)
        elif pd.api.types.is_extension_array_dtype(s.dtype) and s.dtype.kind in "iuf":
            s = s.astype("float64") if s.isna().any() else s.astype(s.dtype.kind + "8")
        out[c] = s
    return pd.DataFrame(out, index=frame.index)


#: The tables a backup's fingerprint covers: everything a store holds.
FINGERPRINTED = ("schema_version", "store_meta", "store_columns", "loads", "load_files",
                 "submissions", "households", "households_history", "personal", "rejects",
                 "members", "access_log")


def _canonical(value: Any) -> Any:
    """A value as both a store and its restored copy give it (times as ISO text, geometry as
    bytes, numbers as they are)."""
    if isinstance(value, memoryview):
        return bytes(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _first_line(exc: BaseException) -> str:
    msg = str(getattr(exc, "orig", None) or exc)
    return msg.strip().splitlines()[0] if msg.strip() else exc.__class__.__name__


# --------------------------------------------------------------------------------------------
# From exports to the store
# --------------------------------------------------------------------------------------------

def submission_index(result: IngestResult) -> pd.DataFrame:
    """Every distinct keyed submission of an ingest result: ``key``, ``submitted_at``,
    ``status`` (accepted, rejected or no_consent), ``enumerator``, ``start`` and ``end``."""
    subs = result.submissions
    if "key" not in subs.columns:
        raise StoreError("this ingest result does not list its submissions' keys: make it with "
                         "profiling.ingest.ingest()")
    cols = [c for c in ("key", "submitted_at", "status", "enumerator", "start", "end")
            if c in subs.columns]
    return subs[cols].reset_index(drop=True)


def load_exports(store: Store, sources: Sequence[SurveySource], form: Form,
                 settlements: Settlements | None, *, assign_by: str = "location",
                 assign_column: str = "settlement_reported", max_distance_m: float = 1000.0,
                 provenance: Provenance | None = None,
                 progress: Callable[[str], None] | None = None) -> list[LoadSummary]:
    """Ingest each export on its own and load it: one load (one transaction) per file, in the
    order given. A file already loaded (same sha256) is skipped without being read."""
    summaries = []
    for src in sources:
        sha = sha256_of(Path(src.path)) if Path(src.path).is_file() else None
        if sha is not None and sha in store.loaded_sha256s():
            log.debug("%s: loaded before (same sha256), skipped", src.path)
            summaries.append(LoadSummary(None, [Path(src.path).name], skipped=True))
        else:
            result = ingest([src], form, settlements, assign_by=assign_by,
                            assign_column=assign_column, max_distance_m=max_distance_m)
            summaries.append(store.load(result, provenance))
        if progress:
            progress(Path(src.path).name)
    return summaries


def sources_for(cfg: Config, exports: Sequence[str | Path] | None) -> list[SurveySource]:
    """The survey sources of ``exports`` (the configured ones when none is given): a file the
    configuration lists keeps its settings (format, labels, mapping); another gets the
    configuration's default field mapping."""
    if not exports:
        return list(cfg.surveys)
    configured = {Path(s.path).resolve(): s for s in cfg.surveys}
    out = []
    for e in exports:
        p = Path(e)
        if not p.exists():
            raise ConfigError(f"export {p} does not exist")
        out.append(configured.get(p.resolve()) or SurveySource(path=p,
                                                               field_mapping=cfg.field_mapping))
    return out


__all__ = [
    "HOUSEHOLDS_VIEW",
    "REASON_ENV",
    "SECRET_ENV",
    "SUPERVISION_VIEW",
    "LoadSummary",
    "Provenance",
    "Store",
    "StoreError",
    "StoreStatus",
    "load_exports",
    "open_configured",
    "open_store",
    "pseudonyms",
    "read_secret",
    "sources_for",
    "submission_index",
]
