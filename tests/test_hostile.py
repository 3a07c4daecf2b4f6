"""Hostile inputs and faults: each ends in exit 2 with a message that names what is wrong, never
a traceback or exit 3; and the readers, fuzzed with random bytes, cuts and quotes, either refuse
a file with a clear error or account for every one of its rows.

Each case below builds its input from the sample city and runs the real command."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiling import ProfilingError
from profiling.config import SurveySource
from profiling.form import reference_form
from profiling.ingest import ingest
from profiling.join import prepare, read_boundaries

REPO = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).parent / "profiling")
SAMPLE = REPO / "sample_data"
SURVEY = SAMPLE / "exports" / "kobo_day1-4.csv"
BOUNDARIES = SAMPLE / "settlements.gpkg"
FLOOD = SAMPLE / "hazards" / "flood_depth.tif"


def _empty_layer(tmp: Path) -> list[str]:
    path = tmp / "empty.gpkg"
    gpd.read_file(BOUNDARIES).iloc[:0].to_file(path, layer="settlements")
    return ["--survey", str(SURVEY), "--boundaries", str(path)]


def _truncated_raster(tmp: Path) -> list[str]:
    data = FLOOD.read_bytes()
    path = tmp / "flood_cut.tif"
    path.write_bytes(data[:len(data) // 2])
    return ["--survey", str(SURVEY), "--boundaries", str(BOUNDARIES), "--hazard",
            f"flood={path}"]


def _not_a_raster(tmp: Path) -> list[str]:
    path = tmp / "flood.tif"
    path.write_bytes(b"II*\x00" + bytes(200))
    return ["--survey", str(SURVEY), "--boundaries", str(BOUNDARIES), "--hazard",
            f"flood={path}"]


def _bad_bytes_in_a_short_row(tmp: Path) -> list[str]:
    lines = SURVEY.read_bytes().split(b"\n")
    path = tmp / "bad_bytes.csv"
    path.write_bytes(b"\n".join([*lines[:5], b'"x\xff\xfe";"y"', *lines[5:12]]))
    return ["--survey", str(path), "--boundaries", str(BOUNDARIES)]


def _no_consent_column(tmp: Path) -> list[str]:
    import pandas as pd

    frame = pd.read_csv(SURVEY, sep=";", dtype=str).drop(columns=["consent"])
    path = tmp / "no_consent.csv"
    frame.to_csv(path, sep=";", index=False)
    return ["--survey", str(path), "--boundaries", str(BOUNDARIES)]


def _out_is_a_file(tmp: Path) -> list[str]:
    (tmp / "out").write_text("a file")
    return ["--survey", str(SURVEY), "--boundaries", str(BOUNDARIES)]


def _boundaries_are_a_survey(tmp: Path) -> list[str]:
    return ["--survey", str(SURVEY), "--boundaries", str(SURVEY)]


CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "empty boundary layer": (_empty_layer, "empty.gpkg: the layer (the first) holds no "
                                           "settlements"),
    "truncated GeoTIFF": (_truncated_raster, "flood_cut.tif: cannot read rows"),
    "not a raster": (_not_a_raster, "flood.tif: cannot be read as a raster"),
    "undecodable bytes in a short row": (_bad_bytes_in_a_short_row,
                                         "bad_bytes.csv: not UTF-8 text: byte 0xFF at line 6"),
    "no consent column": (_no_consent_column, "no_consent.csv: has no consent field"),
    "--out names a file": (_out_is_a_file, "the output location is a file"),
    "boundaries that are a CSV survey": (_boundaries_are_a_survey, "kobo_day1-4.csv: lacks the "
                                                                   "column(s)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_input_ends_with_exit_2_and_a_message(tmp_path: Path, case: str):
    make, first_words = CASES[case]
    args = make(tmp_path)
    proc = subprocess.run([EXE, "run", *args, "--out", str(tmp_path / "out"), "-q"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert first_words in " ".join(proc.stderr.split()), proc.stderr
    assert not (tmp_path / "out" / "run_manifest.json").exists()  # nothing was published


# -- fuzzing the readers ----------------------------------------------------------------------

_SETTLEMENTS = None
FIXTURE = HealthCheck.function_scoped_fixture  # tmp_path is reused: each example overwrites


def _settlements():
    global _SETTLEMENTS
    if _SETTLEMENTS is None:
        gdf = read_boundaries(BOUNDARIES)
        _SETTLEMENTS = (prepare(gdf), reference_form(zip(gdf["settlement_id"], gdf["name"],
                                                         strict=True)))
    return _SETTLEMENTS


def _valid_lines(n: int = 12) -> list[bytes]:
    return SURVEY.read_bytes().split(b"\n")[:n]


def _check(path: Path) -> None:
    settlements, form = _settlements()
    try:
        res = ingest([SurveySource(path=path)], form, settlements)
    except ProfilingError as exc:
        assert str(exc).startswith(str(path))  # the message names the file
        return
    c = res.counts
    assert c["read"] == c["accepted"] + c["rejected"] + c["duplicates"] + c["no_consent"]
    rows = set(res.rejects["row"].dropna().astype(int)) | set(res.households.get(
        "source_row", []))
    assert all(r >= 2 for r in rows)


@settings(max_examples=40, deadline=None, suppress_health_check=[FIXTURE])
@given(st.data())
def test_fuzzed_csv_is_refused_clearly_or_fully_accounted_for(tmp_path: Path, data):
    lines = _valid_lines()
    body = b"\n".join(lines)
    kind = data.draw(st.sampled_from(["cut", "quote", "bytes", "splice"]))
    if kind == "cut":
        body = body[:data.draw(st.integers(len(lines[0]) + 1, len(body)))]
    elif kind == "quote":
        for _ in range(data.draw(st.integers(1, 4))):
            at = data.draw(st.integers(len(lines[0]) + 1, len(body) - 1))
            body = body[:at] + b'"' + body[at:]
    elif kind == "bytes":
        at = data.draw(st.integers(len(lines[0]) + 1, len(body) - 1))
        body = body[:at] + data.draw(st.binary(min_size=1, max_size=20)) + body[at:]
    else:
        a = data.draw(st.integers(len(lines[0]) + 1, len(body) - 1))
        b = data.draw(st.integers(a, len(body)))
        body = body[:a] + body[b:]
    path = tmp_path / f"fuzz_{kind}.csv"
    path.write_bytes(body)
    _check(path)


@settings(max_examples=15, deadline=None, suppress_health_check=[FIXTURE])
@given(st.integers(0, 10_000), st.binary(min_size=0, max_size=64))
def test_fuzzed_xlsx_is_refused_clearly_or_fully_accounted_for(tmp_path: Path, cut: int,
                                                                 junk: bytes):
    source = SAMPLE / "exports" / "kobo_day3-7.xlsx"
    data = source.read_bytes()
    at = min(cut, len(data) - 1)
    path = tmp_path / "fuzz.xlsx"
    path.write_bytes(data[:at] + junk + data[at + len(junk):])
    _check(path)


def test_the_manifest_of_a_clean_run_accounts_for_every_row(tmp_path: Path):
    proc = subprocess.run([EXE, "run", "--survey", str(SURVEY), "--boundaries", str(BOUNDARIES),
                           "--out", str(tmp_path / "out"), "-q"], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    c = json.loads((tmp_path / "out" / "run_manifest.json").read_text())["counts"]
    assert c["read"] == c["accepted"] + c["rejected"] + c["duplicates"] + c["no_consent"]


# -- decompression bombs and XML entities -----------------------------------------------------

SHEET = "xl/worksheets/sheet1.xml"


def _rezip(source: Path, target: Path, replace: dict[str, bytes]) -> Path:
    import zipfile

    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w",
                                                         zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = replace.get(item.filename, src.read(item.filename))
            dst.writestr(item.filename, data)
    return target


def _small_workbook(tmp: Path) -> Path:
    """The sample XLSX export cut to its header and three households."""
    from openpyxl import Workbook, load_workbook

    book = load_workbook(SAMPLE / "exports" / "kobo_day3-7.xlsx", read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True, max_row=4))
    book.close()
    wb = Workbook()
    for r in rows:
        wb.active.append(list(r))
    path = tmp / "small.xlsx"
    wb.save(path)
    return path


def test_an_xlsx_bomb_is_refused_before_it_is_unpacked(tmp_path: Path):
    import zipfile

    source = _small_workbook(tmp_path)
    with zipfile.ZipFile(source) as z:
        original = z.read(SHEET)
    # 256 MiB of padding inside the worksheet: it compresses about a thousand times
    bomb = original.replace(b"</worksheet>", b"<!--" + b"A" * (256 << 20) + b"--></worksheet>")
    path = _rezip(source, tmp_path / "bomb.xlsx", {SHEET: bomb})
    del bomb
    assert path.stat().st_size < 1 << 20
    proc = subprocess.run([EXE, "run", "--survey", str(path), "--boundaries", str(BOUNDARIES),
                           "--out", str(tmp_path / "out"), "-q"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert re.search(r"bomb\.xlsx: its member .*sheet1\.xml.* unpacks [\d,]+ times.*"
                     r"decompression bomb", " ".join(proc.stderr.split())), proc.stderr


def test_an_xlsx_bomb_within_configured_limits_is_read(tmp_path: Path):
    """The limits are the configuration's: raised, the same padded workbook is read whole."""
    import zipfile

    from profiling.config import ReadLimits

    source = SAMPLE / "exports" / "kobo_day3-7.xlsx"
    with zipfile.ZipFile(source) as z:
        original = z.read(SHEET)
    padded = original.replace(b"</worksheet>", b"<!--" + b"A" * (2 << 20) + b"--></worksheet>")
    path = _rezip(source, tmp_path / "padded.xlsx", {SHEET: padded})
    settlements, form = _settlements()
    limits = ReadLimits(max_compression_ratio=100_000)
    res = ingest([SurveySource(path=path, limits=limits)], form, settlements)
    plain = ingest([SurveySource(path=source)], form, settlements)
    assert res.counts == plain.counts


def test_xml_entities_in_a_workbook_are_refused(tmp_path: Path):
    import zipfile

    source = SAMPLE / "exports" / "kobo_day3-7.xlsx"
    with zipfile.ZipFile(source) as z:
        original = z.read(SHEET)
    laughs = (b'<?xml version="1.0"?><!DOCTYPE worksheet [<!ENTITY a "lol">'
              b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
              b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>')
    body = original.split(b"?>", 1)[1] if original.startswith(b"<?xml") else original
    path = _rezip(source, tmp_path / "laughs.xlsx", {SHEET: laughs + body})
    settlements, form = _settlements()
    with pytest.raises(ProfilingError, match=r"laughs\.xlsx: not a readable \.xlsx workbook"):
        ingest([SurveySource(path=path)], form, settlements)


def test_a_raster_large_on_paper_is_read_by_window(tmp_path: Path):
    """A sparse 40,000 x 40,000 float32 GeoTIFF (6 GB if it were held) under two small
    settlements: every stage stays far below its nominal size."""
    import numpy as np
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    from conftest import UTM, household, two_squares
    from conftest import write_csv as write_export

    squares = tmp_path / "squares.gpkg"
    two_squares().to_file(squares, layer="settlements")
    n = 40_000
    profile = {"driver": "GTiff", "width": n, "height": n, "count": 1, "dtype": "float32",
               "crs": UTM, "transform": Affine(0.01, 0, 699_900.0, 0, -0.01, 9_300_200.0),
               "nodata": -9999, "tiled": True, "blockxsize": 512, "blockysize": 512,
               "compress": "deflate", "SPARSE_OK": True, "BIGTIFF": "YES"}
    raster = tmp_path / "huge.tif"
    with rasterio.open(raster, "w", **profile) as dst:
        dst.write(np.full((1, 512, 512), 0.4, np.float32), window=Window(15_000, 15_000, 512,
                                                                         512))
    assert raster.stat().st_size < 5 << 20
    survey = write_export(tmp_path / "k.csv", [household(f"k{i}") for i in range(6)])
    out = tmp_path / "out"
    proc = subprocess.run([EXE, "run", "--survey", str(survey), "--boundaries", str(squares),
                           "--hazard", f"flood={raster}", "--out", str(out), "-q"],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    stages = json.loads((out / "run_manifest.json").read_text())["stages"]
    assert max(s["peak_rss_mib"] for s in stages) < 1024, stages


@pytest.mark.parametrize("seed", range(12))
def test_a_damaged_xls_form_is_refused_clearly(tmp_path: Path, shared_data: Path, seed: int,
                                               capsys: pytest.CaptureFixture[str]):
    """Cut short or with bytes overwritten, an .xls XLSForm is read or refused with a message
    naming the file: never a traceback, never xlrd's diagnostics on the terminal."""
    import random

    from profiling._errors import FormError
    from profiling.form import read_xlsform

    src = bytearray((shared_data / "epfl_wash_nairobi" / "Nairobi_2021.xls").read_bytes())
    rnd = random.Random(seed)
    if seed % 2:
        data = src[:rnd.randrange(512, len(src))]
    else:
        for _ in range(50):
            src[rnd.randrange(len(src))] = rnd.randrange(256)
        data = src
    path = tmp_path / "form.xls"
    path.write_bytes(bytes(data))
    try:
        form = read_xlsform(path)
    except FormError as exc:
        assert str(path) in str(exc)
    else:
        assert form.questions
    printed = capsys.readouterr()
    assert "OLE2" not in printed.out + printed.err and "sector" not in printed.out + printed.err


@pytest.mark.parametrize("members,match", [
    ({}, r"this zip holds no CSV file"),
    ({"a.csv": b"x\n1\n", "b.csv": b"y\n2\n"}, r"cannot tell which CSV of this zip holds "
                                                r"the submissions \(a\.csv, b\.csv\)"),
    ({"form.csv": b"KEY\nuuid:1\n",
      "form-members.csv": b"PARENT_KEY\n" + b"uuid:1" * (40 << 20) + b"\n"},
     r"its member .*form-members\.csv.* unpacks [\d,]+ times.*decompression bomb"),
])
def test_a_hostile_odk_zip_is_refused_by_name(tmp_path: Path, members: dict[str, bytes],
                                              match: str):
    """An ODK Central "CSV zip" that holds no table, two unrelated tables, or a roster that
    unpacks a thousand times: exit 2 with a message naming the file, nothing unpacked."""
    import zipfile

    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("media/readme.txt", b"photos")
        for name, data in members.items():
            z.writestr(name, data)
    assert path.stat().st_size < 2 << 20
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"surveys:\n  - path: {path}\n    members: {{}}\n"
                   f"boundaries: {BOUNDARIES}\n", encoding="utf-8")
    proc = subprocess.run([EXE, "validate", str(cfg)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.search(r"export\.zip.*" + match, " ".join(proc.stderr.split())), proc.stderr
