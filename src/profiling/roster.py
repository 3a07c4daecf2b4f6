"""The household roster (CONTRACT.md §1b): one row per person, read beside its households.

Enumerations list a household's members in a repeat group, which exports write as a second
table: a sheet of the Kobo XLSX workbook, a separate Kobo CSV, a CSV of ODK Central's zip, or
any member table linked by a key column. Here a roster is found, its columns recognised like a
survey's, and each member row linked to the row of its household in the same export (the link
is looked up in that export only, so a household's earlier version never collects its later
version's members). What happens to the members after that follows their household (ingest).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from profiling import _readers
from profiling._errors import FormError
from profiling._readers import RawExport
from profiling.config import MembersSource, SurveySource
from profiling.form import ROSTER, Form, reference_form, reference_members

log = logging.getLogger(__name__)

#: The link columns of the field's exports, in the order they are looked for: ODK Central
#: (the household's ``KEY``), Kobo (the household's ``_uuid``; ``_index`` by ``_parent_index``).
LINKS = ("PARENT_KEY", "_submission__uuid", "_parent_index")
#: Adults are members aged 18 or more (CONTRACT.md §1b).
ADULT_AGE = 18


@dataclass
class Roster:
    """One export's roster as read: the member fields by full name (text), the position of
    each member's household in the stacked household frame (``_hh``, -1 when it links to no
    household of the export), the file label, row numbers and link values."""

    frame: pd.DataFrame
    label: str
    link: str
    n_read: int
    malformed: list[tuple[int, str]]
    #: The number of member rows of each household row of the export (in its row order).
    per_household: np.ndarray


def member_form(form: Form) -> Form:
    """The roster's questions as a form of their own (the reference roster's when the form
    has none), with every choice list they use."""
    members = form.members or reference_members()
    choices = {**reference_form().choices, **form.choices}
    return Form(dict(members), choices, source=f"{form.source} (roster)")


def _where(src: SurveySource, m: MembersSource) -> tuple[Path, str | None, str]:
    """The roster's file, its sheet or zip member, and its format."""
    if m.path is not None:
        return Path(m.path), None, m.format
    path = Path(src.path)
    kind = _readers.detect_format(path) if src.format == "auto" else src.format
    if kind not in ("xlsx", "kobo_xlsx", "odk_zip"):
        raise FormError(path, "its roster is not inside it (a CSV holds one table): name the "
                              "roster's file in this survey's configuration, e.g. members: "
                              "{path: members.csv}")
    if m.sheet is not None:
        return path, m.sheet, kind
    names = _readers.table_names(path, src.limits)
    leaf = ROSTER.rsplit("/", 1)[-1]
    hits = [n for n in names if Path(n).stem.casefold() == leaf
            or Path(n).stem.casefold().endswith(("-" + leaf, "/" + leaf, "_" + leaf))]
    if len(hits) != 1:
        raise FormError(path, f"{'several' if hits else 'none'} of its "
                              f"{'sheets' if kind != 'odk_zip' else 'repeat CSVs'} "
                              f"({', '.join(names) or 'none'}) "
                              f"{'are' if hits else 'is'} the roster {leaf!r}: name it in this "
                              "survey's configuration, e.g. members: {sheet: NAME}")
    return path, hits[0], kind


def _clean_key(s: pd.Series) -> pd.Series:
    """Keys as ingest compares them: trimmed, without ODK's ``uuid:`` prefix."""
    return s.astype("string").str.strip().str.replace(r"^uuid:", "", regex=True)


def read_roster(src: SurveySource, households: RawExport, keys: pd.Series, form: Form,
                offset: int, normalise: object) -> Roster:
    """Read ``src``'s roster and link each member to its household row.

    ``keys`` are the household export's submission keys (in its row order, as recognised),
    ``offset`` the position of its first row in the stacked household frame, and
    ``normalise`` ingest's column recognition (``_normalise(raw, source, form)``).
    """
    m = src.members
    assert m is not None
    path, sheet, kind = _where(src, m)
    raw = _readers.read_export(path, kind, m.encoding if m.path is not None else src.encoding,
                               m.na_values or src.na_values, sheet, src.limits)
    label = raw.path.name if sheet is None or kind == "odk_zip" else f"{path.name} [{sheet}]"
    mform = member_form(form)
    pseudo = SurveySource(path=raw.path, labels=m.labels, field_mapping=m.field_mapping)
    from profiling.ingest import check_mapping

    check_mapping(mform, pseudo)
    norm = normalise(raw, pseudo, mform)  # type: ignore[operator]
    frame = norm.frame
    link = m.link or next((c for c in LINKS if c in raw.table.columns), None)
    if link is None or link not in raw.table.columns:
        shown = ", ".join(map(str, list(raw.table.columns)[:10]))
        raise FormError(raw.path, (f"has no column {link!r} to link members to households"
                                   if link else "has none of the link columns "
                                   f"{', '.join(LINKS)}") + f" (its columns begin {shown}); "
                                   "name it in this survey's configuration: members: "
                                   "{link: COLUMN}")
    values = raw.table[link]
    if link == "_parent_index":
        if "_index" not in households.table.columns:
            raise FormError(households.path, "has no _index column, which the roster's "
                                             "_parent_index refers to")
        target = households.table["_index"].astype("string").str.strip()
        wanted = values.astype("string").str.strip()
    elif link == "PARENT_KEY" and "KEY" in households.table.columns:
        # ODK Central: a repeat row names its submission's KEY
        target = _clean_key(households.table["KEY"])
        wanted = _clean_key(values)
    else:
        target = _clean_key(keys)
        wanted = _clean_key(values)
    # the household row each link value names (the last, if a key repeats in one export)
    position = pd.Series(np.arange(len(target)), index=pd.Index(target.to_numpy(dtype=object)))
    position = position[~position.index.duplicated(keep="last") & position.index.notna()]
    local = wanted.map(position)
    hh = np.where(local.isna().to_numpy(), -1,
                  local.fillna(0).to_numpy(dtype=np.int64) + offset).astype(np.int64)
    per = np.bincount(local.dropna().to_numpy(dtype=np.int64), minlength=len(target))
    frame = frame.copy()
    frame["_hh"] = hh
    frame["_file"] = label
    frame["_row"] = raw.rows
    frame["_link"] = values.astype("string").to_numpy()
    log.info("read the roster %s: %d members (linked by %s)", label, raw.n_read, link)
    return Roster(frame, label, link, raw.n_read, raw.malformed, per)
