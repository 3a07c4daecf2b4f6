"""A field mapping to start from: ``profiling mapping draft EXPORT [EXPORT...]``.

Writing a field mapping by hand for a survey of another questionnaire takes long and goes
wrong quietly. Here the exports are read, each column is matched to a reference field by its
name (split into words: ``ToiletFacilitySHARE`` is *toilet facility share*), by its label when
the survey's own XLSForm is given, and by what its answers look like (a number field needs
numbers); each answer code of a matched select field is matched to a reference choice by name,
label or initial (``Y`` is ``yes``). A second table whose rows link to the first (a roster) is
recognised by its key column. What is not matched is written as a commented ``TODO`` with the
choices to pick from. The draft loads as a configuration as it stands; consent is the one thing
it never fills in (CONTRACT.md §1: never assumed).
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from profiling import _readers
from profiling.form import Form, Question, reference_form, reference_members

#: Words that say the same as a reference field's name, beyond its own.
SYNONYMS = {
    "settlement_reported": {"site", "settlement", "community", "village", "neighbourhood",
                            "neighborhood", "slum", "area", "ward"},
    "hh_size": {"size", "persons", "household_size", "hhsize", "members"},
    "hh_head_sex": {"sex", "gender"},
    "rooms_sleeping": {"rooms", "room", "sleeping"},
    "water_source": {"drinking", "water", "source"},
    "water_minutes": {"minutes", "time", "collection"},
    "toilet_type": {"toilet", "type", "sanitation", "latrine"},
    "toilet_shared": {"toilet", "share", "shared"},
    "handwashing": {"handwash", "handwashing", "hand", "wash"},
    "waste_disposal": {"waste", "garbage", "rubbish", "disposal"},
    "electricity": {"electricity", "power", "energy"},
    "wall_material": {"wall", "walls", "extwalls"},
    "roof_material": {"roof"},
    "floor_material": {"floor"},
    "member_sex": {"sex", "gender"},
    "member_age": {"age"},
    "member_relation": {"relation", "relationship"},
}
#: Words too common in survey column names to tell fields apart.
_STOP = {"the", "of", "a", "an", "in", "is", "to", "for", "and", "or", "your", "you", "do",
         "does", "what", "which", "how", "many", "this", "that", "with", "by", "hh",
         "household", "member", "main", "used", "last", "month", "are", "be", "on", "at"}
#: At most this many distinct answers of a column are matched to choices (a survey's codes).
MAX_CODES = 60
#: A column's name or label must share this much with a field's words to be proposed.
MIN_SCORE = 0.5


def words(text: str) -> set[str]:
    """A column name or label as lower-case words: ``ToiletFacilitySHARE`` -> toilet, facility,
    share; ``Sex_HH`` -> sex, hh."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(text))
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    return {w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w}


def _score(field_words: set[str], column: str, label: str) -> float:
    """How much of a field's words a column's name (or label) says: prefix matches count, so
    ``share`` says ``shared``, and a run-together ``HHROOMS`` says ``rooms``."""
    want = {w for w in field_words if w not in _STOP and len(w) >= 3}
    if not want:
        return 0.0
    have = {w for w in words(column) | words(label) if w not in _STOP}
    joined = re.sub(r"[^a-z]", "", str(column).lower())

    def said(w: str) -> bool:
        return any(h.startswith(w[:5]) or w.startswith(h[:5]) for h in have if len(h) >= 3) \
            or (len(w) >= 4 and w in joined)

    return sum(said(w) for w in want) / len(want)


@dataclass
class TableGuess:
    """What was found in one export table."""

    path: Path
    columns: list[str]
    mapping: dict[str, str] = field(default_factory=dict)       # field short name -> column
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # field -> code -> choice
    todo_values: dict[str, list[str]] = field(default_factory=dict)  # field -> unmatched codes
    todo_fields: dict[str, list[str]] = field(default_factory=dict)  # field -> candidates
    recognised: list[str] = field(default_factory=list)          # columns read as they are
    coalesce: dict[str, list[str]] = field(default_factory=dict)  # field -> columns, in order
    unmatched: list[str] = field(default_factory=list)           # columns left aside


@dataclass
class Draft:
    """A drafted configuration: the survey, its roster (when one was found) and the text."""

    survey: TableGuess
    members: TableGuess | None
    link: str | None
    count_members: bool
    has_consent: bool
    text: str = ""


def _labels(form_path: Path | None) -> dict[str, str]:
    """Column name -> question label, from the survey's own XLSForm (the leaf name)."""
    if form_path is None:
        return {}
    from profiling.form import read_xlsform

    own = read_xlsform(form_path)
    out = {q.short: q.label for q in [*own.questions.values(), *own.members.values()]}
    return out


def _field_score(q: Question, column: str, label: str) -> float:
    """How well a column's name (and label) says a field: its own words, its label's, or one
    of its synonyms (a synonym alone counts as 0.75)."""
    score = _score(words(q.short) - {"member"}, column, "")
    if label:
        score = max(score, _score(words(q.label) - {"member"}, column, label))
    for syn in SYNONYMS.get(q.short, set()):
        if _score({syn}, column, "") == 1.0:
            score = max(score, 0.75)
    return score


def _codes_matched(s: pd.Series, form: Form, q: Question) -> float:
    """The share of a column's most frequent answer codes that stand for one of the field's
    choices."""
    v = s.dropna().astype(str).str.strip()
    if q.type == "select_multiple":
        v = v.str.split().explode().dropna()
    codes = v[v != ""].value_counts().index[:20]
    if len(codes) == 0:
        return 0.0
    return sum(_match_code(str(c), form, q) is not None for c in codes) / len(codes)


def _answered(s: pd.Series) -> np.ndarray:
    v = s.astype("string").str.strip()
    return (v.notna() & (v != "")).to_numpy(dtype=bool)


def _numeric_share(s: pd.Series) -> float:
    v = s.dropna().astype(str).str.strip()
    v = v[v != ""]
    if v.empty:
        return 0.0
    return float(pd.to_numeric(v, errors="coerce").notna().mean())


def _match_code(code: str, form: Form, q: Question) -> str | None:
    """The reference choice an answer code stands for, or None."""
    names = form.choice_names(q.name)
    labels = {c.label.casefold(): c.name for c in form.choices.get(q.list_name or "", [])}
    c = code.strip()
    low = c.casefold()
    if c in names:
        return c
    for n in names:
        if n.casefold() == low or n.replace("_", " ") == low.replace("_", " "):
            return n
    if low in labels:
        return labels[low]
    initial = [n for n in names if len(low) == 1 and n[:1] == low]
    if len(initial) == 1:
        return initial[0]
    close = difflib.get_close_matches(low, [n.casefold() for n in names], n=1, cutoff=0.8)
    if close:
        return next(n for n in names if n.casefold() == close[0])
    close = difflib.get_close_matches(low, list(labels), n=1, cutoff=0.8)
    if close:
        return labels[close[0]]
    # last: the one choice that shares a word with the code (Bricks: brick_fired)
    mine = {w for w in words(c) if len(w) >= 4 and w not in _STOP}
    sharing = [n for n in names if any(w[:5] == x[:5] for w in mine
                                       for x in words(n) if len(x) >= 4)]
    return sharing[0] if len(sharing) == 1 else None


def _guess(path: Path, table: pd.DataFrame, questions: dict[str, Question], form: Form,
           labels: dict[str, str], member: bool) -> TableGuess:
    from profiling.ingest import _header_lookup

    guess = TableGuess(path, [str(c) for c in table.columns])
    known = _header_lookup(Form(questions, form.choices))
    taken: set[str] = set()
    for col in guess.columns:
        hit = known.get(col)
        if hit is not None:
            guess.recognised.append(col)
            taken.add(col)
            short = hit[0].rsplit("/", 1)[-1]
            guess.mapping.setdefault(short, col)
    scores: list[tuple[float, str, str]] = []
    for q in questions.values():
        if q.short in guess.mapping or q.type == "geopoint" or q.privacy == "direct":
            continue
        for col in guess.columns:
            if col in taken:
                continue
            score = _field_score(q, col, labels.get(col, ""))
            if score < MIN_SCORE:
                continue
            if q.type in ("integer", "decimal") and _numeric_share(table[col]) < 0.8:
                continue  # a number field needs numbers
            if q.type in ("select_one", "select_multiple") and q.list_name != "settlements":
                share = _codes_matched(table[col], form, q)
                if share == 0:
                    continue  # none of its answers is one of the field's choices
                score *= 0.5 + 0.5 * share
            scores.append((score, q.short, col))
    scores.sort(key=lambda t: (-t[0], t[1], t[2]))
    candidates: dict[str, list[str]] = {}
    for _, short, col in scores:
        candidates.setdefault(short, []).append(col)
        if short in guess.mapping or col in taken:
            continue
        guess.mapping[short] = col
        taken.add(col)
    by_short = {q.short: q for q in questions.values()}
    # a question split in two by a skip (private / public water sources): other columns of
    # the same field that are answered where the chosen one is blank join it as a coalesce
    for short, col in list(guess.mapping.items()):
        sq = by_short.get(short)
        if sq is None or sq.type != "select_one" or col in guess.recognised:
            continue
        pool = [c for c in dict.fromkeys([col, *candidates.get(short, [])])
                if c == col or c not in taken]
        filled = {c: _answered(table[c]) for c in pool}  # best matched first
        answered = np.zeros(len(table), dtype=bool)
        group: list[str] = []
        for c in pool:
            more = filled[c]
            if more.sum() and (answered & more).sum() <= 0.05 * min(
                    max(int(answered.sum()), 1), int(more.sum())):
                group.append(c)
                answered |= more
        if group and group[0] != col:
            taken.discard(col)
        taken.update(group)
        guess.mapping[short] = group[0] if group else col
        if len(group) > 1:
            guess.coalesce[short] = group
    for short, col in guess.mapping.items():
        sq = by_short.get(short)
        if sq is None or sq.type not in ("select_one", "select_multiple") or col in \
                guess.recognised or sq.list_name == "settlements":
            continue
        parts = [table[c] for c in guess.coalesce.get(short, [col])]
        codes = pd.concat(parts).dropna().astype(str).str.strip()
        codes = codes[codes != ""].value_counts().index[:MAX_CODES]
        names = set(form.choice_names(sq.name))
        for code in codes:
            if code in names:
                continue
            choice = _match_code(str(code), form, sq)
            if choice is not None:
                guess.values.setdefault(short, {})[str(code)] = choice
            else:
                guess.todo_values.setdefault(short, []).append(str(code))
    for q in questions.values():
        if q.short not in guess.mapping and q.type != "geopoint" and q.privacy != "direct":
            guess.todo_fields[q.short] = candidates.get(q.short, [])[:3]
    guess.unmatched = [c for c in guess.columns if c not in taken]
    return guess


def _link(households: pd.DataFrame, members: pd.DataFrame) -> str | None:
    """The member column most of whose values are the households' keys (or Kobo's links)."""
    from profiling.roster import LINKS

    for name in LINKS:
        if name in members.columns:
            return name
    keys = set()
    for c in ("KEY", "_uuid", "meta-instanceID", "instanceID", "uuid", "key", "id"):
        if c in households.columns:
            keys |= set(households[c].dropna().astype(str).str.strip())
    best, share = None, 0.0
    for c in members.columns:
        v = members[c].dropna().astype(str).str.strip()
        if v.empty or not keys:
            continue
        s = float(v.isin(keys).mean())
        if s > share:
            best, share = str(c), s
    return best if share >= 0.9 else None


def draft(exports: list[Path], form_path: Path | None = None) -> Draft:
    """Draft a configuration for ``exports``: the first is the household table; a second (or
    a sheet or zip member of the first) whose rows link to it is its roster."""
    form = reference_form()
    labels = _labels(form_path)
    first = _readers.read_export(exports[0])
    member_raw = None
    member_path: Path | None = None
    sheet = None
    if len(exports) > 1:
        member_path = exports[1]
        member_raw = _readers.read_export(member_path)
    elif _readers.detect_format(exports[0]) in ("xlsx", "odk_zip"):
        names = _readers.table_names(exports[0])
        others = names[1:] if _readers.detect_format(exports[0]) == "xlsx" else names
        for n in others:
            raw = _readers.read_export(exports[0], layer=n)
            if _link(first.table, raw.table) is not None:
                member_raw, sheet = raw, n
                break
    survey = _guess(exports[0], first.table, form.questions, form, labels, member=False)
    members = link = None
    if member_raw is not None:
        link = _link(first.table, member_raw.table)
        if link is not None:
            members = _guess(member_path or exports[0], member_raw.table, reference_members(),
                             form, labels, member=True)
            if link in members.mapping.values():
                members.mapping = {k: v for k, v in members.mapping.items() if v != link}
    count = members is not None and "hh_size" not in survey.mapping
    if count:
        survey.todo_fields.pop("hh_size", None)
    has_consent = "consent" in survey.mapping
    d = Draft(survey, members, link, count, has_consent)
    d.text = render(d, exports, sheet)
    return d


def _q(v: str) -> str:
    """A YAML scalar: JSON's quoting, which YAML reads the same."""
    return json.dumps(v, ensure_ascii=False)


def render(d: Draft, exports: list[Path], sheet: str | None) -> str:
    """The draft as a YAML configuration with comments."""
    form = reference_form()
    by_short = {q.short: q for q in [*form.questions.values(), *reference_members().values()]}
    lines = ["# A field mapping drafted by `profiling mapping draft`: check every line, then",
             "# fill in the TODOs (or leave them: an unmapped field is simply not collected).",
             "surveys:", f"  - path: {_q(str(exports[0]))}"]

    def mapping(g: TableGuess, indent: str, extra: dict[str, str] | None = None) -> None:
        lines.append(f"{indent}field_mapping:")
        for short, col in {**g.mapping, **(extra or {})}.items():
            if col in g.recognised and short not in (extra or {}):
                continue  # read as it is: no mapping needed
            if short in (extra or {}):
                lines.append(f"{indent}  {short}: {extra[short]}")  # type: ignore[index]
                continue
            values = g.values.get(short)
            todo = g.todo_values.get(short, [])
            if not values and not todo and short not in g.coalesce:
                lines.append(f"{indent}  {short}: {_q(col)}")
                continue
            lines.append(f"{indent}  {short}:")
            if short in g.coalesce:
                lines.append(f"{indent}    coalesce: [{', '.join(map(_q, g.coalesce[short]))}]"
                             "  # the first answered")
            else:
                lines.append(f"{indent}    column: {_q(col)}")
            lines.append(f"{indent}    values:")
            for code, name in (values or {}).items():
                lines.append(f"{indent}      {_q(code)}: {_q(name)}")
            if todo:
                q = by_short[short]
                lines.append(f"{indent}      # TODO: codes not matched; choices: "
                             + ", ".join(form.choice_names(q.name)))
                for code in todo:
                    lines.append(f"{indent}      # {_q(code)}: ")
        # a column name is the export's text: in a comment too it is quoted (JSON escapes a
        # line break, which would otherwise end the comment and start a key of its own)
        for short, cands in g.todo_fields.items():
            hint = f" (candidates: {', '.join(map(_q, cands))})" if cands else ""
            lines.append(f"{indent}  # TODO {short}: COLUMN{hint}")
        if g.recognised:
            lines.append(f"{indent}  # read as they are: {', '.join(map(_q, g.recognised))}")
        if g.unmatched:
            shown = g.unmatched[:40]
            lines.append(f"{indent}  # columns left aside: {', '.join(map(_q, shown))}"
                         + (" ..." if len(g.unmatched) > 40 else ""))

    extra = {"hh_size": "{count: members}"} if d.count_members else None
    if not d.survey.mapping and not extra:
        lines.append("    field_mapping: {}")
    else:
        mapping(d.survey, "    ", extra)
    if not d.has_consent:
        lines += ["    # TODO consent: this export has no consent field, so no household in it "
                  "can be kept", "    # until you state how consent was obtained outside the "
                  "form (it is never assumed):",
                  "    # consent: {collected_outside_form: \"...\"}"]
    if d.members is not None:
        lines.append("    members:")
        if sheet is not None:
            lines.append(f"      sheet: {_q(sheet)}")
        elif len(exports) > 1:
            lines.append(f"      path: {_q(str(exports[1]))}")
        if d.link is not None:
            lines.append(f"      link: {_q(d.link)}")
        mapping(d.members, "      ")
    lines += ["settlement_assignment: {by: column, column: settlement_reported}"
              if "settlement_reported" in d.survey.mapping and not any(
                  c in d.survey.columns for c in ("_gps_latitude", "gps-Latitude", "gps"))
              else "# settlement_assignment: {by: location}",
              "# boundaries: TODO the settlements (polygons, or a CSV of settlement_id,name)", ""]
    return "\n".join(lines)
