"""The questionnaire: the reference enumeration form, and reading any XLSForm.

The reference questionnaire is CONTRACT.md §1, defined here once. ``write_xlsform`` writes it as
an XLSForm (survey, choices and settings sheets) that KoboToolbox and ODK accept; ``read_xlsform``
reads any XLSForm into a :class:`Form`, which ingest uses to recognise columns, map labels back to
choice names and validate values.

Each question carries a privacy class in the survey sheet's ``privacy`` column:

- ``direct``: identifies a person (names, phones, ID numbers, free text). Split off at ingest.
- ``location``: coordinates. Used for the spatial join, never published.
- ``sensitive``: tenure and eviction fear. Published only as aggregates.
- ``analysis``: everything else.
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from profiling._errors import FormError, InputFileError

PRIVACY_CLASSES = ("direct", "location", "sensitive", "analysis")
#: XLSForm types that carry no answer in an export.
_STRUCTURAL = {"begin group", "end group", "begin_group", "end_group", "begin repeat", "end repeat",
               "begin_repeat", "end_repeat", "note"}
_SIMPLE_TYPES = {"integer", "decimal", "text", "geopoint", "start", "end", "today", "date",
                 "datetime", "time", "calculate", "deviceid", "username", "phonenumber",
                 "audit", "image", "barcode", "acknowledge", "range"}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Choice:
    """One answer of a choice list: its ``name`` (stored) and ``label`` (shown)."""

    name: str
    label: str


@dataclass(frozen=True)
class Question:
    """A question of the form, with its full group path as ``name`` (``household/hh_size``)."""

    name: str
    type: str
    list_name: str | None = None
    label: str = ""
    constraint: str | None = None
    required: bool = False
    privacy: str = "analysis"

    @property
    def short(self) -> str:
        """The question's own name, without its groups."""
        return self.name.rsplit("/", 1)[-1]


@dataclass
class Form:
    """A questionnaire: its questions (in form order) and its choice lists."""

    questions: dict[str, Question]
    choices: dict[str, list[Choice]] = field(default_factory=dict)
    source: str = "reference questionnaire"
    #: The roster's questions (the repeat group ``members``), by full name: one row per person.
    members: dict[str, Question] = field(default_factory=dict)

    def question(self, name: str) -> Question:
        """A household question or a roster question, by full name."""
        return self.questions[name] if name in self.questions else self.members[name]

    def choice_names(self, question: str) -> list[str]:
        """The choice names allowed for a select question (empty for other types)."""
        q = self.question(question)
        return [c.name for c in self.choices.get(q.list_name or "", [])]

    def label_map(self, question: str) -> dict[str, str]:
        """Choice label -> choice name for a select question (labels compared as written)."""
        q = self.question(question)
        return {c.label: c.name for c in self.choices.get(q.list_name or "", []) if c.label}

    def by_privacy(self, privacy: str) -> list[str]:
        """Names of the questions in one privacy class."""
        return [n for n, q in self.questions.items() if q.privacy == privacy]


# --------------------------------------------------------------------------------------------
# The reference questionnaire (CONTRACT.md §1)
# --------------------------------------------------------------------------------------------

_CHOICES: dict[str, list[tuple[str, str]]] = {
    "yes_no": [("yes", "Yes"), ("no", "No")],
    "yes_no_dk": [("yes", "Yes"), ("no", "No"), ("dont_know", "Don't know")],
    "sex": [("female", "Female"), ("male", "Male")],
    "member_sex": [("female", "Female"), ("male", "Male"), ("other", "Other")],
    "relation": [("head", "Head of household"), ("spouse", "Spouse or partner"),
                 ("child", "Son or daughter"), ("parent", "Parent"),
                 ("other_relative", "Other relative"), ("non_relative", "Not related")],
    "tenure_status": [
        ("owner_titled", "Owner, with a title"),
        ("owner_documented", "Owner, with other documents"),
        ("owner_undocumented", "Owner, without documents"),
        ("tenant_contract", "Tenant, with a written contract"),
        ("tenant_informal", "Tenant, without a written contract"),
        ("occupant_no_permission", "Occupant without permission"),
        ("customary", "Customary tenure"),
        ("other", "Other"),
    ],
    "tenure_documents": [
        ("title_deed", "Title deed"),
        ("lease", "Lease"),
        ("allotment_letter", "Allotment letter"),
        ("sale_agreement", "Sale agreement"),
        ("customary_certificate", "Customary certificate"),
        ("rent_receipt", "Rent receipt"),
        ("none", "None"),
    ],
    "water_source": [
        ("piped_dwelling", "Piped into dwelling"),
        ("piped_yard", "Piped into yard or plot"),
        ("piped_neighbour", "Piped to neighbour"),
        ("public_tap", "Public tap or standpipe"),
        ("water_kiosk", "Water kiosk"),
        ("borehole", "Borehole or tubewell"),
        ("protected_well", "Protected dug well"),
        ("unprotected_well", "Unprotected dug well"),
        ("protected_spring", "Protected spring"),
        ("unprotected_spring", "Unprotected spring"),
        ("rainwater", "Rainwater"),
        ("tanker_truck", "Tanker truck"),
        ("cart_small_tank", "Cart with small tank"),
        ("bottled", "Bottled water"),
        ("sachet", "Sachet water"),
        ("surface_water", "Surface water (river, pond, canal)"),
    ],
    "toilet_type": [
        ("flush_sewer", "Flush to piped sewer"),
        ("flush_septic", "Flush to septic tank"),
        ("flush_pit", "Flush to pit latrine"),
        ("flush_open_drain", "Flush to open drain"),
        ("flush_unknown", "Flush, don't know where"),
        ("vip_latrine", "Ventilated improved pit latrine"),
        ("pit_slab", "Pit latrine with slab"),
        ("pit_no_slab", "Pit latrine without slab"),
        ("composting", "Composting toilet"),
        ("bucket", "Bucket"),
        ("hanging_latrine", "Hanging toilet or latrine"),
        ("no_facility", "No facility (bush, field, open)"),
    ],
    "handwashing": [
        ("water_and_soap", "Water and soap"),
        ("water_only", "Water only"),
        ("none", "No handwashing facility"),
    ],
    "waste_disposal": [
        ("collected_door", "Collected from the door"),
        ("collected_point", "Taken to a collection point"),
        ("burned", "Burned"),
        ("buried", "Buried"),
        ("dumped_open", "Dumped in the open"),
        ("dumped_drain", "Dumped in a drain or river"),
        ("other", "Other"),
    ],
    "electricity": [
        ("grid_metered", "Grid, own meter"),
        ("grid_shared", "Grid, shared meter"),
        ("grid_informal", "Grid, informal connection"),
        ("solar", "Solar"),
        ("generator", "Generator"),
        ("none", "None"),
    ],
    "wall_material": [
        ("concrete_block", "Concrete blocks"),
        ("brick_fired", "Fired bricks"),
        ("stone", "Stone"),
        ("cement_plastered", "Cement-plastered"),
        ("iron_sheet", "Iron sheets"),
        ("wood_planks", "Wood planks"),
        ("mud_wattle", "Mud and wattle"),
        ("mud_brick", "Mud bricks"),
        ("cardboard_plastic", "Cardboard or plastic"),
        ("other", "Other"),
    ],
    "roof_material": [
        ("concrete", "Concrete"),
        ("tiles", "Tiles"),
        ("iron_sheet", "Iron sheets"),
        ("asbestos", "Asbestos"),
        ("thatch", "Thatch"),
        ("plastic_sheet", "Plastic sheet"),
        ("other", "Other"),
    ],
    "floor_material": [
        ("cement", "Cement"),
        ("tiles", "Tiles"),
        ("wood", "Wood"),
        ("earth", "Earth or sand"),
        ("other", "Other"),
    ],
    "priority_needs": [
        ("water", "Water"),
        ("toilets", "Toilets"),
        ("drainage", "Drainage"),
        ("waste", "Waste collection"),
        ("electricity", "Electricity"),
        ("paths_roads", "Paths and roads"),
        ("street_lighting", "Street lighting"),
        ("health", "Health"),
        ("school", "School"),
        ("housing", "Housing"),
        ("tenure", "Tenure security"),
    ],
}

# (group, name, type, list, label, constraint, required, privacy)
_QUESTIONS: list[tuple[str, str, str, str | None, str, str | None, bool, str]] = [
    ("", "start", "start", None, "", None, False, "analysis"),
    ("", "end", "end", None, "", None, False, "analysis"),
    ("", "enumerator", "text", None, "Enumerator code", None, True, "analysis"),
    ("", "consent", "select_one", "yes_no", "Does the household agree to take part?", None, True,
     "analysis"),
    ("", "settlement_reported", "select_one", "settlements", "Settlement", None, False,
     "analysis"),
    ("", "structure_id", "text", None, "Structure number", None, False, "direct"),
    ("", "gps", "geopoint", None, "Location of the dwelling", None, False, "location"),
    ("", "respondent_name", "text", None, "Name of the respondent", None, False, "direct"),
    ("", "phone", "text", None, "Phone number", None, False, "direct"),
    ("", "national_id", "text", None, "National ID number", None, False, "direct"),
    ("household", "hh_size", "integer", None, "Persons usually living in the household",
     ". >= 1 and . <= 30", True, "analysis"),
    ("household", "hh_head_sex", "select_one", "sex", "Sex of the household head", None, False,
     "analysis"),
    ("household", "rooms_sleeping", "integer", None, "Rooms used for sleeping",
     ". >= 1 and . <= 20", False, "analysis"),
    ("tenure", "tenure_status", "select_one", "tenure_status", "Tenure status", None, False,
     "sensitive"),
    ("tenure", "tenure_documents", "select_multiple", "tenure_documents",
     "Documents held for the dwelling or plot", None, False, "sensitive"),
    ("tenure", "eviction_fear", "select_one", "yes_no_dk",
     "Do you fear eviction in the next 5 years?", None, False, "sensitive"),
    ("water", "water_source", "select_one", "water_source", "Main source of drinking water",
     None, False, "analysis"),
    ("water", "water_minutes", "integer", None,
     "Minutes to collect water, round trip, queueing included (0 = on premises)",
     ". >= 0 and . <= 600", False, "analysis"),
    ("water", "water_sufficient", "select_one", "yes_no",
     "Was water available when needed in the last month?", None, False, "analysis"),
    ("sanitation", "toilet_type", "select_one", "toilet_type", "Toilet facility", None, False,
     "analysis"),
    ("sanitation", "toilet_shared", "select_one", "yes_no",
     "Is the toilet shared with other households?", None, False, "analysis"),
    ("sanitation", "toilet_households", "integer", None,
     "Households using the toilet, this one included", ". >= 2 and . <= 200", False,
     "analysis"),
    ("hygiene", "handwashing", "select_one", "handwashing", "Handwashing facility (observed)",
     None, False, "analysis"),
    ("waste", "waste_disposal", "select_one", "waste_disposal", "Solid waste disposal", None,
     False, "analysis"),
    ("energy", "electricity", "select_one", "electricity", "Electricity", None, False,
     "analysis"),
    ("housing", "wall_material", "select_one", "wall_material", "Main wall material", None,
     False, "analysis"),
    ("housing", "roof_material", "select_one", "roof_material", "Main roof material", None,
     False, "analysis"),
    ("housing", "floor_material", "select_one", "floor_material", "Main floor material", None,
     False, "analysis"),
    ("hazards", "flooded_past_year", "select_one", "yes_no",
     "Was the dwelling flooded in the last 12 months?", None, False, "analysis"),
    ("priorities", "priority_needs", "select_multiple", "priority_needs",
     "The community's most urgent needs (up to three)", "count-selected(.) <= 3", False,
     "analysis"),
]

#: The household roster (CONTRACT.md §1b): the repeat group ``members`` inside ``household``,
#: one row per person: (name, type, list, label, constraint, privacy).
ROSTER = "household/members"
_MEMBER_QUESTIONS: list[tuple[str, str, str | None, str, str | None, str]] = [
    ("member_sex", "select_one", "member_sex", "Sex", None, "analysis"),
    ("member_age", "integer", None, "Age in completed years", ". >= 0 and . <= 120",
     "analysis"),
    ("member_relation", "select_one", "relation", "Relation to the head of household", None,
     "analysis"),
    ("member_on_document", "select_one", "yes_no_dk",
     "Is this person's name on a document of the household's tenure? (adults)", None,
     "sensitive"),
    ("member_fears_loss", "select_one", "yes_no_dk",
     "Does this person fear losing the right to live here in the next 5 years? (adults)", None,
     "sensitive"),
]

#: Names of the questions of the reference form, with their group paths.
REFERENCE_FIELDS: list[str] = [f"{g}/{n}" if g else n for g, n, *_ in _QUESTIONS]
#: The questions whose answers identify a person (split off at ingest).
PERSONAL_FIELDS: list[str] = [
    (f"{g}/{n}" if g else n) for g, n, *rest in _QUESTIONS if rest[-1] == "direct"
]


def reference_form(settlements: Iterable[tuple[str, str]] = ()) -> Form:
    """The reference questionnaire of CONTRACT.md §1 as a :class:`Form`.

    Parameters
    ----------
    settlements
        ``(settlement_id, name)`` pairs for the ``settlements`` choice list.
    """
    questions = {}
    for group, name, qtype, list_name, label, constraint, required, privacy in _QUESTIONS:
        full = f"{group}/{name}" if group else name
        questions[full] = Question(full, qtype, list_name, label or name, constraint, required,
                                   privacy)
    choices = {k: [Choice(n, lab) for n, lab in v] for k, v in _CHOICES.items()}
    choices["settlements"] = [Choice(str(i), str(n)) for i, n in settlements]
    return Form(questions, choices, members=reference_members())


def reference_members() -> dict[str, Question]:
    """The reference roster's questions (CONTRACT.md §1b), by full name."""
    return {f"{ROSTER}/{n}": Question(f"{ROSTER}/{n}", t, ln, lab, con, False, priv)
            for n, t, ln, lab, con, priv in _MEMBER_QUESTIONS}


def write_xlsform(path: str | Path, settlements: Iterable[tuple[str, str]] = (),
                  form_id: str = "enumeration") -> Path:
    """Write the reference questionnaire as an XLSForm (survey, choices, settings sheets)."""
    from openpyxl import Workbook

    form = reference_form(settlements)
    wb = Workbook()
    survey = wb.active
    survey.title = "survey"
    survey.append(["type", "name", "label", "required", "constraint", "privacy"])
    current = ""
    for q in form.questions.values():
        group = q.name.rsplit("/", 1)[0] if "/" in q.name else ""
        if group != current:
            if current:
                survey.append(["end group", "", "", "", "", ""])
            if group:
                survey.append(["begin group", group, group.capitalize(), "", "", ""])
            current = group
        qtype = f"{q.type} {q.list_name}" if q.list_name else q.type
        survey.append([qtype, q.short, q.label, "yes" if q.required else "",
                       q.constraint or "", q.privacy])
        if q.name == "household/rooms_sleeping":
            survey.append(["begin repeat", "members", "Members of the household", "", "", ""])
            for m in form.members.values():
                mtype = f"{m.type} {m.list_name}" if m.list_name else m.type
                survey.append([mtype, m.short, m.label, "", m.constraint or "", m.privacy])
            survey.append(["end repeat", "", "", "", "", ""])
    if current:
        survey.append(["end group", "", "", "", "", ""])
    sheet = wb.create_sheet("choices")
    sheet.append(["list_name", "name", "label"])
    for list_name, items in form.choices.items():
        for c in items:
            sheet.append([list_name, c.name, c.label])
    settings = wb.create_sheet("settings")
    settings.append(["form_title", "form_id", "version"])
    settings.append(["Settlement enumeration", form_id, "1"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


# --------------------------------------------------------------------------------------------
# Reading any XLSForm
# --------------------------------------------------------------------------------------------

#: The largest XLSForm read (an .xls has no compression to bound; a real form is < 1 MiB).
MAX_FORM_MIB = 64


def _records(rows: list[list[object]]) -> list[dict[str, str]]:
    """A sheet's rows as records keyed by its lower-cased header; blank rows left out."""
    if not rows:
        return []
    header = [_header_key(h) for h in rows[0]]
    out = []
    for r in rows[1:]:
        rec = {h: _cell_text(v) for h, v in zip(header, r, strict=False) if h}
        if any(rec.values()):
            out.append(rec)
    return out


def _header_key(h: object) -> str:
    """A column header lower-cased, but for a language's name (``label::Français (fr)``)."""
    if h is None:
        return ""
    head, sep, rest = str(h).strip().partition("::")
    return head.strip().lower() + (sep + rest.strip() if sep else "")


def _cell_text(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # an .xls stores every number as a float: 1.0 is the cell's 1
    return str(v).strip()


def _sheets(path: Path) -> tuple[list[str], dict[str, list[dict[str, str]]]]:
    """The sheet names of an XLSForm (``.xlsx`` or ``.xls``), and its survey, choices and
    settings sheets by lower-cased name."""
    if path.stat().st_size > MAX_FORM_MIB * 2**20:
        raise FormError(path, f"is larger than {MAX_FORM_MIB} MiB, which no XLSForm is")
    wanted = ("survey", "choices", "settings")
    if path.suffix.lower() == ".xls":
        return _xls_sheets(path, wanted)
    from openpyxl import load_workbook

    from profiling._readers import check_zip

    try:
        check_zip(path)
    except InputFileError as exc:
        raise FormError(path, exc.problem) from None
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise FormError(path, f"not a readable .xlsx workbook ({exc.__class__.__name__}: {exc}); "
                              "is the file truncated?") from None
    try:
        names = {n.lower(): n for n in wb.sheetnames}
        return list(wb.sheetnames), {
            w: _records([list(r) for r in wb[names[w]].iter_rows(values_only=True)])
            for w in wanted if w in names}
    finally:
        wb.close()


def _xls_sheets(path: Path, wanted: tuple[str, ...]
                ) -> tuple[list[str], dict[str, list[dict[str, str]]]]:
    """The sheets of an old-style ``.xls`` workbook (xlrd: its diagnostics kept quiet; any
    failure of a damaged file is a :class:`FormError`)."""
    import io
    import struct

    import xlrd
    from xlrd.compdoc import CompDocError

    book = None
    try:
        book = xlrd.open_workbook(str(path), on_demand=True, logfile=io.StringIO(),
                                  verbosity=0)
        names = {n.lower(): n for n in book.sheet_names()}
        out: dict[str, list[dict[str, str]]] = {}
        for w in wanted:
            if w in names:
                sheet = book.sheet_by_name(names[w])
                out[w] = _records([sheet.row_values(i) for i in range(sheet.nrows)])
        return list(book.sheet_names()), out
    except (xlrd.XLRDError, CompDocError, struct.error, OSError, ValueError, AssertionError,
            IndexError, KeyError, EOFError, UnicodeDecodeError) as exc:
        raise FormError(path, f"not a readable .xls workbook ({exc.__class__.__name__}: "
                              f"{exc}); is the file truncated, or another format?") from None
    finally:
        if book is not None:
            book.release_resources()


def _languages(*sheets: list[dict[str, str]]) -> list[str]:
    """The languages of a form's labels: the ``X`` of its ``label::X`` columns."""
    found: dict[str, None] = {}
    for sheet in sheets:
        for rec in sheet[:1]:
            for k in rec:
                if k.startswith("label::"):
                    found[k[len("label::"):].strip()] = None
    return list(found)


def _pick_language(path: Path, languages: list[str], wanted: str | None,
                   default: str) -> str | None:
    """The ``label::`` column to read: the configured language (its whole name, the name
    before its code, or its code: ``Français (fr)``, ``français``, ``fr``), else the form's
    ``default_language``; None for the plain ``label`` column."""
    for ask in (wanted, default or None):
        if not ask:
            continue
        a = ask.strip().casefold()
        for lang in languages:
            m = re.fullmatch(r"(.*?)\s*(?:\((.*)\))?", lang)
            name, code = (m.group(1), m.group(2) or "") if m else (lang, "")
            if a in (lang.casefold(), name.strip().casefold(), code.strip().casefold()):
                return lang
        if ask is wanted:
            shown = ", ".join(languages) if languages else "none: it has only 'label'"
            raise FormError(path, f"has no labels in the configured language {wanted!r} "
                                  f"(its languages: {shown})")
    return None


def _label(rec: dict[str, str], language: str | None = None) -> str:
    if language is not None and rec.get(f"label::{language}"):
        return rec[f"label::{language}"]
    if rec.get("label"):
        return rec["label"]
    for k, v in rec.items():
        if k.startswith("label::") and v:
            return v
    return ""


def read_xlsform(path: str | Path, language: str | None = None) -> Form:
    """Read an XLSForm (``.xlsx`` or ``.xls``) into a :class:`Form`.

    Groups become path prefixes joined by ``/``. The repeat group ``members`` is the household
    roster (CONTRACT.md §1b): its questions are the form's ``members``; the questions of any
    other repeat group are not household fields and are left out. A ``privacy`` column in the
    survey sheet sets each question's privacy class; without it, the reference form's classes
    apply to fields it knows, and ``analysis`` to the others. Labels are read in ``language``
    (one of the form's ``label::LANGUAGE`` columns, by name or code), else in the form's
    ``default_language``, else from the ``label`` column; a label missing in that language
    falls back to ``label``.
    """
    path = Path(path)
    if not path.exists():
        raise FormError(path, "the XLSForm does not exist")
    if path.suffix.lower() not in (".xlsx", ".xls"):
        raise FormError(path, f"an XLSForm must be an .xlsx or .xls workbook, not "
                              f"{path.suffix!r}; open it in a spreadsheet and save it as .xlsx")
    names, sheets = _sheets(path)
    if "survey" not in sheets:
        raise FormError(path, f"no 'survey' sheet (sheets: {', '.join(names) or 'none'})")
    survey = sheets["survey"]
    choice_rows = sheets.get("choices", [])
    settings = sheets.get("settings", [])
    languages = _languages(survey, choice_rows)
    language = _pick_language(path, languages, language,
                              settings[0].get("default_language", "") if settings else "")
    if language is None and languages and "label" not in survey[0]:
        language = languages[0]  # one language throughout, not the first filled per row

    known = reference_form()
    questions: dict[str, Question] = {}
    known_members = reference_members()
    members: dict[str, Question] = {}
    groups: list[str] = []
    repeats: list[str | None] = []  # the repeat each open group is in (None: the household)
    for i, rec in enumerate(survey, start=2):
        raw_type = re.sub(r"\s+", " ", rec.get("type", "")).strip()
        name = rec.get("name", "")
        kind = raw_type.lower()
        if kind in ("begin group", "begin_group", "begin repeat", "begin_repeat"):
            inside = repeats[-1] if repeats else None
            repeats.append(name if "repeat" in kind and inside is None else inside)
            groups.append(name)
            continue
        if kind in ("end group", "end_group", "end repeat", "end_repeat"):
            if not groups:
                raise FormError(path, f"survey sheet row {i}: 'end group' without 'begin group'")
            groups.pop()
            repeats.pop()
            continue
        if not raw_type or kind in _STRUCTURAL:
            continue
        if not name:
            raise FormError(path, f"survey sheet row {i}: a question of type {raw_type!r} "
                                  "has no name")
        parts = raw_type.split(" ")
        qtype, list_name = parts[0].lower(), None
        if qtype in ("select_one", "select_multiple"):
            if len(parts) < 2:
                raise FormError(path, f"survey sheet row {i}, field {name!r}: {raw_type!r} "
                                      "names no choice list")
            list_name = parts[1]
        elif qtype not in _SIMPLE_TYPES:
            qtype = "text"
        full = "/".join([*[g for g in groups if g], name])
        privacy = rec.get("privacy", "").lower()
        if privacy and privacy not in PRIVACY_CLASSES:
            raise FormError(path, f"survey sheet row {i}, field {name!r}: privacy {privacy!r} "
                                  f"is not one of {', '.join(PRIVACY_CLASSES)}")
        repeat = repeats[-1] if repeats else None
        if repeat is not None and repeat != "members":
            continue  # another repeat group: not a household field, and not the roster
        if not privacy:
            ref = (known_members if repeat else known.questions).get(full)
            privacy = ref.privacy if ref else ("location" if qtype == "geopoint" else "analysis")
        required = rec.get("required", "").lower() in ("yes", "true", "true()", "1")
        if full in questions:
            # pyxform refuses this; real forms still have it (a question kept twice under
            # different relevance): an export has one column for both, read by the later one
            log.warning("%s: survey sheet row %d repeats the field %r; its later definition "
                        "is used", path, i, full)
        (members if repeat else questions)[full] = Question(
            full, qtype, list_name, _label(rec, language) or name,
            rec.get("constraint") or None, required, privacy)
    if groups:
        raise FormError(path, f"group {groups[-1]!r} is never closed with 'end group'")
    if not questions:
        raise FormError(path, "the survey sheet defines no questions")

    choices: dict[str, list[Choice]] = {}
    for rec in choice_rows:
        ln = rec.get("list_name") or rec.get("list name") or ""
        if ln and rec.get("name"):
            choices.setdefault(ln, []).append(Choice(rec["name"], _label(rec, language)))
    for q in [*questions.values(), *members.values()]:
        if q.list_name and q.list_name not in choices and q.name != "settlement_reported":
            raise FormError(path, f"field {q.name!r} uses choice list {q.list_name!r}, "
                                  "which the choices sheet does not define")
    return Form(questions, choices, source=str(path), members=members)
