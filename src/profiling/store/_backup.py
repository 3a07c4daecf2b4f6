"""Backups of a store that are proven to restore.

A backup is one file and a manifest beside it (``FILE.json``): the store's fingerprint (each
table's row count and a SHA-256 of its rows, :meth:`Store.fingerprint`), its backend and schema
version. A restore goes into a new store, and is only reported done when the restored store's
fingerprint is the manifest's.

- GeoPackage: SQLite's online backup API (a consistent copy while loads may run; they wait).
- PostGIS: ``pg_dump --format=custom`` and ``pg_restore``, Debian's ``postgresql-client``.
  The password goes to them in ``PGPASSWORD``, never on a command line.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from profiling._errors import StoreError

if TYPE_CHECKING:
    from profiling.store import Store

#: What a manifest's ``format`` says.
FORMAT = "profiling store backup 1"


def manifest_path(path: Path) -> Path:
    """Where the manifest of the backup ``path`` is kept."""
    return path.with_name(path.name + ".json")


def backup(store: Store, path: str | Path) -> dict[str, Any]:
    """Back ``store`` up into ``path`` (and its manifest); returns the manifest. The backup is
    itself a read of personal data and is recorded as such first, so the backup holds its own
    entry of the access log."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise StoreError(f"backup {path} is a folder; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    store.record_access(f"the whole store, personal table included (backup to {path.name})")
    tmp = path.with_name(path.name + ".partial")
    tmp.unlink(missing_ok=True)
    if store.backend == "geopackage":
        _sqlite_copy(Path(store.where), tmp)
    else:
        _pg_tool("pg_dump", store.where_url, ["--format=custom", f"--file={tmp}"])
    tmp.replace(path)
    manifest = {"format": FORMAT, "backend": store.backend,
                "schema_version": store.schema_version(), "fingerprint": store.fingerprint()}
    manifest_path(path).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def restore(url_or_path: str | Path, path: str | Path, secret: bytes) -> dict[str, Any]:
    """Restore the backup ``path`` into a new store at ``url_or_path`` (a GeoPackage path that
    does not exist yet, or an empty PostGIS database) and check it against the manifest.
    Returns the manifest; a store that does not match it is an error."""
    from profiling.store import open_store

    path = Path(path)
    if not path.is_file():
        raise StoreError(f"backup {path} does not exist")
    try:
        manifest = json.loads(manifest_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"backup {path}: its manifest {manifest_path(path).name} cannot be "
                         f"read ({exc.__class__.__name__}); a backup is checked against it"
                         ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(f"backup {path}: {manifest_path(path).name} is not the manifest of a "
                         "profiling store backup")
    target = str(url_or_path)
    postgis = "://" in target
    if postgis != (manifest.get("backend") == "postgis"):
        raise StoreError(f"backup {path} is of a {manifest.get('backend')} store; restore it "
                         f"into one of the same kind")
    if postgis:
        _restore_postgis(target, path)
    else:
        dest = Path(target)
        if dest.exists() and dest.stat().st_size > 0:
            raise StoreError(f"store {dest} exists: a backup is restored into a new store "
                             "(move the old one aside first)")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".partial")
        tmp.unlink(missing_ok=True)
        _sqlite_copy(path, tmp)
        tmp.replace(dest)
    with open_store(target, secret, create=False, purpose="profiling store restore") as store:
        found = store.fingerprint()
        if found != manifest["fingerprint"]:
            differ = sorted(t for t in set(found) | set(manifest["fingerprint"])
                            if found.get(t) != manifest["fingerprint"].get(t))
            raise StoreError(f"the store restored from {path} differs from the backup in "
                             f"{', '.join(differ)}: do not use it")
        store.record_access(f"the whole store, restored from {path.name} and checked")
    return manifest


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup of ``source`` into ``target`` (consistent while loads run)."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _restore_postgis(url: str, path: Path) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(_sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            if conn.exec_driver_sql("SELECT to_regclass('schema_version')").scalar():
                raise StoreError("the database already holds a store: a backup is restored into "
                                 "a new, empty database")
    finally:
        engine.dispose()
    _pg_tool("pg_restore", url, ["--no-owner", "--exit-on-error", "--single-transaction",
                                 str(path)], database_flag=True)


def _sqlalchemy_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return "postgresql+psycopg://" + rest if scheme in ("postgresql", "postgres") else url


def _pg_tool(tool: str, url: str, args: list[str], database_flag: bool = False) -> None:
    """Run ``pg_dump`` or ``pg_restore`` on the database of ``url`` (the password in the
    environment)."""
    from sqlalchemy import make_url

    exe = shutil.which(tool)
    if exe is None:
        raise StoreError(f"{tool} is not installed: install Debian's postgresql-client "
                         "(apt-get install postgresql-client) of the server's version or newer")
    u = make_url(_sqlalchemy_url(url))
    conninfo = u.set(drivername="postgresql", password=None).render_as_string(
        hide_password=False)
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    cmd = [exe, *args[:-1], f"--dbname={conninfo}", args[-1]] if database_flag else [
        exe, *args, conninfo]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise StoreError(f"{tool} failed: {detail}")
