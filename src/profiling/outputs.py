"""The CSV files a run publishes, written and read back in one place.

People open these files in Excel or LibreOffice, where a cell that begins with ``=``, ``+``,
``-`` or ``@`` (or a tab or carriage return) is taken as a formula: a settlement called
``=HYPERLINK("http://x","y")`` would become a link, and worse. Following OWASP's guidance on CSV
injection, :func:`write_csv` writes every **text** cell that begins with one of those characters
with a single quote in front (``'=HYPERLINK(...)``), which a spreadsheet shows as text. Numbers
(numeric columns) stay numbers: ``-0.5`` in a numeric column is written as it is. A text cell
that already begins with a quote followed by one of those characters gets a second quote, so
that :func:`read_csv` can undo the escaping exactly: it removes one leading quote where one was
added.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: What makes a spreadsheet cell a formula (OWASP, "CSV Injection").
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def _escaped(values: pd.Series) -> np.ndarray:
    """Which cells of a text column need (or, read back, carry) the protective quote."""
    text = values.map(lambda v: v if isinstance(v, str) else "")
    first = text.str[:1]
    second = text.str[1:2]
    return (first.isin(TRIGGERS) | ((first == QUOTE) & second.isin(TRIGGERS))).to_numpy()


def _text_columns(frame: pd.DataFrame, which: Callable[[pd.Series], np.ndarray],
                  change: Callable[[pd.Series], pd.Series]) -> pd.DataFrame:
    """``frame`` with ``change`` applied to the cells ``which`` picks in its text columns
    (copied only when a cell changes)."""
    out = frame
    for col in frame.columns:
        s = frame[col]
        if s.dtype != object and not isinstance(s.dtype, pd.StringDtype):
            continue
        pick = which(s)
        if pick.any():
            if out is frame:
                out = frame.copy()
            fixed = s.astype(object).copy()
            fixed[pick] = change(s[pick].astype(str))
            out[col] = fixed
    return out


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell that a spreadsheet would run as a formula quoted."""
    return _text_columns(frame, _escaped, lambda s: QUOTE + s)


def restore(frame: pd.DataFrame) -> pd.DataFrame:
    """Undo :func:`neutralise` on a table read back (one leading quote where one was added)."""

    def quoted(s: pd.Series) -> np.ndarray:
        text = s.map(lambda v: v if isinstance(v, str) else "")
        return ((text.str[:1] == QUOTE) & pd.Series(_escaped(text.str[1:]),
                                                    index=s.index)).to_numpy()

    return _text_columns(frame, quoted, lambda s: s.str[1:])


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a published table as UTF-8 CSV (RFC 4180: records end in CRLF, cells holding a
    delimiter, quote or line break are quoted), its text cells neutralised
    (:func:`neutralise`)."""
    # CRLF between records (RFC 4180), so that a carriage return inside a cell is quoted
    neutralise(frame).to_csv(path, index=False, encoding="utf-8", lineterminator="\r\n")
    return Path(path)


def read_csv(path: str | Path, **kwargs: Any) -> pd.DataFrame:
    """Read a table written by :func:`write_csv`, with its text as it was."""
    return restore(pd.read_csv(path, **kwargs))
