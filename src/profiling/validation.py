"""The community validation round (issue 22): a community checks its profile before anyone
acts on it, and its corrections are kept beside what was enumerated, never over it.

- :func:`pack` writes, for each settlement of a finished run, a printable sheet with the
  profile's key counts (households, persons, households with water on their premises, with a
  toilet of their own) each with a box to confirm or correct, a sketch of the boundary and a
  locator; an index; and ``validation_form.xlsx``, an XLSForm of the same questions, so that the
  forum's answers can be captured on a phone (KoboToolbox, ODK).
- :func:`read_corrections` reads that form's export (CSV or XLSX) row by row: every row is
  accepted or listed with its reason (file, row, field, value); an answer that cannot be read
  drops that answer only.

The store keeps each correction with its provenance (forum, date, who recorded it, the file it
came from) in its own table, and every earlier correction as history
(:meth:`profiling.store.Store.load_validations`); a run from the store publishes the latest
one per settlement and figure (``validated_figures.csv``) beside the enumerated figure.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from profiling._errors import ConfigError, InputFileError

#: The columns a corrections export must have, besides the figures' own.
REQUIRED = ("settlement_id", "forum", "forum_date", "recorded_by")
#: The most bytes and rows of a corrections export that are read.
MAX_BYTES = 50 * 2**20
MAX_ROWS = 100_000
VALIDATED = "validated_figures.csv"
VALIDATED_COLUMNS = ["settlement_id", "name", "figure", "label", "enumerated", "validated",
                     "confirmed", "forum", "forum_date"]
REJECT_COLUMNS = ["source_file", "source_row", "field", "value", "action", "reason"]
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_WHOLE = re.compile(r"^\s*\d+(\.0*)?\s*$")


@dataclass(frozen=True)
class Figure:
    """A count the community checks: a column of the settlement table, or the households for
    whom an indicator holds (its share times its ``_n``)."""

    name: str
    label: str
    indicator: str | None = None

    def value(self, row: Any) -> float | None:
        """The enumerated count in a settlement table's row (None where it is suppressed)."""
        if self.indicator is None:
            v = row.get(self.name)
            return None if v is None or pd.isna(v) else float(v)
        share, n = row.get(f"{self.indicator}_share"), row.get(f"{self.indicator}_n")
        if share is None or n is None or pd.isna(share) or pd.isna(n):
            return None
        return float(round(float(share) * float(n)))


FIGURES: tuple[Figure, ...] = (
    Figure("households", "Households"),
    Figure("population", "Persons living in these households"),
    Figure("taps", "Households with water on their premises (a tap in the dwelling or yard)",
           "water_on_premises"),
    Figure("toilets", "Households with a toilet of their own (improved, not shared)",
           "sanitation_basic"),
)
BY_NAME = {f.name: f for f in FIGURES}


# --------------------------------------------------------------------------------------------
# The pack
# --------------------------------------------------------------------------------------------

def boundary_sketch(shapes: Any, sid: str, side: int = 260) -> dict[str, Any] | None:
    """The settlement's polygon filling a box of ``side``, its neighbours' outlines clipped to
    the box's surroundings, as SVG paths (longitude scaled by the cosine of the latitude)."""
    import math

    import shapely

    if shapes is None or "geometry" not in shapes:
        return None
    ids = shapes["settlement_id"].astype(str).to_numpy()
    hit = np.flatnonzero(ids == sid)
    if not len(hit):
        return None
    geoms = np.asarray(shapes.geometry.values, dtype=object)
    own = geoms[hit[0]]
    if own is None or own.is_empty:
        return None
    w, s, e, n = own.bounds
    mx, my = (e - w) * 0.15 + 1e-6, (n - s) * 0.15 + 1e-6
    box = (w - mx, s - my, e + mx, n + my)
    stretch = math.cos(math.radians((s + n) / 2))
    scale = side / max((box[2] - box[0]) * stretch, box[3] - box[1])

    def path(geom: Any) -> str:
        from profiling.publish._data import svg_path

        return svg_path(geom, box[0], box[3], stretch, scale)

    near = shapely.clip_by_rect(geoms[shapely.intersects(geoms, shapely.box(*box))], *box)
    return {"width": round((box[2] - box[0]) * stretch * scale, 1),
            "height": round((box[3] - box[1]) * scale, 1),
            "neighbours": [path(g) for g in near if g is not None and not g.is_empty],
            "own": path(shapely.simplify(own, 0.5 / scale))}


def write_validation_form(path: Path, settlements: Iterable[tuple[str, str]],
                          language: str = "en") -> Path:
    """An XLSForm of the sheets' questions: the settlement, the forum, its date, who recorded
    the answers, and for each figure whether it holds and, when it does not, the right count;
    its labels in ``language`` (``default_language`` set to it)."""
    from openpyxl import Workbook

    from profiling.i18n import LANGUAGES, gettext_for

    _ = gettext_for(language)
    wb = Workbook()
    survey = wb.active
    survey.title = "survey"
    survey.append(["type", "name", "label", "required", "relevant", "constraint"])
    survey.append(["select_one settlements", "settlement_id", _("Settlement"), "yes", "", ""])
    survey.append(["text", "forum", _("Forum or meeting where the profile was checked"), "yes",
                   "", ""])
    survey.append(["date", "forum_date", _("Date of the forum"), "yes", "", ""])
    survey.append(["text", "recorded_by", _("Who recorded the answers"), "yes", "", ""])
    for f in FIGURES:
        label = _(f.label)
        survey.append(["select_one yes_no", f"{f.name}_confirmed",
                       _("%(figure)s: is the profile's figure right?", figure=label), "", "",
                       ""])
        survey.append(["integer", f"{f.name}_corrected",
                       _("%(figure)s: the right figure", figure=label), "",
                       f"${{{f.name}_confirmed}} = 'no'", ". >= 0"])
    choices = wb.create_sheet("choices")
    choices.append(["list_name", "name", "label"])
    choices.append(["yes_no", "yes", _("Yes")])
    choices.append(["yes_no", "no", _("No")])
    for sid, name in settlements:
        choices.append(["settlements", sid, name])
    settings = wb.create_sheet("settings")
    settings.append(["form_title", "form_id", "version", "default_language"])
    settings.append([_("Community validation of the settlement profiles"), "validation", "1",
                     f"{LANGUAGES[language]} ({language})"])
    wb.save(path)
    return path


def pack(run: Path, out: Path, settlements: Sequence[str] | None = None,
         language: str = "en") -> dict[str, Path]:
    """The validation pack of the finished run in ``run`` for ``settlements`` (default: every
    one with published figures) into ``out``, in ``language``; audited before it is left in
    place."""
    import json

    from profiling.audit import Secrets, audit
    from profiling.i18n import environment, gettext_for
    from profiling.outputs import MANIFEST
    from profiling.publish._data import fmt, read_tables, safe_id
    from profiling.publish.atlas import locator_of

    manifest_path = run / MANIFEST
    try:
        status = json.loads(manifest_path.read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        status = None
    if status != "complete":
        raise ConfigError(f"{run}: no finished run there (run_manifest.json status "
                          f"{status!r}); `profiling run` first: a pack carries its figures")
    tables = read_tables(run)
    t = tables.settlements
    known = dict(zip(t["settlement_id"].astype(str), t["name"].astype(str), strict=True))
    wanted = list(settlements) if settlements else [
        s for s, r in zip(t["settlement_id"].astype(str), t.to_dict("records"), strict=True)
        if not pd.isna(r.get("households"))]
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise ConfigError(f"no settlement {', '.join(map(repr, unknown[:5]))} in {run}; the "
                          f"run has {', '.join(list(known)[:5])}…")
    out.mkdir(parents=True, exist_ok=True)
    env = environment(language)
    _ = gettext_for(language)
    from importlib import resources

    (out / "atlas.css").write_bytes(
        (resources.files("profiling") / "templates" / "atlas.css").read_bytes())
    sheet = env.get_template("validation_sheet.html")
    rows = {str(r["settlement_id"]): r for r in t.drop(columns="geometry", errors="ignore")
            .to_dict("records")}
    written: dict[str, Path] = {}
    for sid in wanted:
        row = rows[sid]
        figures = [{"name": f.name, "label": _(f.label),
                    "value": "–" if f.value(row) is None else fmt(f.value(row), "number")}
                   for f in FIGURES]
        ctx = {"id": sid, "name": known[sid], "figures": figures, "k": tables.k,
               "suppressed": pd.isna(row.get("households")),
               "sketch": boundary_sketch(t if tables.has_geometry else None, sid),
               "locator": locator_of(tables, sid)}
        path = out / f"{safe_id(sid)}.html"
        path.write_text(sheet.render(s=ctx), encoding="utf-8")
        written[sid] = path
    index = env.get_template("validation_index.html").render(
        sheets=[{"id": s, "name": known[s], "href": written[s].name} for s in wanted])
    (out / "index.html").write_text(index, encoding="utf-8")
    written["index"] = out / "index.html"
    written["form"] = write_validation_form(out / "validation_form.xlsx", known.items(),
                                            language)
    findings = audit(out, Secrets({}, np.zeros(0), np.zeros(0), tables.k))
    if findings:
        from profiling._errors import DisclosureError

        raise DisclosureError(out, findings)
    return written


# --------------------------------------------------------------------------------------------
# Reading the forum's answers
# --------------------------------------------------------------------------------------------

def _read_table(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The export as text cells, its header's group paths left out, and each row's number in
    the file (the header is row 1)."""
    if not path.is_file():
        raise InputFileError(path, "does not exist or is not a file")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise InputFileError(path, f"is {size / 2**20:,.0f} MiB; a corrections export is read "
                                   f"up to {MAX_BYTES / 2**20:,.0f} MiB")
    if path.suffix.lower() == ".xlsx":
        from openpyxl import load_workbook

        try:
            wb = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:
            raise InputFileError(path, f"is not a readable XLSX workbook "
                                       f"({exc.__class__.__name__})") from None
        try:
            it = wb.worksheets[0].iter_rows(values_only=True)
            head = next(it, None)
            rows: list[list[str]] = []
            for r in it:
                if len(rows) >= MAX_ROWS:
                    raise InputFileError(path, f"has more than {MAX_ROWS:,} rows")
                rows.append(["" if v is None else (v.date().isoformat() if hasattr(v, "date")
                                                   and hasattr(v, "hour") else str(v))
                             for v in r])
        finally:
            wb.close()
        if head is None:
            raise InputFileError(path, "has no header row")
        header = ["" if h is None else str(h) for h in head]
        width = len(header)
        frame = pd.DataFrame([(r + [""] * width)[:width] for r in rows], columns=header,
                             dtype=object)
    elif path.suffix.lower() == ".csv":
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputFileError(path, f"is not UTF-8 text (byte {exc.start + 1})") from None
        first = text.split("\n", 1)[0]
        delim = ";" if first.count(";") > first.count(",") else ","
        records = list(csv.reader(io.StringIO(text), delimiter=delim))
        if not records or not any(records[0]):
            raise InputFileError(path, "has no header row")
        if len(records) - 1 > MAX_ROWS:
            raise InputFileError(path, f"has more than {MAX_ROWS:,} rows")
        header, width = records[0], len(records[0])
        frame = pd.DataFrame([(r + [""] * width)[:width] for r in records[1:]], columns=header,
                             dtype=object)
    else:
        raise InputFileError(path, f"is a {path.suffix or 'file without extension'}; give the "
                                   "form's export as CSV or XLSX")
    frame.columns = [re.split(r"[/]", str(c))[-1].strip() for c in frame.columns]
    frame = frame.loc[:, ~frame.columns.duplicated()]
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InputFileError(path, f"has no column {', '.join(missing)}: is it the export of "
                                   "validation_form.xlsx (`profiling validation pack`)?")
    return frame.fillna("").astype(str), np.arange(2, len(frame) + 2)


def read_corrections(path: Path, table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The corrections of a forum's export against the run's settlement table: one row per
    settlement and figure answered (``confirmed``: the figure holds; ``validated``: the
    community's count), and every row or answer that was not taken, with its reason."""
    frame, rows = _read_table(path)
    rows_by_id = {str(r["settlement_id"]): r for r in table.to_dict("records")}
    rejects: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []

    def reject(row: int, field: str, value: str, action: str, reason: str) -> None:
        rejects.append({"source_file": path.name, "source_row": int(row), "field": field,
                        "value": value, "action": action, "reason": reason})

    for rec, row in zip(frame.to_dict("records"), rows, strict=True):
        sid = rec["settlement_id"].strip()
        problems = []
        if sid not in rows_by_id:
            problems.append(("settlement_id", sid, "no settlement of the run has this id"))
        for field in ("forum", "recorded_by"):
            if not rec[field].strip():
                problems.append((field, "", f"{field} is blank: every correction says where "
                                            "it was made and who recorded it"))
        date = rec["forum_date"].strip()[:10]
        if not _DATE.match(date) or pd.isna(pd.to_datetime(date, errors="coerce")):
            problems.append(("forum_date", rec["forum_date"], "not a date (YYYY-MM-DD)"))
        if problems:
            for field, value, reason in problems:
                reject(row, field, value, "row_rejected", reason)
            continue
        answered = []
        for f in FIGURES:
            said = rec.get(f"{f.name}_confirmed", "").strip().lower()
            if not said:
                continue
            if said not in ("yes", "no"):
                reject(row, f"{f.name}_confirmed", rec[f"{f.name}_confirmed"], "value_dropped",
                       "not yes or no")
                continue
            enumerated = f.value(rows_by_id[sid])
            if said == "yes":
                if enumerated is None:
                    reject(row, f"{f.name}_confirmed", "yes", "value_dropped",
                           "the profile has no figure to confirm (too few households)")
                    continue
                validated = enumerated
            else:
                given = rec.get(f"{f.name}_corrected", "")
                if not _WHOLE.match(given):
                    reject(row, f"{f.name}_corrected", given, "value_dropped",
                           "not a whole number of 0 or more")
                    continue
                validated = float(int(float(given)))
            answered.append({"settlement_id": sid, "figure": f.name,
                             "enumerated": enumerated, "confirmed": said == "yes",
                             "validated": validated, "forum": rec["forum"].strip(),
                             "forum_date": date, "recorded_by": rec["recorded_by"].strip(),
                             "source_row": int(row)})
        if not answered:
            reject(row, "(row)", "", "row_rejected", "no figure confirmed or corrected")
        out += answered
    cols = ["settlement_id", "figure", "enumerated", "confirmed", "validated", "forum",
            "forum_date", "recorded_by", "source_row"]
    return pd.DataFrame(out, columns=cols), pd.DataFrame(rejects, columns=REJECT_COLUMNS)


def published(current: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """``validated_figures.csv``: the latest correction of each figure of each settlement
    whose figures are published (none of a settlement below k), beside the run's own figure."""
    rows = {str(r["settlement_id"]): r for r in table.to_dict("records")}
    out = []
    for r in current.to_dict("records"):
        row = rows.get(str(r["settlement_id"]))
        f = BY_NAME.get(str(r["figure"]))
        if row is None or f is None or pd.isna(row.get("households")):
            continue
        out.append({"settlement_id": r["settlement_id"], "name": row["name"],
                    "figure": f.name, "label": f.label, "enumerated": f.value(row),
                    "validated": r["validated"], "confirmed": bool(r["confirmed"]),
                    "forum": r["forum"], "forum_date": r["forum_date"]})
    return pd.DataFrame(out, columns=VALIDATED_COLUMNS)


# --------------------------------------------------------------------------------------------
# Redrawn boundaries
# --------------------------------------------------------------------------------------------

def read_redrawn(path: Path, known: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Boundaries a community redrew (a GeoPackage or GeoJSON layer with ``settlement_id`` and
    ``name``, checked like any boundary file): those of known settlements in EPSG:4326, and
    every other feature listed with its reason."""
    from profiling.join import read_boundaries

    if path.suffix.lower() not in (".gpkg", ".geojson", ".json"):
        raise InputFileError(path, f"is a {path.suffix or 'file without extension'}; give the "
                                   "redrawn boundaries as a GeoPackage or GeoJSON")
    frame = read_boundaries(path)
    if "geometry" not in frame or frame.crs is None:
        raise InputFileError(path, "holds no polygons with a coordinate system")
    frame = frame.to_crs("EPSG:4326")
    ids = frame["settlement_id"].astype(str)
    ok = ids.isin(set(known)).to_numpy()
    rejects = pd.DataFrame({"source_file": path.name, "source_row": np.flatnonzero(~ok) + 1,
                            "field": "settlement_id", "value": ids[~ok].to_numpy(),
                            "action": "row_rejected",
                            "reason": "no settlement of the configured boundaries has this id"},
                           columns=REJECT_COLUMNS)
    kept = frame.loc[ok, ["settlement_id", "geometry"]].assign(settlement_id=ids[ok])
    return kept.reset_index(drop=True), rejects
