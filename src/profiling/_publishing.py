"""Atomic, locked output folders: a run is published whole or not at all.

A run writes into a staging folder beside its output folder (``.<name>.staging``), audits it
there, and only then swaps it into place: on Linux by one ``renameat2(RENAME_EXCHANGE)``, so
that the output folder is at every moment either the previous run's or the new one's; elsewhere
by two renames. Files of an earlier run that this run did not write do not survive. A run that
fails before it is audited leaves the previous folder as it was and removes its staging folder.

A lock file beside the output folder (``.<name>.lock``, ``flock``) refuses a second run into the
same folder while one is writing; the kernel releases it when a run ends in any way, ``kill -9``
included, and the next run clears what a killed one left behind.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from profiling._errors import ConfigError, OutputError
from profiling.outputs import MANIFEST

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _sidecar(out: Path, what: str) -> Path:
    return out.parent / f".{out.name}.{what}"


def check_target(out: Path) -> None:
    """Refuse an output location that is a file, or a folder that holds something other than a
    run's outputs (publishing replaces the whole folder)."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: the output location is a file, not a folder; give --out a "
                          "folder (it is created when missing)")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise OutputError(f"{out}: the folder holds files that are not a profiling run's "
                          f"outputs (no {MANIFEST}); a run replaces its whole output folder, "
                          "so give an empty or new folder")


@contextmanager
def locked(out: Path) -> Iterator[Path]:
    """Hold the output folder's lock; yields a fresh staging folder to write the run into."""
    import fcntl

    out = Path(out)
    check_target(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(_sidecar(out, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise os_error(out, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{out}: another run is writing to this output folder (it holds "
                              f"{_sidecar(out, 'lock')}); wait for it to finish or choose "
                              "another --out") from None
        staging = _sidecar(out, "staging")
        for stale in (staging, _sidecar(out, "previous")):  # what a killed run left
            shutil.rmtree(stale, ignore_errors=True)
        try:
            staging.mkdir()
        except OSError as exc:
            raise os_error(out, exc) from None
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already when it was published
    finally:
        os.close(fd)


def swap_in(staging: Path, out: Path) -> None:
    """Put the staging folder in the output folder's place, atomically where the system can."""
    try:
        if out.exists():
            if _exchange(staging, out):
                shutil.rmtree(staging, ignore_errors=True)  # now the previous run's files
                return
            previous = _sidecar(out, "previous")
            os.replace(out, previous)
            os.replace(staging, out)
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.replace(staging, out)
    except OSError as exc:
        raise os_error(out, exc) from None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2``); False where that is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.ENOTSUP):
        return False  # a file system or kernel without it: two renames instead
    raise OSError(err, os.strerror(err), str(b))


def os_error(out: Path, exc: OSError) -> OutputError:
    """An error of the operating system while writing ``out``, as a message for a person."""
    reason = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
              errno.EACCES: "permission denied", errno.EPERM: "permission denied",
              errno.EROFS: "the file system is read-only",
              errno.ENAMETOOLONG: "a file name is too long"}.get(exc.errno or 0,
                                                                 exc.strerror or str(exc))
    return OutputError(f"{out}: the outputs cannot be written ({reason}: "
                       f"{exc.filename or out}); nothing new was published")


def disk_full(folder: Path) -> OutputError | None:
    """An error saying the disk is full when ``folder``'s file system has (almost) no room
    left, else None: for writers that report a full disk in words of their own."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if free >= 1 << 20:
        return None
    return os_error(folder.parent / folder.name.removeprefix(".").removesuffix(".staging"),
                     OSError(errno.ENOSPC, "No space left on device", str(folder)))
