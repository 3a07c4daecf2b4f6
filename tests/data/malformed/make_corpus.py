"""Build the corpus of malformed inputs in this folder (standard library + openpyxl only).

Every file is derived from ``base_valid.csv``: twelve valid submissions of the sample city's
KoboToolbox export (``sample_data/exports/kobo_day1-4.csv``, the first twelve whose key is neither
a planted fault of ``sample_data/planted_faults.csv`` nor seen twice). When the sample data or the
shared Accra survey are not beside the checkout, the copies committed here are used instead, so
the corpus can be rebuilt anywhere and comes out byte for byte the same.

What each file holds, and what reading it must give, is listed in ``cases.csv``.

    python tests/data/malformed/make_corpus.py [--out DIR]
"""

from __future__ import annotations

import argparse
import codecs
import csv
import io
import json
import re
import sqlite3
import struct
import zipfile
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
SAMPLE_EXPORT = REPO / "sample_data" / "exports" / "kobo_day1-4.csv"
PLANTED = REPO / "sample_data" / "planted_faults.csv"
ACCRA = REPO.parent / "shared" / "data" / "openwashdata_watercostaccra" / "households.csv"

BASE = "base_valid.csv"
ACCRA_EXCERPT = "other_form_accra.csv"
N_BASE = 12
#: Files with one bad row hold the first SMALL rows of the base; the bad one is base row BAD.
SMALL, BAD = 6, 3
FIXED_TIME = (2026, 3, 1, 0, 0, 0)
UNDEFINED_SRS = ('LOCAL_CS["Undefined SRS",LOCAL_DATUM["unknown",32767],UNIT["unknown",0],'
                 'AXIS["Easting",EAST],AXIS["Northing",NORTH]]')
GPS_SPLIT = ["_gps_latitude", "_gps_longitude", "_gps_altitude", "_gps_precision"]
#: A point about 3 km east of the easternmost settlement of the sample city (nearest: JK04).
FAR_LAT, FAR_LON = "-6.1815", "106.8612"

Row = dict[str, str]


# --------------------------------------------------------------------------------------------
# The base
# --------------------------------------------------------------------------------------------

def _read_csv(data: bytes) -> tuple[list[str], list[Row]]:
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=";")
    header = next(reader)
    return header, [dict(zip(header, rec, strict=True)) for rec in reader if rec]


def base_rows() -> tuple[list[str], list[Row]]:
    """The header and the twelve valid rows of the base export."""
    if not SAMPLE_EXPORT.exists():
        return _read_csv((HERE / BASE).read_bytes())
    header, rows = _read_csv(SAMPLE_EXPORT.read_bytes())
    with PLANTED.open(newline="", encoding="utf-8") as f:
        faulty = {r["key"] for r in csv.DictReader(f)}
    seen: dict[str, int] = {}
    for r in rows:
        seen[r["_uuid"]] = seen.get(r["_uuid"], 0) + 1
    chosen = [r for r in rows if r["_uuid"] not in faulty and seen[r["_uuid"]] == 1
              and all(v.isascii() for v in r.values())][:N_BASE]
    assert len(chosen) == N_BASE
    return header, chosen


def to_csv(header: list[str], rows: list[Row], sep: str = ";") -> bytes:
    """An export as KoboToolbox writes it: every cell quoted, LF line ends, UTF-8."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf, delimiter=sep, quoting=csv.QUOTE_ALL, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([r.get(h, "") for h in header])
    return buf.getvalue().encode("utf-8")


def changed(rows: list[Row], n: int, **values: str) -> list[Row]:
    """A copy of ``rows`` with base row ``n`` (1-based) given other values."""
    out = [dict(r) for r in rows]
    out[n - 1].update({k.replace("__", "/"): v for k, v in values.items()})
    return out


def gps(lat: str, lon: str, alt: str = "8.0", acc: str = "5.0") -> dict[str, str]:
    """The raw geopoint string and the split columns of one point, as keyword values."""
    return {"gps": f"{lat} {lon} {alt} {acc}", "_gps_latitude": lat, "_gps_longitude": lon,
            "_gps_altitude": alt, "_gps_precision": acc}


# --------------------------------------------------------------------------------------------
# Deterministic XLSX
# --------------------------------------------------------------------------------------------

def _fixed_zip(data: bytes) -> bytes:
    """The workbook with fixed member dates and document properties, so it rebuilds the same."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                body = re.sub(rb"(<dcterms:(created|modified)[^>]*>)[^<]*",
                              rb"\g<1>2026-03-01T00:00:00Z", body)
            member = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME)
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o600 << 16
            dst.writestr(member, body)
    return out.getvalue()


def workbook(sheets: list[tuple[str, list[list[object]]]]) -> bytes:
    """An .xlsx with the given sheets (name, rows)."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in sheets:
        ws = wb.create_sheet(name)
        for r in rows:
            ws.append(r)
    wb.properties.creator = "make_corpus.py"
    wb.properties.created = datetime(*FIXED_TIME)
    buf = io.BytesIO()
    wb.save(buf)
    return _fixed_zip(buf.getvalue())


def export_sheet(header: list[str], rows: list[Row]) -> list[list[object]]:
    return [list(header), *[[r.get(h, "") or None for h in header] for r in rows]]


# --------------------------------------------------------------------------------------------
# GeoJSON and a shapefile without .prj
# --------------------------------------------------------------------------------------------

def _number(v: str) -> object:
    if re.fullmatch(r"-?\d+", v):
        return int(v)
    return v


def point_features(header: list[str], rows: list[Row], without_geometry: int) -> bytes:
    """A GeoJSON point layer of the form: the split GPS columns become the geometry."""
    keep = [h for h in header if h not in ("gps", *GPS_SPLIT)
            and not re.fullmatch(r".*_(documents|needs)/\w+", h)]
    features = []
    for i, r in enumerate(rows, start=1):
        geometry = None if i == without_geometry else {
            "type": "Point",
            "coordinates": [float(r["_gps_longitude"]), float(r["_gps_latitude"])]}
        props = {h: (_number(r[h]) if r[h] != "" else None) for h in keep}
        features.append({"type": "Feature", "geometry": geometry, "properties": props})
    return geojson(features)


def geojson(features: list[dict[str, object]]) -> bytes:
    return (json.dumps({"type": "FeatureCollection", "features": features},
                       separators=(",", ":")) + "\n").encode("utf-8")


def square(lon: float, lat: float, side: float = 0.002) -> list[list[list[float]]]:
    """A closed, counter-clockwise square ring (GeoJSON polygon coordinates)."""
    x0, y0, x1, y1 = lon, lat, round(lon + side, 6), round(lat + side, 6)
    return [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]


def polygon_features(props: list[dict[str, object]]) -> bytes:
    feats = [{"type": "Feature", "properties": p,
              "geometry": {"type": "Polygon", "coordinates": square(106.81 + 0.003 * i, -6.18)}}
             for i, p in enumerate(props)]
    return geojson(feats)


def shapefile(records: list[tuple[str, str]]) -> dict[str, bytes]:
    """A polygon shapefile (.shp, .shx, .dbf) of squares, written without a .prj.

    A dBase field name has at most 10 characters, so ``settlement_id`` is stored as
    ``settlement``, as GDAL and QGIS write it.
    """
    shapes = []
    for i in range(len(records)):
        ring = square(106.81 + 0.003 * i, -6.18)[0][::-1]  # shapefile rings are clockwise
        xs, ys = [p[0] for p in ring], [p[1] for p in ring]
        content = struct.pack("<i4d2i", 5, min(xs), min(ys), max(xs), max(ys), 1, len(ring))
        content += struct.pack("<i", 0)
        content += b"".join(struct.pack("<2d", x, y) for x, y in ring)
        shapes.append((content, (min(xs), min(ys), max(xs), max(ys))))
    bbox = (min(s[1][0] for s in shapes), min(s[1][1] for s in shapes),
            max(s[1][2] for s in shapes), max(s[1][3] for s in shapes))

    def header(length_bytes: int) -> bytes:
        return (struct.pack(">7i", 9994, 0, 0, 0, 0, 0, length_bytes // 2)
                + struct.pack("<2i", 1000, 5) + struct.pack("<4d", *bbox)
                + struct.pack("<4d", 0, 0, 0, 0))

    body, index, offset = b"", b"", 100
    for n, (content, _) in enumerate(shapes, start=1):
        body += struct.pack(">2i", n, len(content) // 2) + content
        index += struct.pack(">2i", offset // 2, len(content) // 2)
        offset += 8 + len(content)
    shp = header(100 + len(body)) + body
    shx = header(100 + len(index)) + index

    fields = [("settlement", 10), ("name", 40)]
    record_len = 1 + sum(n for _, n in fields)
    dbf = struct.pack("<B3BIHH20x", 3, 126, 3, 1, len(records), 32 + 32 * len(fields) + 1,
                      record_len)
    for name, size in fields:
        dbf += struct.pack("<11sc4xBB14x", name.encode("ascii"), b"C", size, 0)
    dbf += b"\r"
    for rec in records:
        dbf += b" " + b"".join(v.encode("ascii").ljust(n)[:n]
                               for v, (_, n) in zip(rec, fields, strict=True))
    dbf += b"\x1a"
    return {"shp": shp, "shx": shx, "dbf": dbf}


def geopackage_without_crs(records: list[tuple[str, str]]) -> bytes:
    """A GeoPackage polygon layer ``settlements`` without a coordinate reference system, as
    GDAL writes a frame with ``crs=None``: srs_id 99999, a ``LOCAL_CS`` named "Undefined SRS".
    """
    con = sqlite3.connect(":memory:")
    con.executescript(f"""
        PRAGMA page_size = 512;
        PRAGMA application_id = {0x47504B47};
        PRAGMA user_version = 10300;
        CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY,
            organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL,
            definition TEXT NOT NULL, description TEXT);
        INSERT INTO gpkg_spatial_ref_sys VALUES
            ('Undefined cartesian SRS', -1, 'NONE', -1, 'undefined', 'undefined cartesian'),
            ('Undefined geographic SRS', 0, 'NONE', 0, 'undefined', 'undefined geographic'),
            ('Undefined SRS', 99999, 'GDAL', 99999, '{UNDEFINED_SRS}',
             'Custom undefined coordinate reference system');
        CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY,
            data_type TEXT NOT NULL, identifier TEXT UNIQUE, description TEXT DEFAULT '',
            last_change DATETIME NOT NULL, min_x DOUBLE, min_y DOUBLE, max_x DOUBLE,
            max_y DOUBLE, srs_id INTEGER);
        CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL,
            geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL,
            m TINYINT NOT NULL, PRIMARY KEY (table_name, column_name));
        CREATE TABLE settlements (fid INTEGER PRIMARY KEY NOT NULL, geom POLYGON,
            settlement_id TEXT, name TEXT);
        INSERT INTO gpkg_contents VALUES ('settlements', 'features', 'settlements', '',
            '2026-03-01T00:00:00.000Z', NULL, NULL, NULL, NULL, 99999);
        INSERT INTO gpkg_geometry_columns VALUES ('settlements', 'geom', 'POLYGON', 99999, 0,
            0);
    """)
    for i, (sid, name) in enumerate(records):
        ring = square(106.81 + 0.003 * i, -6.18)[0]
        xs, ys = [p[0] for p in ring], [p[1] for p in ring]
        blob = b"GP" + struct.pack("<BBi4d", 0, 0b011, 99999, min(xs), max(xs), min(ys), max(ys))
        blob += struct.pack("<BIII", 1, 3, 1, len(ring))
        blob += b"".join(struct.pack("<2d", x, y) for x, y in ring)
        con.execute("INSERT INTO settlements VALUES (?, ?, ?, ?)", (i + 1, blob, sid, name))
    con.commit()
    data = con.serialize()
    con.close()
    return data


# --------------------------------------------------------------------------------------------
# XLSForms
# --------------------------------------------------------------------------------------------

SURVEY_HEADER = ["type", "name", "label", "required", "constraint"]
CHOICES = [["list_name", "name", "label"],
           ["yes_no", "yes", "Yes"], ["yes_no", "no", "No"],
           ["water_source", "public_tap", "Public tap or standpipe"],
           ["water_source", "water_kiosk", "Water kiosk"]]


def xlsform(survey_name: str, survey: list[list[object]]) -> bytes:
    return workbook([(survey_name, [SURVEY_HEADER, *survey]), ("choices", CHOICES)])


# --------------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------------

def build() -> dict[str, bytes]:
    """Every file of the corpus by name."""
    header, base = base_rows()
    small = base[:SMALL]
    files: dict[str, bytes] = {}
    files[BASE] = to_csv(header, base)
    valid = to_csv(header, small)

    # --- file-level problems of a CSV
    files["empty.csv"] = b""
    files["whitespace_only.csv"] = b"  \n\t\n   \r\n\n"
    files["bom_only.csv"] = codecs.BOM_UTF8
    files["bom_valid.csv"] = codecs.BOM_UTF8 + valid
    head = to_csv(header, [])
    files["header_only.csv"] = head
    files["header_only_bom.csv"] = codecs.BOM_UTF8 + head
    # "José" typed in a cp1252 spreadsheet: 0xE9 in a file that claims to be UTF-8 (line 4)
    files["cp1252_in_utf8.csv"] = to_csv(header, changed(
        small, BAD, respondent_name="Jos\u00e9 Sample")).decode("utf-8").encode("cp1252")
    files["utf16_bom.csv"] = valid.decode("utf-8").encode("utf-16")  # LE with a BOM
    text = valid.decode("utf-8").split("\n")
    # base row 4 (line 5): one field too many / the last four fields missing
    files["too_many_fields.csv"] = "\n".join(
        [*text[:4], text[4] + ';"extra"', *text[5:]]).encode("utf-8")
    files["too_few_fields.csv"] = "\n".join(
        [*text[:4], text[4].rsplit(";", 4)[0], *text[5:]]).encode("utf-8")
    # the download stopped inside the last record: in its 19th field / in its very last field
    last = text[SMALL]
    cut = len(";".join(last.split(";")[:19])) - 3
    files["truncated_mid_record.csv"] = "\n".join([*text[:SMALL], last[:cut]]).encode("utf-8")
    files["unterminated_quote_eof.csv"] = "\n".join(
        [*text[:SMALL], last[:-1]]).encode("utf-8")  # the closing quote of _index is missing
    dup = [h if h != "household/rooms_sleeping" else "household/hh_size" for h in header]
    files["duplicate_header.csv"] = "\n".join(
        [";".join(f'"{h}"' for h in dup), *text[1:SMALL + 1]]).encode("utf-8") + b"\n"
    # a blank header cell over a column the form does not use / over household/hh_size
    for name, column in [("blank_header_cell.csv", "_status"),
                         ("blank_header_hh_size.csv", "household/hh_size")]:
        blank = [h if h != column else "" for h in header]
        files[name] = "\n".join(
            [";".join(f'"{h}"' for h in blank), *text[1:SMALL + 1]]).encode("utf-8") + b"\n"

    # --- workbooks and file names
    xlsx = workbook([("enumeration", export_sheet(header, small))])
    files["truncated.xlsx"] = xlsx[: len(xlsx) // 2]
    files["csv_renamed.xlsx"] = to_csv(header, small)
    files["empty_first_sheet.xlsx"] = workbook([("Notes", []),
                                                ("enumeration", export_sheet(header, small))])
    files["export.xls"] = bytes.fromhex("D0CF11E0A1B11AE1") + bytes(504)  # an OLE2 header
    ods = io.BytesIO()
    with zipfile.ZipFile(ods, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype", date_time=FIXED_TIME),
                   "application/vnd.oasis.opendocument.spreadsheet")
    files["export.ods"] = ods.getvalue()

    # --- an export of another form: the Accra water-cost survey (CC BY 4.0, see README.md)
    if ACCRA.exists():
        with ACCRA.open("rb") as f:
            files[ACCRA_EXCERPT] = b"".join(f.readline() for _ in range(4))
    else:
        files[ACCRA_EXCERPT] = (HERE / ACCRA_EXCERPT).read_bytes()

    # --- GeoJSON
    files["not_json.geojson"] = (b"<!DOCTYPE html>\n<html><head><title>KoboToolbox | Sign in"
                                 b"</title></head>\n<body><form action=\"/accounts/login/\">"
                                 b"</form></body></html>\n")
    keep = ["consent", "household/hh_size", "_uuid"]
    files["polygons.geojson"] = polygon_features([{k: r[k] for k in keep} for r in small[:3]])
    files["points_missing_geometry.geojson"] = point_features(header, small, without_geometry=5)

    # --- locations (base row 3 of six)
    r3 = small[BAD - 1]
    files["gps_swapped.csv"] = to_csv(header, changed(small, BAD, **gps(
        r3["_gps_longitude"], r3["_gps_latitude"])))
    files["gps_zero.csv"] = to_csv(header, changed(small, BAD, **gps("0", "0", "0", "0")))
    files["gps_lat_95.csv"] = to_csv(header, changed(small, BAD, **gps(
        "95.0", r3["_gps_longitude"])))
    files["gps_text.csv"] = to_csv(header, changed(
        small, BAD, gps="abc def", **dict.fromkeys(GPS_SPLIT, "")))
    files["gps_far.csv"] = to_csv(header, changed(small, BAD, **gps(FAR_LAT, FAR_LON)))
    files["gps_raw_only.csv"] = to_csv([h for h in header if h not in GPS_SPLIT], small)

    # --- hh_size (base row 3 of six)
    for name, value in [("0", "0"), ("31", "31"), ("decimal", "3.5"), ("text", "three"),
                        ("empty", ""), ("zero_fraction", "3.0")]:
        files[f"hh_size_{name}.csv"] = to_csv(header, changed(
            small, BAD, household__hh_size=value))

    # --- answers that are dropped (base row 3 of six)
    files["invalid_choice.csv"] = to_csv(header, changed(
        small, BAD, water__water_source="river"))
    files["select_multiple_unknown.csv"] = to_csv(header, changed(
        small, BAD, tenure__tenure_documents="lease passport"))
    files["priority_needs_4.csv"] = to_csv(header, changed(
        small, BAD, priorities__priority_needs="water toilets drainage waste"))
    files["water_minutes_negative.csv"] = to_csv(header, changed(
        small, BAD, water__water_minutes="-5"))
    files["bad_start.csv"] = to_csv(header, changed(small, BAD, start="02/03/2026 8:14 AM"))
    files["settlement_reported_unknown.csv"] = to_csv(header, changed(
        small, BAD, settlement_reported="JK99"))

    # --- consent, keys, duplicates (base row 3 of six; the duplicate is of base row 2)
    files["consent_empty.csv"] = to_csv(header, changed(small, BAD, consent=""))
    files["consent_no.csv"] = to_csv(header, changed(
        small, BAD, consent="no", structure_id="JK77-REFUSED", respondent_name="Refusing Person",
        phone="+62 899 7777 7777", national_id="3171777777777777", household__hh_size="29",
        water__water_source="river", **gps("-6.1811111", "106.8222222", "7.7", "7.7")))
    files["uuid_missing.csv"] = to_csv(header, changed(small, BAD, _uuid=""))
    r2 = small[1]
    later = dict(r2, **{"household/hh_size": str(int(r2["household/hh_size"]) + 1),
                        "_submission_time": "2026-03-09T10:00:00", "_id": "999001"})
    files["uuid_duplicate.csv"] = to_csv(header, [later, *small])

    # --- settlement boundaries
    names = [("JK01", "Alpha"), ("JK02", "Bravo"), ("JK03", "Charlie")]
    files["boundaries_no_settlement_id.geojson"] = polygon_features(
        [{"id": i, "name": n} for i, n in names])
    files["boundaries_duplicate_ids.geojson"] = polygon_features(
        [{"settlement_id": i, "name": n} for i, n in [*names[:2], ("JK02", "Bravo East")]])
    files["boundaries_no_crs.gpkg"] = geopackage_without_crs(names)
    for ext, data in shapefile(names).items():
        files[f"boundaries_shapefile_no_prj.{ext}"] = data

    # --- XLSForms
    hh = [["begin group", "household", "Household", "", ""],
          ["integer", "hh_size", "Persons", "yes", ". >= 1 and . <= 30"]]
    files["form_no_survey_sheet.xlsx"] = xlsform("questions", [
        ["select_one yes_no", "consent", "Consent", "yes", ""], *hh,
        ["end group", "", "", "", ""]])
    files["form_undefined_list.xlsx"] = xlsform("survey", [
        ["select_one yes_no", "consent", "Consent", "yes", ""], *hh,
        ["end group", "", "", "", ""],
        ["select_one water_src", "water_source", "Main drinking water", "", ""]])
    files["form_unclosed_group.xlsx"] = xlsform("survey", [
        ["select_one yes_no", "consent", "Consent", "yes", ""], *hh,
        ["select_one water_source", "water_source", "Main drinking water", "", ""]])
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write (default: here)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in build().items():
        (args.out / name).write_bytes(data)


if __name__ == "__main__":
    main()
