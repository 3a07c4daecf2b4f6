"""The atlas printed to PDF (``profiling atlas --pdf``): one file a page, and optionally the book.

Chromium (Debian's, or any Playwright finds) prints several settlement profiles as one document
given as content (no file is written for it), each profile from a new sheet; each profile's
first page is found by its text (it begins with the profile's heading and has the line
``Settlement id <id>``), and pypdf cuts the document into one file a profile, page objects
copied as they are. Two documents are printed at a time, one per core, :data:`BATCH` profiles
each: printing a page at a time costs Chromium about four times as much. WeasyPrint, ten times
slower, is the fallback where no Chromium can be started (``engine="auto"``), or the engine
asked for.

A PDF is skipped when its page's HTML, the stylesheet, the engine and the software version are
those it was printed from (their hash is kept in ``atlas/pdf_state.json``, rewritten after every
document), so a run that is stopped and started again prints only what is missing. A PDF whose
page no longer exists is removed. When a :class:`~profiling.audit.Checker` is given, each new
PDF is read back and checked by the disclosure audit as soon as it is written, while Chromium
prints the next document; the files it clears are returned with their hash, so the folder's
audit afterwards only hashes them again.

:func:`write_book` binds the profiles into ``atlas/atlas.pdf``, in CUF rank or name order, after
a table of contents, every page numbered.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import io
import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from profiling import __version__
from profiling._errors import ConfigError

if TYPE_CHECKING:
    from profiling.audit import Checker

log = logging.getLogger(__name__)

ENGINES = ("auto", "chromium", "weasyprint")
STATE = "pdf_state.json"
#: Profiles printed as one Chromium document. On the benchmark city, 5 to 40 profiles a
#: document print at about the same speed (17-21 profiles a second on 2 cores, against 5 a page
#: at a time), while the browser's memory grows with the document (1.9 GiB for its processes
#: at 10, 2.8 GiB at 40); a stop loses at most 2 documents.
BATCH = 10
#: Chromium documents printed at the same time (each on a core of its own).
PARALLEL = 2
#: Where Chromium is looked for, in this order, before Playwright's own download.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.S)
_TITLE = re.compile(r"<title>(.*?)</title>", re.S)
_H1 = re.compile(r"<h1[^>]*>(.*?)</h1>", re.S)
#: A profile's line naming its settlement id, words and id (the words in the page's language).
_SID = re.compile(r'>([^<>]*)<span id="settlement-id">(.*?)</span>', re.S)
_TAG = re.compile(r"<[^>]+>")
#: What a batch adds to the atlas stylesheet: each profile from a new sheet.
_BATCH_CSS = "@media print { section.profile { break-before: page; } }"


@dataclass
class Printed:
    """What :func:`write_pdfs` did: every current PDF (``pdf_<page>``), the pages printed and
    skipped, the engine, the PDFs the audit cleared as they were written (path below the run's
    folder -> sha256), and the peak memory of the browser's processes (MiB, 0 without)."""

    files: dict[str, Path] = field(default_factory=dict)
    printed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    engine: str = ""
    cleared: dict[str, str] = field(default_factory=dict)
    browser_peak_mib: float = 0.0


def batch_size() -> int:
    """Profiles a Chromium document: ``PROFILING_PDF_BATCH``, else :data:`BATCH`."""
    named = os.environ.get("PROFILING_PDF_BATCH", "").strip()
    if not named:
        return BATCH
    if not named.isdigit() or not 1 <= int(named) <= 1000:
        raise ConfigError(f"PROFILING_PDF_BATCH={named[:20]!r}: expected a whole number of "
                          "profiles from 1 to 1000")
    return int(named)


def page_key(page: Path, css: bytes, engine: str) -> str:
    """The hash a page's PDF is printed from: its HTML, the stylesheet, engine, version."""
    h = hashlib.sha256(page.read_bytes())
    h.update(css)
    h.update(f"{engine} {__version__}".encode())
    return h.hexdigest()


def chromium_path() -> str | None:
    """The Chromium to print with: ``PROFILING_CHROMIUM``, else the first on the PATH, else
    None (Playwright's own download, when it has one)."""
    named = os.environ.get("PROFILING_CHROMIUM")
    if named:
        return named
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def write_pdfs(folder: Path, engine: str = "auto", checker: Checker | None = None,
               on_total: Callable[[int], None] | None = None,
               on_pages: Callable[[int], None] | None = None) -> Printed:
    """Print every page of the atlas in ``folder`` to ``folder/pdf/<page>.pdf`` with
    ``engine`` (``auto``: Chromium, else WeasyPrint), skipping the up-to-date ones.
    ``on_total`` learns how many pages will be printed, ``on_pages`` how many each step did."""
    if engine not in ENGINES:
        raise ConfigError(f"PDF engine {engine!r}: expected one of {', '.join(ENGINES)}")
    pdf = folder / "pdf"
    pdf.mkdir(exist_ok=True)
    pages = sorted(folder.glob("*.html"))
    stems = {p.stem for p in pages}
    for old in pdf.glob("*.pdf"):  # a settlement no longer in the atlas keeps no PDF
        if old.stem not in stems:
            old.unlink()
    for tmp in [*pdf.glob(".*.tmp"), folder / f".{STATE}.tmp"]:  # cut short by a stop
        tmp.unlink(missing_ok=True)
    state = _load_state(folder)
    css = _css(folder)
    chosen = _engine(engine)
    done = Printed(engine=chosen)
    keys = {p.stem: page_key(p, css, chosen) for p in pages}
    todo = [p for p in pages if not (state.get(p.stem) == keys[p.stem]
                                     and (pdf / f"{p.stem}.pdf").exists())]
    done.skipped = [p.stem for p in pages if p not in todo]
    if on_total is not None:
        on_total(len(todo))
    state = {k: v for k, v in state.items() if k in stems or k == BOOK_KEY}
    lock = threading.Lock()

    def save(written: dict[str, bytes], texts: dict[str, str] | None = None) -> None:
        """Write a step's PDFs (each atomically), check them (``texts``: their text, when
        the printer has it), then record them as done."""
        with lock:
            for stem, data in written.items():
                target = pdf / f"{stem}.pdf"
                tmp = pdf / f".{stem}.pdf.tmp"
                tmp.write_bytes(data)
                os.replace(tmp, target)
                state[stem] = keys[stem]
                done.printed.append(stem)
            if checker is not None:
                done.cleared |= _check(checker, {
                    f"{folder.name}/pdf/{s}.pdf": (pdf / f"{s}.pdf", data, (texts or {}).get(s))
                    for s, data in written.items()})
            _save_state(folder, state)
            if on_pages is not None:
                on_pages(len(written))

    if todo:
        if chosen == "chromium":
            done.browser_peak_mib = _run(_chromium(folder, todo, save))
        else:
            _weasyprint(folder, todo, save)
    done.files = {f"pdf_{p.stem}": pdf / f"{p.stem}.pdf" for p in pages}
    log.info("PDF (%s): %d printed, %d up to date", chosen, len(done.printed), len(done.skipped))
    return done


#: The state's entry for the book: its order and the hash of what it was bound from (a ``/``
#: is in no page's name).
BOOK_KEY = "/book"


def _css(folder: Path) -> bytes:
    return (folder / "atlas.css").read_bytes() if (folder / "atlas.css").exists() else b""


def _load_state(folder: Path) -> dict[str, str]:
    try:
        state = json.loads((folder / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(state, dict):
        return {}
    return {str(k): str(v) for k, v in state.items()}


def _save_state(folder: Path, state: dict[str, str]) -> None:
    tmp = folder / f".{STATE}.tmp"
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, folder / STATE)


def _book_key(folder: Path, order: str, state: dict[str, str]) -> str:
    """What the book in ``order`` is bound from: the settlement table's names and ranks, and
    each profile's PDF as its state records it."""
    h = hashlib.sha256(f"{order} {__version__}".encode())
    h.update(_css(folder))
    for sid, name, rank in book_order(folder, order):
        h.update(json.dumps([sid, name, rank, state.get(sid)]).encode())
    return f"{order} {h.hexdigest()}"


def prune_stale(folder: Path) -> list[str]:
    """Remove the PDFs (and the book) that no longer show what the atlas pages in ``folder``
    say, after the pages were rewritten without printing them: a PDF whose page changed since
    it was printed (by either engine) or is gone, and a book any of whose parts changed. The
    names of the files removed."""
    pdf = folder / "pdf"
    state = _load_state(folder)
    css = _css(folder)
    removed = []
    for path in sorted(pdf.glob("*.pdf")) if pdf.is_dir() else []:
        page = folder / f"{path.stem}.html"
        current = page.exists() and state.get(path.stem) in {
            page_key(page, css, e) for e in ENGINES[1:]}
        if not current:
            path.unlink()
            state.pop(path.stem, None)
            removed.append(f"pdf/{path.name}")
    book = folder / BOOK
    if book.exists():
        order = state.get(BOOK_KEY, "").split(" ")[0]
        if order not in ORDERS or _book_key(folder, order, state) != state.get(BOOK_KEY):
            book.unlink()
            state.pop(BOOK_KEY, None)
            removed.append(BOOK)
    if removed:
        _save_state(folder, state)
        log.warning("%d PDF(s) no longer matched the atlas pages and were removed (%s%s); "
                    "print them again with `profiling atlas --pdf` (or --book)", len(removed),
                    ", ".join(removed[:3]), ", ..." if len(removed) > 3 else "")
    return removed


def _check(checker: Checker, written: dict[str, tuple[Path, bytes, str | None]]
           ) -> dict[str, str]:
    """The audit's check of new PDFs (by their path below the run's folder: the file, its
    bytes, and its text when the printer has it already): those with no finding, with their
    hash."""
    from profiling.audit import pdf_text

    findings = set()
    hashes = {}
    for rel, (_path, data, text) in written.items():
        hashes[rel] = hashlib.sha256(data).hexdigest()
        findings |= {f.file for f in checker.text(rel, pdf_text(data) if text is None
                                                  else text)}
    findings |= {f.file for f in checker.flush()}
    return {rel: h for rel, h in hashes.items() if rel not in findings}


# -- engines -------------------------------------------------------------------------------
def _engine(engine: str) -> str:
    """The engine that will print: ``auto`` is Chromium when Playwright can start one."""
    if engine == "weasyprint":
        _import_weasyprint()
        return engine
    try:
        _run(_probe())
        return "chromium"
    except Exception as exc:  # no Playwright, or no browser it can start
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if engine == "chromium":
            raise ConfigError(
                f"--pdf-engine chromium: Chromium cannot be started ({why}). Install it "
                "(Debian: apt install chromium; or `playwright install chromium`), or set "
                "PROFILING_CHROMIUM to its path") from None
        log.warning("printing the PDFs with WeasyPrint, about ten times slower than "
                    "Chromium, which cannot be started here (%s)", why)
        _import_weasyprint()
        return "weasyprint"


def _import_weasyprint() -> Any:
    try:
        import weasyprint
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConfigError("`profiling atlas --pdf` needs Chromium (with Playwright) or "
                          "WeasyPrint: pip install 'profiling[pdf]'") from exc
    for name in ("weasyprint", "weasyprint.progress", "fontTools"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return weasyprint


def _weasyprint(folder: Path, todo: list[Path], save: Callable[..., None]
                ) -> None:
    weasyprint = _import_weasyprint()
    for page in todo:
        save({page.stem: weasyprint.HTML(filename=str(page), base_url=str(folder)).write_pdf()})


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to its end, also from inside a running event loop (a notebook's)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _launch(p: Any) -> Any:
    return await p.chromium.launch(executable_path=chromium_path())


async def _probe() -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await _launch(p)
        await browser.close()


def _text(fragment: str) -> str:
    return _norm(html.unescape(_TAG.sub("", fragment)))


def _parts(page: Path) -> tuple[str, str, tuple[str, str]]:
    """A page's body, title, and heading and the line naming its settlement id (``Settlement
    id JK01``, in the page's language; as text, empty when it has none)."""
    text = page.read_text(encoding="utf-8")
    body = _BODY.search(text)
    title = _TITLE.search(text)
    h1 = _H1.search(text)
    sid = _SID.search(text)
    return (body.group(1) if body else "",
            html.unescape(title.group(1)).strip() if title else page.stem,
            (_text(h1.group(1)) if h1 else "",
             _text(f"{sid.group(1)} {sid.group(2)}") if sid else ""))


_LANG = re.compile(r'<html lang="([a-z]{2})">')


def _lang(page: Path) -> str:
    """The language a page says it is in (``<html lang="fr">``; English when it says none)."""
    with page.open(encoding="utf-8") as f:
        hit = _LANG.search(f.read(400))
    return hit.group(1) if hit else "en"


def batch_document(folder: Path, bodies: Sequence[str], css: str, lang: str = "en",
                   extra_css: str = "") -> str:
    """One HTML document of many profiles' bodies, each a section from a new sheet, with the
    atlas stylesheet inline (the page is given to Chromium as content, not as a file)."""
    sections = "".join(f'<section class="profile">{b}</section>' for b in bodies)
    return (f'<!DOCTYPE html><html lang="{html.escape(lang)}"><head><meta charset="utf-8">'
            f'<base href="{html.escape(folder.resolve().as_uri())}/">'
            f"<style>{css}\n{_BATCH_CSS}\n{extra_css}</style></head><body>{sections}"
            "</body></html>")


def _norm(text: str) -> str:
    return " ".join(text.split())


def split_profiles(data: bytes, heads: Sequence[tuple[str, str]], titles: Sequence[str]
                   ) -> list[tuple[bytes, str]] | None:
    """Cut a printed batch into one PDF a profile, each titled, with its text (its pages' and
    its metadata's: pypdf copies the page objects as they are). ``heads`` are the profiles'
    ``(heading, settlement id line)`` in order: a profile starts on the first page after the
    last one's start whose text begins with its heading and has the line ``Settlement id <id>``
    (as the page words it).
    None when a profile is not found so (the batch is then printed page by page)."""
    import pypdfium2 as pdfium
    from pypdf import PdfReader, PdfWriter

    doc = pdfium.PdfDocument(data)
    texts = []
    for page in doc:
        textpage = page.get_textpage()
        texts.append(textpage.get_text_range())
        textpage.close()
        page.close()
    doc.close()
    starts: list[int] = []
    for heading, marker in heads:
        first = starts[-1] + 1 if starts else 0
        found = next((i for i in range(first, len(texts)) if _norm(texts[i]).startswith(
            heading) and any(_norm(line) == marker for line in texts[i].splitlines())), None)
        if found is None or (not starts and found != 0):
            return None
        starts.append(found)
    reader = PdfReader(io.BytesIO(data))
    ends = [*starts[1:], len(reader.pages)]
    out = []
    for a, b, title in zip(starts, ends, titles, strict=True):
        writer = PdfWriter()
        for i in range(a, b):
            writer.add_page(reader.pages[i])
        meta = _metadata(title)
        writer.add_metadata(meta)
        buffer = io.BytesIO()
        writer.write(buffer)
        out.append((buffer.getvalue(), "\n".join([*meta.values(), *texts[a:b]])))
    return out


def _tree_rss_mib() -> float:
    """The resident memory of this process's children (the browser and its driver), MiB."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with dask.distributed
        return 0.0
    total = 0
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total / 2**20


async def _chromium(folder: Path, todo: list[Path], save: Callable[..., None]
                    ) -> float:
    """Print ``todo``: the profiles in batches, two documents at a time; any page a batch
    cannot take (the index, a page of another shape) on its own."""
    from playwright.async_api import async_playwright

    css = (folder / "atlas.css").read_text(encoding="utf-8") if (
        folder / "atlas.css").exists() else ""
    alone: list[Path] = []
    profiles: list[Path] = []
    for page in todo:  # (the pages are read again per batch: no batch holds more than its own)
        body, _title, (h1, sid) = _parts(page)
        (profiles if body and h1 and sid and page.stem != "index" else alone).append(page)
    size = max(1, min(batch_size(), -(-len(profiles) // PARALLEL)))  # small: one per core
    batches = [profiles[i:i + size] for i in range(0, len(profiles), size)]
    queue: asyncio.Queue[list[Path]] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)
    for page in alone:
        queue.put_nowait([page])
    peak = 0.0
    options = {"prefer_css_page_size": True, "print_background": True}
    async with async_playwright() as p:
        browser = await _launch(p)
        try:
            async def worker() -> None:
                nonlocal peak
                context = await browser.new_context(java_script_enabled=False, offline=True)
                tab = await context.new_page()
                while not queue.empty():
                    batch = queue.get_nowait()
                    if len(batch) == 1:
                        await tab.goto(batch[0].resolve().as_uri())
                        data = await tab.pdf(**options)
                        peak = max(peak, _tree_rss_mib())
                        save({batch[0].stem: _titled(data, _parts(batch[0])[1])})
                        continue
                    parts = [_parts(page) for page in batch]
                    await tab.set_content(batch_document(folder, [b for b, _, _ in parts], css,
                                                         _lang(batch[0])))
                    data = await tab.pdf(**options)
                    peak = max(peak, _tree_rss_mib())
                    pieces = split_profiles(data, [h for _, _, h in parts],
                                            [t for _, t, _ in parts])
                    if pieces is None:  # a profile not found where expected: each alone
                        log.debug("batch from %s: a profile not found where expected, printed "
                                  "page by page", batch[0].name)
                        for page in batch:
                            queue.put_nowait([page])
                        continue
                    save({page.stem: piece for page, (piece, _) in zip(batch, pieces,
                                                                       strict=True)},
                         {page.stem: text for page, (_, text) in zip(batch, pieces,
                                                                     strict=True)})
                await context.close()

            await asyncio.gather(*[worker() for _ in range(PARALLEL)])
        finally:
            await browser.close()
    return peak


def _titled(data: bytes, title: str) -> bytes:
    """The PDF with its document title (the page's ``<title>``)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.add_metadata(_metadata(title))
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _metadata(title: str) -> dict[str, str]:
    return {"/Title": title, "/Producer": f"profiling {__version__}"}


# -- the book ------------------------------------------------------------------------------
BOOK = "atlas.pdf"
ORDERS = ("rank", "name")
#: The page number at the foot of every sheet of the book; its counter starts where the
#: document's first page sits in the book.
_FOOTER_CSS = ("@page { @bottom-center { content: counter(page); font-family: 'DejaVu Sans', "
               "Arial, sans-serif; font-size: 9px; color: #555; } }\n"
               ".blank-sheet { break-before: page; height: 1px; }")


def book_order(folder: Path, order: str) -> list[tuple[str, str, str]]:
    """``(page, name, rank)`` of every profile that has a PDF, in the book's ``order``: by CUF
    rank (the settlements not ranked after, by name) or by name."""
    import pandas as pd

    if order not in ORDERS:
        raise ConfigError(f"--book {order!r}: expected one of {', '.join(ORDERS)}")
    table = folder.parent / "settlement_indicators.csv"
    frame = pd.read_csv(table, dtype=str, keep_default_na=False, usecols=lambda c: c in (
        "settlement_id", "name", "cuf_rank"))
    have = {p.stem for p in (folder / "pdf").glob("*.pdf")}
    frame = frame[frame["settlement_id"].isin(have)]
    rank = pd.to_numeric(frame.get("cuf_rank", pd.Series(dtype=str)), errors="coerce")
    frame = frame.assign(_rank=rank, _name=frame["name"].str.casefold())
    keys = ["_rank", "_name", "settlement_id"] if order == "rank" else [
        "_name", "settlement_id"]
    frame = frame.sort_values(keys, na_position="last", kind="stable")
    return [(sid, name, "" if pd.isna(r) else str(int(r))) for sid, name, r in zip(
        frame["settlement_id"], frame["name"], frame["_rank"], strict=True)]


def _contents(entries: list[tuple[str, str, str]], starts: list[int], order: str) -> str:
    rows = "".join(
        f"<tr><td class=\"num\">{html.escape(rank) or '–'}</td><td>{html.escape(name)}</td>"
        f"<td>{html.escape(sid)}</td><td class=\"num\">{start}</td></tr>"
        for (sid, name, rank), start in zip(entries, starts, strict=True))
    by = "CUF priority rank" if order == "rank" else "name"
    return (f"<h1>Settlement atlas</h1><p class=\"small\">{len(entries)} settlement profiles, "
            f"in order of {by}; each starts on a new sheet.</p><h2>Contents</h2>"
            "<table><tr><th class=\"num\">CUF rank</th><th>Settlement</th><th>Id</th>"
            f"<th class=\"num\">Page</th></tr>{rows}</table>")


def write_book(folder: Path, order: str = "rank", engine: str = "chromium",
               checker: Checker | None = None,
               on_total: Callable[[int], None] | None = None,
               on_pages: Callable[[int], None] | None = None) -> tuple[Path, dict[str, str]]:
    """Bind the atlas's profiles (their PDFs printed already) into ``atlas/atlas.pdf``: a table
    of contents, then every profile in ``order``, each from a new sheet, every page numbered and
    bookmarked. The profiles are printed again, in batches with the page counter set where
    each batch sits, so no layout holds more than one batch; the book is assembled in memory
    (pypdf), about 6 KB a page. With ``checker``, the audit reads every document the book is
    made of as it is printed (pypdf copies their pages' content as it is) and the book's
    bookmarks and metadata; the book is returned with ``{its path: its sha256}`` when that
    found nothing (else with nothing cleared: the folder's audit reads it again)."""
    import pypdfium2 as pdfium
    from pypdf import PdfReader, PdfWriter

    from profiling.audit import pdf_text

    entries = book_order(folder, order)
    if not entries:
        raise ConfigError(f"no profile PDFs in {folder / 'pdf'} to bind")
    state = _load_state(folder)
    key = _book_key(folder, order, state)
    target = folder / BOOK
    if target.exists() and state.get(BOOK_KEY) == key:
        log.info("atlas.pdf (%s order) is up to date", order)
        return target, {}
    # each profile is a sheet printed on both sides: it starts on a right-hand page, after a
    # blank one when the profile before it (or the contents) has an odd number of pages
    printed = [len(pdfium.PdfDocument(folder / "pdf" / f"{sid}.pdf")) for sid, _, _ in entries]
    counts = [n + n % 2 for n in printed]
    if on_total is not None:
        on_total(len(entries))
    css = (folder / "atlas.css").read_text(encoding="utf-8")
    # the contents' own length first (with page numbers as wide as the real ones), then again
    width = len(str(sum(counts) + 99))
    toc_pages = 0
    for _ in range(3):
        starts = [toc_pages + 1 + sum(counts[:i]) for i in range(len(entries))] if (
            toc_pages) else [int("9" * width)] * len(entries)
        toc = _print_documents(folder, [(_contents(entries, starts, order), 0)], css, engine)[0]
        n = len(pdfium.PdfDocument(toc))
        n += n % 2
        if n == toc_pages:
            break
        toc_pages = n
    starts = [toc_pages + 1 + sum(counts[:i]) for i in range(len(entries))]
    size = max(1, min(batch_size(), -(-len(entries) // PARALLEL)))
    batches = [list(range(i, min(i + size, len(entries)))) for i in range(0, len(entries), size)]
    documents = []
    for b in batches:
        bodies = [_parts(folder / f"{entries[i][0]}.html")[0]
                  + ('<div class="blank-sheet"></div>' if printed[i] % 2 else "") for i in b]
        documents.append(("".join(f'<section class="profile">{x}</section>' for x in bodies),
                          starts[b[0]] - 1))
    rel = f"{folder.name}/{BOOK}"
    found: set[str] = set()

    def check(data: bytes) -> None:
        if checker is not None:
            found.update(f.file for f in checker.text(rel, pdf_text(data)))

    check(toc)
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(toc)), import_outline=False)
    if len(writer.pages) % 2:
        box = writer.pages[0].mediabox
        writer.add_blank_page(float(box.width), float(box.height))
    writer.add_outline_item(title="Contents", page_number=0)
    (folder / f".{BOOK}.tmp").unlink(missing_ok=True)
    for b, data in zip(batches, _print_documents(folder, documents, css, engine, raw=True),
                       strict=True):
        reader = PdfReader(io.BytesIO(data))
        expected = sum(counts[i] for i in b)
        if len(reader.pages) != expected:
            raise RuntimeError(f"atlas.pdf: profiles {entries[b[0]][0]}…{entries[b[-1]][0]} "
                               f"printed on {len(reader.pages)} pages, not {expected}")
        check(data)
        writer.append(reader, import_outline=False)
        for i in b:
            writer.add_outline_item(title=f"{entries[i][1]} ({entries[i][0]})",
                                    page_number=starts[i] - 1)
        if on_pages is not None:
            on_pages(len(b))
    writer.add_metadata(_metadata("Settlement atlas"))
    writer.page_mode = "/UseOutlines"
    tmp = folder / f".{BOOK}.tmp"
    with tmp.open("wb") as fh:
        writer.write(fh)
    os.replace(tmp, target)
    state = _load_state(folder)
    state[BOOK_KEY] = key
    _save_state(folder, state)
    if checker is None:
        return target, {}
    marks = ["Contents", *(f"{name} ({sid})" for sid, name, _ in entries)]
    found.update(f.file for f in checker.text(rel, "\n".join(
        [*marks, *_metadata("Settlement atlas").values()])))
    found.update(f.file for f in checker.flush())
    if found:
        return target, {}
    return target, {rel: hashlib.sha256(target.read_bytes()).hexdigest()}


def _print_documents(folder: Path, documents: list[tuple[str, int]], css: str, engine: str,
                     raw: bool = False) -> list[bytes]:
    """Print each ``(body, pages before it)`` as one document with numbered pages; ``raw``:
    the bodies are sections already."""
    footer = _FOOTER_CSS
    full = []
    for body, before in documents:
        counter = (f"html {{ counter-reset: page {before}; }}" if engine == "chromium"
                   else f"@page :first {{ counter-reset: page {before + 1}; }}")
        full.append(batch_document(folder, [], css, extra_css=footer + "\n" + counter
                                   ).replace("<body></body>", f"<body>{body}</body>"))
    if engine == "chromium":
        return _run(_print_chromium(full))
    weasyprint = _import_weasyprint()
    return [weasyprint.HTML(string=d, base_url=str(folder)).write_pdf() for d in full]


async def _print_chromium(documents: list[str]) -> list[bytes]:
    from playwright.async_api import async_playwright

    out: list[bytes | None] = [None] * len(documents)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(documents)):
        queue.put_nowait(i)
    async with async_playwright() as p:
        browser = await _launch(p)
        try:
            async def worker() -> None:
                context = await browser.new_context(java_script_enabled=False, offline=True)
                tab = await context.new_page()
                while not queue.empty():
                    i = queue.get_nowait()
                    await tab.set_content(documents[i])
                    out[i] = await tab.pdf(prefer_css_page_size=True, print_background=True)
                await context.close()

            await asyncio.gather(*[worker() for _ in range(PARALLEL)])
        finally:
            await browser.close()
    return [d for d in out if d is not None]
