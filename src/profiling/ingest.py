"""Ingest: from enumeration exports to one clean household frame, with every row accounted for.

The order is the contract's (CONTRACT.md §1): each export is read and its columns recognised
(group paths joined by ``/``, ``-`` or left out; split or raw geopoints; select_multiple as a
space-separated column or 0/1 columns; labels mapped back to choice names; a field mapping for
other surveys); then duplicates are resolved across all exports (the latest submission of a key is
kept), then consent, then validation. Every input row ends up accepted, rejected (listed in the
rejects with its reason), a duplicate, or a refusal; an invalid answer in an accepted row becomes
unknown and is listed as a dropped value.

Personal fields (the form's ``direct`` class) are split into their own frame here and never
reach the household frame that analysis reads.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from profiling import _readers
from profiling._errors import FormError
from profiling._readers import GEOM_LAT, GEOM_LON, STRING, RawExport
from profiling.config import FieldSource, SurveySource
from profiling.form import Form, Question
from profiling.join import Placement, Settlements, place, warm
from profiling.roster import Roster, member_form, read_roster, roster_source

#: Places WGS84 points (longitudes, latitudes) in the settlements: :func:`profiling.join.place`
#: here, or the same function on Dask workers (:func:`profiling.distributed.placer`).
Placer = Callable[[np.ndarray, np.ndarray], Placement]

log = logging.getLogger(__name__)

REJECT_COLUMNS = ["file", "row", "key", "field", "value", "action", "reason"]
ROW_REJECTED, VALUE_DROPPED = "row_rejected", "value_dropped"
#: A household row whose stated size differs from its roster's count (CONTRACT.md §1b).
ROSTER_MISMATCH = "roster_mismatch"
#: The fields of a roster's rejected rows: a member linking to no household, a member row
#: that cannot be read. They count as ``members_rejected``, not as rejected households.
MEMBER_LINK, MEMBER_ROW = "link", "(member row)"
WITHHELD = "(withheld: location)"
#: Canonical names of the non-question columns ingest recognises.
META = ("key", "submission_time", "gps_lat", "gps_lon", "gps_alt", "gps_acc", "gps_raw")
_META_ALIASES = {
    "key": ["_uuid", "meta-instanceID", "meta/instanceID", "instanceID", "KEY", "meta-instanceid"],
    "submission_time": ["_submission_time", "SubmissionDate", "submission_time"],
}
_MAPPING_SPECIAL = {"key": "key", "submission_time": "submission_time", "latitude": "gps_lat",
                    "longitude": "gps_lon", "gps_precision": "gps_acc", "gps": "gps_raw"}
_TRUE = {"1", "1.0", "true", "True", "TRUE", "yes"}
#: The statuses of rows that are no household of the run (counted when they are found).
_NO_KEY, _DUPLICATE = "no_key", "duplicate"
_INT_RE = r"^[+-]?\d+(\.0*)?$"
_DEC_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
#: Work on at least this many cells (rows x columns) is spread over the cores' threads.
_THREADED_CELLS = 1 << 20
_CORES = max(1, min(4, os.cpu_count() or 1))


# --------------------------------------------------------------------------------------------
# Column-wise helpers on Arrow arrays (pandas' .str methods fall back to Python objects for
# several operations; these do not)
# --------------------------------------------------------------------------------------------

def _arrow(s: pd.Series) -> pa.Array | pa.ChunkedArray:
    """The strings of a series as Arrow large strings (nulls for missing), as pandas holds
    them: no copy, and the chunks of a CSV read in blocks are kept (Arrow's kernels take
    them as they are)."""
    arr = s.array.__arrow_array__() if hasattr(s.array, "__arrow_array__") else pa.array(
        s.astype(object).where(s.notna(), None), type=pa.large_string())
    return arr if pa.types.is_large_string(arr.type) else arr.cast(pa.large_string())


def rows_where(frame: pd.DataFrame, mask: np.ndarray | pd.Series, *,
               consume: bool = False) -> pd.DataFrame:
    """The rows of ``frame`` where ``mask`` holds: what ``frame.loc[mask]`` gives, but each
    Arrow-backed column filtered chunk by chunk (``pyarrow.compute.filter``), the columns on
    every core (the filter lets go of the GIL). pandas' take first concatenates a column's
    chunks (a CSV read in blocks has dozens), then copies it again: on a city's export that is
    seconds a filter, here a fraction of one.

    ``consume``: the columns are taken out of ``frame`` (left empty), each freed once its rows
    are copied, so that a city's table and its filtered copy are never held whole side by
    side (its column names must be unique)."""
    keep = np.asarray(mask, dtype=bool)
    if keep.all():
        return frame
    m = pa.array(keep)
    columns, index = frame.columns, frame.index[keep]

    def one(arr: object) -> object:
        if isinstance(arr, pd.arrays.ArrowStringArray):
            return pd.arrays.ArrowStringArray(pc.filter(arr.__arrow_array__(), m),
                                              dtype=arr.dtype)
        return arr[keep]  # type: ignore[index]

    # with ``consume``, each column is held only by its task until it is filtered
    arrays = ((frame.pop(c).array for c in list(columns)) if consume
              else (s.array for _, s in frame.items()))
    if len(keep) * len(columns) >= _THREADED_CELLS:
        with ThreadPoolExecutor(_CORES, thread_name_prefix="filter") as pool:
            filtered = list(pool.map(one, arrays))
    else:
        filtered = [one(a) for a in arrays]
    out = pd.DataFrame(dict(enumerate(filtered)), index=index, copy=False)
    out.columns = columns
    return out


def _distinct(s: pd.Series) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """The distinct values of a column of text (Arrow's hash table), each row's index into
    them (null where the row is missing), and those indices as numpy (0 where missing)."""
    enc = pc.dictionary_encode(_arrow(s))
    enc = enc.combine_chunks() if isinstance(enc, pa.ChunkedArray) else enc
    return enc.dictionary, enc.indices, np.asarray(enc.indices.fill_null(0))


def _series(arr: pa.Array, index: pd.Index) -> pd.Series:
    text = pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
    return pd.Series(pd.arrays.ArrowStringArray(arr) if text else arr,
                     index=index).astype(STRING)


def _numbers(s: pd.Series, pattern: str = _DEC_RE) -> np.ndarray:
    """Numbers written as text (trimmed, matching ``pattern``) as floats; NaN otherwise."""
    arr = pc.utf8_trim_whitespace(_arrow(s))
    ok = pc.fill_null(pc.match_substring_regex(arr, pattern), False)
    if pc.any(pc.starts_with(arr, "+")).as_py():  # rare: only then is a pass spent on it
        arr = pc.replace_substring_regex(arr, r"^\+", "")
    clean = pc.if_else(ok, arr, pa.scalar(None, arr.type))
    return np.asarray(pc.cast(clean, pa.float64()).to_numpy(zero_copy_only=False), dtype=float)


_ISO_ZONED = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$"
_ISO_NAIVE = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?$"


def iso_datetimes(s: pd.Series) -> pd.Series:
    """ISO 8601 date-times as UTC timestamps (a time without a zone is taken as UTC), NaT
    where a value is not one: what ``pd.to_datetime(s, utc=True, format="ISO8601",
    errors="coerce")`` gives. The common forms are parsed by Arrow, column-wise; whatever they
    leave (other forms, impossible dates such as 30 February) goes through pandas."""
    arr = pc.utf8_trim_whitespace(_arrow(s))
    out = np.full(len(arr), np.datetime64("NaT"), dtype="datetime64[ns]")
    todo = np.asarray(pc.is_valid(arr))
    forms = [(_ISO_ZONED, pa.timestamp("ns", "UTC")), (_ISO_NAIVE, pa.timestamp("ns"))]
    first = pc.drop_null(arr)[:1].to_pylist()
    if first and re.match(_ISO_NAIVE, str(first[0])):
        forms.reverse()  # the column's own form first: the other is then sought in the rest
    for pattern, typ in forms:
        if not todo.any():
            break
        where = np.flatnonzero(todo)
        matched = np.asarray(pc.fill_null(pc.match_substring_regex(
            arr if len(where) == len(arr) else pc.take(arr, pa.array(where)), pattern), False))
        hit = np.zeros(len(arr), dtype=bool)
        hit[where[matched]] = True
        if not hit.any():
            continue
        try:
            parsed = pc.filter(arr, pa.array(hit)).cast(typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue  # an impossible date among them: pandas decides, value by value
        out[hit] = np.asarray(parsed.cast(pa.timestamp("ns")).to_numpy(zero_copy_only=False))
        todo &= ~hit
    if todo.any():
        rest = pd.Series(pc.filter(arr, pa.array(todo)).to_pylist(), dtype=object)
        out[todo] = pd.to_datetime(rest, utc=True, format="ISO8601", errors="coerce"
                                   ).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    valid = ~np.isnat(out)
    if not (out[valid].astype(np.int64) % 1000).any():
        out = out.astype("datetime64[us]")  # the resolution pandas gives such text
    return pd.Series(pd.DatetimeIndex(out).tz_localize("UTC"), index=s.index)


def _map_values(s: pd.Series, func: Callable[[str], str | None]) -> pd.Series:
    """Apply ``func`` to each distinct value (not each row); missing stays missing."""
    distinct, indices, _ = _distinct(s if s.dtype == STRING else s.astype(STRING))
    mapped = pa.array([func(str(u)) for u in distinct.to_pylist()], pa.large_string())
    return _series(pc.take(mapped, indices), s.index)


@dataclass
class InputSummary:
    """What was read from one export."""

    path: str
    format: str
    sha256: str
    rows: int
    labels: str
    columns_used: int
    columns_ignored: list[str]
    #: How consent was obtained, when the export has no consent field and the configuration
    #: says (``consent: {collected_outside_form: ...}``); None when the export asks it.
    consent_outside_form: str | None = None


@dataclass
class IngestResult:
    """The outcome of ingest.

    ``households`` holds the accepted households without personal fields; ``personal`` holds
    those fields keyed by the submission key; ``rejects`` lists every rejected row and dropped
    value; ``submissions`` has one row per distinct keyed submission (accepted, rejected or
    refused): its ``key``, ``status``, ``submitted_at`` and what the supervision report needs,
    nothing personal (the key never leaves the store: the store keeps its keyed hash).
    """

    households: pd.DataFrame
    personal: pd.DataFrame
    rejects: pd.DataFrame
    submissions: pd.DataFrame
    counts: dict[str, int]
    inputs: list[InputSummary] = field(default_factory=list)
    #: The members of the accepted households, from their rosters (CONTRACT.md §1b): ``key``
    #: (the household's) and the roster fields by their short names; None without a roster.
    members: pd.DataFrame | None = None


# --------------------------------------------------------------------------------------------
# Column recognition
# --------------------------------------------------------------------------------------------

def _variants(name: str) -> list[str]:
    """Ways an export may spell a form path: ``a/b``, ``a-b``, ``a.b`` and ``b``."""
    parts = name.split("/")
    out = ["/".join(parts), "-".join(parts), ".".join(parts)]
    if len(parts) > 1:
        out.append(parts[-1])
    return out


def _header_lookup(form: Form) -> dict[str, tuple[str, str | None]]:
    """Export header -> (canonical column, choice name for a 0/1 column)."""
    lookup: dict[str, tuple[str, str | None]] = {}
    shorts = [q.short for q in form.questions.values()]
    for q in form.questions.values():
        names = [v for v in _variants(q.name) if v != q.short or shorts.count(q.short) == 1]
        if q.type == "geopoint":
            for v in [q.name, q.short]:
                for suffix, canon in (("latitude", "gps_lat"), ("longitude", "gps_lon"),
                                      ("altitude", "gps_alt"), ("precision", "gps_acc"),
                                      ("accuracy", "gps_acc")):
                    for spelled in (f"_{v}_{suffix}", f"{v}-{suffix.capitalize()}",
                                    f"{v}/{suffix}", f"{v}_{suffix}", f"{v}-{suffix}"):
                        lookup.setdefault(spelled, (canon, None))
            for v in names:
                lookup.setdefault(v, ("gps_raw", None))
            continue
        for v in names:
            lookup.setdefault(v, (q.name, None))
        if q.type == "select_multiple":
            for choice in form.choice_names(q.name):
                for v in names:
                    for sep in ("/", "-", "."):
                        lookup.setdefault(f"{v}{sep}{choice}", (q.name, choice))
    for canon, aliases in _META_ALIASES.items():
        for a in aliases:
            lookup.setdefault(a, (canon, None))
    return lookup


def _label_lookup(form: Form) -> dict[str, tuple[str, str | None]]:
    """Headers of an export "with labels": question labels, and ``label/choice label``."""
    lookup: dict[str, tuple[str, str | None]] = {}
    for q in form.questions.values():
        if not q.label or q.label == q.short:
            continue
        if q.type == "geopoint":
            lookup.setdefault(q.label, ("gps_raw", None))
            continue
        lookup.setdefault(q.label, (q.name, None))
        if q.type == "select_multiple":
            for c in form.choices.get(q.list_name or "", []):
                lookup.setdefault(f"{q.label}/{c.label}", (q.name, c.name))
    return lookup


def _target(form: Form, name: str, source: str) -> str:
    if name in _MAPPING_SPECIAL:
        return _MAPPING_SPECIAL[name]
    if name in form.questions:
        return name
    matches = [q.name for q in form.questions.values() if q.short == name]
    if len(matches) == 1:
        return matches[0]
    options = [*form.questions, *_MAPPING_SPECIAL]
    close = difflib.get_close_matches(name, options, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise FormError(source, f"field_mapping names {name!r}, which is not a field of "
                            f"{form.source}{hint}")


def fields_not_collected(form: Form, columns: Iterable[str]) -> list[str]:
    """The form's fields that no export of the run has a column for (CONTRACT.md §4: not
    collected, which is not unknown), by their full names; ``columns`` may name fields fully or
    by their household-frame names. Direct personal fields and the location are not counted:
    a survey is better without the first, and the second has its own rules."""
    have = set(columns)
    return [q.name for q in form.questions.values()
            if q.privacy != "direct" and q.type != "geopoint"
            and q.name not in have and _column_name(form, q) not in have]


def _warn_not_collected(form: Form, absent: list[str]) -> None:
    """One warning for each field not collected that an indicator needs."""
    from profiling.indicators import INDICATORS

    for name in absent:
        short = _column_name(form, form.questions[name])
        needing = [i.name for i in INDICATORS if short in i.needs]
        if needing:
            log.warning("%s: no export has a column for it, so it is not collected and %s "
                        "cannot be computed; if an export holds it under another name, map it "
                        "with field_mapping", name, ", ".join(needing))


def check_mapping(form: Form, source: SurveySource) -> None:
    """Check a survey's field mapping against the form before anything is read: each target
    field exists, and each value it maps to (``values``, ``cases``, ``otherwise``) is one the
    field can hold: a choice name of a select question (each of them, space-separated, for a
    select_multiple), a number for a numeric one. A misspelt code is an error with the nearest
    choice, not a dropped value per row."""
    where = f"{source.path}: field_mapping"
    for name, spec in (source.field_mapping or {}).items():
        target = _target(form, name, str(source.path))
        if not isinstance(spec, str) and spec.count is not None:
            if target not in form.questions or form.questions[target].short != "hh_size":
                raise FormError(where, f"{name!r} is counted from the roster, which only "
                                       "hh_size can be")
            if source.members is None:
                raise FormError(where, f"{name!r} counts the roster's members, but this survey "
                                       "names no roster (members: {path: ...} or {sheet: ...})")
        if isinstance(spec, str) or target not in form.questions:
            continue
        q = form.questions[target]
        for value in spec.targets:
            if value is None:
                continue  # null: the answer is explicitly unknown
            problem = _bad_target(form, q, value)
            if problem:
                raise FormError(where, f"{name!r} maps an answer to {value!r}, {problem}")


def _bad_target(form: Form, q: Question, value: str) -> str | None:
    if q.type in ("select_one", "select_multiple"):
        names = form.choice_names(q.name)
        parts = value.split() if q.type == "select_multiple" else [value]
        for part in parts or [value]:
            if part not in names:
                close = difflib.get_close_matches(part, names, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                what = "which is" if q.type == "select_one" else f"and {part!r} is"
                return (f"{what} not a choice of the list {q.list_name!r} ("
                        f"{', '.join(names)}){hint}")
    elif q.type in ("integer", "decimal") and not re.fullmatch(
            _INT_RE if q.type == "integer" else _DEC_RE, value.strip()):
        return f"which is not {'a whole number' if q.type == 'integer' else 'a number'}"
    return None


def _missing_columns(raw: RawExport, spec: str | FieldSource) -> list[str]:
    cols = [spec] if isinstance(spec, str) else spec.columns
    return [c for c in cols if c not in raw.table.columns]


def _missing_message(raw: RawExport, target: str, missing: list[str]) -> str:
    hints = []
    for col in missing:
        have = list(map(str, raw.table.columns))
        close = list(dict.fromkeys([
            *difflib.get_close_matches(col, have, n=3, cutoff=0.5),
            *[h for h in have if col.casefold() in h.casefold()
              or h.casefold() in col.casefold()]]))[:3]
        hints.append(f"{col!r}" + (f" (similar: {', '.join(close)})" if close else ""))
    return (f"field_mapping reads {target!r} from column {', '.join(hints)}, which this export "
            "does not have")


def _mapped(raw: RawExport, spec: str | FieldSource, target: str) -> pd.Series:
    table = raw.table
    if isinstance(spec, str):
        return table[spec]
    if spec.column is not None:
        s = table[spec.column]
    elif spec.coalesce is not None:
        parts = [table[c] for c in spec.coalesce]
        s = parts[0]
        for p in parts[1:]:
            s = s.fillna(p)
    elif spec.cases is not None:
        s = _from_cases(raw, spec)
    elif spec.count is not None:
        # counted from the roster once it is read (only hh_size can be: checked on loading)
        return pd.Series(pd.NA, index=table.index, dtype=STRING)
    else:
        parts = [table[c] for c in spec.columns]
        nums = [pd.to_numeric(p, errors="coerce") for p in parts]
        total = sum(nums[1:], nums[0])
        bad = pd.concat([(p.notna() & n.isna()) for p, n in zip(parts, nums, strict=True)],
                        axis=1).any(axis=1)
        joined = parts[0].fillna("")
        for p in parts[1:]:
            joined = joined + "+" + p.fillna("")
        s = pd.Series(np.where(total.notna(), total.astype(float).map("{:g}".format), None),
                      index=total.index).astype(STRING)
        s = s.mask(bad, joined)
    if spec.values:
        values = dict(spec.values)
        keep = object()

        def code(v: str) -> str | None:
            got = values.get(v, keep)
            return v if got is keep else got  # type: ignore[return-value]

        s = _map_values(s, code)
    return s


def _from_cases(raw: RawExport, spec: FieldSource) -> pd.Series:
    """A field from conditions on several columns, in three-valued logic: a condition holds
    when its column's answer is one it lists, fails when the column holds another answer, and
    is unknown when the column is blank. Each row takes the value of the first case that holds;
    a case that is unknown before any holds leaves the row unknown; when every case fails the
    row takes ``otherwise``, or, without it, its answers as text (``column=answer; ...``), which
    validation then lists as a dropped value."""
    assert spec.cases is not None
    n = len(raw.table)
    out = np.full(n, None, dtype=object)
    decided = np.zeros(n, dtype=bool)
    for case in spec.cases:
        truth = np.ones(n, dtype=bool) if case.all_of is not None else np.zeros(n, dtype=bool)
        unknown = np.zeros(n, dtype=bool)
        for col, answers in case.conditions.items():
            s = raw.table[col].str.strip()
            blank = s.isna().to_numpy()
            hit = s.isin(answers).to_numpy() & ~blank
            if case.all_of is not None:
                truth &= hit | blank
                unknown |= blank
            else:
                truth |= hit
                unknown |= blank
        if case.all_of is not None:
            holds = truth & ~unknown
            unk = truth & unknown  # no condition failed, one is blank
        else:
            holds = truth
            unk = ~truth & unknown  # none held, one is blank
        take = ~decided & holds
        out[take] = case.value
        decided |= take | unk  # an unknown case leaves the row unknown (None)
    rest = ~decided
    if rest.any():
        if spec.otherwise is not None:
            out[rest] = spec.otherwise
        else:
            cols = spec.columns
            text = pd.Series("", index=raw.table.index, dtype=object)
            for i, col in enumerate(cols):
                text = text + (("; " if i else "") + col + "=") + raw.table[col].astype(
                    object).fillna("").astype(str)
            out[rest] = text.to_numpy()[rest]
    return pd.Series(out, index=raw.table.index).astype(STRING)


@dataclass
class _Normalised:
    frame: pd.DataFrame
    labels: str
    used: int
    ignored: list[str]


def _normalise(raw: RawExport, source: SurveySource, form: Form) -> _Normalised:
    """Rename an export's columns to the form's names and rebuild select_multiple answers."""
    table = raw.table
    lookup = _header_lookup(form)
    label_lookup = _label_lookup(form)
    lower = {k.casefold(): v for k, v in lookup.items()}
    cols: dict[str, pd.Series] = {}
    multi: dict[str, dict[str, pd.Series]] = {}
    ignored: list[str] = []
    by_label = 0
    mapping = source.field_mapping or {}
    mapped_targets = {_target(form, k, str(raw.path)): v for k, v in mapping.items()}
    mapped_columns: set[str] = set()
    for target, spec in mapped_targets.items():
        mapped_columns |= set([spec] if isinstance(spec, str) else spec.columns)
        missing = _missing_columns(raw, spec)
        if missing:
            if target == "key" or (target in form.questions
                                   and form.questions[target].short == "hh_size"):
                raise FormError(raw.path, _missing_message(raw, target, missing))
            # the field is then not collected from this export: said once, never guessed
            log.warning("%s: %s; %s is not collected from this export", raw.path,
                        _missing_message(raw, target, missing), target)
            continue
        cols[target] = _mapped(raw, spec, target)
    for header in table.columns:
        h = str(header)
        if h in mapped_columns:
            continue
        hit = lookup.get(h) or lower.get(h.casefold())
        if hit is None and h in label_lookup:
            hit = label_lookup[h]
            by_label += 1
        if hit is None:
            if h not in (GEOM_LAT, GEOM_LON):
                ignored.append(h)
            continue
        canon, choice = hit
        if canon in cols and canon in mapped_targets:
            continue
        if choice is None:
            cols.setdefault(canon, table[h])
        else:
            multi.setdefault(canon, {})[choice] = table[h]
    if GEOM_LAT in table.columns and "gps_lat" not in cols:
        cols["gps_lat"], cols["gps_lon"] = table[GEOM_LAT], table[GEOM_LON]
    for q, choice_cols in multi.items():
        need = cols[q].isna().to_numpy() if q in cols else np.ones(len(table), dtype=bool)
        if not need.any():
            continue
        mask = pa.array(need)
        built = _from_choice_columns({c: _series(pc.filter(_arrow(v), mask), v.index[need])
                                      for c, v in choice_cols.items()}, form.choice_names(q))
        if q in cols:
            # the answers rebuilt from the 0/1 columns put in place by Arrow, not pandas'
            # masked assignment (which rebuilds the column element by element)
            whole = _arrow(cols[q])
            whole = whole.combine_chunks() if isinstance(whole, pa.ChunkedArray) else whole
            rebuilt = _arrow(built).cast(whole.type)
            rebuilt = (rebuilt.combine_chunks() if isinstance(rebuilt, pa.ChunkedArray)
                       else rebuilt)
            cols[q] = _series(pc.replace_with_mask(whole, mask, rebuilt), table.index)
        else:
            cols[q] = built.reindex(table.index)
    frame = pd.DataFrame(cols, index=table.index)
    labels = _decide_labels(frame, form, source.labels, by_label)
    if labels == "labels":
        frame = _labels_to_names(frame, form, set(multi))
    return _Normalised(frame, labels, len(cols), ignored)


def _from_choice_columns(choice_cols: dict[str, pd.Series], order: list[str]) -> pd.Series:
    """Space-separated choice names from one-column-per-choice 0/1 answers."""
    n = len(next(iter(choice_cols.values())))
    out = np.full(n, "", dtype=object)
    answered = np.zeros(n, dtype=bool)
    for choice in order:
        if choice not in choice_cols:
            continue
        s = choice_cols[choice]
        answered |= s.notna().to_numpy()
        chosen = s.isin(_TRUE).to_numpy()
        out = np.where(chosen, out + (choice + " "), out)
    result = pd.Series(out, index=next(iter(choice_cols.values())).index).str.strip()
    return result.where(answered & (result != "").to_numpy()).astype(STRING)


def _decide_labels(frame: pd.DataFrame, form: Form, setting: str, by_label: int) -> str:
    if setting != "auto":
        return setting
    if by_label:
        return "labels"
    names_hit = labels_hit = 0
    for q in form.questions.values():
        if q.type != "select_one" or q.name not in frame.columns:
            continue
        names = set(form.choice_names(q.name))
        labels = {k.casefold() for k in form.label_map(q.name)} - {n.casefold() for n in names}
        # each distinct answer once, counted by Arrow's hash table
        counts = pc.value_counts(_arrow(frame[q.name]))
        for value, n in zip(counts.field("values").to_pylist(),
                            counts.field("counts").to_pylist(), strict=True):
            if value is None:
                continue
            if value in names:
                names_hit += int(n)
            elif str(value).strip().casefold() in labels:
                labels_hit += int(n)
    return "labels" if labels_hit > names_hit else "names"


def _labels_to_names(frame: pd.DataFrame, form: Form,
                     from_choice_columns: set[str]) -> pd.DataFrame:
    for q in form.questions.values():
        if q.list_name is None or q.name not in frame.columns or q.name in from_choice_columns:
            continue
        to_name = {k.strip().casefold(): v for k, v in form.label_map(q.name).items()}

        def name_of(v: str, m: dict[str, str] = to_name) -> str:
            return m.get(v.strip().casefold(), v)

        frame[q.name] = _map_values(frame[q.name], name_of)
    return frame


# --------------------------------------------------------------------------------------------
# Constraints (the common XLSForm forms: ". >= 1 and . <= 30", "count-selected(.) <= 3")
# --------------------------------------------------------------------------------------------

_TERM = re.compile(r"^\(?\s*(\.|count-selected\(\s*\.\s*\))\s*(<=|>=|!=|<|>|=)\s*"
                   r"(-?\d+(?:\.\d+)?)\s*\)?$")
_OPS: dict[str, Callable[[pd.Series, float], pd.Series]] = {
    "<=": lambda s, v: s <= v, ">=": lambda s, v: s >= v, "<": lambda s, v: s < v,
    ">": lambda s, v: s > v, "=": lambda s, v: s == v, "!=": lambda s, v: s != v,
}


def compile_constraint(expr: str) -> list[list[tuple[str, str, float]]] | None:
    """An XLSForm constraint as an or-of-ands of ``(subject, operator, number)``; None when the
    expression is of a form this reader does not evaluate."""
    ors = []
    for alt in re.split(r"\s+or\s+", expr.strip()):
        ands = []
        for term in re.split(r"\s+and\s+", alt.strip()):
            m = _TERM.match(term.strip())
            if not m:
                return None
            subject = "count" if m.group(1).startswith("count") else "value"
            ands.append((subject, m.group(2), float(m.group(3))))
        ors.append(ands)
    return ors


def _holds(compiled: list[list[tuple[str, str, float]]], value: pd.Series,
           count: pd.Series | None) -> pd.Series:
    result = pd.Series(False, index=value.index)
    for ands in compiled:
        ok = pd.Series(True, index=value.index)
        for subject, op, number in ands:
            s = count if subject == "count" and count is not None else value
            ok &= _OPS[op](s, number).fillna(False).astype(bool)
        result |= ok
    return result


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------

class _Rejects:
    """Collects reject entries column-wise, so a million bad values cost no Python loop."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def add(self, base: pd.DataFrame, mask: pd.Series | np.ndarray, field: str,
            value: pd.Series | str, action: str, reason: pd.Series | str) -> None:
        m = np.asarray(mask, dtype=bool)
        if not m.any():
            return
        sub = rows_where(base[[c for c in ("_file", "_row", "key") if c in base]], m)
        vals = value if isinstance(value, str) else value[m].astype("string")
        reasons = reason if isinstance(reason, str) else reason[m].astype("string")
        self.parts.append(pd.DataFrame({
            "file": sub["_file"].to_numpy(), "row": sub["_row"].to_numpy(),
            "key": sub["key"].astype("string").to_numpy() if "key" in sub else pd.NA,
            "field": field, "value": vals if isinstance(vals, str) else vals.to_numpy(),
            "action": action,
            "reason": reasons if isinstance(reasons, str) else reasons.to_numpy(),
        }))

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame({c: pd.Series([], dtype="string") for c in REJECT_COLUMNS})
        out = pd.concat(self.parts, ignore_index=True)
        out["row"] = out["row"].astype("Int64")
        return out.sort_values(["file", "row", "field"], kind="stable").reset_index(drop=True)


def read_surveys(sources: Sequence[SurveySource], form: Form,
                 progress: Callable[[str], None] | None = None,
                 on_rows: Callable[[int], None] | None = None,
                 rosters: list[Roster] | None = None
                 ) -> tuple[pd.DataFrame, list[InputSummary], list[tuple[str, int, str]]]:
    """Read and normalise every export; returns the stacked frame, the input summaries and the
    malformed records ``(file, row, problem)``. The rosters of the surveys that have one are
    appended to ``rosters``, each member linked to its household's row of the stacked frame;
    a household without ``hh_size`` then takes its roster's count (CONTRACT.md §1b)."""
    frames = []
    inputs = []
    malformed: list[tuple[str, int, str]] = []
    offset = 0
    names = [Path(s.path).name for s in sources]
    for src in sources:  # a mistake in a mapping is found before any export is read
        check_mapping(form, src)
        if src.members is not None:
            check_mapping(member_form(form), roster_source(Path(src.path), src.members))
    for i, src in enumerate(sources):
        label = names[i] if names.count(names[i]) == 1 else str(src.path)
        raw = _readers.read_export(Path(src.path), src.format, src.encoding, src.na_values,
                                   src.layer, src.limits)
        norm = _normalise(raw, src, form)
        _check_is_this_form(raw, norm, form, src)
        f = norm.frame
        outside = _consent_outside_form(raw, f, src)
        if "key" not in f.columns:
            # A survey with no submission key at all: each row is its own household.
            f["key"] = pd.Series([f"{raw.sha256[:12]}-{r}" for r in raw.rows], index=f.index,
                                 dtype=STRING)
        if src.members is not None:
            roster = read_roster(src, raw, f["key"], form, offset, _normalise)
            _sizes_from_roster(f, form, src, roster)
            if rosters is not None:
                rosters.append(roster)
        f["_file"] = label
        f["_order"] = i
        f["_row"] = raw.rows
        frames.append(f)
        offset += len(f)
        malformed += [(label, r, p) for r, p in raw.malformed]
        inputs.append(InputSummary(str(src.path), raw.format, raw.sha256, raw.n_read,
                                   norm.labels, norm.used, norm.ignored, outside))
        log.info("read %s: %d rows (%s, %s)", label, raw.n_read, raw.format, norm.labels)
        if progress:
            progress(label)
        if on_rows:
            on_rows(raw.n_read)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    for c in frame.columns:
        if c not in ("_file", "_order", "_row", "_roster_n") and frame[c].dtype != STRING:
            frame[c] = frame[c].astype(STRING)
    return frame, inputs, malformed


def _sizes_from_roster(frame: pd.DataFrame, form: Form, src: SurveySource,
                       roster: Roster) -> None:
    """``hh_size`` from the roster where the household row gives none (or where the mapping
    counts it: ``hh_size: {count: members}``); ``_roster_n`` keeps each count, so that a
    stated size that differs can be listed."""
    hh = next((q.name for q in form.questions.values() if q.short == "hh_size"), None)
    if hh is None:
        return
    n = roster.per_household
    frame["_roster_n"] = pd.array(n, dtype="Int64")
    if hh not in frame.columns:
        frame[hh] = pd.Series(pd.NA, index=frame.index, dtype=STRING)
    fill = frame[hh].isna().to_numpy() & (n > 0)
    if fill.any():
        sizes = frame[hh].copy()
        sizes[fill] = n[fill].astype(str)
        frame[hh] = sizes


def _consent_outside_form(raw: RawExport, frame: pd.DataFrame, src: SurveySource
                          ) -> str | None:
    """Consent is never assumed: an export without a consent field is refused, unless its
    configuration says how consent was obtained outside the form; its households then carry
    that statement's ``yes``. A consent field that is present is read row by row."""
    if "consent" in frame.columns:
        if src.consent is not None:
            log.warning("%s: has a consent field; it is read row by row and the configured "
                        "statement about consent collected outside the form is not used",
                        raw.path)
        return None
    if src.consent is None:
        raise FormError(raw.path, "has no consent field, so no household in it can be kept: "
                                  "consent is never assumed. If consent was obtained outside the "
                                  "form, say how in this survey's configuration, e.g. consent: "
                                  "{collected_outside_form: \"signed forms kept at the ward "
                                  "office\"}; or map the export's consent column with "
                                  "field_mapping")
    statement = src.consent.collected_outside_form
    log.warning("%s: no consent field; consent taken as obtained outside the form, as the "
                "configuration states: %s", raw.path, statement)
    frame["consent"] = pd.Series("yes", index=frame.index, dtype=STRING)
    return statement


def _check_is_this_form(raw: RawExport, norm: _Normalised, form: Form,
                        src: SurveySource) -> None:
    questions = [c for c in norm.frame.columns if c in form.questions]
    hh = [q.name for q in form.questions.values() if q.short == "hh_size"]
    if hh and hh[0] not in norm.frame.columns and src.members is None:
        sample = ", ".join(map(str, list(raw.table.columns)[:8]))
        raise FormError(raw.path, f"does not look like an export of {form.source}: no column "
                                  f"holds {hh[0]!r} (recognised {len(questions)} of the form's "
                                  f"{len(form.questions)} fields; the file's columns begin "
                                  f"{sample}); if it is another survey, give a field_mapping")


def ingest(sources: Sequence[SurveySource], form: Form, settlements: Settlements | None,
           *, assign_by: str = "location", assign_column: str = "settlement_reported",
           max_distance_m: float = 1000.0,
           progress: Callable[[str], None] | None = None,
           placer: Placer | None = None,
           on_rows: Callable[[int], None] | None = None) -> IngestResult:
    """Read, de-duplicate, check consent and validate every export.

    Parameters
    ----------
    sources
        The exports, in the order given (on a tie of submission times the later one wins).
    form
        The questionnaire the exports belong to.
    settlements
        Prepared boundaries (:func:`profiling.join.prepare`); without them no household can be
        placed and location checks stop at the coordinates themselves.
    assign_by
        ``location`` (GPS point in polygon) or ``column`` (a column holding settlement ids or
        names, for surveys collected without GPS).
    max_distance_m
        A point farther than this from every settlement is rejected as misplaced (metres).
    placer
        What places the points in ``settlements`` (default: :func:`profiling.join.place` in
        this process).
    """
    rosters: list[Roster] = []
    with ThreadPoolExecutor(1, thread_name_prefix="placement") as pool:
        # the placement's indexes and kernels made ready while Arrow parses (it lets go of
        # the GIL); errors, if any, are the placement's own, raised where it runs
        warming = pool.submit(warm, settlements) if (
            settlements is not None and placer is None) else None
        frame, inputs, malformed = read_surveys(sources, form, progress, on_rows, rosters)
        if warming is not None and warming.exception() is not None:
            log.debug("placement kernels not warmed: %s", warming.exception())
    _warn_not_collected(form, fields_not_collected(form, frame.columns))
    if assign_by == "location" and len(frame) and not (
            {"gps_lat", "gps_lon", "gps_raw"} & set(frame.columns)):
        log.warning("no export has GPS columns: every household is rejected for want of a "
                    "location; a survey collected without GPS is placed by a column "
                    "(settlement_assignment: {by: column, column: settlement_reported})")
    rejects = _Rejects()
    n_read = int(sum(i.rows for i in inputs))
    if malformed:
        bad = pd.DataFrame({"_file": [m[0] for m in malformed], "_row": [m[1] for m in malformed],
                            "key": pd.array([pd.NA] * len(malformed), dtype="string")})
        rejects.add(bad, np.ones(len(bad), bool), "(row)", "", ROW_REJECTED,
                    pd.Series([m[2] for m in malformed]))
    if frame.empty:
        return _result(frame, form, rejects, n_read, 0, 0, len(malformed), inputs, None)

    # 1. keys and duplicates -------------------------------------------------------------
    key = pc.replace_substring_regex(pc.utf8_trim_whitespace(_arrow(frame["key"])), r"^uuid:", "")
    frame["key"] = _series(pc.if_else(pc.equal(key, ""), pa.scalar(None, key.type), key),
                           frame.index)
    no_key = frame["key"].isna().to_numpy()
    rejects.add(frame, no_key, "key", "", ROW_REJECTED,
                "no submission key (_uuid or meta-instanceID): the row cannot be told apart "
                "from others")
    n_rejected = int(no_key.sum()) + len(malformed)
    when = (iso_datetimes(frame["submission_time"]) if "submission_time" in frame
            else pd.Series(pd.NaT, index=frame.index))
    frame = frame.assign(_when=when)
    # only keys seen more than once need ordering: sort those few rows, keep the file order
    # (Arrow's hash table: pandas' duplicated first copies the keys into one array)
    distinct, _, at = _distinct(frame["key"])
    per_key = np.bincount(at[~no_key], minlength=len(distinct))  # rows without a key: none
    repeated = (per_key[at] > 1) & ~no_key
    order = frame.loc[repeated, ["key", "_when", "_order", "_row"]].sort_values(
        ["key", "_when", "_order", "_row"], na_position="first", kind="stable")
    losers = order.index[order["key"].duplicated(keep="last").to_numpy()]
    dup = frame.index.isin(losers)
    n_dup = int(dup.sum())
    # The rows without a key and the earlier versions of a household stay in the frame (a
    # filter would copy every column of a city's export) with a status of their own, which no
    # check, count or output below takes for a household's: they are accounted for here.
    gone = no_key | dup
    if "submission_time" in frame.columns:
        # a time that does not parse is unknown: it never decides between duplicates (it sorts
        # before every known time) and is listed as a dropped value
        bad_time = (frame["submission_time"].notna() & frame["_when"].isna()).to_numpy() & ~gone
        if bad_time.any():
            rejects.add(frame, bad_time, "_submission_time", frame["submission_time"],
                        VALUE_DROPPED, "not an ISO 8601 date-time: the submission time is "
                        "unknown and does not decide between versions of a household")
            log.warning("%d submission time(s) are not ISO 8601 date-times: they are unknown "
                        "and do not decide between duplicates (listed in rejects.csv)",
                        int(bad_time.sum()))

    # 2. consent ---------------------------------------------------------------------------
    status = pd.Series("accepted", index=frame.index, dtype=object)
    status[no_key] = _NO_KEY
    status[dup] = _DUPLICATE
    reasons: dict[str, pd.Series] = {}
    if "consent" in frame.columns:
        consent = frame["consent"].str.strip()
        refused = (consent == "no").fillna(False).to_numpy() & ~gone
        unclear = ~(consent == "yes").fillna(False).to_numpy() & ~refused & ~gone
        status[refused] = "no_consent"
        rejects.add(frame, unclear, "consent", frame["consent"].fillna(""), ROW_REJECTED,
                    "consent is missing or not yes/no: nothing can be kept without consent")
        status[unclear] = "rejected"
    live = (status == "accepted").to_numpy()

    # 3. validation ------------------------------------------------------------------------
    out: dict[str, pd.Series] = {}
    times: dict[str, pd.Series] = {}
    checked = [q for q in form.questions.values() if q.name in frame.columns
               and q.type != "geopoint" and q.privacy != "direct"]
    with ThreadPoolExecutor(_CORES if len(frame) * len(checked) >= _THREADED_CELLS else 1,
                            thread_name_prefix="validate") as pool:
        # each question's answers checked on a thread of their own (Arrow's kernels let go of
        # the GIL); what they find is recorded here, in the form's order, as each is done
        checks = {q.name: pool.submit(_validate, q, frame[q.name], form, times)
                  for q in checked if q.short != "settlement_reported"}
        for q in checked:
            s = frame[q.name]
            if q.short == "settlement_reported":
                out[q.name] = _settlement_value(s, settlements, frame, live, rejects, q)
                continue
            value, bad, reason = checks.pop(q.name).result()
            if q.short == "hh_size":
                bad_or_missing = bad | value.isna().to_numpy()
                reasons["hh_size"] = pd.Series(np.where(
                    s.isna().to_numpy(), "hh_size is missing",
                    ("hh_size " + reason.fillna("")).to_numpy(dtype=object)),
                    index=frame.index).where(bad_or_missing)
            else:
                rejects.add(frame, bad & live, q.name, s, VALUE_DROPPED, reason)
            out[q.name] = value

    # 4. location and placement ----------------------------------------------------------
    lat, lon, acc, loc_reason = _coordinates(frame)
    placed = _placement(lat, lon, settlements, max_distance_m, frame.index, placer)
    settlement = pd.Series(pd.NA, index=frame.index, dtype="string")
    if assign_by == "column":
        settlement, col_reason = _by_column(frame, form, assign_column, settlements)
        reasons["settlement"] = col_reason
        # a bad location is then only a dropped value
        rejects.add(frame, loc_reason.notna().to_numpy() & live & frame["gps_lat"].notna()
                    .to_numpy() if "gps_lat" in frame else np.zeros(len(frame), bool),
                    "gps", WITHHELD, VALUE_DROPPED, loc_reason)
        bad_loc = loc_reason.notna().to_numpy()
        lat, lon = lat.mask(bad_loc), lon.mask(bad_loc)
    else:
        swapped = placed["swapped"].to_numpy()
        reasons["location"] = loc_reason.mask(swapped, placed["reason"]).fillna(placed["reason"])
        if settlements is not None:
            ok = placed["inside"].to_numpy() >= 0
            settlement = pd.Series(np.where(ok, settlements.ids[np.maximum(
                placed["inside"].to_numpy(), 0)], None), index=frame.index, dtype="string")
    reason_frame = pd.DataFrame(reasons, index=frame.index)
    row_bad = reason_frame.notna().any(axis=1).to_numpy() & live
    if row_bad.any():
        _reject_rows(rows_where(frame, row_bad), reason_frame.loc[row_bad], rejects, form,
                     assign_column)
        status[row_bad] = "rejected"
    n_rejected += int((status == "rejected").sum())

    households = pd.DataFrame(index=frame.index)
    households["key"] = frame["key"]
    households["source_file"] = frame["_file"]
    households["source_row"] = frame["_row"]
    households["submitted_at"] = frame["_when"]
    for q in form.questions.values():
        if q.name in out:
            households[_column_name(form, q)] = out[q.name]
    households["latitude"] = lat
    households["longitude"] = lon
    households["gps_precision"] = acc
    households["settlement_id"] = settlement
    if settlements is not None:
        near = placed["nearest"].to_numpy()
        households["nearest_settlement_id"] = pd.Series(
            np.where(near >= 0, settlements.ids[np.maximum(near, 0)], None),
            index=frame.index, dtype="string")
        households["distance_m"] = placed["distance"]
    else:
        households["nearest_settlement_id"] = pd.Series(pd.NA, index=frame.index, dtype="string")
        households["distance_m"] = np.nan
    rep = "settlement_reported"
    if rep in households and assign_by == "location":
        households["settlement_mismatch"] = (
            households[rep].notna() & households["settlement_id"].notna()
            & (households[rep] != households["settlement_id"])).astype("boolean")
    else:
        households["settlement_mismatch"] = pd.array([pd.NA] * len(households), dtype="boolean")
    households["status"] = status
    personal_cols = [q.name for q in form.questions.values()
                     if q.privacy == "direct" and q.name in frame.columns]
    personal = rows_where(frame[["key", *personal_cols]], status == "accepted").rename(
        columns={q: _column_name(form, form.questions[q]) for q in personal_cols})
    members = None
    if rosters:
        _roster_mismatch(frame, households, form, live & (status == "accepted").to_numpy(),
                         rejects)
        members, member_counts, member_personal = _members(rosters, frame, status, form,
                                                           rejects)
        _head_from_roster(households, members, form)
        if len(member_personal.columns) > 1:
            personal = pd.concat([personal, member_personal], ignore_index=True)
    # the interviews' times as parsed by the validation, for the supervision report
    parsed = {_column_name(form, form.questions[n]): t for n, t in times.items()}
    # the export's own columns go before the households are filtered: the answers that
    # validation replaced are then freed, not held beside their filtered copies
    del frame, out, s
    res = _result(households, form, rejects, n_read, n_dup, n_rejected, 0, inputs, personal,
                  gone, parsed)
    if members is not None:
        res.members = members
        res.counts.update(member_counts)
    return res


def _head_from_roster(households: pd.DataFrame, members: pd.DataFrame, form: Form) -> None:
    """With a roster, the head of household is its member whose relation is ``head``
    (CONTRACT.md §4, ``female_headed``): that member's sex is the household's
    ``hh_head_sex`` where the roster names exactly one head of known sex."""
    q = next((q for q in form.questions.values() if q.short == "hh_head_sex"), None)
    if q is None or not {"member_relation", "member_sex"} <= set(members.columns):
        return
    heads = members[(members["member_relation"] == "head").fillna(False).to_numpy()]
    single = heads.groupby("key", observed=True)["member_sex"].agg(["size", "first"])
    single = single[(single["size"] == 1) & single["first"].notna()]["first"]
    if single.empty:
        return
    col = _column_name(form, q)
    from_roster = households["key"].map(single).astype("string")
    current = (households[col] if col in households.columns
               else pd.Series(pd.NA, index=households.index, dtype="string"))
    households[col] = from_roster.fillna(current.astype("string"))


def _roster_mismatch(frame: pd.DataFrame, households: pd.DataFrame, form: Form,
                     accepted: np.ndarray, rejects: _Rejects) -> None:
    """A household row whose stated size differs from its roster's count keeps its own
    figure; the difference is listed (action ``roster_mismatch``, CONTRACT.md §1b)."""
    hh = next((q for q in form.questions.values() if q.short == "hh_size"), None)
    if hh is None or "_roster_n" not in frame.columns:
        return
    listed = frame["_roster_n"].to_numpy(dtype=float, na_value=np.nan)
    stated = households[_column_name(form, hh)].to_numpy(dtype=float, na_value=np.nan)
    differ = accepted & (listed > 0) & np.isfinite(stated) & (stated != listed)
    if differ.any():
        reason = pd.Series([f"the household row gives {s:g} persons and its roster lists "
                            f"{n:g}: the household row's figure is used"
                            for s, n in zip(stated[differ], listed[differ], strict=True)],
                           index=frame.index[differ], dtype="string").reindex(frame.index)
        rejects.add(frame, differ, hh.name, frame[hh.name], ROSTER_MISMATCH, reason)


def _members(rosters: list[Roster], frame: pd.DataFrame, status: pd.Series, form: Form,
             rejects: _Rejects) -> tuple[pd.DataFrame, dict[str, int], pd.DataFrame]:
    """The members of accepted households (their fields validated like a household's), the
    roster counts, and the members' direct personal fields (never in the first frame).

    A member whose row links to no household is rejected (field ``link``); a member whose
    household was not accepted (rejected, a duplicate, a refusal) is dropped with it."""
    mform = member_form(form)
    parts = [r.frame for r in rosters]
    m = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    hh = m["_hh"].to_numpy(dtype=np.int64)
    orphan = hh < 0
    # by label: the rows without a key and the earlier versions are no longer in the frame
    kept = ~orphan & (status.reindex(hh).to_numpy(dtype=object) == "accepted")
    m["key"] = pd.array(np.where(kept, frame["key"].reindex(hh).to_numpy(dtype=object), None),
                        dtype="string")
    link_name = {r.label: r.link for r in rosters}
    rejects.add(m, orphan, MEMBER_LINK, m["_link"].fillna(""), ROW_REJECTED, pd.Series(
        [f"links to no household of its export ({link_name[f]} = {v})"
         for f, v in zip(m["_file"], m["_link"].fillna(""), strict=True)],
        index=m.index, dtype="string"))
    bad_rows = [(r.label, row, problem) for r in rosters for row, problem in r.malformed]
    if bad_rows:
        bad = pd.DataFrame({"_file": [b[0] for b in bad_rows], "_row": [b[1] for b in bad_rows],
                            "key": pd.array([pd.NA] * len(bad_rows), dtype="string")})
        rejects.add(bad, np.ones(len(bad), bool), MEMBER_ROW, "", ROW_REJECTED,
                    pd.Series([b[2] for b in bad_rows]))
    out = pd.DataFrame({"key": m["key"]})
    personal = pd.DataFrame({"key": m["key"]})
    for q in mform.questions.values():
        if q.name not in m.columns:
            continue
        if q.privacy == "direct":
            personal[q.short] = m[q.name]
            continue
        value, bad, reason = _validate(q, m[q.name], mform)
        rejects.add(m, bad & kept, q.name, m[q.name], VALUE_DROPPED, reason)
        out[q.short] = value
    counts = {"members_read": int(len(m) + len(bad_rows)), "members_kept": int(kept.sum()),
              "members_rejected": int(orphan.sum() + len(bad_rows)),
              "members_dropped": int((~orphan & ~kept).sum())}
    return (out.loc[kept].reset_index(drop=True), counts,
            personal.loc[kept].reset_index(drop=True))


def _reject_rows(frame: pd.DataFrame, reasons: pd.DataFrame, rejects: _Rejects, form: Form,
                 assign_column: str) -> None:
    """One ``row_rejected`` entry per row, under the first failing field, all reasons joined."""
    first = reasons.notna().idxmax(axis=1)
    combined = reasons.apply(lambda r: "; ".join(str(x) for x in r if pd.notna(x)), axis=1)
    fields = {"hh_size": _q(form, "hh_size"), "location": "gps", "settlement": assign_column}
    shown = pd.Series(WITHHELD, index=frame.index, dtype=object)
    hh_col = _q(form, "hh_size")
    if hh_col in frame:
        shown = shown.mask(first == "hh_size", frame[hh_col].fillna("").astype(object))
    col = assign_column_in(frame, form, assign_column)
    if col is not None:
        shown = shown.mask(first == "settlement", frame[col].fillna("").astype(object))
    for key, fld in fields.items():
        rejects.add(frame, (first == key).to_numpy(), fld, shown, ROW_REJECTED, combined)


def assign_column_in(frame: pd.DataFrame, form: Form, column: str) -> str | None:
    """The frame column that holds the settlement assignment column, if any."""
    if column in frame.columns:
        return column
    hits = [q.name for q in form.questions.values() if q.short == column]
    return hits[0] if hits and hits[0] in frame.columns else None


def _q(form: Form, short: str) -> str:
    hits = [q.name for q in form.questions.values() if q.short == short]
    return hits[0] if hits else short


def _column_name(form: Form, q: Question) -> str:
    """Household-frame column of a question: its short name where that is unambiguous."""
    same = [o for o in form.questions.values() if o.short == q.short]
    return q.short if len(same) == 1 else q.name


def _validate(q: Question, s: pd.Series, form: Form, times: dict[str, pd.Series] | None = None
              ) -> tuple[pd.Series, np.ndarray, pd.Series]:
    """Typed values, a mask of invalid answers and the reason for each; ``times`` is given
    each date-time question's parsed values (UTC; NaT where invalid), by question name."""
    present = s.notna().to_numpy()
    # Python objects: most answers have no reason, and setting a few costs no copy of Arrow's
    reason = pd.Series(np.full(len(s), None, dtype=object), index=s.index, dtype=object)
    if q.type in ("integer", "decimal"):
        integer = q.type == "integer"
        if integer:  # whole numbers of a form are few: each distinct one is read once
            distinct, _, at = _distinct(s)
            num = (_numbers(pd.Series(pd.arrays.ArrowStringArray(distinct)), _INT_RE)[at]
                   if len(distinct) else np.full(len(s), np.nan))
            num[~present] = np.nan
        else:
            num = _numbers(s, _DEC_RE)
        kind = "not a whole number" if integer else "not a number"
        bad = present & np.isnan(num)
        reason[bad] = kind
        value = pd.Series(num, index=s.index).astype("Float64")
        if q.constraint:
            compiled = compile_constraint(q.constraint)
            if compiled is not None:
                fails = present & ~bad & ~_holds(compiled, value, None).to_numpy()
                reason[fails] = f"breaks the form's constraint {q.constraint!r}"
                bad |= fails
        value = value.mask(bad)
        if q.type == "integer":
            value = value.round().astype("Int64")
        return value, bad, reason
    if q.type == "select_one":
        # a choice list's answers are few: each distinct one is trimmed and checked once
        raw, indices, at = _distinct(s)
        distinct = pc.utf8_trim_whitespace(raw)
        ok = np.asarray(pc.fill_null(pc.is_in(distinct, value_set=pa.array(
            form.choice_names(q.name), distinct.type)), False))
        bad = present & (~ok[at] if len(distinct) else np.zeros(len(s), bool))
        reason[bad] = f"not a choice of the list {q.list_name!r}"
        kept = pc.if_else(pa.array(ok), distinct, pa.scalar(None, distinct.type))
        return _series(pc.take(kept, indices), s.index), bad, reason
    if q.type == "select_multiple":
        # a city's answers hold a few hundred distinct combinations: each is checked once
        raw, indices, at = _distinct(s)
        distinct = pc.utf8_trim_whitespace(pc.replace_substring_regex(raw, r"\s+", " "))
        lists = pc.split_pattern(distinct, " ")
        tokens = pc.list_flatten(lists)
        parent = np.asarray(pc.list_parent_indices(lists))
        tok_bad = ~np.asarray(pc.fill_null(pc.is_in(tokens, value_set=pa.array(
            form.choice_names(q.name), tokens.type)), False))
        bad_distinct = np.bincount(parent, weights=tok_bad, minlength=len(distinct)) > 0
        bad = present & (bad_distinct[at] if len(distinct) else np.zeros(len(s), bool))
        v = _series(pc.take(distinct, indices), s.index)
        reason[bad] = f"holds an answer that is not a choice of the list {q.list_name!r}"
        if q.constraint:
            compiled = compile_constraint(q.constraint)
            if compiled is not None:
                n_chosen = np.asarray(pc.list_value_length(lists).to_numpy(
                    zero_copy_only=False), dtype=float)
                count = pd.Series(n_chosen[at] if len(distinct) else np.zeros(len(s)),
                                  index=s.index).astype("Float64").mask(~present)
                fails = present & ~bad & ~_holds(compiled, count, count).to_numpy()
                reason[fails] = f"breaks the form's constraint {q.constraint!r}"
                bad |= fails
        return v.mask(bad).astype(STRING), bad, reason
    if q.type in ("start", "end", "datetime", "date"):
        parsed = iso_datetimes(s)
        if times is not None:
            times[q.name] = parsed
        bad = present & parsed.isna().to_numpy()
        reason[bad] = "not an ISO 8601 date-time"
        return s.mask(bad).astype(STRING), bad, reason
    return s, np.zeros(len(s), dtype=bool), reason


def _settlement_value(s: pd.Series, settlements: Settlements | None, frame: pd.DataFrame,
                      live: np.ndarray, rejects: _Rejects, q: Question) -> pd.Series:
    if settlements is None:
        return s.str.strip()
    lookup = settlements.lookup()
    v = _map_values(s, lambda x: lookup.get(x.strip().casefold()))
    bad = s.notna().to_numpy() & v.isna().to_numpy()
    rejects.add(frame, bad & live, q.name, s, VALUE_DROPPED,
                "names no settlement of the boundaries (by id or name)")
    return v


def _coordinates(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
    """Latitude, longitude, accuracy and the reason a location is unusable."""
    idx = frame.index

    def col(name: str) -> pd.Series:
        return frame[name] if name in frame else pd.Series(pd.NA, index=idx, dtype=STRING)

    lat_s, lon_s, acc_s = col("gps_lat"), col("gps_lon"), col("gps_acc")
    raw = col("gps_raw")
    need = (lat_s.isna() & lon_s.isna() & raw.notna()).to_numpy()
    if need.any():
        parts = raw[need].str.strip().str.extract(
            r"^(\S+)[\s,;]+(\S+)(?:\s+(\S+))?(?:\s+(\S+))?$")
        lat_s = lat_s.copy()
        lon_s = lon_s.copy()
        acc_s = acc_s.copy()
        lat_s[need] = parts[0].fillna(raw[need]).astype(STRING)
        lon_s[need] = parts[1].astype(STRING)
        acc_s[need] = parts[3].astype(STRING)
    lat = pd.Series(_numbers(lat_s), index=idx)
    lon = pd.Series(_numbers(lon_s), index=idx)
    acc = pd.Series(_numbers(acc_s), index=idx)
    reason = pd.Series(pd.NA, index=idx, dtype="string")
    missing = (lat_s.isna() & lon_s.isna()).to_numpy()
    reason[missing] = "no location: the GPS point is missing"
    unparsable = ~missing & (lat.isna() | lon.isna()).to_numpy()
    reason[unparsable] = "no location: the GPS point is not a pair of numbers"
    ok = ~missing & ~unparsable
    lat_f, lon_f = lat.to_numpy(dtype=float, na_value=np.nan), lon.to_numpy(dtype=float,
                                                                             na_value=np.nan)
    zero = ok & (lat_f == 0) & (lon_f == 0)
    reason[zero] = "no location: the GPS point is 0/0, a receiver without a fix"
    out_of_range = ok & ~zero & ((np.abs(lat_f) > 90) | (np.abs(lon_f) > 180))
    reason[out_of_range] = "no location: latitude or longitude out of range"
    return (pd.Series(lat_f, index=idx), pd.Series(lon_f, index=idx), pd.Series(
        acc.to_numpy(), index=idx), reason)


def _placement(lat: pd.Series, lon: pd.Series, settlements: Settlements | None,
               max_distance_m: float, idx: pd.Index, placer: Placer | None = None
               ) -> pd.DataFrame:
    """Inside / nearest / distance per row, and the reason a point is too far."""
    out = pd.DataFrame({"inside": -1, "nearest": -1, "distance": np.nan}, index=idx)
    out["reason"] = pd.Series(pd.NA, index=idx, dtype="string")
    out["swapped"] = False
    if settlements is None or not settlements.has_geometry:
        return out
    do_place: Placer = placer if placer is not None else partial(place,
                                                                 settlements=settlements)
    la, lo = lat.to_numpy(), lon.to_numpy()
    valid = np.isfinite(la) & np.isfinite(lo) & (np.abs(la) <= 90) & (np.abs(lo) <= 180) & ~(
        (la == 0) & (lo == 0))
    p = do_place(np.where(valid, lo, np.nan), np.where(valid, la, np.nan))
    out["inside"], out["nearest"], out["distance"] = p.inside, p.nearest, p.distance
    far = valid & (p.inside < 0) & (p.distance > max_distance_m)
    # A point that is unusable as given but lands in or near a settlement read the other way
    # round has its latitude and longitude swapped.
    cand = np.isfinite(la) & np.isfinite(lo) & (far | ~valid) & (np.abs(lo) <= 90) & (
        np.abs(la) <= 180) & ~((la == 0) & (lo == 0))
    swapped = np.zeros(len(la), dtype=bool)
    if cand.any():
        q = do_place(np.where(cand, la, np.nan), np.where(cand, lo, np.nan))
        swapped = cand & ((q.inside >= 0) | (q.distance <= max_distance_m))
    ids = settlements.ids
    near_id = ids[np.maximum(p.nearest, 0)]
    txt = pd.Series(
        [f"farther than {max_distance_m:g} m from every settlement (nearest: {n}, {d:,.0f} m)"
         for n, d in zip(near_id[far], p.distance[far], strict=True)], dtype="string",
        index=idx[far])
    out.loc[far, "reason"] = txt
    out["swapped"] = swapped
    out.loc[swapped, "reason"] = ("latitude and longitude are swapped: read the other way round "
                                  "the point lies in or near a settlement")
    return out


def _by_column(frame: pd.DataFrame, form: Form, column: str,
               settlements: Settlements | None) -> tuple[pd.Series, pd.Series]:
    col = assign_column_in(frame, form, column)
    reason = pd.Series(pd.NA, index=frame.index, dtype="string")
    if col is None:
        raise FormError("surveys", f"households are placed by the column {column!r}, which "
                                   "no export holds")
    s = frame[col].str.strip()
    if settlements is None:
        return s.astype("string"), reason
    lookup = settlements.lookup()
    v = _map_values(s, lambda x: lookup.get(x.casefold()))
    reason[v.isna().to_numpy()] = "matches no settlement id or name of the boundaries"
    reason[s.isna().to_numpy()] = "no settlement given"
    return v, reason


def _result(households: pd.DataFrame, form: Form, rejects: _Rejects, n_read: int, n_dup: int,
            n_rejected: int, extra_rejected: int, inputs: list[InputSummary],
            personal: pd.DataFrame | None, gone: np.ndarray | None = None,
            times: dict[str, pd.Series] | None = None) -> IngestResult:
    """What ingest returns; ``gone`` marks the rows of ``households`` that are no household
    of the run (no key, an earlier version of one), already counted; ``times``, the parsed
    date-time columns (the submissions keep ``start`` and ``end`` parsed as well, as
    ``_start_utc`` and ``_end_utc``, which the supervision report reads)."""
    rej = rejects.frame()
    if households.empty or "status" not in households:
        hh = pd.DataFrame(columns=["key", "settlement_id"])
        subs = pd.DataFrame(columns=["key", "status", "submitted_at"])
        counts = {"read": n_read, "accepted": 0, "rejected": n_rejected + extra_rejected,
                  "duplicates": n_dup, "no_consent": 0, "outside_settlements": 0,
                  "values_dropped": int((rej["action"] == VALUE_DROPPED).sum())}
        return IngestResult(hh, pd.DataFrame(columns=["key"]), rej, subs, counts, inputs)
    status = households.pop("status")
    is_accepted = (status == "accepted").to_numpy()
    # a rejected row is listed once, as rejected: its invalid answers are not "dropped" values
    dropped = rej["action"] == VALUE_DROPPED
    refused_or_rejected = status.isin(["rejected", "no_consent"]).to_numpy()
    not_accepted = pd.unique(households.loc[refused_or_rejected, "key"].astype(object))
    rej = rej.loc[~(dropped & rej["key"].astype(object).isin(set(not_accepted)))].reset_index(
        drop=True)
    counts = {
        "read": n_read,
        "accepted": int((status == "accepted").sum()),
        "rejected": n_rejected + extra_rejected,
        "duplicates": n_dup,
        "no_consent": int((status == "no_consent").sum()),
        "outside_settlements": int((households["settlement_id"].isna().to_numpy()
                                    & is_accepted).sum()),
        "values_dropped": int((rej["action"] == VALUE_DROPPED).sum()),
    }
    dropped_per_key = rej.loc[rej["action"] == VALUE_DROPPED].groupby("key").size()
    subs = households[["key", "submitted_at", "settlement_mismatch", "gps_precision",
                       "settlement_id"]].copy()
    subs.insert(1, "status", status)
    for c in ("enumerator", "start", "end"):
        subs[c] = households.get(c, pd.NA)
    for c in ("start", "end"):
        if times and c in times:
            subs[f"_{c}_utc"] = times[c]
    if gone is not None and gone.any():
        subs = rows_where(subs, ~gone)
    subs.loc[subs["status"] != "accepted", ["gps_precision", "settlement_id",
                                            "settlement_mismatch"]] = pd.NA
    subs["values_dropped"] = 0
    if len(dropped_per_key):
        hit = np.asarray(pc.fill_null(pc.is_in(_arrow(subs["key"]), value_set=pa.array(
            [str(k) for k in dropped_per_key.index], pa.large_string())), False))
        subs.loc[hit, "values_dropped"] = subs.loc[hit, "key"].astype(object).map(
            dropped_per_key).to_numpy()
    subs = subs.reset_index(drop=True)
    # last, the accepted households: ``households`` is emptied as they are copied
    accepted = rows_where(households, is_accepted, consume=True)
    return IngestResult(accepted.reset_index(drop=True),
                        (personal if personal is not None else pd.DataFrame(columns=["key"]))
                        .reset_index(drop=True), rej, subs, counts, inputs)
