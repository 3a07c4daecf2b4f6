"""The disclosure audit: nothing personal or re-identifiable in what a run publishes.

:func:`audit` reads every file of an output folder (CSV, JSON/GeoJSON, HTML and the scripts and
styles beside it, GeoPackage attributes and geometries, PNG text chunks, PDF text) for

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
- ``unreadable``: a file the audit cannot read (a format it does not know, such as GeoParquet,
  a zip or any other binary, or a file that fails to parse). The audit fails closed: what it
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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

log = logging.getLogger(__name__)

#: Coordinates closer than this (metres) to a household are a disclosed location.
NEAR_M = 20.0
#: A coordinate this close (metres) to a published boundary is boundary geometry.
ON_BOUNDARY_M = 1.0
MIN_VALUE_LENGTH = 4
#: A phone number has at least this many digits (shorter runs of digits are not sought).
MIN_PHONE_DIGITS = 7
_TEXT = {".csv", ".json", ".geojson", ".html", ".htm", ".js", ".css", ".txt", ".svg", ".md",
         ".xml", ".tsv"}
_NUMBER = re.compile(r"-?\d{1,3}\.\d{4,}")

#: Names: runs of letters and digits (any script); everything else separates words.
_WORD_SPLIT = r"[^\pL\pN]+"
#: IDs: delimiters of fields, strings and tokens in text. ``-``, ``/``, ``_``, ``.`` and ``:``
#: are not delimiters: they belong to the IDs that hold them (``JK01-2026``, ``T/256``).
_ID_SPLIT = r"[\s\"'`,;|<>()\[\]{}=&*!?]+"
_ID_TRIM = ".:"  # a sentence's full stop or a label's colon after an ID
#: Phones: a run of digits with the spacing and punctuation numbers are written with.
_PHONE = re.compile(r"\+?\d(?:[\s().\-/]{0,3}\d)+")


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
        tokens = pc.split_pattern_regex(values, split)
        # drop the empty tokens a leading or trailing separator leaves
        flat = pc.list_flatten(tokens)
        parents = pc.list_parent_indices(tokens)
        keep = pc.not_equal(flat, "")
        flat, parents = pc.filter(flat, keep), pc.filter(parents, keep)
        counts = np.bincount(parents.to_numpy(), minlength=len(values))
        joined = _join_runs(flat, counts)
        one = counts == 1
        many = counts > 1
        multi = pc.filter(joined, pa.array(many))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[many]
        firsts = pc.unique(pc.take(flat, pa.array(starts))) if len(starts) else pa.array(
            [], pa.string())
        return cls(pc.filter(joined, pa.array(one)), pc.filter(fields, pa.array(one)), multi,
                   pc.filter(fields, pa.array(many)), firsts,
                   tuple(sorted({int(c) for c in np.unique(counts[many])})))

    def __len__(self) -> int:
        return len(self.single) + len(self.multi)

    def find(self, tokens: pa.Array) -> list[tuple[int, int, str]]:
        """``(first token, tokens, field)`` of every value found among ``tokens``."""
        found: list[tuple[int, int, str]] = []
        if len(tokens) == 0:
            return found
        if len(self.single):
            idx = pc.index_in(tokens, value_set=self.single)
            hit = np.flatnonzero(~np.asarray(pc.is_null(idx)))
            if len(hit):
                fields = pc.take(self.single_field, pc.take(idx, pa.array(hit)))
                found += [(int(i), 1, f) for i, f in zip(hit, fields.to_pylist(), strict=True)]
        if len(self.multi):
            starts = np.flatnonzero(np.asarray(pc.is_in(tokens, value_set=self.firsts)))
            for n in self.lengths:
                s = starts[starts + n <= len(tokens)]
                if not len(s):
                    continue
                runs = pc.take(tokens, pa.array(s))
                for j in range(1, n):
                    runs = pc.binary_join_element_wise(runs, pc.take(tokens, pa.array(s + j)),
                                                       " ")
                idx = pc.index_in(runs, value_set=self.multi)
                hit = np.flatnonzero(~np.asarray(pc.is_null(idx)))
                if len(hit):
                    fields = pc.take(self.multi_field, pc.take(idx, pa.array(hit)))
                    found += [(int(s[i]), n, f) for i, f in zip(hit, fields.to_pylist(),
                                                               strict=True)]
        return found


def _join_runs(flat: pa.Array, counts: np.ndarray) -> pa.Array:
    """The tokens of each value joined by one space (``counts`` tokens per value)."""
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), flat)
    return pc.binary_join(lists, " ")


def _tokens(text: str, split: str) -> pa.Array:
    parts = pc.split_pattern_regex(pa.array([text]), split)
    flat = pc.list_flatten(parts)
    return pc.filter(flat, pc.not_equal(flat, ""))


@dataclass
class Secrets:
    """What must not be published: personal values (by field), household points, k.

    ``values`` maps each personal value (casefolded) to its field; ``country_code`` (digits,
    e.g. ``62``) lets phone numbers written in national form be found without a ``+`` form to
    learn it from."""

    values: dict[str, str]
    lon: np.ndarray
    lat: np.ndarray
    min_cell_size: int = 5
    boundaries: object | None = None  # a GeoSeries of the published settlement polygons
    country_code: str | None = None
    _arrays: tuple[pa.Array, pa.Array] | None = field(default=None, repr=False)

    @classmethod
    def from_frames(cls, personal: pd.DataFrame, households: pd.DataFrame, k: int,
                    boundaries: object | None = None, country_code: str | None = None
                    ) -> Secrets:
        """From ingest's personal frame (key + direct fields) and household frame."""
        vals, fields = [], []
        for col in personal.columns:
            a = pa.array(personal[col].astype("string"), type=pa.string(), from_pandas=True)
            a = pc.utf8_lower(pc.utf8_trim_whitespace(pc.drop_null(a)))
            a = pc.filter(a, pc.greater_equal(pc.utf8_length(a), MIN_VALUE_LENGTH))
            a = pc.unique(a)
            vals.append(a)
            fields.append(pa.array([str(col)] * len(a), pa.string()))
        if vals:
            v = pa.concat_arrays(vals)
            f = pa.concat_arrays(fields)
        else:
            v = f = pa.array([], pa.string())
        pts = households[["longitude", "latitude"]].to_numpy(dtype=float) if len(
            households) else np.zeros((0, 2))
        ok = np.isfinite(pts).all(axis=1)
        return cls({}, pts[ok, 0], pts[ok, 1], k, boundaries, country_code, (v, f))

    def arrays(self) -> tuple[pa.Array, pa.Array]:
        """Every personal value (lower case) and its field, as Arrow arrays."""
        if self._arrays is not None:
            return self._arrays
        return (pa.array([v.casefold() for v in self.values], pa.string()),
                pa.array(list(self.values.values()), pa.string()))


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


def audit(out_dir: str | Path, secrets: Secrets,
          on_file: Callable[[], None] | None = None) -> list[Finding]:
    """Every finding in every file below ``out_dir`` (``on_file`` is called after each file:
    progress)."""
    out = Path(out_dir)
    checker = _Checker(secrets)
    vendored = vendored_assets()
    findings: list[Finding] = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        suffix = path.suffix.lower()
        try:
            if rel in vendored:
                if hashlib.sha256(path.read_bytes()).hexdigest() != vendored[rel]:
                    findings.append(Finding("vendored", rel, "file", "differs from the copy "
                                            "the package ships, so it is not the vendored "
                                            "asset"))
            elif suffix in _TEXT:
                text = path.read_text(encoding="utf-8", errors="replace")
                findings += checker.text(rel, text)
                if suffix == ".csv":
                    findings += checker.table_cells(rel, path)
                elif suffix in (".json", ".geojson"):
                    findings += checker.json_cells(rel, text)
            elif suffix == ".gpkg":
                findings += checker.gpkg(rel, path)
            elif suffix == ".png":
                findings += checker.text(rel, _png_text(path.read_bytes()))
            elif suffix == ".pdf":
                findings += checker.text(rel, _pdf_text(path))
            else:
                findings.append(Finding("unreadable", rel, "file", f"a format the audit cannot "
                                        f"read ({suffix or 'no extension'}): it cannot be "
                                        f"cleared for publication"))
        except Exception as exc:  # an unreadable file is itself a finding, not a crash
            findings.append(Finding("unreadable", rel, "file", f"{exc.__class__.__name__}"))
        if on_file is not None:
            on_file()
    return findings


class _Checker:
    def __init__(self, s: Secrets) -> None:
        self.s = s
        values, fields = s.arrays()
        kinds = np.array([value_kind(f) for f in fields.to_pylist()]) if len(fields) else (
            np.array([], dtype=str))
        by_kind = {k: (pc.filter(values, pa.array(kinds == k)),
                       pc.filter(fields, pa.array(kinds == k))) for k in ("name", "id", "phone")}
        self._names = _Values.build(*by_kind["name"], _WORD_SPLIT)
        ids, id_fields = by_kind["id"]
        # an ID's own leading and trailing full stops or colons are not part of it
        ids = pc.utf8_trim(ids, _ID_TRIM)
        self._ids = _Values.build(ids, id_fields, _ID_SPLIT)
        self._phones = self._phone_forms(*by_kind["phone"], s.country_code)
        self._tree = None
        self._transform = None
        self._boundary = None
        self._vertex_numbers: set[float] = set()
        if len(s.lon):
            from pyproj import CRS, Transformer
            from scipy.spatial import cKDTree

            lon0, lat0 = float(np.median(s.lon)), float(np.median(s.lat))
            local = CRS.from_proj4(f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +units=m")
            self._transform = Transformer.from_crs("EPSG:4326", local, always_xy=True)
            x, y = self._transform.transform(s.lon, s.lat)
            self._tree = cKDTree(np.column_stack([x, y]))
            if s.boundaries is not None:
                import shapely

                geo = s.boundaries.to_crs(local.to_wkt())  # type: ignore[attr-defined]
                self._boundary = shapely.STRtree(shapely.boundary(geo.values))
                wgs = s.boundaries.to_crs("EPSG:4326")  # type: ignore[attr-defined]
                coords = np.unique(shapely.get_coordinates(wgs.values).ravel())
                # numbers that are a boundary vertex's longitude or latitude, at the precisions
                # outputs print them: a pair of two such numbers is boundary geometry
                self._vertex_numbers = set(np.concatenate(
                    [np.round(coords, d) for d in range(4, 10)]).tolist())

    @staticmethod
    def _phone_forms(values: pa.Array, fields: pa.Array, country_code: str | None
                     ) -> dict[str, str]:
        """Each phone number's digits in international and national form."""
        forms: dict[str, str] = {}
        for v, f in zip(values.to_pylist(), fields.to_pylist(), strict=True):
            digits = re.sub(r"\D", "", v)
            if len(digits) < MIN_PHONE_DIGITS:
                continue
            forms.setdefault(digits, f)
            plus = v.lstrip().startswith(("+", "00"))
            d = digits[2:] if v.lstrip().startswith("00") else digits
            ccs = ([country_code] if country_code else []) + (
                [d[:n] for n in (1, 2, 3)] if plus else [])
            for cc in ccs:
                if cc and d.startswith(cc) and len(d) - len(cc) >= MIN_PHONE_DIGITS - 1:
                    national = d[len(cc):]
                    forms.setdefault("0" + national.lstrip("0"), f)
                    forms.setdefault(cc + national, f)
            if country_code and digits.startswith("0") and not plus:
                forms.setdefault(country_code + digits[1:], f)  # national in, international out
        return forms

    # -- personal values -------------------------------------------------------------------
    def text(self, rel: str, text: str) -> list[Finding]:
        out: list[Finding] = []
        seen: set[tuple[str, int]] = set()
        lowered = text.casefold() if len(self._names) or len(self._ids) else ""

        def add(name: str, start: int) -> None:
            line = text.count("\n", 0, start) + 1 if start >= 0 else 0
            if (name, line) not in seen:
                seen.add((name, line))
                where = f"line {line}, offset {start}" if start >= 0 else "text"
                out.append(Finding("personal", rel, where,
                                   f"a value of the personal field {name!r}"))

        for values, split in ((self._names, _WORD_SPLIT), (self._ids, _ID_SPLIT)):
            if not len(values):
                continue
            tokens = _tokens(lowered, split)
            if values is self._ids:
                tokens = pc.utf8_trim(tokens, _ID_TRIM)
            for i, n, name in values.find(tokens):
                add(name, _offset(lowered, tokens, i, n, split))
        if self._phones:
            for m in _PHONE.finditer(text):
                digits = re.sub(r"\D", "", m.group(0))
                if len(digits) >= MIN_PHONE_DIGITS and digits in self._phones:
                    add(self._phones[digits], m.start())
        out += self.coordinates(rel, [float(x) for x in _NUMBER.findall(text)])
        return out

    # -- coordinates -----------------------------------------------------------------------
    def coordinates(self, rel: str, numbers: list[float], where: str = "text",
                    pairs: bool = False) -> list[Finding]:
        """Pairs of numbers that put a point within 20 m of a household. In text every two
        neighbouring numbers are tried both ways round; ``pairs`` means (x, y) in order."""
        if self._tree is None or len(numbers) < 2:
            return []
        nums = np.asarray(numbers, dtype=float)
        if pairs:
            combos = [(nums[0::2], nums[1::2])]
        else:
            combos = [(nums[:-1], nums[1:]), (nums[1:], nums[:-1])]
        known = np.array([_is_vertex_number(x, self._vertex_numbers) for x in nums]) if (
            self._vertex_numbers) else np.zeros(len(nums), dtype=bool)
        kn = [(known[0::2], known[1::2])] if pairs else [(known[:-1], known[1:]),
                                                         (known[1:], known[:-1])]
        found = []
        for (lon, lat), (k1, k2) in zip(combos, kn, strict=True):
            ok = (np.abs(lat) <= 90) & (np.abs(lon) <= 180) & ~(k1 & k2)
            if not ok.any():
                continue
            assert self._transform is not None
            x, y = self._transform.transform(lon[ok], lat[ok])
            d, _ = self._tree.query(np.column_stack([x, y]), k=1)
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
        except json.JSONDecodeError:
            return []
        rows = [r for r in _records(data)]
        return self._small(rel, pd.DataFrame(rows), "records") if rows else []

    def gpkg(self, rel: str, path: Path) -> list[Finding]:
        import pyogrio
        import shapely

        out = []
        for layer, _ in pyogrio.list_layers(path):
            frame = pyogrio.read_dataframe(path, layer=layer)
            attrs = pd.DataFrame(frame.drop(columns=frame.geometry.name, errors="ignore")
                                 ) if hasattr(frame, "geometry") else frame
            out += self.text(f"{rel}:{layer}", attrs.to_csv(index=False))
            out += self._small(f"{rel}:{layer}", attrs, "layer")
            if hasattr(frame, "geometry") and frame.crs is not None:
                geo = frame.geometry.to_crs("EPSG:4326")
                coords = shapely.get_coordinates(geo.values)
                if len(coords):
                    out += self.coordinates(f"{rel}:{layer}", coords.ravel().tolist(),
                                            "geometry", pairs=True)
        return out


def _offset(text: str, tokens: pa.Array, i: int, n: int, split: str) -> int:
    """Where in ``text`` the run of ``n`` tokens starting at token ``i`` first appears (-1
    when it cannot be told: the finding then names no line)."""
    words = [str(t) for t in tokens[i:i + n].to_pylist()]
    sep = r"[\W_]+" if split == _WORD_SPLIT else split  # Python's re has no \pL
    m = re.search(sep.join(re.escape(w) for w in words), text)
    return m.start() if m else -1


def _is_vertex_number(x: float, vertex_numbers: set[float]) -> bool:
    text = repr(float(x))
    decimals = len(text.split(".")[1]) if "." in text else 0
    # a vertex printed with d decimals is round(v, d): compare at the number's own precision
    return decimals >= 4 and round(x, min(decimals, 9)) in vertex_numbers


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


def _pdf_text(path: Path) -> str:
    """The text of a PDF (pypdf), and its raw bytes for anything not in a text stream."""
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    pages = [page.extract_text() or "" for page in reader.pages]
    return "\n".join(pages)


def report(findings: Iterable[Finding]) -> str:
    """Findings as lines for a person."""
    return "\n".join(str(f) for f in findings)
