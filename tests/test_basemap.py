"""An offline basemap from a local archive (issue 20): tiny MBTiles and PMTiles archives built
here with known tiles over the sample city, their tiles around the settlements copied beside the
map (the tile range worked out again from the slippy-map formula), drawn in Chromium with the
network cut; and archives that are no raster basemap refused with exit 2."""

from __future__ import annotations

import io
import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest
import yaml
from PIL import Image

from test_browser import browser_type_launch_args, open_map, shot  # noqa: F401 (a fixture)

from conftest import demo_config_data

REPO = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).parent / "profiling")
ZOOMS = range(12, 17)


def _tiles(bounds, z):
    """Slippy-map tiles covering bounds (west, south, east, north), written out again."""
    w, s, e, n = bounds

    def x(lon):
        return int((lon + 180) / 360 * 2 ** z)

    def y(lat):
        r = math.radians(lat)
        return int((1 - math.log(math.tan(r) + 1 / math.cos(r)) / math.pi) / 2 * 2 ** z)

    return [(x_, y_) for x_ in range(x(w), x(e) + 1) for y_ in range(y(n), y(s) + 1)]


def _image(z, x, y, fmt="PNG"):
    buf = io.BytesIO()
    Image.new("RGB", (256, 256), ((40 * z) % 256, (7 * x) % 256, (13 * y) % 256)).save(
        buf, format=fmt)
    return buf.getvalue()


def _city_bounds():
    w, s, e, n = gpd.read_file(REPO / "sample_data" / "settlements.gpkg").to_crs(4326
                                                                                  ).total_bounds
    return float(w), float(s), float(e), float(n)


def _wide():
    w, s, e, n = _city_bounds()
    return w - (e - w), s - (n - s), e + (e - w), n + (n - s)


def mbtiles(path: Path, fmt: str = "png", tile=None) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
    conn.execute("CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER,"
                 " tile_data BLOB)")
    conn.executemany("INSERT INTO metadata VALUES (?, ?)", [
        ("format", fmt), ("minzoom", str(ZOOMS[0])), ("maxzoom", str(ZOOMS[-1])),
        ("attribution", "© test tiles <b>bold</b>")])
    for z in ZOOMS:
        for x, y in _tiles(_wide(), z):
            data = tile(z, x, y) if tile else _image(z, x, y)
            conn.execute("INSERT INTO tiles VALUES (?, ?, ?, ?)", (z, x, 2 ** z - 1 - y, data))
    conn.commit()
    conn.close()
    return path


def pmtiles(path: Path) -> Path:
    from pmtiles.tile import Compression, TileType, zxy_to_tileid
    from pmtiles.writer import Writer

    entries = sorted((zxy_to_tileid(z, x, y), z, x, y) for z in ZOOMS for x, y in
                     _tiles(_wide(), z))
    with path.open("wb") as f:
        w = Writer(f)
        for tid, z, x, y in entries:
            w.write_tile(tid, _image(z, x, y, "JPEG"))
        west, south, east, north = _wide()
        w.finalize({"tile_type": TileType.JPEG, "tile_compression": Compression.NONE,
                    "min_lon_e7": int(west * 1e7), "min_lat_e7": int(south * 1e7),
                    "max_lon_e7": int(east * 1e7), "max_lat_e7": int(north * 1e7),
                    "center_zoom": 14, "center_lon_e7": int((west + east) / 2 * 1e7),
                    "center_lat_e7": int((south + north) / 2 * 1e7)},
                   {"attribution": "© test tiles"})
    return path


def _config(tmp: Path, basemap: Path) -> Path:
    data = demo_config_data()
    data["map"]["basemap_file"] = str(basemap)
    data["output_dir"] = str(tmp / "out")
    path = tmp / "basemap.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def with_basemap(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample city's map drawn again with an MBTiles basemap (``profiling atlas``)."""
    import shutil

    tmp = tmp_path_factory.mktemp("basemap")
    cfg = _config(tmp, mbtiles(tmp / "city.mbtiles"))
    shutil.copytree(demo, tmp / "out")
    proc = subprocess.run([EXE, "atlas", str(cfg), "-q"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return tmp / "out"


def test_the_tiles_around_the_settlements_are_copied_beside_the_map(with_basemap: Path):
    w, s, e, n = _city_bounds()
    around = (w - (e - w) * 0.25, s - (n - s) * 0.25, e + (e - w) * 0.25, n + (n - s) * 0.25)
    folder = with_basemap / "map_files" / "basemap"
    for z in ZOOMS:
        want = {f"{x}/{y}.png" for x, y in _tiles(around, z)}
        got = {p.relative_to(folder / str(z)).as_posix() for p in (folder / str(z)).rglob("*.png")}
        assert got == want, z
    x, y = _tiles(around, 14)[0]
    assert (folder / "14" / str(x) / f"{y}.png").read_bytes() == _image(14, x, y)


def test_the_basemap_is_drawn_with_the_network_cut(page, with_basemap: Path) -> None:
    watch = open_map(page, with_basemap)
    page.wait_for_function(
        "() => { const t = document.querySelectorAll('.pm-basemap img');"
        " return t.length > 0 && Array.from(t).every(i => i.complete && i.naturalWidth === 256)"
        " }", timeout=15_000)
    srcs = page.eval_on_selector_all(".pm-basemap img", "ts => ts.map(t => t.src)")
    assert srcs and all("/map_files/basemap/" in s and s.startswith("file://") for s in srcs)
    attribution = page.locator(".leaflet-control-attribution").inner_text()
    assert "© test tiles <b>bold</b>" in attribution  # the archive's words, as text
    assert "Basemap: city.mbtiles" in page.locator("#pm-about").inner_text()
    shot(page, "map-basemap.png")
    watch.assert_clean()


def test_a_pmtiles_archive_of_jpeg_tiles_is_copied_as_png(tmp_path: Path):
    from profiling.publish.basemap import extract

    got = extract(pmtiles(tmp_path / "city.pmtiles"), _city_bounds(), tmp_path / "tiles")
    assert got["tiles"] > 20 and got["maxNativeZoom"] == ZOOMS[-1]
    files = list((tmp_path / "tiles").rglob("*.png"))
    assert len(files) == got["tiles"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in files)
    assert got["attribution"] == "© test tiles"


@pytest.mark.parametrize("make, message", [
    (lambda p: mbtiles(p, fmt="pbf"), "holds vector tiles"),
    (lambda p: p.write_bytes(b"not a database at all, just text" * 10) and p,
     "is not a readable MBTiles file"),
    (lambda p: mbtiles(p, tile=lambda z, x, y: b"<script>alert(1)</script>"),
     "is not a PNG, JPEG or WebP image"),
    (lambda p: mbtiles(p, tile=lambda z, x, y: b"\x89PNG\r\n\x1a\n" + b"0" * (3 * 2**20)),
     "a raster tile is at most"),
])
def test_an_archive_that_is_no_raster_basemap_is_refused(demo: Path, tmp_path: Path, make,
                                                         message):
    import shutil

    archive = tmp_path / "bad.mbtiles"
    make(archive)
    cfg = _config(tmp_path, archive)
    shutil.copytree(demo, tmp_path / "out")
    proc = subprocess.run([EXE, "atlas", str(cfg), "-q"], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stdout
    assert message in proc.stderr and "bad.mbtiles" in proc.stderr
    assert "Traceback" not in proc.stderr
