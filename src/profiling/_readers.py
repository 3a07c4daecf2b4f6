"""Reading export files into string tables: CSV, XLSX, GeoJSON and GeoPackage.

Every reader returns a :class:`RawExport`: the export's cells as strings (``pd.NA`` for an empty
cell) under the export's own headers, the row number of each record as a person opening the file
would see it (the header is row 1 of a CSV or a sheet; features count from 1), and the rows that
could not be split into the header's fields. Nothing here knows the questionnaire.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import logging
import re
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from profiling._errors import InputFileError
from profiling.config import ReadLimits

log = logging.getLogger(__name__)

STRING = pd.StringDtype("pyarrow")
_NON_BLANK = re.compile(rb"\S")
#: Column names under which geographic readers put a feature's point, in WGS84 degrees.
GEOM_LAT, GEOM_LON = "__geometry_latitude", "__geometry_longitude"


@dataclass
class RawExport:
    """An export as read: string cells, file row numbers and unsplittable rows."""

    path: Path
    format: str
    table: pd.DataFrame
    rows: np.ndarray
    sha256: str
    #: ``(row number, problem)`` for records that could not be split into the header's fields.
    malformed: list[tuple[int, str]] = field(default_factory=list)

    @property
    def n_read(self) -> int:
        """Records read, the malformed ones included."""
        return len(self.table) + len(self.malformed)


def sha256_of(path: Path) -> str:
    """The sha256 of a file, read in blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def detect_format(path: Path) -> str:
    """The reader for a file, from its name."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        return "csv"
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx"
    if suffix in (".geojson", ".json"):
        return "geojson"
    if suffix == ".gpkg":
        return "gpkg"
    if suffix == ".zip":
        return "odk_zip"
    if suffix == ".xls":
        raise InputFileError(path, "old-style .xls workbooks are not read; save the export as "
                                   ".xlsx or download it from the server as CSV")
    raise InputFileError(path, f"unknown export format {suffix!r}; expected .csv, .xlsx, "
                               ".geojson or .gpkg, or set 'format' for this survey")


def read_export(path: Path, fmt: str = "auto", encoding: str = "utf-8",
                na_values: list[str] | None = None, layer: str | None = None,
                limits: ReadLimits | None = None) -> RawExport:
    """Read one export file into a :class:`RawExport` (``limits``: how far a compressed one
    may unpack)."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "the export does not exist")
    if path.is_dir():
        raise InputFileError(path, "is a folder, not an export file")
    if path.stat().st_size == 0:
        raise InputFileError(path, "the file is empty (0 bytes); download the export again")
    kind = detect_format(path) if fmt == "auto" else fmt
    na = [*(na_values or [])]
    if kind in ("csv", "kobo_csv", "odk_csv"):
        return _read_csv(path, kind, encoding, na)
    if kind in ("xlsx", "kobo_xlsx"):
        return _read_xlsx(path, kind, na, layer, limits)
    if kind in ("geojson", "gpkg"):
        return _read_geo(path, kind, na, layer)
    if kind == "odk_zip":
        return _read_zip(path, encoding, na, layer, limits)
    raise InputFileError(path, f"unknown format {fmt!r}")  # pragma: no cover - config validates


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------

def _to_utf8(path: Path, raw: bytes, encoding: str) -> bytes:
    """The file's bytes as UTF-8 without a BOM; errors name the first bad byte."""
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8):]
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputFileError(path, f"starts with a UTF-16 byte-order mark but is not UTF-16 "
                                       f"text (byte offset {exc.start})") from None
    norm = codecs.lookup(encoding).name
    if norm != "utf-8":
        try:
            return raw.decode(encoding).encode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputFileError(path, _bad_bytes(raw, exc, encoding)) from None
    return raw


def _bad_bytes(raw: bytes, exc: UnicodeDecodeError, encoding: str) -> str:
    line = raw.count(b"\n", 0, exc.start) + 1
    byte = raw[exc.start:exc.start + 1].hex().upper()
    return (f"not {encoding} text: byte 0x{byte} at line {line} (byte offset {exc.start}); "
            "export the survey again as UTF-8, or set 'encoding' for this survey in the "
            "configuration (for example cp1252 or latin-1)")


def _header(path: Path, data: bytes) -> tuple[list[str], str]:
    end = data.find(b"\n")
    first = (data if end < 0 else data[:end]).decode("utf-8", errors="replace").rstrip("\r")
    if not first.strip():
        raise InputFileError(path, "the first line is blank; a CSV export starts with its "
                                   "column headers")
    counts = {d: first.count(d) for d in (";", ",", "\t")}
    delim = max(counts, key=lambda d: counts[d])
    header = next(csv.reader([first], delimiter=delim))
    header = _name_blank([h.strip() for h in header])
    seen: set[str] = set()
    dups = sorted({h for h in header if h in seen or seen.add(h)})  # type: ignore[func-returns-value]
    if dups:
        raise InputFileError(path, f"the header repeats column(s) {', '.join(dups)}")
    return header, delim


def _name_blank(header: list[str]) -> list[str]:
    """Blank header cells (a spreadsheet's row index, say) become ``unnamed_<column number>``:
    such a column is read like any other that the form does not know, i.e. ignored."""
    return [h if h else f"unnamed_{i + 1}" for i, h in enumerate(header)]


def _read_csv(path: Path, kind: str, encoding: str, na: list[str]) -> RawExport:
    raw = path.read_bytes()
    # the file's hash on another core while the file is parsed (hashlib releases the GIL)
    with ThreadPoolExecutor(1, thread_name_prefix="sha256") as pool:
        hashing = pool.submit(hashlib.sha256, raw)
        export = _parse_csv(path, kind, encoding, na, raw, hashing)
    return export


#: Bytes of CSV that Arrow parses at once (one block a thread).
CSV_BLOCK = 1 << 24


def _arrow_csv(data: bytes, header: list[str], delim: str, na: list[str],
               body_start: int) -> pa.Table:
    """Every record of ``data`` as large strings, parsed by Arrow on every core.

    Arrow cuts the file into blocks at newlines before parsing them in parallel; where a
    quoted value may hold a newline it must find the blocks' ends quote by quote instead, which
    takes twice as long. So the file is parsed the fast way first, while another thread counts
    its lines, and the fast table is kept only when every line is a record (as many records as
    line ends: no value held a newline) and no value of the last column ends a line. A block
    cut inside a quoted value leaves its record's first part with the value open to the
    block's end: too few fields (the parse stops), or, for a value of the last column, a
    value that ends with the newline the block was cut at, with the rest of the value read as
    a record of its own, which the count alone would not tell. Otherwise the file is parsed
    again the careful way.
    """
    def parse(newlines_in_values: bool) -> pa.Table:
        return pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=header, skip_rows=1,
                                           block_size=CSV_BLOCK),
            parse_options=pacsv.ParseOptions(delimiter=delim,
                                             newlines_in_values=newlines_in_values),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.large_string()), strings_can_be_null=True,
                quoted_strings_can_be_null=True, null_values=["", *na]),
        )

    with ThreadPoolExecutor(1, thread_name_prefix="lines") as pool:
        # bytes.count holds the GIL, Arrow's parser does not: the two run side by side
        counting = pool.submit(data.count, b"\n", body_start)
        try:
            table = parse(False)
        except pa.ArrowInvalid:
            table = None
        lines = counting.result() + (0 if data.endswith(b"\n") else 1)
    if table is not None and table.num_rows == lines and not (
            table.num_columns and pc.any(pc.match_substring_regex(
                table.column(table.num_columns - 1), "[\r\n]")).as_py()):
        return table
    return parse(True)


def _parse_csv(path: Path, kind: str, encoding: str, na: list[str], raw: bytes,
               hashing: Future[Any]) -> RawExport:
    data = _to_utf8(path, raw, encoding)
    del raw
    if _NON_BLANK.search(data) is None:
        raise InputFileError(path, "the file holds no text (only blanks or a byte-order mark)")
    header, delim = _header(path, data)
    newline = data.find(b"\n")
    body_start = newline + 1 if newline >= 0 else len(data)
    if _NON_BLANK.search(data, body_start) is None:
        raise InputFileError(path, "holds a header but no submissions")
    # UTF-8 is checked by Arrow as it converts each column to strings; a file that is not
    # UTF-8 fails it, and the record-by-record path then names the first bad byte
    if data.count(b'"') % 2:
        # an odd number of quotes: a stray quote in an answer (5'7"), or a file cut off inside
        # a quoted value; only parsing tells which, record by record
        return _read_csv_rows(path, kind, data, header, delim, na,
                              hashing.result().hexdigest())
    # No handler of invalid rows: with one, Arrow parses far slower. A record with the wrong
    # number of fields stops it instead, and the file is then read record by record (below),
    # where each such record is rejected with its row number.
    try:
        table = _arrow_csv(data, header, delim, na, body_start)
    except pa.ArrowInvalid as exc:  # a malformed record, or bytes that are not UTF-8
        log.debug("%s: pyarrow could not parse (%s); reading row by row", path, exc)
        return _read_csv_rows(path, kind, data, header, delim, na,
                              hashing.result().hexdigest())
    # large strings, as pandas keeps them: no column is converted on the way in
    frame = _strip_blank_arrow(table).to_pandas(types_mapper={pa.large_string(): STRING}.get)
    rows = np.arange(2, len(frame) + 2, dtype=np.int64)
    return RawExport(path, kind, frame, rows, hashing.result().hexdigest())


# --------------------------------------------------------------------------------------------
# ODK Central's "CSV zip": the main table and one CSV per repeat group
# --------------------------------------------------------------------------------------------

def zip_tables(path: Path, limits: ReadLimits | None = None) -> tuple[str, list[str]]:
    """The main CSV of an ODK Central CSV zip and its repeat CSVs (``FORM.csv`` and
    ``FORM-REPEAT.csv``; media files are not tables), by member name."""
    check_zip(path, limits)
    with zipfile.ZipFile(path) as z:
        names = [i.filename for i in z.infolist()
                 if not i.is_dir() and i.filename.lower().endswith(".csv")]
    if not names:
        raise InputFileError(path, "this zip holds no CSV file; an ODK Central \"CSV zip\" "
                                   "holds the submissions as FORM.csv")
    stems = {n: Path(n).stem for n in names}
    mains = [n for n in names if all(o == n or stems[o].startswith(stems[n] + "-")
                                     for o in names)]
    if len(mains) != 1:
        raise InputFileError(path, f"cannot tell which CSV of this zip holds the submissions "
                                   f"({', '.join(sorted(names))}); ODK Central names it FORM.csv "
                                   "and each repeat FORM-REPEAT.csv")
    return mains[0], [n for n in names if n != mains[0]]


def _read_zip(path: Path, encoding: str, na: list[str], member: str | None,
              limits: ReadLimits | None) -> RawExport:
    """One CSV of an ODK Central zip: the main table, or ``member`` (a member's name, or the
    repeat's name: ``members`` reads ``FORM-members.csv``)."""
    main, repeats = zip_tables(path, limits)
    name = main
    if member is not None:
        hits = [n for n in [main, *repeats] if n == member or Path(n).stem == member
                or Path(n).stem.endswith("-" + member)]
        if len(hits) != 1:
            raise InputFileError(path, f"has no CSV {member!r} (its CSVs: "
                                       f"{', '.join([main, *repeats])})")
        name = hits[0]
    with zipfile.ZipFile(path) as z:
        raw = z.read(name)  # its unpacked size was bounded by check_zip
    digest = sha256_of(path)
    done: Future[Any] = Future()
    done.set_result(hashlib.sha256(b""))
    export = _parse_csv(Path(f"{path}!{name}"), "odk_csv", encoding, na, raw, done)
    return RawExport(path if name == main else export.path, "odk_zip", export.table,
                     export.rows, digest, export.malformed)


def table_names(path: Path, limits: ReadLimits | None = None) -> list[str]:
    """The sheets of an XLSX workbook, or the repeat CSVs of an ODK Central zip."""
    if detect_format(path) == "odk_zip":
        return zip_tables(path, limits)[1]
    from openpyxl import load_workbook

    check_zip(path, limits)
    try:
        wb = load_workbook(path, read_only=True)
    except Exception as exc:  # openpyxl raises many kinds on a damaged file
        raise InputFileError(path, f"not a readable .xlsx workbook ({exc.__class__.__name__})"
                             ) from None
    try:
        return list(wb.sheetnames)
    finally:
        wb.close()


def _ends_inside_quotes(text: str, delim: str) -> bool:
    """Whether ``text`` (whole records) ends inside a quoted value, by strict parsing."""
    try:
        for _ in csv.reader(io.StringIO(text, newline=""), delimiter=delim, strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _read_csv_rows(path: Path, kind: str, data: bytes, header: list[str], delim: str,
                   na: list[str], digest: str) -> RawExport:
    """The slow, exact path: Python's csv module, for files with malformed records."""
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise InputFileError(path, _bad_bytes(data, exc, "UTF-8")) from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    next(reader, None)
    good: list[list[str]] = []
    rows: list[int] = []
    malformed: list[tuple[int, str]] = []
    i = 1  # records so far, the header included: row numbers as a person counts them
    last_start = reader.line_num  # the line where the last record begins
    while True:
        start = reader.line_num
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # this record is broken; the next ones are read as usual
            i += 1
            malformed.append((i, f"the record cannot be read ({exc})"))
            last_start = start
            continue
        i += 1
        last_start = start
        if not rec or all(not c.strip() for c in rec):
            continue
        if len(rec) != len(header):
            malformed.append((i, f"the record has {len(rec)} fields where the header has "
                                 f"{len(header)}"))
            continue
        good.append(rec)
        rows.append(i)
    # the last record: does the file end inside one of its quoted values (a cut download)?
    tail = "".join(text.splitlines(keepends=True)[last_start:])
    if tail.strip() and _ends_inside_quotes(tail, delim):
        cut = ("the file ends inside a quoted value: the download was cut off and this last "
               "record is incomplete")
        if rows and rows[-1] == i:
            rows.pop()
            good.pop()
            malformed.append((i, cut))
        elif malformed and malformed[-1][0] == i:
            malformed[-1] = (i, f"{malformed[-1][1]}; {cut}")
    elif malformed and malformed[-1][0] == i and not data.endswith(b"\n"):
        row, problem = malformed[-1]
        malformed[-1] = (row, problem + "; the file ends here: is the download cut off?")
    nulls = {"", *na}
    frame = pd.DataFrame(good, columns=header, dtype=STRING) if good else pd.DataFrame(
        {h: pd.Series([], dtype=STRING) for h in header})
    frame = frame.mask(frame.isin(nulls))
    frame = _strip_blank(frame.astype(STRING))
    return RawExport(path, kind, frame, np.asarray(rows, dtype=np.int64), digest, malformed)


def _strip_blank_arrow(table: pa.Table) -> pa.Table:
    """Cells holding only white space are no answer (columnar: one kernel per column)."""
    for i, name in enumerate(table.column_names):
        col = table.column(i)
        blank = pc.utf8_is_space(col)
        if pc.any(blank).as_py():
            table = table.set_column(i, name, pc.if_else(blank, pa.scalar(None, col.type),
                                                         col))
    return table


def _strip_blank(frame: pd.DataFrame) -> pd.DataFrame:
    """Cells holding only white space are no answer."""
    for c in frame.columns:
        s = frame[c]
        blank = s.str.strip() == ""
        if blank.any():
            frame[c] = s.mask(blank.fillna(False))
    return frame


# --------------------------------------------------------------------------------------------
# XLSX
# --------------------------------------------------------------------------------------------

def _cell(v: object) -> str | None:
    if v is None:
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def check_zip(path: Path, limits: ReadLimits | None = None) -> None:
    """Refuse a zip container (an XLSX workbook) whose members would unpack past ``limits``:
    read from its directory, before anything is unpacked."""
    path = Path(path)
    limits = limits or ReadLimits()
    mib = 1 << 20
    try:
        with zipfile.ZipFile(path) as z:
            members = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        what = (".xlsx workbook" if path.suffix.lower() in (".xlsx", ".xlsm")
                else "zip container")
        raise InputFileError(path, f"not a readable {what} ({exc.__class__.__name__}); is the "
                                   "download truncated? Download it again") from None
    total = sum(m.file_size for m in members)
    if total > limits.max_unpacked_mib * mib:
        raise InputFileError(path, f"would unpack to {total / mib:,.0f} MiB, more than the "
                                   f"limit of {limits.max_unpacked_mib:,.0f} MiB "
                                   "(limits.max_unpacked_mib): refused as a decompression bomb")
    for m in members:
        ratio = m.file_size / max(m.compress_size, 1)
        if m.file_size > mib and ratio > limits.max_compression_ratio:
            raise InputFileError(path, f"its member {m.filename!r} unpacks {ratio:,.0f} times "
                                       f"({m.compress_size:,} to {m.file_size:,} bytes), more than "
                                       f"{limits.max_compression_ratio:g} times "
                                       "(limits.max_compression_ratio): refused as a "
                                       "decompression bomb")
        if (m.filename.lower().endswith("sharedstrings.xml")
                and m.file_size > limits.max_shared_strings_mib * mib):
            raise InputFileError(path, f"its shared strings unpack to {m.file_size / mib:,.0f} "
                                       f"MiB, more than {limits.max_shared_strings_mib:,.0f} MiB "
                                       "(limits.max_shared_strings_mib)")


def _read_xlsx(path: Path, kind: str, na: list[str], sheet: str | None,
               limits: ReadLimits | None = None) -> RawExport:
    from openpyxl import load_workbook

    check_zip(path, limits)
    digest = sha256_of(path)
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds on a damaged file
        raise InputFileError(path, f"not a readable .xlsx workbook ({exc.__class__.__name__}); "
                                   "is the download truncated? Download the export again"
                             ) from None
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise InputFileError(path, f"has no sheet {sheet!r} (sheets: "
                                       f"{', '.join(wb.sheetnames)})")
        ws = wb[sheet] if sheet else wb.worksheets[0]
        it = ws.iter_rows(values_only=True)
        first = next(it, None)
        if first is None or all(v is None for v in first):
            raise InputFileError(path, f"sheet {ws.title!r} is empty; the first row must hold "
                                       "the column headers")
        header = [str(h).strip() if h is not None else "" for h in first]
        while header and not header[-1]:
            header.pop()
        header = _name_blank(header)
        dups = sorted({h for h in header if header.count(h) > 1})
        if dups:
            raise InputFileError(path, f"the header repeats column(s) {', '.join(dups)}")
        width = len(header)
        records: list[list[str | None]] = []
        rows: list[int] = []
        malformed: list[tuple[int, str]] = []
        for i, rec in enumerate(it, start=2):
            values = [_cell(v) for v in rec]
            if all(v is None or not str(v).strip() for v in values):
                continue
            if len(values) > width and any(v is not None for v in values[width:]):
                malformed.append((i, f"the row has values beyond the {width} named columns"))
                continue
            values = (values + [None] * width)[:width]
            records.append(values)
            rows.append(i)
    except InputFileError:
        raise
    except Exception as exc:
        raise InputFileError(path, f"the workbook is damaged ({exc.__class__.__name__}); is the "
                                   "download truncated? Download the export again") from None
    finally:
        wb.close()
    if not records and not malformed:
        raise InputFileError(path, "holds a header but no submissions")
    frame = pd.DataFrame(records, columns=header, dtype=STRING) if records else pd.DataFrame(
        {h: pd.Series([], dtype=STRING) for h in header})
    if na:
        frame = frame.mask(frame.isin(na))
    frame = _strip_blank(frame.astype(STRING))
    return RawExport(path, kind, frame, np.asarray(rows, dtype=np.int64), digest, malformed)


# --------------------------------------------------------------------------------------------
# GeoJSON and GeoPackage point layers
# --------------------------------------------------------------------------------------------

def _read_geo(path: Path, kind: str, na: list[str], layer: str | None) -> RawExport:
    import pyogrio
    import shapely

    digest = sha256_of(path)
    try:
        gdf = pyogrio.read_dataframe(path, layer=layer)
    except Exception as exc:  # pyogrio raises DataSourceError, DataLayerError, ...
        raise InputFileError(path, f"cannot be read as {kind} ({exc.__class__.__name__}: "
                                   f"{str(exc).splitlines()[0][:200]})") from None
    if len(gdf) == 0:
        raise InputFileError(path, "the layer holds no features")
    geom = gdf.geometry
    types = set(shapely.get_type_id(geom.values[~geom.isna().to_numpy()]).tolist())
    if types - {0}:
        raise InputFileError(path, "household exports must be point layers; this layer holds "
                                   "other geometries")
    if gdf.crs is None:
        raise InputFileError(path, "the layer has no coordinate reference system")
    if not gdf.crs.equals("EPSG:4326"):
        geom = geom.to_crs("EPSG:4326")
    frame = pd.DataFrame({c: gdf[c] for c in gdf.columns if c != gdf.geometry.name})
    for c in frame.columns:
        s = frame[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            s = s.map(lambda t: t.isoformat() if pd.notna(t) else None)
        frame[c] = s.astype(object).where(s.notna(), None).map(
            lambda v: _cell(v) if v is not None else None).astype(STRING)
    empty = geom.isna().to_numpy() | shapely.is_empty(geom.values)
    xs = np.where(empty, np.nan, shapely.get_x(geom.values))
    ys = np.where(empty, np.nan, shapely.get_y(geom.values))
    frame[GEOM_LAT] = pd.Series(ys, index=frame.index).map(repr).astype(STRING).mask(empty)
    frame[GEOM_LON] = pd.Series(xs, index=frame.index).map(repr).astype(STRING).mask(empty)
    if na:
        frame = frame.mask(frame.isin(na))
    frame = _strip_blank(frame)
    rows = np.arange(1, len(frame) + 1, dtype=np.int64)
    return RawExport(path, kind, frame.reset_index(drop=True), rows, digest)
