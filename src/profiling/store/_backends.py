"""What differs between the two backends of the store: connecting, locking, bulk writing and
the geometry encoding. Everything else (the merge rules, the schema, the queries) is shared.

- **GeoPackage** (SQLite): one file that opens in QGIS as it is. A load takes SQLite's write lock
  at its start (``BEGIN IMMEDIATE``) and a second loader waits for it (busy timeout); the
  rollback journal makes a load that dies part-way vanish at the next open. Points are
  GeoPackage geometry blobs (the ``GP`` header, then little-endian WKB).
- **PostGIS**: a load takes a transaction-level advisory lock, so loads run one after another
  while readers go on reading; rows are streamed with ``COPY``. Points are EWKB.
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import shapely
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

#: How long a load waits for another one to finish before giving up (milliseconds).
BUSY_TIMEOUT_MS = 30 * 60 * 1000
#: SQLite's page cache per connection (KiB; allocated as it is used).
CACHE_KIB = 2 * 1024 * 1024
#: Key of the PostgreSQL advisory lock that serialises loads (any fixed number).
_LOCK_KEY = 0x50524F46  # 'PROF'
#: GeoPackage geometry header: magic, version 0, flags (little endian, no envelope), srs_id.
_GPKG_HEADER = b"GP\x00\x01" + struct.pack("<i", 4326)
#: Rows to write: a frame, or columns by name.
Rows: TypeAlias = "pd.DataFrame | dict[str, Sequence[Any] | np.ndarray]"


class Backend:
    """The operations that differ between GeoPackage and PostGIS."""

    dialect = ""
    #: The DB-API placeholder.
    mark = "?"

    def __init__(self, engine: Engine, where: str) -> None:
        self.engine = engine
        self.where = where

    def begin_write(self, conn: Connection) -> None:
        """Start a transaction that holds the store's write lock until it ends."""
        raise NotImplementedError

    def begin_read(self, conn: Connection) -> None:
        """Start a transaction that sees one consistent state."""
        raise NotImplementedError

    def temp_table(self, name: str, columns: str) -> str:
        """DDL of a temporary table that lives until the end of the transaction (or its
        explicit drop)."""
        raise NotImplementedError

    def points(self, lon: np.ndarray, lat: np.ndarray) -> list[Any]:
        """The backend's encoding of WGS84 points (None where a coordinate is missing)."""
        ok = np.isfinite(lon) & np.isfinite(lat)
        out: list[Any] = [None] * len(lon)
        if ok.any():
            encoded = self._encode(shapely.points(lon[ok], lat[ok]))
            for i, w in zip(np.flatnonzero(ok).tolist(), encoded, strict=True):
                out[i] = w
        return out

    def _encode(self, points: np.ndarray) -> list[Any]:
        raise NotImplementedError

    def insert(self, conn: Connection, table: str, data: Rows) -> None:
        """Append rows to a table: a frame, or columns by name (values already in SQL form:
        text times, Python numbers, encoded points)."""
        raise NotImplementedError

    def read_arrow(self, sql: str) -> pa.Table | None:
        """The rows of ``sql`` as an Arrow table read in bulk, or None where this backend has
        no such path (the caller then reads them row by row)."""
        return None

    def quote(self, name: str) -> str:
        """A quoted SQL identifier."""
        return '"' + name.replace('"', '""') + '"'


class GeoPackage(Backend):
    """One GeoPackage file through SQLite."""

    dialect = "sqlite"
    mark = "?"

    @classmethod
    def open(cls, path: Path) -> GeoPackage:
        engine = create_engine(f"sqlite:///{path}", poolclass=NullPool)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            # transactions are begun explicitly (BEGIN IMMEDIATE for a load), not by the driver
            dbapi_conn.isolation_level = None
            dbapi_conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # a load of a million households touches ~1 GiB of pages: keep them in memory
            dbapi_conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")

        return cls(engine, str(path))

    def begin_write(self, conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    def read_arrow(self, sql: str) -> pa.Table | None:
        """GDAL's columnar read of the GeoPackage (ten times the row-by-row driver on a million
        households); None when it fails (a load holding the file, say), so that the caller
        reads through SQLite, which waits for the lock."""
        import pyogrio

        try:
            _, table = pyogrio.read_arrow(self.where, sql=sql)
        except Exception as exc:  # GDAL raises several kinds; the slow path still works
            log.debug("store %s: columnar read failed (%s); reading row by row", self.where,
                      exc)
            return None
        return table

    def begin_read(self, conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    def temp_table(self, name: str, columns: str) -> str:
        return f"CREATE TEMP TABLE {name} ({columns})"

    def _encode(self, points: np.ndarray) -> list[Any]:
        wkb = shapely.to_wkb(points, byte_order=1, output_dimension=2)
        return [_GPKG_HEADER + w for w in wkb.tolist()]

    def insert(self, conn: Connection, table: str, data: Rows) -> None:
        columns = _columns(data)
        if not columns or not len(next(iter(columns.values()))):
            return
        cols = ", ".join(self.quote(c) for c in columns)
        marks = ", ".join("?" * len(columns))
        values = list(columns.values())
        cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(f"INSERT INTO {self.quote(table)} ({cols}) VALUES ({marks})",
                               zip(*values, strict=True))
        finally:
            cursor.close()


class PostGIS(Backend):
    """A PostgreSQL database with PostGIS, through psycopg 3."""

    dialect = "postgresql"
    mark = "%s"

    @classmethod
    def open(cls, url: str) -> PostGIS:
        engine = create_engine(url, poolclass=NullPool)
        return cls(engine, engine.url.render_as_string(hide_password=True))

    def begin_write(self, conn: Connection) -> None:
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")

    def begin_read(self, conn: Connection) -> None:
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")

    def temp_table(self, name: str, columns: str) -> str:
        return f"CREATE TEMP TABLE {name} ({columns}) ON COMMIT DROP"

    def _encode(self, points: np.ndarray) -> list[Any]:
        wkb = shapely.to_wkb(shapely.set_srid(points, 4326), hex=True, include_srid=True,
                             byte_order=1, output_dimension=2)
        return list(wkb.tolist())

    def insert(self, conn: Connection, table: str, data: Rows) -> None:
        columns = _columns(data)
        if not columns or not len(next(iter(columns.values()))):
            return
        cols = ", ".join(self.quote(c) for c in columns)
        buf = io.BytesIO()
        pacsv.write_csv(_arrow_table(columns), buf, pacsv.WriteOptions(include_header=False))
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(f"COPY {self.quote(table)} ({cols}) FROM STDIN "
                             "(FORMAT csv)") as copy:
                view = buf.getbuffer()
                for start in range(0, len(view), 1 << 24):
                    copy.write(view[start:start + (1 << 24)])
                del view
        finally:
            cursor.close()


def _python_values(s: pd.Series) -> list[Any]:
    """A column as Python values with None for missing (what the sqlite3 module binds)."""
    return s.to_numpy(dtype=object, na_value=None).tolist()


def _columns(data: Rows) -> dict[str, list[Any]]:
    if isinstance(data, pd.DataFrame):
        return {str(c): _python_values(data[c]) for c in data.columns}
    return {c: v.tolist() if isinstance(v, np.ndarray) else list(v) for c, v in data.items()}


def _arrow_table(columns: dict[str, list[Any]]) -> pa.Table:
    """Columns as an Arrow table for the CSV that COPY reads: nulls unquoted (NULL), every
    string quoted (so an empty answer stays an empty string), floats written exactly."""
    arrays = []
    for values in columns.values():
        arr = pa.array(values, from_pandas=True)
        if pa.types.is_floating(arr.type):
            # repr() is the shortest text that reads back as the same double
            arr = pa.array([None if x is None or x != x else repr(float(x)) for x in values],
                           type=pa.string())
        arrays.append(arr)
    return pa.table(arrays, names=[f"c{i}" for i in range(len(arrays))])
