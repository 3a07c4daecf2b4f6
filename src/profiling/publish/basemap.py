"""An offline basemap (issue 20): raster tiles from a local MBTiles or PMTiles archive, the ones
around the settlements copied beside the map (``map_files/basemap/{z}/{x}/{y}.png``), so that a
map opened from disk, with no network, keeps its streets and rivers.

The archive is read as hostile input: an MBTiles file is opened read-only as SQLite, a PMTiles
archive through protomaps' reader on a memory map; every tile is checked (at most
:data:`MAX_TILE_BYTES`, a PNG, JPEG or WebP image by its first bytes; JPEG and WebP are written
as PNG, which also drops their metadata); vector tiles are refused with that said. At most
:data:`MAX_TILES` tiles are copied, from the coarsest zoom up: the finer zooms that would pass it
are left out, and the map zooms their tiles from the finest copied.
"""

from __future__ import annotations

import io
import logging
import math
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from profiling._errors import InputFileError

log = logging.getLogger(__name__)

MAX_TILES = 3000
MAX_TILE_BYTES = 2 * 2**20
#: The tiles copied reach this far beyond the settlements (a share of their extent).
MARGIN = 0.25
URL = "map_files/basemap/{z}/{x}/{y}.png"
_MAGIC = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpg", b"RIFF": "webp"}


def tile_range(bounds: tuple[float, float, float, float], z: int) -> tuple[int, int, int, int]:
    """The tiles (x0, y0, x1, y1; web mercator, y down) covering ``bounds`` (degrees)."""
    w, s, e, n = bounds
    count = 2 ** z

    def x(lon: float) -> int:
        return min(count - 1, max(0, int((lon + 180.0) / 360.0 * count)))

    def y(lat: float) -> int:
        lat = max(min(lat, 85.0511), -85.0511)
        r = math.radians(lat)
        return min(count - 1, max(0, int((1 - math.asinh(math.tan(r)) / math.pi) / 2 * count)))

    return x(w), y(n), x(e), y(s)


Opened = tuple[dict[str, str], Callable[[int, int, int], bytes | None], Callable[[], None]]


def _mbtiles(path: Path) -> Opened:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        meta = {str(k): str(v) for k, v in conn.execute("SELECT name, value FROM metadata")}
    except sqlite3.Error as exc:
        raise InputFileError(path, f"is not a readable MBTiles file ({exc})") from None

    def get(z: int, x: int, y: int) -> bytes | None:
        row = conn.execute("SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? "
                           "AND tile_row = ?", (z, x, 2 ** z - 1 - y)).fetchone()
        return None if row is None else bytes(row[0])

    return meta, get, conn.close


def _pmtiles(path: Path) -> Opened:
    from pmtiles.reader import MmapSource, Reader
    from pmtiles.tile import TileType

    f = path.open("rb")
    try:
        reader = Reader(MmapSource(f))
        header = reader.header()
        try:
            metadata = reader.metadata()
        except Exception:  # metadata is optional: without it, no attribution
            metadata = {}
    except Exception as exc:  # not an archive (no magic number, an empty file, a bad header)
        f.close()
        raise InputFileError(path, f"is not a readable PMTiles archive "
                                   f"({exc.__class__.__name__})") from None
    kinds = {TileType.PNG: "png", TileType.JPEG: "jpg", TileType.WEBP: "webp",
             TileType.MVT: "pbf"}
    meta = {"format": kinds.get(header.get("tile_type"), "unknown"),
            "minzoom": str(header.get("min_zoom", 0)),
            "maxzoom": str(header.get("max_zoom", 0)),
            "attribution": str(metadata.get("attribution", "")) if isinstance(metadata, dict)
            else ""}

    def get(z: int, x: int, y: int) -> bytes | None:
        try:
            data = reader.get(z, x, y)
        except Exception as exc:  # a damaged directory: the archive's fault, said as such
            raise InputFileError(path, f"tile {z}/{x}/{y} cannot be read "
                                       f"({exc.__class__.__name__})") from None
        return None if data is None else bytes(data)

    return meta, get, f.close


def extract(path: Path, bounds: tuple[float, float, float, float], folder: Path
            ) -> dict[str, Any]:
    """Copy the archive's tiles around ``bounds`` into ``folder``; what the map's script
    needs to draw them (the tiles' URL template, zooms, attribution, how many)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "the basemap file does not exist")
    suffix = path.suffix.lower()
    if suffix == ".mbtiles":
        meta, get, close = _mbtiles(path)
    elif suffix == ".pmtiles":
        meta, get, close = _pmtiles(path)
    else:
        raise InputFileError(path, "a basemap is an MBTiles (.mbtiles) or PMTiles (.pmtiles) "
                                   "file of raster tiles")
    try:
        return _copy(path, meta, get, bounds, folder)
    finally:
        close()


def _copy(path: Path, meta: dict[str, str], get: Callable[[int, int, int], bytes | None],
          bounds: tuple[float, float, float, float], folder: Path) -> dict[str, Any]:
    fmt = meta.get("format", "png").lower()
    if fmt in ("pbf", "mvt"):
        raise InputFileError(path, "holds vector tiles (pbf), which a map with no network "
                                   "cannot draw; give an archive of raster tiles (png, jpg, "
                                   "webp)")
    try:
        zmin, zmax = int(meta.get("minzoom", 0)), int(meta.get("maxzoom", 18))
    except ValueError:
        raise InputFileError(path, f"its minzoom/maxzoom are not numbers ({meta.get('minzoom')!r}"
                                   f", {meta.get('maxzoom')!r})") from None
    zmin, zmax = max(0, zmin), min(22, zmax)
    w, s, e, n = bounds
    mx, my = (e - w) * MARGIN, (n - s) * MARGIN
    around = (w - mx, s - my, e + mx, n + my)
    copied, finest = 0, None
    for z in range(zmin, zmax + 1):
        x0, y0, x1, y1 = tile_range(around, z)
        if copied + (x1 - x0 + 1) * (y1 - y0 + 1) > MAX_TILES:
            log.warning("%s: the basemap's zooms from %d up are left out (they would copy more "
                        "than %d tiles); the map enlarges zoom %s", path.name, z, MAX_TILES,
                        finest)
            break
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                data = get(z, x, y)
                if data is None:
                    continue
                _write(path, data, folder / str(z) / str(x) / f"{y}.png", (z, x, y))
                copied += 1
        finest = z
    if not copied:
        raise InputFileError(path, "holds no tile around the settlements (is it of this city?)")
    return {"url": URL, "minZoom": zmin, "maxNativeZoom": finest, "tiles": copied,
            "attribution": meta.get("attribution", ""),
            # only these tiles were copied: the map asks for no other
            "bounds": [[around[1], around[0]], [around[3], around[2]]]}


def _write(path: Path, data: bytes, dest: Path, zxy: tuple[int, int, int]) -> None:
    z, x, y = zxy
    if len(data) > MAX_TILE_BYTES:
        raise InputFileError(path, f"tile {z}/{x}/{y} is {len(data):,} bytes; a raster tile is "
                                   f"at most {MAX_TILE_BYTES:,}")
    kind = next((k for magic, k in _MAGIC.items() if data.startswith(magic)), None)
    if kind == "webp" and data[8:12] != b"WEBP":
        kind = None
    if kind is None:
        raise InputFileError(path, f"tile {z}/{x}/{y} is not a PNG, JPEG or WebP image")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if kind == "png":
        dest.write_bytes(data)
        return
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > 1024 * 1024:
                raise InputFileError(path, f"tile {z}/{x}/{y} is {im.width}x{im.height} pixels")
            im.convert("RGBA").save(dest, format="PNG")
    except InputFileError:
        raise
    except Exception as exc:  # a damaged image is the archive's fault, said as such
        raise InputFileError(path, f"tile {z}/{x}/{y} cannot be read as {kind} "
                                   f"({exc.__class__.__name__})") from None
