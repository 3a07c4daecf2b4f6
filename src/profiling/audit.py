"""The disclosure audit: nothing personal or re-identifiable in what a run publishes.

:func:`audit` reads every file of an output folder (CSV, JSON/GeoJSON, HTML and the scripts and
styles beside it, GeoPackage and GeoParquet attributes and geometries, PNG text chunks, PDF
text) for

- ``personal``: any personal value held in the store, found only where it stands as a value,
  by a rule that fits its kind (:func:`value_kind`):

  - names: their words in order, in any case and spacing (``Synthetic  RESPONDENT-12`` is
    ``Synthetic Respondent 12``), never inside a longer word;
  - phone numbers: their digits, with any spacing or punctuation, in international form or in
    national form (the trunk ``0`` for the country code: ``0811-0000-0002`` is
    ``+62 811 0000 0002``);
  - ID numbers, structure ids and submission keys: the whole string with its own separators,
    bounded by delimiters (a field, a JSON string, a token in text), in any case:
    ``JKT-020-265`` is not found in ``JKT-020 265``, nor ``T-256`` in ``t/256``;

  values shorter than four characters are not sought;
- ``location``: any coordinate pair within 20 m of an enumerated household, unless it lies on a
  published settlement boundary (within 1 m: the boundaries are the finest geography published);
- ``small_cell``: any household-based count (a ``households`` or ``*_n`` column) below the
  minimum cell size k;
- ``vendored``: a copy of an asset the package ships (Leaflet, its styles and images, the
  map's script) that differs from the package's own: those files are checked by hash, not
  scanned;
- ``unreadable``: a file the audit cannot read (a format :mod:`profiling.outputs` does not list,
  such as a zip or any other binary, or a file that fails to parse), or a geometry without a
  coordinate reference system. The audit fails closed: what it
  cannot read, it cannot clear.

Each finding names the file and where in it. ``profiling run`` audits its own outputs and does
not mark a run complete when anything is found.

How it is fast: the personal values are normalised and indexed once, as Arrow arrays; a text is
cut into tokens by one compiled regular expression per kind, and the tokens (and, for values of
several tokens, the runs of tokens starting at a token that begins some value) are looked up in
those sets by Arrow's hash joins, not by a Python loop over values or tokens.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from profiling.outputs import STRUCTURED_FORMATS, TEXT_FORMATS

log = logging.getLogger(__name__)

#: Coordinates closer than this (metres) to a household are a disclosed location.
NEAR_M = 20.0
#: A coordinate this close (metres) to a published boundary is boundary geometry.
ON_BOUNDARY_M = 1.0
MIN_VALUE_LENGTH = 4
#: Characters of text looked up at once (a batch's tokens are hashed together).
BATCH_CHARS = 64 * 2**20
#: A phone number has at least this many digits (shorter runs of digits are not sought).
MIN_PHONE_DIGITS = 7
_TEXT = TEXT_FORMATS  # the formats are the output folder's (profiling.outputs)
_NUMBER = re.compile(r"-?\d{1,3}\.\d{4,}")

#: Names: runs of letters and digits (any script); everything else separates words.
_WORD_SPLIT = r"[^\pL\pN]+"
#: IDs: delimiters of fields, strings and tokens in text. ``-``, ``/``, ``_``, ``.`` and ``:``
#: are not delimiters: they belong to the IDs that hold them (``JK01-2026``, ``T/256``).
_ID_SPLIT = r"[\s\"'`,;|<>()\[\]{}=&*!?]+"
_ID_TRIM = ".:"  # a sentence's full stop or a label's colon after an ID
#: Phones: a run of digits with the spacing and punctuation numbers are written with.
#: Seven to fifteen digits (E.164's longest), not inside a word or a longer number.
_PHONE = re.compile(r"(?<![0-9A-Za-z.])\+?\d(?:[\s().\-/]{0,3}\d){6,14}(?![0-9A-Za-z])")


def value_kind(field: str) -> str:
    """How a personal field's values are sought: ``name``, ``phone`` or ``id``."""
    f = field.rsplit("/", 1)[-1].casefold()
    if any(w in f for w in ("phone", "mobile", "tel", "msisdn", "whatsapp")):
        return "phone"
    if "name" in f:
        return "name"
    return "id"


@dataclass(frozen=True)
class Finding:
    """One disclosure: its kind, the file and where in it, and what (never the value itself
    for personal data: only which field it matched)."""

    kind: str
    file: str
    where: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.file} ({self.where}): {self.detail}"


@dataclass
class _Values:
    """The values of one kind, normalised: single-token values in one set, values of several
    tokens (joined by one space) in another with the lengths and first tokens they have."""

    single: pa.Array
    single_field: pa.Array
    multi: pa.Array
    multi_field: pa.Array
    firsts: pa.Array
    lengths: tuple[int, ...]

    @classmethod
    def build(cls, values: pa.Array, fields: pa.Array, split: str) -> _Values:
        # every run of separators as one space, none at either end: the tokens joined (only
        # the values that hold a separator need the rewriting; most IDs hold none)
        has_sep = pc.fill_null(pc.match_substring_regex(values, split), False)
        if pc.any(has_sep).as_py():
            rewritten = pc.utf8_trim(pc.replace_substring_regex(
                pc.filter(values, has_sep), split, " "), " ")
            plain = pc.invert(has_sep)
            values = pa.concat_arrays([pc.filter(values, plain), rewritten])
            fields = pa.concat_arrays([pc.filter(fields, plain), pc.filter(fields, has_sep)])
        joined = values
        counts = np.asarray(pc.count_substring(joined, " ")) + 1
        counts[np.asarray(pc.equal(joined, ""))] = 0
        one = pa.array(counts == 1)
        many = counts > 1
        multi = pc.filter(joined, pa.array(many))
        firsts = pc.unique(pc.replace_substring_regex(multi, " .*$", ""))
        return cls(pc.filter(joined, one), pc.filter(fields, one), multi,
                   pc.filter(fields, pa.array(many)), firsts,
                   tuple(sorted({int(c) for c in np.unique(counts[many])})))

    def __len__(self) -> int:
        return len(self.single) + len(self.multi)

    def find(self, tokens: pa.Array, group: np.ndarray) -> list[tuple[int, int, str]]:
        """``(first token, tokens, field)`` of every value found among ``tokens``; a value of
        several tokens is found only in a run of tokens of one ``group`` (one file)."""
        found = [(i, 1, f) for i, f in _lookup(tokens, self.single, self.single_field)]
        if len(self.multi) and len(tokens):
            starts = np.flatnonzero(np.asarray(pc.is_in(tokens, value_set=self.firsts)))
            for n in self.lengths:
                s = starts[starts + n <= len(tokens)]
                s = s[group[s + n - 1] == group[s]]
                if not len(s):
                    continue
                runs = pc.take(tokens, pa.array(s))
                for j in range(1, n):
                    runs = pc.binary_join_element_wise(runs, pc.take(tokens, pa.array(s + j)),
                                                       " ")
                found += [(int(s[i]), n, f) for i, f in _lookup(runs, self.multi,
                                                                 self.multi_field)]
        return found


def _with_ss(values: pa.Array) -> pa.Array:
    """``values`` and, for those holding ``ß``, the same with ``ss``: lower case keeps ``ß``
    but ``STRASSE`` lowers to ``strasse``, so a value is sought in both spellings."""
    has = pc.fill_null(pc.match_substring(values, "ß"), False)
    if not pc.any(has).as_py():
        return values
    return pa.concat_arrays([values, pc.replace_substring(pc.filter(values, has), "ß", "ss")
                             .cast(values.type)])


def _lookup(probe: pa.Array, values: pa.Array, fields: pa.Array) -> list[tuple[int, str]]:
    """``(index in probe, field)`` of every probe string that is one of ``values``.

    The hash table is built on the probe's distinct strings (a batch of text holds far fewer
    than a city holds personal values) and the values are streamed through it; only the
    values found are then looked up in the probe."""
    if not len(probe) or not len(values):
        return []
    present = pc.is_in(values, value_set=pc.unique(probe))
    if not pc.any(present).as_py():
        return []
    hit_values, hit_fields = pc.filter(values, present), pc.filter(fields, present)
    idx = pc.index_in(probe, value_set=hit_values)
    hit = np.flatnonzero(~np.asarray(pc.is_null(idx).to_numpy(zero_copy_only=False)))
    taken = pc.take(hit_fields, pc.take(idx, pa.array(hit)))
    return [(int(i), str(f)) for i, f in zip(hit, taken.to_pylist(), strict=True)]


class _Local:
    """Longitude and latitude to metres east and north of a city's centre (equirectangular).

    Within a city (tens of kilometres) its distances differ from the true ones by well under a
    part in a thousand: millimetres at the audit's 20 m, and the boundaries go through the
    same function as the points. Vectorised numpy, where pyproj took a second a million."""

    R = 6_371_008.8  # mean Earth radius (m)

    def __init__(self, lon0: float, lat0: float) -> None:
        self.lon0, self.lat0 = lon0, lat0
        self.kx = np.radians(1.0) * self.R * np.cos(np.radians(lat0))
        self.ky = np.radians(1.0) * self.R

    def transform(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lon = np.asarray(lon, dtype=float)
        lat = np.asarray(lat, dtype=float)
        return (lon - self.lon0) * self.kx, (lat - self.lat0) * self.ky


def _phone_forms(values: pa.Array, fields: pa.Array, country_code: str | None
                 ) -> tuple[pa.Array, pa.Array]:
    """Each phone number's digits as it may be written: as given, international without the
    ``+`` or ``00``, and national (a trunk ``0`` in place of the country code; without a
    configured ``country_code``, each of the one to three digits after a ``+`` is tried, as
    country codes are)."""
    if not len(values):
        return values, fields
    digits = pc.replace_substring_regex(values, r"\D", "")
    trimmed = pc.utf8_trim_whitespace(values)
    zeros = pc.starts_with(trimmed, "00")
    plus = pc.or_(pc.starts_with(trimmed, "+"), zeros)
    intl = pc.if_else(zeros, pc.utf8_slice_codeunits(digits, 2), digits)
    forms, owners = [digits, intl], [fields, fields]
    codes: list[tuple[pa.Array, int]] = [(plus, n) for n in (1, 2, 3)]
    if country_code:
        cc = re.sub(r"\D", "", country_code)
        codes.append((pc.starts_with(intl, cc), len(cc)))
        # a number given in national form, written in international form
        national_given = pc.and_(pc.invert(plus), pc.starts_with(digits, "0"))
        forms.append(pc.filter(pc.binary_join_element_wise(
            cc, pc.utf8_slice_codeunits(digits, 1), ""), national_given))
        owners.append(pc.filter(fields, national_given))
    for mask, n in codes:
        national = pc.utf8_ltrim(pc.utf8_slice_codeunits(intl, n), "0")
        forms.append(pc.filter(pc.binary_join_element_wise("0", national, ""), mask))
        owners.append(pc.filter(fields, mask))
    f, o = pa.concat_arrays(forms), pa.concat_arrays(owners)
    keep = pc.greater_equal(pc.utf8_length(f), MIN_PHONE_DIGITS)
    return pc.filter(f, keep), pc.filter(o, keep)


@dataclass
class Secrets:
    """What must not be published: personal values (by field), household points, k.

    ``values`` maps each personal value to its field (small, hand-made cases);
    :meth:`from_frames` keeps a city's values as one Arrow array per field instead.
    ``country_code`` (digits, e.g. ``62``) lets phone numbers written in national form be found
    where no ``+`` form tells the country code."""

    values: dict[str, str]
    lon: np.ndarray
    lat: np.ndarray
    min_cell_size: int = 5
    boundaries: object | None = None  # a GeoSeries of the published settlement polygons
    country_code: str | None = None
    _fields: dict[str, pa.Array] | None = field(default=None, repr=False)

    @classmethod
    def from_frames(cls, personal: pd.DataFrame, households: pd.DataFrame, k: int,
                    boundaries: object | None = None, country_code: str | None = None
                    ) -> Secrets:
        """From ingest's personal frame (key + direct fields) and household frame."""
        def values(col: object) -> pa.Array:
            a = pa.array(personal[col].astype("string"), type=pa.string(), from_pandas=True)
            a = pc.utf8_lower(pc.utf8_trim_whitespace(pc.drop_null(a)))
            return pc.unique(pc.filter(a, pc.greater_equal(pc.utf8_length(a),
                                                           MIN_VALUE_LENGTH)))

        with ThreadPoolExecutor(2, thread_name_prefix="audit-secrets") as pool:
            fields = dict(zip(map(str, personal.columns), pool.map(values, personal.columns),
                              strict=True))
        pts = households[["longitude", "latitude"]].to_numpy(dtype=float) if len(
            households) else np.zeros((0, 2))
        ok = np.isfinite(pts).all(axis=1)
        return cls({}, pts[ok, 0], pts[ok, 1], k, boundaries, country_code, fields)

    def by_field(self) -> dict[str, pa.Array]:
        """Every personal value (lower case, trimmed), by field, as Arrow arrays."""
        if self._fields is not None:
            return self._fields
        out: dict[str, list[str]] = {}
        for v, f in self.values.items():
            v = v.strip().lower()
            if len(v) >= MIN_VALUE_LENGTH:
                out.setdefault(f, []).append(v)
        return {f: pa.array(v, pa.string()) for f, v in out.items()}


@cache
def vendored_assets() -> dict[str, str]:
    """The SHA-256 of each asset the package ships, by the path a run writes it to."""
    static = resources.files("profiling") / "static"
    templates = resources.files("profiling") / "templates"
    assets = {f"map_files/leaflet/{n}": static / "leaflet" / n
              for n in ("leaflet.js", "leaflet.css", "LICENSE")}
    assets |= {f"map_files/leaflet/images/{n}": static / "leaflet" / "images" / n
               for n in ("layers.png", "layers-2x.png", "marker-icon.png", "marker-shadow.png")}
    assets |= {f"map_files/{n}": templates / n for n in ("map.js", "map.css")}
    assets["atlas/atlas.css"] = templates / "atlas.css"
    return {k: hashlib.sha256(v.read_bytes()).hexdigest() for k, v in assets.items()}


#: The fewest files worth auditing in several processes. Each process takes one contiguous
#: share of the files: a batch's look-up streams every personal value once, so fewer, larger
#: batches are cheaper.
PARALLEL_FROM = 400
#: What a forked auditor reads (set before the fork): the checker, the folder, the cleared files.
_SHARED: tuple[Checker, Path, dict[str, str]] | None = None


def audit(out_dir: str | Path, secrets: Secrets | Checker,
          on_file: Callable[[], None] | None = None, workers: int | None = None,
          cleared: Mapping[str, str] | None = None,
          exclude: Sequence[str] = ()) -> list[Finding]:
    """Every finding in every file below ``out_dir`` but the folders ``exclude`` names (each
    audited on its own: a run's, inside a comparison's) (``on_file`` is called after each file:
    progress). Many files are read in ``workers`` forked processes (default: the usable
    cores), each with the same checker; the findings are the same, in file order.

    ``secrets`` may be a :class:`Checker` built beforehand (a run builds it on a second core
    while it publishes). ``cleared`` maps files (by their path below ``out_dir``) that this
    checker already read and found nothing in to their SHA-256 (the PDFs, checked as they were
    printed): such a file is only hashed again, and read in full if it changed since."""
    global _SHARED
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    from profiling.join import usable_cores

    out = Path(out_dir)
    files = sorted(p for p in out.rglob("*") if p.is_file()
                   and p.relative_to(out).parts[0] not in exclude)
    checker = secrets if isinstance(secrets, Checker) else Checker(secrets)
    vendored_assets()  # hashed once, before any fork
    n = workers if workers is not None else usable_cores()
    parallel = n > 1 and len(files) >= PARALLEL_FROM and os.name == "posix"
    tasks = _shares(files, n) if parallel else [files]
    _SHARED = (checker, out, dict(cleared or {}))
    findings: list[Finding] = []
    try:
        with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork")) if (
                parallel) else nullcontext() as pool:
            mapper = pool.map if pool is not None else map
            for task, found in zip(tasks, mapper(_audit_files, tasks), strict=True):
                findings += found
                for _ in task:
                    if on_file is not None:
                        on_file()
    finally:
        _SHARED = None
    order = {p.relative_to(out).as_posix(): i for i, p in enumerate(files)}
    # in file order (a GeoPackage layer's findings name the file and the layer)
    return sorted(findings, key=lambda f: order.get(f.file, order.get(
        f.file.rsplit(":", 1)[0], len(order))))


#: Bytes of a GeoPackage weigh this many bytes of text when the files are shared out: its
#: layers are read, written out as text and their geometry checked.
GPKG_WEIGHT = 3


def _shares(files: list[Path], n: int) -> list[list[Path]]:
    """``files`` in ``n`` shares of about equal work (bytes to read, the largest first to the
    least loaded share), each in file order."""
    def weight(p: Path) -> int:
        size = p.stat().st_size
        return size * GPKG_WEIGHT if p.suffix.lower() == ".gpkg" else size

    load = [0] * n
    shares: list[list[int]] = [[] for _ in range(n)]
    for i in sorted(range(len(files)), key=lambda i: -weight(files[i])):
        j = load.index(min(load))
        shares[j].append(i)
        load[j] += weight(files[i])
    return [[files[i] for i in sorted(share)] for share in shares if share]


def _audit_files(files: list[Path]) -> list[Finding]:
    """A share of the audit (here or in a forked process): these files, with the shared
    checker, their texts looked up in batches."""
    assert _SHARED is not None
    checker, out, cleared = _SHARED
    findings: list[Finding] = []
    for path in files:
        rel = path.relative_to(out).as_posix()
        if rel in cleared and hashlib.sha256(path.read_bytes()).hexdigest() == cleared[rel]:
            continue
        findings += _audit_file(checker, out, path)
        if checker.due():
            findings += checker.flush()
    return findings + checker.flush()


def _audit_file(checker: Checker, out: Path, path: Path) -> list[Finding]:
    """The findings of one file that do not wait for a batch (its text is queued for the
    personal values)."""
    vendored = vendored_assets()
    rel = path.relative_to(out).as_posix()
    suffix = path.suffix.lower()
    findings: list[Finding] = []
    try:
        if rel in vendored:
            if hashlib.sha256(path.read_bytes()).hexdigest() != vendored[rel]:
                findings.append(Finding("vendored", rel, "file", "differs from the copy the "
                                        "package ships, so it is not the vendored asset"))
        elif suffix in _TEXT:
            text = path.read_text(encoding="utf-8", errors="replace")
            findings += checker.text(rel, text)
            if suffix == ".csv":
                findings += checker.table_cells(rel, path)
            elif suffix in (".json", ".geojson"):
                findings += checker.json_cells(rel, text)
            elif suffix == ".jsonl":  # one JSON document a line (the profiles' batch log)
                findings += checker.json_cells(rel, "[" + ",".join(
                    line for line in text.splitlines() if line.strip()) + "]")
        elif suffix == ".gpkg":
            findings += checker.gpkg(rel, path)
        elif suffix == ".parquet":
            findings += checker.parquet(rel, path)
        elif suffix == ".png":
            findings += checker.text(rel, _png_text(path.read_bytes()))
        elif suffix == ".pdf":
            findings += checker.text(rel, pdf_text(path.read_bytes()))
        elif suffix == ".xlsx":
            findings += checker.text(rel, xlsx_text(path))
        else:
            assert suffix not in STRUCTURED_FORMATS, suffix  # each has its reader above
            findings.append(Finding("unreadable", rel, "file", f"a format the audit cannot "
                                    f"read ({suffix or 'no extension'}): it cannot be cleared "
                                    "for publication"))
    except Exception as exc:  # an unreadable file is itself a finding, not a crash
        findings.append(Finding("unreadable", rel, "file", f"{exc.__class__.__name__}"))
    return findings


#: The most cells of a workbook the audit reads (a published XLSForm has a few hundred).
XLSX_MAX_CELLS = 1_000_000


def xlsx_text(path: Path) -> str:
    """Every cell of every sheet of a workbook as text, a line a row (bounded: a workbook of
    more than :data:`XLSX_MAX_CELLS` cells is refused, which makes it a finding)."""
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True, data_only=True)
    lines, cells = [], 0
    try:
        for ws in wb.worksheets:
            for row in ws.iter_rows(values_only=True):
                cells += len(row)
                if cells > XLSX_MAX_CELLS:
                    raise ValueError(f"more than {XLSX_MAX_CELLS:,} cells")
                lines.append("\t".join("" if v is None else str(v) for v in row))
    finally:
        wb.close()
    return "\n".join(lines)


class Checker:
    """The secrets of :class:`Secrets` indexed for the audit: the personal values normalised
    into Arrow sets by kind, the households' points in a k-d tree, the boundaries in an
    STRtree. Built once; read by every file's check (and by forked auditors)."""

    def __init__(self, s: Secrets) -> None:
        self.s = s
        kinds: dict[str, tuple[list[pa.Array], list[pa.Array]]] = {
            k: ([], []) for k in ("name", "id", "phone")}
        for name, arr in s.by_field().items():
            kind = value_kind(name)
            if kind != "phone":
                arr = _with_ss(arr)
            vals, fields = kinds[kind]
            vals.append(arr)
            fields.append(pa.repeat(pa.scalar(name, pa.string()), len(arr)))

        def joined(kind: str) -> tuple[pa.Array, pa.Array]:
            vals, fields = kinds[kind]
            if not vals:
                return pa.array([], pa.string()), pa.array([], pa.string())
            return pa.concat_arrays(vals), pa.concat_arrays(fields)

        def id_values() -> _Values:
            ids, id_fields = joined("id")
            # an ID's own leading and trailing full stops or colons are not part of it
            return _Values.build(pc.utf8_trim(ids, _ID_TRIM), id_fields, _ID_SPLIT)

        self._pending: list[tuple[str, str]] = []
        self._pending_chars = 0
        self._tree: Any = None
        self._transform: _Local | None = None
        self._box = (0.0, 0.0, 0.0, 0.0)
        self._boundary: Any = None
        self._vertex_numbers = np.zeros(0)
        # the value sets (Arrow kernels, which release the GIL) on a second core while the
        # points and boundaries are indexed here; the threads end before any fork
        with ThreadPoolExecutor(2, thread_name_prefix="audit-values") as pool:
            names = pool.submit(_Values.build, *joined("name"), _WORD_SPLIT)
            ids = pool.submit(id_values)
            phones = pool.submit(_phone_forms, *joined("phone"), s.country_code)
            self._index_locations(s)
            self._names, self._ids = names.result(), ids.result()
            self._phones, self._phone_fields = phones.result()

    def _index_locations(self, s: Secrets) -> None:
        """The households' points (a k-d tree in local metres) and the published boundaries."""
        if len(s.lon):
            from scipy.spatial import cKDTree

            tr = self._transform = _Local(float(np.median(s.lon)), float(np.median(s.lat)))
            x, y = tr.transform(s.lon, s.lat)
            # built unbalanced (sliding midpoint): a third of the time, and as fast to query
            self._tree = cKDTree(np.column_stack([x, y]), balanced_tree=False,
                                 compact_nodes=False)
            self._box = (float(x.min()) - NEAR_M, float(x.max()) + NEAR_M,
                         float(y.min()) - NEAR_M, float(y.max()) + NEAR_M)
            if s.boundaries is not None:
                import shapely

                wgs = s.boundaries.to_crs("EPSG:4326")  # type: ignore[attr-defined]
                local = shapely.transform(wgs.values, lambda xy: np.column_stack(
                    tr.transform(xy[:, 0], xy[:, 1])))
                self._boundary = shapely.STRtree(shapely.boundary(local))
                # every boundary vertex's longitude and latitude, sorted: a pair of two numbers
                # that are such a number, as printed, is boundary geometry
                self._vertex_numbers = np.unique(shapely.get_coordinates(wgs.values).ravel())

    # -- personal values -------------------------------------------------------------------
    def text(self, rel: str, text: str) -> list[Finding]:
        """Coordinates in ``text`` now; its personal values with the next batch
        (:meth:`flush`)."""
        if len(self._names) or len(self._ids) or len(self._phones):
            self._pending.append((rel, text))
            self._pending_chars += len(text)
        found = _NUMBER.findall(text)
        if self._tree is None or len(found) < 2:
            return []
        numbers, decimals = _parse_numbers(found)
        return self.coordinates(rel, numbers, decimals=decimals)

    def due(self) -> bool:
        """Whether the texts waiting make a batch."""
        return self._pending_chars >= BATCH_CHARS

    def flush(self) -> list[Finding]:
        """The personal values found in the texts waiting, all looked up at once."""
        batch, self._pending, self._pending_chars = self._pending, [], 0
        if not batch:
            return []
        hits: list[tuple[int, int, str]] = []  # (text, offset, field)
        # lower case, as the values are (Arrow, every text at once)
        texts = pc.utf8_lower(pa.array([t for _, t in batch], pa.string()))
        for values, split in ((self._names, _WORD_SPLIT), (self._ids, _ID_SPLIT)):
            if not len(values):
                continue
            lists = pc.split_pattern_regex(texts, split)  # every text's tokens, in one call
            tokens = pc.list_flatten(lists)
            group = np.asarray(pc.list_parent_indices(lists))
            if values is self._ids:
                tokens = pc.utf8_trim(tokens, _ID_TRIM)
            keep = np.asarray(pc.not_equal(tokens, ""))
            tokens, group = pc.filter(tokens, pa.array(keep)), group[keep]
            for i, n, name in values.find(tokens, group):
                g = int(group[i])
                words = [str(t) for t in tokens[i:i + n].to_pylist()]
                hits.append((g, _offset(str(texts[g].as_py()), words, split), name))
        if len(self._phones):
            hits += self._phone_hits(batch)
        out: list[Finding] = []
        seen: set[tuple[int, str, int]] = set()
        for g, start, name in sorted(hits):
            rel, text = batch[g]
            line = text.count("\n", 0, start) + 1 if start >= 0 else 0
            if (g, name, line) not in seen:
                seen.add((g, name, line))
                where = f"line {line}, offset {start}" if start >= 0 else "text"
                out.append(Finding("personal", rel, where,
                                   f"a value of the personal field {name!r}"))
        return out

    def _phone_hits(self, batch: list[tuple[str, str]]) -> list[tuple[int, int, str]]:
        """``(text, offset, field)`` of every phone number in the texts: the runs of digits
        are found by one regular expression per text (with their offsets), and kept, reduced
        to digits and looked up column-wise (Arrow)."""
        runs: list[str] = []
        spots: list[tuple[int, int]] = []  # (text, offset) of each run, from the same pass
        for g, (_, t) in enumerate(batch):
            for m in _PHONE.finditer(t):
                runs.append(m.group(0))
                spots.append((g, m.start()))
        if not runs:
            return []
        arr = pa.array(runs, pa.string())
        # a decimal number (0.984375) is not a phone number
        keep = pc.invert(pc.match_substring_regex(arr, r"^-?\d+\.\d+$"))
        digits = pc.replace_substring_regex(arr, r"[\s\v().\-/+]", "")
        keep = pc.and_(pc.and_(keep, pc.utf8_is_digit(digits)),
                       pc.greater_equal(pc.utf8_length(digits), MIN_PHONE_DIGITS))
        idx = np.flatnonzero(np.asarray(keep))
        probe = pc.take(digits, pa.array(idx))
        return [(*spots[idx[i]], f) for i, f in _lookup(probe, self._phones,
                                                        self._phone_fields)]

    # -- coordinates -----------------------------------------------------------------------
    def coordinates(self, rel: str, numbers: np.ndarray, where: str = "text",
                    pairs: bool = False, decimals: np.ndarray | None = None) -> list[Finding]:
        """Pairs of numbers that put a point within 20 m of a household. In text every two
        neighbouring numbers are tried both ways round; ``pairs`` means (x, y) in order.
        ``decimals``: how many each number was printed with (None: full precision)."""
        if self._tree is None or len(numbers) < 2:
            return []
        nums = np.asarray(numbers, dtype=float)
        if pairs:
            combos = [(nums[0::2], nums[1::2])]
        else:
            combos = [(nums[:-1], nums[1:]), (nums[1:], nums[:-1])]
        known = self._vertex(nums, decimals)
        kn = [(known[0::2], known[1::2])] if pairs else [(known[:-1], known[1:]),
                                                         (known[1:], known[:-1])]
        found = []
        for (lon, lat), (k1, k2) in zip(combos, kn, strict=True):
            ok = (np.abs(lat) <= 90) & (np.abs(lon) <= 180) & ~(k1 & k2)
            if not ok.any():
                continue
            assert self._transform is not None
            x, y = self._transform.transform(lon[ok], lat[ok])
            # only points within the households' box (widened by 20 m) are looked up, and the
            # search stops at 20 m: a table's shares (0.61, 0.58) are thousands of kilometres
            # from any household and cost nothing
            x0, x1, y0, y1 = self._box
            inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
            d = np.full(len(x), np.inf)
            if inside.any():
                d[inside], _ = self._tree.query(np.column_stack([x[inside], y[inside]]), k=1,
                                                distance_upper_bound=NEAR_M * (1 + 1e-9))
            near = d <= NEAR_M
            if near.any() and self._boundary is not None:
                import shapely

                pts = shapely.points(np.asarray(x)[near], np.asarray(y)[near])
                idx = self._boundary.query_nearest(pts, max_distance=ON_BOUNDARY_M,
                                                   return_distance=False)
                on_line = np.zeros(len(pts), dtype=bool)
                on_line[np.unique(idx[0])] = True
                keep = np.flatnonzero(near)
                near[keep[on_line]] = False
            for i in np.flatnonzero(near)[:20]:
                found.append(Finding("location", rel, where, f"coordinate pair #{i + 1} lies "
                                     f"{d[i]:.1f} m from an enumerated household"))
        return found

    def _vertex(self, nums: np.ndarray, decimals: np.ndarray | None) -> np.ndarray:
        """Which numbers are a boundary vertex's coordinate as printed with their decimals
        (at least 4): within half a unit of their last decimal of a vertex number."""
        v = self._vertex_numbers
        if not len(v):
            return np.zeros(len(nums), dtype=bool)
        d = np.full(len(nums), 9) if decimals is None else np.minimum(decimals, 9)
        tol = 0.5 * 10.0 ** (-d.astype(float)) * (1 + 1e-9) + 1e-12
        i = np.clip(np.searchsorted(v, nums), 1, len(v) - 1)
        gap = np.minimum(np.abs(v[i] - nums), np.abs(v[i - 1] - nums))
        return (d >= 4) & (gap <= tol)

    # -- small cells -----------------------------------------------------------------------
    def _small(self, rel: str, frame: pd.DataFrame, where: str) -> list[Finding]:
        out = []
        k = self.s.min_cell_size
        for col in frame.columns:
            name = str(col)
            if name == "households" or (name.endswith("_n") and not name.startswith("cuf")):
                v = pd.to_numeric(frame[col], errors="coerce")
                bad = (v > 0) & (v < k)
                for i in np.flatnonzero(bad.to_numpy())[:20]:
                    out.append(Finding("small_cell", rel, f"{where} row {i + 1}, column {name}",
                                       f"a figure from {int(v.iloc[i])} households (k = {k})"))
        return out

    def table_cells(self, rel: str, path: Path) -> list[Finding]:
        return self._small(rel, pd.read_csv(path, low_memory=False), "table")

    def json_cells(self, rel: str, text: str) -> list[Finding]:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            # its text was searched, but its figures cannot be checked: it is not cleared
            return [Finding("unreadable", rel, f"line {exc.lineno}", "not valid JSON, so its "
                            "figures cannot be checked for small cells")]
        rows = [r for r in _records(data)]
        return self._small(rel, pd.DataFrame(rows), "records") if rows else []

    def gpkg(self, rel: str, path: Path) -> list[Finding]:
        import pyogrio

        out = []
        for layer, _ in pyogrio.list_layers(path):
            out += self._layer(f"{rel}:{layer}", pyogrio.read_dataframe(path, layer=layer))
        return out

    def parquet(self, rel: str, path: Path) -> list[Finding]:
        """A (Geo)Parquet file: its attributes as text and figures, its geometry's points
        (a plain Parquet table has attributes only)."""
        import geopandas as gpd
        import pyarrow.parquet as pq

        meta = pq.read_metadata(path).metadata or {}
        frame = gpd.read_parquet(path) if b"geo" in meta else pd.read_parquet(path)
        return self._layer(rel, frame)

    def _layer(self, where: str, frame: pd.DataFrame) -> list[Finding]:
        """A table of a structured file: attributes for personal values and small cells,
        the geometry (in WGS84) for household points."""
        import shapely

        geometry = getattr(frame, "geometry", None) if hasattr(frame, "crs") else None
        attrs = pd.DataFrame(frame.drop(columns=geometry.name)) if geometry is not None else (
            frame)
        out = self.text(where, attrs.to_csv(index=False))
        out += self._small(where, attrs, "layer")
        if geometry is not None:
            if frame.crs is None:
                return [*out, Finding("unreadable", where, "geometry", "a geometry without a "
                                      "coordinate reference system cannot be checked for "
                                      "household points")]
            coords = shapely.get_coordinates(geometry.to_crs("EPSG:4326").values)
            if len(coords):
                out += self.coordinates(where, coords.ravel(), "geometry", pairs=True)
        return out


def _parse_numbers(found: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Numbers found in text (``-12.3456``) as floats, and how many decimals each was written
    with. Arrow parses ASCII digits (numpy's text-to-float is ten times slower); numbers in
    other scripts' digits (``١٢.٣٤٥٦٧``, which the pattern also finds) go through numpy."""
    strings = pa.array(found, pa.string())
    if not pc.any(pc.match_substring_regex(strings, r"[^-.0-9]")).as_py():
        decimals = np.asarray(pc.subtract(pc.subtract(pc.utf8_length(strings),
                                                      pc.find_substring(strings, ".")), 1))
        return np.asarray(pc.cast(strings, pa.float64())), decimals
    text = np.array(found)
    return text.astype(float), np.char.str_len(text) - np.char.find(text, ".") - 1


def _offset(text: str, words: list[str], split: str) -> int:
    """Where in ``text`` the run of ``words`` first appears (-1 when it cannot be told: the
    finding then names no line)."""
    sep = r"[\W_]+" if split == _WORD_SPLIT else split  # Python's re has no \pL
    m = re.search(sep.join(re.escape(w) for w in words), text)
    return m.start() if m else -1


def _records(data: object) -> Iterator[dict[str, object]]:
    """Flat dicts found anywhere in a JSON document (GeoJSON properties included)."""
    if isinstance(data, dict):
        flat = {k: v for k, v in data.items() if not isinstance(v, (dict, list))}
        if flat:
            yield flat
        for v in data.values():
            yield from _records(v)
    elif isinstance(data, list):
        for v in data:
            yield from _records(v)


def _png_text(data: bytes) -> str:
    """The text chunks (tEXt, zTXt, iTXt) of a PNG."""
    out = []
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"tEXt":
            out.append(body.replace(b"\0", b" ").decode("latin-1"))
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            out.append(key.decode("latin-1") + " " + zlib.decompress(rest[1:]).decode("latin-1"))
        elif kind == b"iTXt":
            out.append(body.replace(b"\0", b" ").decode("utf-8", errors="replace"))
        pos += 12 + length
    return "\n".join(out)


def pdf_text(data: bytes) -> str:
    """Everything a PDF shows or carries as text (pdfium): its metadata (title, author, ...),
    its bookmarks and every page's text."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(data)
    try:
        out = [str(v) for v in doc.get_metadata_dict(skip_empty=True).values()]
        out += [str(item.get_title()) for item in doc.get_toc()]
        for page in doc:
            textpage = page.get_textpage()
            out.append(textpage.get_text_range())
            textpage.close()
            page.close()
        return "\n".join(out)
    finally:
        doc.close()


def report(findings: Iterable[Finding]) -> str:
    """Findings as lines for a person."""
    return "\n".join(str(f) for f in findings)
