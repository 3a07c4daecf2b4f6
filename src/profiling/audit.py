"""The disclosure audit: nothing personal or re-identifiable in what a run publishes.

:func:`audit` scans every file of an output folder (CSV, JSON/GeoJSON, HTML and the scripts and
styles beside it, GeoPackage attributes and geometries, PNG text chunks, PDF text) for

- ``personal``: any personal value held in the store (names, phones, ID numbers, structure
  numbers, submission keys), compared case-insensitively, values of four characters or more;
- ``location``: any coordinate pair within 20 m of an enumerated household, unless it lies on a
  published settlement boundary (within 1 m: the boundaries are the finest geography published);
- ``small_cell``: any household-based count (a ``households`` or ``*_n`` column) below the
  minimum cell size k.

Each finding names the file and where in it. ``profiling run`` audits its own outputs and does
not mark a run complete when anything is found.
"""

from __future__ import annotations

import json
import logging
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: Coordinates closer than this (metres) to a household are a disclosed location.
NEAR_M = 20.0
#: A coordinate this close (metres) to a published boundary is boundary geometry.
ON_BOUNDARY_M = 1.0
MIN_VALUE_LENGTH = 4
_TEXT = {".csv", ".json", ".geojson", ".html", ".htm", ".js", ".css", ".txt", ".svg", ".md",
         ".xml", ".tsv"}
_NUMBER = re.compile(r"-?\d{1,3}\.\d{4,}")
_TOKEN = re.compile(r"[0-9a-z]+")


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
class Secrets:
    """What must not be published: personal values (by field), household points, k."""

    values: dict[str, str]
    lon: np.ndarray
    lat: np.ndarray
    min_cell_size: int = 5
    boundaries: object | None = None  # a GeoSeries of the published settlement polygons

    @classmethod
    def from_frames(cls, personal: pd.DataFrame, households: pd.DataFrame, k: int,
                    boundaries: object | None = None) -> Secrets:
        """From ingest's personal frame (key + direct fields) and household frame."""
        values: dict[str, str] = {}
        for col in personal.columns:
            for v in personal[col].dropna().astype(str):
                v = v.strip()
                if len(v) >= MIN_VALUE_LENGTH:
                    values.setdefault(v.casefold(), col)
        pts = households[["longitude", "latitude"]].to_numpy(dtype=float) if len(
            households) else np.zeros((0, 2))
        ok = np.isfinite(pts).all(axis=1)
        return cls(values, pts[ok, 0], pts[ok, 1], k, boundaries)


def audit(out_dir: str | Path, secrets: Secrets) -> list[Finding]:
    """Every finding in every file below ``out_dir``."""
    out = Path(out_dir)
    checker = _Checker(secrets)
    findings: list[Finding] = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = str(path.relative_to(out))
        suffix = path.suffix.lower()
        try:
            if suffix in _TEXT:
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
                findings += checker.text(rel, path.read_bytes().decode("latin-1"))
        except Exception as exc:  # an unreadable file is itself a finding, not a crash
            findings.append(Finding("unreadable", rel, "file", f"{exc.__class__.__name__}"))
    return findings


class _Checker:
    def __init__(self, s: Secrets) -> None:
        self.s = s
        self.values = s.values
        # personal values as sequences of alphanumeric tokens (so "+62 811-0000" and
        # "62 811 0000" match alike), indexed by their first token; and each value's tokens
        # joined, for a text that writes it without separators
        self._by_first: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for value, field in s.values.items():
            tokens = tuple(_TOKEN.findall(value.casefold()))
            if not tokens or len("".join(tokens)) < MIN_VALUE_LENGTH:
                continue
            for seq in {tokens, ("".join(tokens),)}:
                self._by_first.setdefault(seq[0], []).append((seq, field))
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
                coords = shapely.get_coordinates(wgs.values).ravel()
                # numbers that are a boundary vertex's longitude or latitude, at the precisions
                # outputs print them: a pair of two such numbers is boundary geometry
                self._vertex_numbers = {round(float(v), d) for v in coords for d in range(4, 10)}

    # -- personal values -------------------------------------------------------------------
    def text(self, rel: str, text: str) -> list[Finding]:
        out = []
        if self._by_first:
            matches = list(_TOKEN.finditer(text.casefold()))
            tokens = [m.group(0) for m in matches]
            seen: set[tuple[str, int]] = set()
            for i, tok in enumerate(tokens):
                for seq, field in self._by_first.get(tok, ()):
                    if tuple(tokens[i:i + len(seq)]) != seq:
                        continue
                    start = matches[i].start()
                    line = text.count("\n", 0, start) + 1
                    if (field, line) not in seen:
                        seen.add((field, line))
                        out.append(Finding("personal", rel, f"line {line}, offset {start}",
                                           f"a value of the personal field {field!r}"))
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
