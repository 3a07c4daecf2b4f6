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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def roster_source(path: Path, m: MembersSource) -> SurveySource:
    """A roster seen as a survey of the roster's questions: its path, labels and mapping (what
    column recognition and the mapping check read)."""
    return SurveySource(path=path, labels=m.labels, field_mapping=m.field_mapping)


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
                offset: int, normalise: Callable[[RawExport, SurveySource, Form], Any]
                ) -> Roster:
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
    norm = normalise(raw, roster_source(raw.path, m), mform)
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


# --------------------------------------------------------------------------------------------
# Person-level figures (CONTRACT.md §4: counted in persons, split by sex)
# --------------------------------------------------------------------------------------------

#: Person-level indicators: name, rule in words (each over adults, by sex: SDG 1.4.2).
PERSON_INDICATORS = {
    "adult_tenure_documented": "an adult (18 or older) whose name is on a document of the "
                               "household's tenure (member_on_document = yes) in a household "
                               "whose tenure is documented (SDG 1.4.2 (a))",
    "adult_tenure_perceived_secure": "an adult (18 or older) who does not fear losing the "
                                     "right to live here in the next 5 years (member_fears_loss "
                                     "= no; dont_know counts as false; SDG 1.4.2 (b))",
}
#: The atlas's section of person-level shares, and how each share is named there.
PERSON_SECTION = "Tenure of adults (SDG 1.4.2, from the household rosters)"
PERSON_LABELS = {
    "adult_tenure_documented": "Adults named on a tenure document",
    "adult_tenure_documented_female": "Women named on a tenure document",
    "adult_tenure_documented_male": "Men named on a tenure document",
    "adult_tenure_perceived_secure": "Adults not fearing the loss of their home",
    "adult_tenure_perceived_secure_female": "Women not fearing the loss of their home",
    "adult_tenure_perceived_secure_male": "Men not fearing the loss of their home",
}
#: The sexes each person-level share is split by.
SEXES = ("female", "male")
#: Age bands of the persons counts: (suffix, lowest age, highest age or None).
AGE_BANDS = (("0_17", 0, 17), ("18_59", 18, 59), ("60_plus", 60, None))


def person_indicators(members: pd.DataFrame, households: pd.DataFrame,
                      documented: pd.Series) -> pd.DataFrame:
    """One row per member: ``settlement_id`` (its household's), ``sex``, ``age`` and the
    person-level indicators, true, false or unknown (NA; a member who is not an adult, or
    whose age is unknown, is not counted at all: NA too). ``documented`` is the households'
    ``tenure_documented``, on ``households``' index."""
    at = pd.Index(households["key"].astype(object)).get_indexer(members["key"].astype(object))
    found = at >= 0

    def of_household(values: pd.Series) -> np.ndarray:
        arr = values.to_numpy(dtype=object)
        out = arr[np.maximum(at, 0)]
        out[~found] = None
        return out

    age = pd.to_numeric(members.get("member_age"), errors="coerce").to_numpy(dtype=float) \
        if "member_age" in members else np.full(len(members), np.nan)
    adult = age >= ADULT_AGE
    known_age = np.isfinite(age)
    out = pd.DataFrame({"settlement_id": pd.array(of_household(households["settlement_id"]),
                                                  dtype="string"),
                        "sex": members.get("member_sex", pd.Series(pd.NA, index=members.index)
                                           ).astype("string").to_numpy(),
                        "age": age}, index=members.index)
    doc_hh = pd.array(of_household(documented.astype("boolean").astype(object)),
                      dtype="boolean")

    def answer(col: str, yes: str) -> pd.arrays.BooleanArray:
        if col not in members:
            return pd.array([pd.NA] * len(members), dtype="boolean")
        v = members[col].astype("string")
        hit = (v == yes).fillna(False).to_numpy(dtype=bool)
        return pd.array(np.where(v.isna().to_numpy(), None, hit), dtype="boolean")

    on_document = answer("member_on_document", "yes") & doc_hh
    secure = answer("member_fears_loss", "no")
    grown = known_age & adult
    for name, value in (("adult_tenure_documented", on_document),
                        ("adult_tenure_perceived_secure", secure)):
        out[name] = pd.array(np.where(grown, value.astype(object), None), dtype="boolean")
    return out


def person_counts(persons: pd.DataFrame, by: str = "settlement_id") -> pd.DataFrame:
    """The sums behind the settlement table's person columns, per group present (they add up
    across parts, like :func:`profiling.indicators.partial_counts`): ``persons``,
    ``persons_<sex>``, ``persons_age_<band>``, and per person-level indicator ``<name>_true`` and
    ``<name>_known``, overall and for each sex (``<name>_<sex>_true``/``_known``)."""
    codes, groups = pd.factorize(persons[by], sort=True)
    ok = codes >= 0
    codes = codes[ok]
    g = len(groups)

    def total(mask: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(codes, weights=None if mask is None else mask[ok].astype(float),
                           minlength=g).astype(float)

    sex = persons["sex"].to_numpy(dtype=object)
    age = persons["age"].to_numpy(dtype=float)
    cols: dict[str, np.ndarray] = {"persons": total()}
    for s in SEXES:
        cols[f"persons_{s}"] = total(sex == s)
    for band, lo, hi in AGE_BANDS:
        cols[f"persons_age_{band}"] = total((age >= lo) & ((age <= hi) if hi is not None
                                                           else np.isfinite(age)))
    for name in PERSON_INDICATORS:
        v = persons[name]
        known = v.notna().to_numpy()
        true = v.fillna(False).to_numpy(dtype=bool) & known
        cols[f"{name}_true"], cols[f"{name}_known"] = total(true), total(known)
        for s in SEXES:
            cols[f"{name}_{s}_true"] = total(true & (sex == s))
            cols[f"{name}_{s}_known"] = total(known & (sex == s))
    return pd.DataFrame(cols, index=pd.Index(groups, name=by))


def person_columns(c: pd.DataFrame) -> dict[str, pd.Series]:
    """The settlement table's person columns from summed :func:`person_counts` (reindexed to
    the settlements): counts of persons, and each person-level share with its ``_n``, overall
    and by sex (suppression is the table's: a share whose ``_n`` is below k is empty)."""
    cols: dict[str, pd.Series] = {}
    for col in ["persons", *(f"persons_{s}" for s in SEXES),
                *(f"persons_age_{b}" for b, _, _ in AGE_BANDS)]:
        cols[col] = c[col].astype(float)
    for name in PERSON_INDICATORS:
        for part in ("", *(f"_{s}" for s in SEXES)):
            x = c[f"{name}{part}_true"].astype(float)
            n = c[f"{name}{part}_known"].astype(float)
            cols[f"{name}{part}_share"] = x / n.where(n > 0)
            cols[f"{name}{part}_n"] = n
    return cols


#: The roster fields each person-level indicator needs.
PERSON_NEEDS = {"adult_tenure_documented": ("member_age", "member_on_document"),
                "adult_tenure_perceived_secure": ("member_age", "member_fears_loss")}


def member_coverage(members: pd.DataFrame) -> list[tuple[str, str, int, int]]:
    """Like :func:`profiling.indicators.coverage`, for the person-level indicators: the share
    of the kept members who may be adults (18 or older, or of unknown age: the questions are
    asked of adults) with every roster field an indicator needs."""
    out = []
    age = (pd.to_numeric(members["member_age"], errors="coerce").astype(float)
           if "member_age" in members else pd.Series(np.nan, index=members.index))
    adults = members.loc[~(age < ADULT_AGE).to_numpy(dtype=bool)]  # NaN < 18 is False
    for name, needs in PERSON_NEEDS.items():
        if not set(needs) <= set(members.columns):
            out.append((name, "not collected", 0, 0))
            continue
        have = adults[list(needs)].notna().all(axis=1).to_numpy()
        out.append((name, "computable" if len(have) and have.all() else "partly",
                    int(have.sum()), len(have)))
    return out
