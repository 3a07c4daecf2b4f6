"""The output folder of a run: every file's name, the writers and readers of its tables, and
the formats the disclosure audit can read, in one place.

A new output is one entry here (its name, its writer, and, when it is a new format, its reader
in :mod:`profiling.audit`): a format that is not in :data:`AUDITED_FORMATS` is a finding of the
audit, which cannot clear what it cannot read.

People open the CSV files in Excel or LibreOffice, where a cell that begins with ``=``, ``+``,
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

# --------------------------------------------------------------------------------------------
# The files of a run
# --------------------------------------------------------------------------------------------

SETTLEMENT_TABLE = "settlement_indicators.csv"
#: The settlement table with its polygons: a GeoPackage layer (for QGIS) ...
SETTLEMENT_GPKG = "settlements.gpkg"
SETTLEMENT_LAYER = "settlement_indicators"
#: ... and GeoParquet (for analysts' notebooks: geopandas.read_parquet, DuckDB, R's sfarrow)
SETTLEMENT_PARQUET = "settlements.parquet"
CITY_SUMMARY = "city_summary"  # .csv and .json
PARAMETERS = "parameters.csv"
REJECTS = "rejects.csv"
SUPERVISION = "supervision_report.csv"
BOUNDARY_FINDINGS = "boundary_findings.csv"
PRIORITIES = "cuf_priorities.csv"
PORTFOLIO = "cuf_portfolio.csv"
HEXAGONS = "hexagons.csv"
DATES = "enumeration_dates.csv"
MANIFEST = "run_manifest.json"
MAP = "map.html"
MAP_ASSETS = "map_files"
ATLAS = "atlas"
PNG_MAPS = "maps"

#: Text formats the audit reads whole (personal values, coordinates, and the figures of the
#: tables among them) ...
TEXT_FORMATS = frozenset({".csv", ".json", ".jsonl", ".geojson", ".html", ".htm", ".js",
                          ".css", ".txt", ".svg", ".md", ".xml", ".tsv"})
#: ... and the structured ones it opens: GeoPackage and GeoParquet layers (attributes and
#: geometry), PNG text chunks, PDF text, the cells of an XLSX workbook (a validation pack's
#: XLSForm). Anything else a run writes is a finding.
STRUCTURED_FORMATS = frozenset({".gpkg", ".parquet", ".png", ".pdf", ".xlsx"})
AUDITED_FORMATS = TEXT_FORMATS | STRUCTURED_FORMATS


def write_settlements(out: Path, table: pd.DataFrame, geometry: Any = None,
                      crs: Any = None) -> dict[str, Path]:
    """The settlement table: CSV always; with ``geometry`` (one polygon per row, in the
    table's order, in ``crs``), also the GeoPackage layer and GeoParquet."""
    written = {"settlement_table": write_csv(table, out / SETTLEMENT_TABLE)}
    gpkg, parquet = out / SETTLEMENT_GPKG, out / SETTLEMENT_PARQUET
    gpkg.unlink(missing_ok=True)
    parquet.unlink(missing_ok=True)
    if geometry is not None:
        import geopandas as gpd

        layer = gpd.GeoDataFrame(table, geometry=geometry, crs=crs)
        layer.to_file(gpkg, layer=SETTLEMENT_LAYER, driver="GPKG")
        layer.to_parquet(parquet, index=False)
        written |= {"settlement_gpkg": gpkg, "settlement_parquet": parquet}
    return written


def update_settlements(out: Path, table: pd.DataFrame, columns: list[str]) -> dict[str, Path]:
    """Rewrite ``columns`` of the settlement table (CSV, GeoPackage layer, GeoParquet) from
    ``table`` (by ``settlement_id``), the rest as it is: how the CUF stage, rerun alone,
    updates the ranks."""
    write_csv(table, out / SETTLEMENT_TABLE)
    written = {"settlement_table": out / SETTLEMENT_TABLE}
    by_id = table.set_index("settlement_id")
    for path in (out / SETTLEMENT_GPKG, out / SETTLEMENT_PARQUET):
        if not path.exists():
            continue
        import geopandas as gpd

        layer = (gpd.read_file(path, layer=SETTLEMENT_LAYER) if path.suffix == ".gpkg"
                 else gpd.read_parquet(path))
        for c in columns:
            values = layer["settlement_id"].map(by_id[c])
            layer[c] = values.astype("Int64") if c.endswith("_rank") else values
        if path.suffix == ".gpkg":
            layer.to_file(path, layer=SETTLEMENT_LAYER, driver="GPKG")
        else:
            layer.to_parquet(path, index=False)
        written[f"settlement_{path.suffix[1:]}"] = path
    return written


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
