"""The corpus of malformed inputs (``tests/data/malformed``, listed in its ``cases.csv``).

Each bad file ends with a clear :class:`profiling.ProfilingError` that names it, or is read with
its bad rows rejected and its bad values dropped exactly as listed, and every valid row accepted.
The expected outcomes were worked out from what each file holds and CONTRACT.md §1.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from profiling import ProfilingError
from profiling.config import SurveySource
from profiling.form import read_xlsform, reference_form
from profiling.ingest import IngestResult, ingest
from profiling.join import Settlements, prepare, read_boundaries

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "data" / "malformed"
SETTLEMENTS_GPKG = REPO / "sample_data" / "settlements.gpkg"
BASE = CORPUS / "base_valid.csv"
#: Files of the folder that are not inputs.
NOT_INPUTS = {"make_corpus.py", "cases.csv", "README.md"}
MAX_BYTES = 300_000
COUNT_KEYS = ("read", "accepted", "rejected", "duplicates", "no_consent")
#: What may be kept of a refusal: the fact of it (when, by whom), never an answer.
REFUSAL_FACTS = {"start", "end", "enumerator", "_submission_time", "_id", "_index", "_status",
                 "_validation_status", "consent"}


def _cases() -> list[dict[str, str]]:
    with (CORPUS / "cases.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


CASES = _cases()


def _params(expect: str) -> list[Any]:
    out = []
    for c in CASES:
        if c["expect"] != expect:
            continue
        marks = [pytest.mark.xfail(strict=True, reason=c["bug"])] if c["bug"] else []
        out.append(pytest.param(c, id=c["case"], marks=marks))
    return out


def _base_keys() -> list[str]:
    with BASE.open(newline="", encoding="utf-8") as f:
        return [r["_uuid"] for r in csv.DictReader(f, delimiter=";")]


def _numbers(spec: str) -> list[int]:
    return [int(x) for x in spec.split()]


def _fragments(spec: str) -> list[str]:
    return [f.strip() for f in spec.split("|") if f.strip()]


@pytest.fixture(scope="module")
def jakarta() -> Settlements:
    return prepare(read_boundaries(SETTLEMENTS_GPKG))


def _run(case: dict[str, str], settlements: Settlements) -> Any:
    path = CORPUS / case["file"]
    if case["reader"] == "xlsform":
        return read_xlsform(path)
    if case["reader"] == "boundaries":
        return read_boundaries(path)
    assert case["reader"] == "ingest", case["reader"]
    options = dict(o.split("=", 1) for o in case["options"].split(";") if o)
    return ingest([SurveySource(path=path, **options)], reference_form(), settlements)


# --------------------------------------------------------------------------------------------
# The corpus itself
# --------------------------------------------------------------------------------------------

def _inputs_on_disk() -> set[str]:
    return {p.name for p in CORPUS.iterdir() if p.is_file() and p.name not in NOT_INPUTS}


def test_every_file_is_a_case_and_every_case_has_its_file() -> None:
    listed = {c["file"] for c in CASES}
    sidecars = {f"{Path(f).stem}.{ext}" for f in listed if f.endswith(".shp")
                for ext in ("shx", "dbf")}
    assert _inputs_on_disk() == listed | sidecars
    assert len({c["case"] for c in CASES}) == len(CASES)
    for c in CASES:
        assert c["reader"] in ("ingest", "xlsform", "boundaries"), c["case"]
        assert c["expect"] in ("error", "rejects"), c["case"]
        assert c["problem"], c["case"]
        if c["expect"] == "error":
            assert _fragments(c["message"]), c["case"]


def test_corpus_is_large_enough_and_small() -> None:
    malformed = {c["file"] for c in CASES} - {BASE.name}
    assert len(malformed) >= 30
    size = sum(p.stat().st_size for p in CORPUS.iterdir() if p.is_file())
    assert size < MAX_BYTES


def test_generator_rebuilds_the_corpus(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-B", str(CORPUS / "make_corpus.py"), "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    built = {p.name for p in tmp_path.iterdir()}
    assert built == _inputs_on_disk()
    for name in sorted(built):
        if name.endswith(".xlsx"):  # zip bytes depend on the openpyxl and zlib versions
            continue
        assert (tmp_path / name).read_bytes() == (CORPUS / name).read_bytes(), name


def test_base_rows_are_distinct_submissions() -> None:
    keys = _base_keys()
    assert len(keys) == 12
    assert len(set(keys)) == 12


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", _params("error"))
def test_error_case(case: dict[str, str], jakarta: Settlements) -> None:
    with pytest.raises(ProfilingError) as info:
        _run(case, jakarta)
    message = str(info.value)
    assert case["file"] in message
    for fragment in _fragments(case["message"]):
        assert fragment.casefold() in message.casefold(), (fragment, message)
    # a message names the problem, never a person
    for personal in ("Sample Respondent", "José", "+62 811"):
        assert personal not in message


# --------------------------------------------------------------------------------------------
# Rejects
# --------------------------------------------------------------------------------------------

def _household(result: IngestResult, key: str) -> pd.Series:
    hh = result.households.set_index("key")
    assert key in hh.index, key
    return hh.loc[key]


def _check(check: str, result: IngestResult, keys: list[str], case: dict[str, str]) -> None:
    kind, _, arg = check.partition(":")
    if kind in ("row", "personal"):
        n, _, assignment = arg.partition(":")
        column, _, expected = assignment.partition("=")
        key = keys[int(n) - 1]
        if kind == "row":
            value = _household(result, key)[column]
        else:
            personal = result.personal.set_index("key")
            value = personal.loc[key, column]
        if expected == "<NA>":
            assert pd.isna(value), (column, value)
        else:
            assert not pd.isna(value) and str(value) == expected, (column, value)
    elif kind == "refused":
        _check_refusal(result, keys[int(arg) - 1], case)
    elif kind == "distance":
        low, high = (float(x) for x in arg.split("-"))
        reasons = " ".join(result.rejects.loc[result.rejects["action"] == "row_rejected",
                                              "reason"].astype(str))
        metres = [float(m.replace(",", "")) for m in
                  re.findall(r"(\d[\d,]*(?:\.\d+)?)\s*m\b", reasons)]
        assert any(low <= m <= high for m in metres), reasons
    else:  # pragma: no cover - a typo in cases.csv
        raise AssertionError(f"unknown check {check!r}")


def _check_refusal(result: IngestResult, key: str, case: dict[str, str]) -> None:
    """A refusal is counted and nothing of its answers is kept anywhere in the result."""
    with (CORPUS / case["file"]).open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    refused = next(r for r in rows if r["_uuid"] == key)
    others = {v for r in rows if r is not refused for v in r.values()}
    answers = {v for h, v in refused.items()
               if h not in REFUSAL_FACTS and len(v) > 3 and v not in others}
    # the test means something only if the refused row holds answers of its own
    assert {"JK77-REFUSED", "Refusing Person", "-6.1811111", "river"} <= answers | {key}
    answers.add(key)
    frames = {"households": result.households, "personal": result.personal,
              "rejects": result.rejects, "submissions": result.submissions}
    for name, frame in frames.items():
        cells = {str(v) for v in frame.to_numpy().ravel().tolist()} | set(map(str, frame.columns))
        text = " ".join(cells)
        # short answers must not be a cell; longer ones must not be inside any cell either
        kept = sorted(a for a in answers if a in cells or (len(a) >= 8 and a in text))
        if name == "submissions":  # the refusal itself, by its key: the store records its
            assert kept == [key]    # keyed hash, so an older download cannot bring it back
            continue
        assert not kept, f"{name} keeps answers of a refusal: {kept}"
    assert key not in set(result.households["key"])
    assert not any(key in repr(i) for i in result.inputs)


@pytest.mark.parametrize("case", _params("rejects"))
def test_rejects_case(case: dict[str, str], jakarta: Settlements) -> None:
    result = _run(case, jakarta)
    keys = _base_keys()
    counts = result.counts
    for k in COUNT_KEYS:
        assert counts[k] == int(case[k]), (k, counts)
    assert counts["read"] == (counts["accepted"] + counts["rejected"] + counts["duplicates"]
                              + counts["no_consent"])
    assert len(result.households) == counts["accepted"]

    rej = result.rejects
    rejected = rej.loc[rej["action"] == "row_rejected"]
    dropped = rej.loc[rej["action"] == "value_dropped"]
    assert len(rejected) == int(case["row_rejected"]), rej.to_dict("records")
    assert len(dropped) == int(case["value_dropped"]), rej.to_dict("records")
    assert len(rej) == len(rejected) + len(dropped)
    assert counts["values_dropped"] == len(dropped)
    assert sorted(rej["field"].astype(str)) == sorted(case["fields"].split())
    assert sorted(int(r) for r in rej["row"]) == _numbers(case["reject_rows"])
    assert set(rej["file"]) <= {case["file"]}
    for fragment in _fragments(case["reasons"]):
        assert any(fragment.casefold() in str(r).casefold() for r in rej["reason"]), (
            fragment, rej["reason"].tolist())

    accepted = set(result.households["key"])
    for n in _numbers(case["valid_rows"]):
        assert keys[n - 1] in accepted, f"valid base row {n} was not accepted"
    for n in _numbers(case["absent_rows"]):
        assert keys[n - 1] not in accepted, f"base row {n} was accepted"
    # a rejected row is not a household; a dropped value is unknown in its household
    assert not set(rejected["key"].dropna()) & accepted
    for _, entry in dropped.iterrows():
        value = _household(result, entry["key"])[entry["field"].rsplit("/", 1)[-1]]
        assert pd.isna(value), (entry["field"], value)

    for check in filter(None, case["checks"].split(";")):
        _check(check, result, keys, case)


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["empty.csv", "cp1252_in_utf8.csv", "other_form_accra.csv"])
def test_cli_ends_bad_files_with_a_message(name: str, tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "profiling"
    done = subprocess.run([str(exe), "run", "--survey", str(CORPUS / name), "--boundaries",
                           str(SETTLEMENTS_GPKG), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert name in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "out" / "rejects.csv").exists()
