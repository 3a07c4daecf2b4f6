"""The atlas printed to PDF: Chromium's pages against WeasyPrint's, resumption, the book.

Each profile PDF is read back with pdfium: its words and the sizes of its type page by page,
the settlement it belongs to, the page numbers of the book against its table of contents, all
against what the HTML pages and the settlement table say, not against a captured output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from typer.testing import CliRunner

from profiling.cli import app

REPO = Path(__file__).resolve().parents[1]
CONFIG = str(REPO / "configs" / "demo.yaml")


@pytest.fixture(scope="module")
def printed(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sample run with its atlas printed by the default engine (Chromium)."""
    out = tmp_path_factory.mktemp("pdf")
    shutil.copytree(demo, out, dirs_exist_ok=True)
    result = CliRunner().invoke(app, ["atlas", CONFIG, "--out", str(out), "--pdf", "-q"])
    assert result.exit_code == 0, result.output
    return out


def pages_of(path: Path) -> list[tuple[Counter[str], set[float], str]]:
    """Per page: its words (list markers left out: Chromium draws them, WeasyPrint writes a
    bullet character), the sizes of its type in points, its text."""
    doc = pdfium.PdfDocument(path)
    out = []
    for page in doc:
        text = page.get_textpage()
        s = text.get_text_range()
        sizes = {round(pdfium_c.FPDFText_GetFontSize(text, i), 1)
                 for i in range(text.count_chars()) if not s[i:i + 1].isspace()}
        words = Counter(w for w in re.findall(r"\S+", s) if w != "•")
        out.append((words, sizes, s))
    return out


def profile_pages(out: Path) -> list[Path]:
    return sorted(p for p in (out / "atlas").glob("*.html") if p.stem != "index")


def test_chromium_prints_the_pages_weasyprint_printed(printed: Path, tmp_path: Path) -> None:
    """The same words on each page, in the same sizes of type, as WeasyPrint's (the engine
    before Chromium, still the fallback): profile by profile, page by page."""
    other = tmp_path / "weasyprint"
    shutil.copytree(printed, other)
    shutil.rmtree(other / "atlas" / "pdf")
    result = CliRunner().invoke(app, ["atlas", CONFIG, "--out", str(other), "--pdf", "-q",
                                      "--pdf-engine", "weasyprint"])
    assert result.exit_code == 0, result.output
    for page in profile_pages(printed):
        chromium = pages_of(printed / "atlas" / "pdf" / f"{page.stem}.pdf")
        weasy = pages_of(other / "atlas" / "pdf" / f"{page.stem}.pdf")
        # one sheet, both sides: the figures on the front, quality and definitions on the back
        assert len(chromium) == len(weasy) == 2, page.stem
        for i, ((cw, cs, _), (ww, ws, _)) in enumerate(zip(chromium, weasy, strict=True)):
            assert cw == ww, (page.stem, i, (cw - ww), (ww - cw))
            assert cs == ws, (page.stem, i)
            assert min(cs) >= 7.0, (page.stem, i, sorted(cs))  # no type under 7 pt


def test_each_pdf_is_its_own_settlement_s_profile(printed: Path) -> None:
    """Cut from documents of many profiles, each PDF holds its settlement's pages and no
    other's, and is titled as its page is."""
    table = pd.read_csv(printed / "settlement_indicators.csv", dtype=str)
    names = dict(zip(table["settlement_id"], table["name"], strict=True))
    pdfs = sorted((printed / "atlas" / "pdf").glob("*.pdf"))
    assert {p.stem for p in pdfs} == {p.stem for p in (printed / "atlas").glob("*.html")}
    for path in pdfs:
        if path.stem == "index":
            continue
        pages = pages_of(path)
        first = pages[0][2]
        assert f"Settlement id {path.stem}" in first
        assert first.startswith(names[path.stem])
        assert not any(f"Settlement id {other}" in text for other in names if other != path.stem
                       for _, _, text in pages)
        assert "Definitions and sources" in pages[-1][2]
        title = pdfium.PdfDocument(path).get_metadata_dict()["Title"]
        assert title == f"{names[path.stem]} – settlement profile"
    index = pages_of(printed / "atlas" / "pdf" / "index.pdf")
    assert "Settlement atlas" in index[0][2]


def rename(out: Path, sid: str, name: str) -> None:
    """A settlement renamed in the run's tables (the CSV and the GeoPackage layer)."""
    table = pd.read_csv(out / "settlement_indicators.csv", dtype={"settlement_id": str})
    table.loc[table["settlement_id"] == sid, "name"] = name
    table.to_csv(out / "settlement_indicators.csv", index=False)
    layer = gpd.read_file(out / "settlements.gpkg", layer="settlement_indicators")
    layer.loc[layer["settlement_id"] == sid, "name"] = name
    layer.to_file(out / "settlements.gpkg", layer="settlement_indicators", driver="GPKG")


def _stage(out: Path, name: str) -> dict:
    manifest = json.loads((out / "run_manifest.json").read_text(encoding="utf-8"))
    return next(s for s in manifest["rewritten"][-1]["stages"] if s["name"] == name)


def test_up_to_date_pdfs_are_skipped_and_changed_ones_printed(printed: Path,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(printed, out)
    before = {p.name: p.stat().st_mtime_ns for p in (out / "atlas" / "pdf").glob("*.pdf")}
    result = CliRunner().invoke(app, ["atlas", CONFIG, "--out", str(out), "--pdf", "-q"])
    assert result.exit_code == 0, result.output
    assert _stage(out, "PDF")["work"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "atlas" / "pdf").glob("*.pdf")} == before
    # a renamed settlement (a name markup and spacing would change) changes its page and the
    # index: those two are printed again, nothing else
    rename(out, "JK07", "Kampung  <b>Bali</b> & RW 05")
    result = CliRunner().invoke(app, ["atlas", CONFIG, "--out", str(out), "--pdf", "-q"])
    assert result.exit_code == 0, result.output
    assert _stage(out, "PDF")["work"] == 2
    after = {p.name: p.stat().st_mtime_ns for p in (out / "atlas" / "pdf").glob("*.pdf")}
    assert {n for n in after if after[n] != before[n]} == {"JK07.pdf", "index.pdf"}
    pages = pages_of(out / "atlas" / "pdf" / "JK07.pdf")
    assert len(pages) == 2 and pages[0][2].startswith("Kampung <b>Bali</b> & RW 05")
    # a settlement no longer in the atlas keeps no PDF
    (out / "atlas" / "JK07.html").unlink()
    from profiling.publish.pdf import write_pdfs

    write_pdfs(out / "atlas")
    assert not (out / "atlas" / "pdf" / "JK07.pdf").exists()


def test_a_killed_print_resumes_with_what_is_missing(printed: Path, tmp_path: Path) -> None:
    """Killed after its first documents, the command started again prints only the rest; a
    file half-written when it was killed is neither published nor left behind."""
    out = tmp_path / "out"
    shutil.copytree(printed, out)
    shutil.rmtree(out / "atlas" / "pdf")
    (out / "atlas" / "pdf_state.json").unlink()
    exe = Path(sys.executable).with_name("profiling")
    env = {**os.environ, "PROFILING_PDF_BATCH": "3"}
    proc = subprocess.Popen([str(exe), "atlas", CONFIG, "--out", str(out), "--pdf", "-q"],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    state = out / "atlas" / "pdf_state.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text() or "{}"):
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = json.loads(state.read_text())
    assert 0 < len(done) < 32, len(done)
    (out / "atlas" / "pdf" / ".JK30.pdf.tmp").write_bytes(b"%PDF-1.7 half")  # as if cut short
    result = CliRunner().invoke(app, ["atlas", CONFIG, "--out", str(out), "--pdf", "-q"],
                                env={"PROFILING_PDF_BATCH": "3"})
    assert result.exit_code == 0, result.output
    assert _stage(out, "PDF")["work"] == 32 - len(done)
    assert sorted(p.name for p in (out / "atlas" / "pdf").iterdir()) == sorted(
        f"{p.stem}.pdf" for p in (out / "atlas").glob("*.html"))
    for path in (out / "atlas" / "pdf").glob("JK*.pdf"):
        assert f"Settlement id {path.stem}" in pages_of(path)[0][2]


def test_the_book_has_contents_page_numbers_and_every_profile(printed: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(printed, out)
    result = CliRunner().invoke(app, ["atlas", CONFIG, "--out", str(out), "--book", "rank",
                                      "-q"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "settlement_indicators.csv", dtype={"settlement_id": str})
    ranked = table.dropna(subset=["cuf_rank"]).sort_values("cuf_rank")["settlement_id"]
    unranked = table[table["cuf_rank"].isna()].sort_values("name")["settlement_id"]
    order = [*ranked, *unranked]
    book = pages_of(out / "atlas" / "atlas.pdf")
    counts = {sid: len(pdfium.PdfDocument(out / "atlas" / "pdf" / f"{sid}.pdf"))
              for sid in order}
    contents = [i for i, (_, _, text) in enumerate(book) if "Contents" in text]
    assert contents == [0]
    front = 2  # one page of contents, then a blank back: each profile starts on a right page
    assert len(book) == front + sum(n + n % 2 for n in counts.values())
    listed = dict(re.findall(r"\b(JK\d+)\s+(\d+)\b", book[0][2]))
    page = front + 1
    for sid in order:
        assert int(listed[sid]) == page, sid
        assert f"Settlement id {sid}" in book[page - 1][2]
        page += counts[sid] + counts[sid] % 2
    # every page of a profile carries its number in the book
    for number in range(front + 1, len(book) + 1):
        assert re.search(rf"(^|\s){number}(\s|$)", book[number - 1][2]), number
    marks = [b.get_title() for b in pdfium.PdfDocument(out / "atlas" / "atlas.pdf").get_toc()]
    assert marks[0] == "Contents" and len(marks) == 1 + len(order)
    assert marks[1].endswith(f"({order[0]})")
    # bound again with nothing changed, the book is left as it is
    stamp = (out / "atlas" / "atlas.pdf").stat().st_mtime_ns
    result = CliRunner().invoke(app, ["atlas", CONFIG, "--out", str(out), "--book", "rank",
                                      "-q"])
    assert result.exit_code == 0, result.output
    assert (out / "atlas" / "atlas.pdf").stat().st_mtime_ns == stamp
    # the atlas rewritten without printing, after a settlement was renamed: its PDF, the
    # index's and the book no longer show what the pages say, and are removed; the rest stay
    rename(out, "JK07", "Kampung Bali Baru")
    result = CliRunner().invoke(app, ["atlas", CONFIG, "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    left = {p.name for p in (out / "atlas" / "pdf").glob("*.pdf")}
    assert left == {f"{sid}.pdf" for sid in order} - {"JK07.pdf"}
    assert not (out / "atlas" / "atlas.pdf").exists()
    manifest = json.loads((out / "run_manifest.json").read_text(encoding="utf-8"))
    assert "atlas/atlas.pdf" not in manifest["outputs"]
    assert manifest["status"] == "complete"


def test_chromium_that_cannot_start_falls_back_or_says_so(printed: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    from profiling.publish.pdf import write_pdfs

    folder = tmp_path / "atlas"
    folder.mkdir()
    for name in ("atlas.css", "JK05.html"):
        shutil.copy(printed / "atlas" / name, folder / name)
    monkeypatch.setenv("PROFILING_CHROMIUM", str(tmp_path / "no-such-browser"))
    # (first: the command's logging set-up replaces the handlers caplog reads)
    with caplog.at_level("WARNING", logger="profiling"):
        done = write_pdfs(folder, "auto")
    assert done.engine == "weasyprint" and done.printed == ["JK05"]
    assert "WeasyPrint" in caplog.text
    assert "Settlement id JK05" in pages_of(folder / "pdf" / "JK05.pdf")[0][2]
    result = CliRunner().invoke(app, ["atlas", CONFIG, "--out", str(printed), "--pdf",
                                      "--pdf-engine", "chromium", "-q"])
    assert result.exit_code == 2
    assert "Chromium cannot be started" in result.output
    assert "PROFILING_CHROMIUM" in result.output and "Traceback" not in result.output


def test_an_unknown_engine_or_order_is_a_clear_error(printed: Path) -> None:
    for extra in (["--pdf", "--pdf-engine", "wkhtml"], ["--book", "size"]):
        result = CliRunner().invoke(app, ["atlas", CONFIG, "--out", str(printed), "-q", *extra])
        assert result.exit_code == 2, result.output
        assert extra[-1] in result.output and "expected one of" in result.output
