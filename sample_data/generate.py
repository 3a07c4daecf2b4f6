"""Generate the sample city: settlements, a flood-depth raster, the form and three exports.

The 31 settlement polygons are real (Jakarta RW units from InaSAFE's test data, see README.md).
Everything else is GENERATED here from a fixed seed: the flood-depth raster, ~3,000 synthetic
households of the reference questionnaire (CONTRACT.md §1) with planted faults, and three
overlapping exports (KoboToolbox CSV, KoboToolbox XLSX, ODK Central CSV), each with its household
roster in its own layout (a Kobo repeat CSV, a ``members`` sheet, ODK Central's CSV zip, which
also holds the ODK CSV). No real household data.

Run: ``/tmp/venv/bin/python sample_data/generate.py``. Same bytes on every run.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import rasterio
from openpyxl import Workbook
from pyproj import Transformer
from rasterio.transform import Affine
from shapely import contains_xy, points, unary_union

from profiling.form import reference_form, write_xlsform

SEED = 20260302
HERE = Path(__file__).resolve().parent
SOURCE = Path("/work/shared/data/inasafe_jakarta/hazard/flood_multipart_polygons.shp")
N_HOUSEHOLDS = 3000
SMALL = "JK01"  # the one settlement with exactly 3 households
JKT = timezone(timedelta(hours=7))
DAYS = [datetime(2026, 3, d, tzinfo=JKT) for d in (2, 3, 4, 5, 6, 9, 10, 11, 12, 13)]
CSV_UNTIL = DAYS[3] + timedelta(hours=21)  # kobo_day1-4: downloaded the evening of day 4
XLSX_FROM, XLSX_UNTIL = DAYS[2], DAYS[6] + timedelta(hours=21)  # kobo_day3-7
ODK_FROM = DAYS[5] + timedelta(hours=18)  # odk_day6-10
FAULTS = {"no_consent": 30, "latlon_swapped": 5, "gps_missing": 4, "gps_zero": 3,
          "hh_size_invalid": 6, "invalid_choice": 10, "rooms_out_of_range": 5, "far_away": 4,
          "outside_settlement": 6}
REJECTING = ("latlon_swapped", "gps_missing", "gps_zero", "hh_size_invalid", "far_away")
BAD_HH_SIZE = [0, 45, "abc", None, 31, "two"]
BAD_ROOMS = [0, 25, 99, -1, 21]
BAD_CHOICES = [("water/water_source", "piped"), ("sanitation/toilet_type", "flush_septik"),
               ("energy/electricity", "grid"), ("housing/wall_material", "brick"),
               ("hygiene/handwashing", "soap"), ("waste/waste_disposal", "collected"),
               ("household/hh_head_sex", "f"), ("housing/roof_material", "zinc"),
               ("housing/floor_material", "ceramic"), ("tenure/tenure_status", "owner")]
N_RESUBMITTED, N_MISREPORTED = 30, 60
FORM = reference_form()
TO_UTM = Transformer.from_crs(4326, 32748, always_xy=True)
TO_WGS = Transformer.from_crs(32748, 4326, always_xy=True)


def load_settlements(rng: np.random.Generator) -> gpd.GeoDataFrame:
    """The 31 RW polygons with ids JK01..JK31 (by OBJECTID) and a poverty score ``p``."""
    src = gpd.read_file(SOURCE, engine="pyogrio").sort_values("OBJECTID").reset_index(drop=True)
    names = [f"{k.title()} {rw}" for k, rw in zip(src.KEL_NAME, src.RW, strict=True)]
    for n in {n for n in names if names.count(n) > 1}:  # e.g. two Kebon Kacang RW 07
        for suffix, i in zip("abcdef", [i for i, m in enumerate(names) if m == n], strict=False):
            names[i] = f"{n}{suffix}"
    area_ha = src.to_crs(32748).area.to_numpy() / 1e4
    residential_ha = np.minimum(area_ha, 30 + 0.25 * (area_ha - 30))  # big RWs: parks, offices
    prone = (src.FLOODPRONE == "YES").to_numpy()
    p = np.where(prone, rng.uniform(0.45, 0.9, len(src)), rng.uniform(0.05, 0.4, len(src)))
    density = 100 + 600 * p + rng.normal(0, 30, len(src))  # persons per hectare
    return gpd.GeoDataFrame({
        "settlement_id": [f"JK{i + 1:02d}" for i in range(len(src))],
        "name": names,
        "ward": [k.title() for k in src.KEC_NAME],
        "population_estimate": np.round(residential_ha * density, -1).astype("int64"),
        "recognition_status": np.where(p > 0.7, "unrecognised", "recognised"),
        "p": p, "prone": prone, "residential_ha": residential_ha,
    }, geometry=src.geometry, crs="EPSG:4326")


def write_flood(path: Path, rng: np.random.Generator, sett: gpd.GeoDataFrame):
    """Write a smooth depth field (m) on a 10 m UTM 48S grid: basins, a river, lower north."""
    x0, y0, x1, y1 = sett.to_crs(32748).total_bounds
    x0, y0 = np.floor((x0 - 300) / 10) * 10, np.floor((y0 - 300) / 10) * 10
    x1, y1 = np.ceil((x1 + 300) / 10) * 10, np.ceil((y1 + 300) / 10) * 10
    xs, ys = np.meshgrid(np.arange(x0 + 5, x1, 10), np.arange(y1 - 5, y0, -10))
    ground = 6.0 + 2.5 * (y1 - ys) / (y1 - y0)  # the city slopes down towards the bay
    for _ in range(12):  # gentle relief from random plane waves
        k, a = 2 * np.pi / rng.uniform(400, 1500), rng.uniform(0, np.pi)
        ground += 0.25 * np.sin(k * (xs * np.cos(a) + ys * np.sin(a)) + rng.uniform(0, 6.3))
    river_x = 700650 + 140 * np.sin(2 * np.pi * (ys - y0) / 900 + rng.uniform(0, 6.3))
    ground -= 3.0 * np.exp(-(((xs - river_x) / 70) ** 2))
    centroids = sett[sett.prone].to_crs(32748).centroid
    for cx, cy in zip(centroids.x, centroids.y, strict=True):  # a basin in each flood-prone RW
        r2 = (xs - cx) ** 2 + (ys - cy) ** 2
        ground -= rng.uniform(1.0, 2.2) * np.exp(-r2 / (2 * rng.uniform(110, 200) ** 2))
    depth = np.round(2.6 * np.tanh(np.clip(6.5 - ground, 0, None) / 2.6), 2).astype("float32")
    depth[:, :20] = -9999.0  # outside the modelled extent
    transform = Affine(10, 0, x0, 0, -10, y1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=depth.shape[1], height=depth.shape[0],
                       count=1, dtype="float32", crs="EPSG:32748", transform=transform,
                       nodata=-9999.0, compress="deflate", predictor=3, tiled=True,
                       blockxsize=256, blockysize=256) as dst:
        dst.write(depth, 1)
    return depth, transform


def allocate(area: np.ndarray, ids: list[str]) -> np.ndarray:
    """Households per settlement: ~proportional to (residential) area, >= 8, 3 in SMALL."""
    n = np.maximum(8, np.round(area / area.sum() * N_HOUSEHOLDS)).astype(int)
    n[ids.index(SMALL)] = 3
    n[np.argmax(area)] += N_HOUSEHOLDS - n.sum()  # the rounding goes to the largest
    return n


def sample_in(geom, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform (lon, lat) points inside ``geom``, kept ~0.5 m clear of its boundary."""
    inner = geom.buffer(-5e-6)
    x0, y0, x1, y1 = inner.bounds
    out = np.empty((0, 2))
    while len(out) < n:
        cand = rng.uniform((x0, y0), (x1, y1), size=(4 * n + 20, 2))
        out = np.vstack([out, cand[contains_xy(inner, cand[:, 0], cand[:, 1])]])
    return np.round(out[:n], 7)


def pick(rng, n, weights: dict[str, float]) -> np.ndarray:
    """``n`` draws of the keys of ``weights`` (normalised)."""
    w = np.clip(np.array(list(weights.values()), dtype=float), 0, None)
    return rng.choice(list(weights), size=n, p=w / w.sum())


TENURE_DOCS = {"owner_titled": ["title_deed", "title_deed sale_agreement"],
               "owner_documented": ["sale_agreement", "allotment_letter",
                                    "allotment_letter sale_agreement"],
               "owner_undocumented": ["none"], "tenant_contract": ["lease", "lease rent_receipt"],
               "tenant_informal": ["rent_receipt", "none"], "occupant_no_permission": ["none"],
               "customary": ["customary_certificate", "none"], "other": ["none"]}
NEEDS = FORM.choice_names("priorities/priority_needs")
MATERIALS = {  # P(durable) = base - slope * p, then durable and non-durable choice weights
    "housing/wall_material": (0.97, 0.55, {"concrete_block": 3, "brick_fired": 4, "stone": 0.1,
                                           "cement_plastered": 3},
                              {"wood_planks": 4, "iron_sheet": 2, "cardboard_plastic": 1,
                               "mud_brick": 0.3, "other": 0.3}),
    "housing/roof_material": (0.98, 0.3, {"tiles": 4, "asbestos": 3, "iron_sheet": 2,
                                          "concrete": 1},
                              {"plastic_sheet": 3, "thatch": 0.5, "other": 1}),
    "housing/floor_material": (0.97, 0.3, {"cement": 5, "tiles": 4, "wood": 1},
                               {"earth": 5, "other": 1}),
}


def draw_answers(rng, p: float, prone: bool, depth: np.ndarray) -> list[dict]:
    """Answers of ``len(depth)`` households of a settlement with poverty score ``p``."""
    n = len(depth)
    a: dict[str, np.ndarray] = {
        "household/hh_size": np.minimum(30, 1 + rng.poisson(2.6 + 1.4 * p, n)),
        "household/hh_head_sex": pick(rng, n, {"female": 0.18 + 0.1 * p, "male": 0.8 - 0.1 * p}),
        "household/rooms_sleeping": np.minimum(20, 1 + rng.poisson(1.6 - 1.2 * p, n)),
        "tenure/tenure_status": pick(rng, n, {
            "owner_titled": 0.45 - 0.4 * p, "owner_documented": 0.15, "owner_undocumented": 0.3 * p,
            "tenant_contract": 0.2 - 0.15 * p, "tenant_informal": 0.1 + 0.3 * p,
            "occupant_no_permission": 0.2 * p - 0.05, "customary": 0.01, "other": 0.01}),
        "water/water_source": np.where(rng.random(n) < 0.9 - 0.75 * p, pick(rng, n, {
            "piped_dwelling": 0.6, "piped_yard": 0.2, "piped_neighbour": 0.2}), pick(rng, n, {
            "public_tap": 3, "water_kiosk": 3, "borehole": 2, "protected_well": 2, "bottled": 2,
            "unprotected_well": 3 * p, "cart_small_tank": 1 + 2 * p, "tanker_truck": 0.3,
            "sachet": 0.3, "rainwater": 0.2, "protected_spring": 0.05,
            "unprotected_spring": 0.05, "surface_water": 0.6 * p})),
        "water/water_sufficient": pick(rng, n, {"yes": 0.92 - 0.45 * p, "no": 0.08 + 0.45 * p}),
        "sanitation/toilet_type": pick(rng, n, {
            "flush_septic": 6, "flush_sewer": 0.5 * (1 - p), "flush_pit": 1, "flush_unknown": 0.5,
            "pit_slab": 0.4, "vip_latrine": 0.1, "composting": 0.05, "flush_open_drain": 3 * p,
            "hanging_latrine": 1.5 * p, "pit_no_slab": 0.5 * p, "bucket": 0.2 * p,
            "no_facility": 0.4 * p}),
        "hygiene/handwashing": pick(rng, n, {"water_and_soap": 0.9 - 0.5 * p,
                                             "water_only": 0.08 + 0.35 * p,
                                             "none": 0.02 + 0.15 * p}),
        "waste/waste_disposal": pick(rng, n, {
            "collected_door": 0.6 - 0.4 * p, "collected_point": 0.3 - 0.1 * p, "burned": 0.1 * p,
            "buried": 0.03 * p, "dumped_open": 0.15 * p, "dumped_drain": 0.25 * p + 0.02 * prone,
            "other": 0.02}),
        "energy/electricity": pick(rng, n, {
            "grid_metered": 0.9 - 0.5 * p, "grid_shared": 0.07 + 0.3 * p,
            "grid_informal": 0.02 + 0.18 * p, "solar": 0.005, "generator": 0.005,
            "none": 0.02 * p}),
    }
    for field, (base, slope, good, bad) in MATERIALS.items():  # durable or not, then which
        durable = rng.random(n) < base - slope * p
        a[field] = np.where(durable, pick(rng, n, good), pick(rng, n, bad))
    p_flood = np.select([np.isnan(depth), depth >= 0.15, depth > 0], [0.2, 0.85, 0.4], 0.08)
    a["hazards/flooded_past_year"] = np.where(rng.random(n) < p_flood, "yes", "no")
    at_home = np.isin(a["water/water_source"], ["piped_dwelling", "piped_yard", "bottled"])
    a["water/water_minutes"] = np.where(at_home, 0, np.minimum(
        600, 1 + np.round(rng.gamma(2.0, 6 + 25 * p, n)))).astype(int)
    shared = (rng.random(n) < 0.08 + 0.6 * p) & (a["sanitation/toilet_type"] != "no_facility")
    a["sanitation/toilet_shared"] = np.where(shared, "yes", "no")
    t_hh = np.minimum(200, 1 + rng.geometric(1 / (3 + 15 * p), n))
    fear = {"yes": 0.05 + 0.5 * p, "no": 0.85 - 0.5 * p, "dont_know": 0.1}
    need_w = np.array([1 + 3 * p, 1 + 3 * p, 1 + 4 * prone, 1 + p, 0.3, 1, 0.8, 1, 0.6,
                       0.5 + 2 * p, 0.3 + 2 * p])
    rows = []
    for i in range(n):
        row = {k: v[i].item() for k, v in a.items()}
        row["sanitation/toilet_households"] = int(t_hh[i]) if shared[i] else None
        docs = TENURE_DOCS[row["tenure/tenure_status"]]
        row["tenure/tenure_documents"] = docs[rng.integers(len(docs))]
        f = dict(fear, yes=fear["yes"] + 0.2 * (row["tenure/tenure_documents"] == "none"))
        row["tenure/eviction_fear"] = str(pick(rng, 1, f)[0])
        chosen = rng.choice(len(NEEDS), rng.integers(1, 4), replace=False, p=need_w / need_w.sum())
        row["priorities/priority_needs"] = " ".join(NEEDS[j] for j in sorted(chosen))
        rows.append(row)
    return rows


def point_near(rng, centre, union_utm, lo: float, hi: float) -> tuple[float, float]:
    """A (lon, lat) point whose distance to every settlement is between ``lo`` and ``hi`` m."""
    while True:
        ang, r = rng.uniform(0, 2 * np.pi), rng.uniform(0, hi + 1800)
        x, y = centre[0] + r * np.cos(ang), centre[1] + r * np.sin(ang)
        if lo <= union_utm.distance(points(x, y)) <= hi:
            lon, lat = TO_WGS.transform(x, y)
            return round(lon, 7), round(lat, 7)


def hours(rng, lo: float, hi: float) -> timedelta:
    """A random duration between ``lo`` and ``hi`` hours, to the millisecond."""
    return timedelta(milliseconds=int(rng.integers(lo * 3600e3, hi * 3600e3)))


def build(rng, sett: gpd.GeoDataFrame, depth, transform) -> list[dict]:
    """All households in submission order, each ``{key, id, sub, sid, answers}``."""
    ids = list(sett.settlement_id)
    counts = allocate(sett.residential_ha.to_numpy(), ids)
    enum_codes = [f"ENUM{i:02d}" for i in range(1, 13)]
    hh = []
    for i, s in enumerate(ids):
        n = counts[i]
        xy = sample_in(sett.geometry[i], n, rng)
        ux, uy = TO_UTM.transform(xy[:, 0], xy[:, 1])
        col, row = (ux - transform.c) // transform.a, (uy - transform.f) // transform.e
        d = depth[row.astype(int), col.astype(int)].astype(float)
        d[d < 0] = np.nan
        team = [enum_codes[(2 * i + k) % 12] for k in range(2 + (n > 200))]
        structures = np.sort(rng.choice(np.arange(1, 3 * n + 10), n, replace=False))
        for k, ans in enumerate(draw_answers(rng, sett.p[i], bool(sett.prone[i]), d)):
            start = DAYS[rng.integers(10)] + hours(rng, 8, 16.5)
            end = start + hours(rng, 0.25, 0.75)
            sub = end + hours(rng, 2, 24)
            enum = team[rng.integers(len(team))] if rng.random() < 0.9 else rng.choice(enum_codes)
            gps = (xy[k, 1], xy[k, 0], round(rng.uniform(5, 15), 1), round(rng.uniform(3, 25), 1))
            hh.append({"key": str(uuid.UUID(bytes=rng.bytes(16), version=4)), "sub": sub,
                       "sid": s, "answers": {
                           "start": start.isoformat(timespec="milliseconds"),
                           "end": end.isoformat(timespec="milliseconds"), "enumerator": str(enum),
                           "consent": "yes", "settlement_reported": s,
                           "structure_id": f"{s}-{structures[k]:04d}", "gps": gps, **ans}})
    hh.sort(key=lambda h: (h["sub"], h["key"]))
    for i, h in enumerate(hh, start=1):
        h["id"] = 418000 + i
        h["answers"].update(respondent_name=f"Sample Respondent {i:04d}",
                            phone=f"+62 811 {i // 10000:04d} {i % 10000:04d}",
                            national_id=f"3171{i:012d}")
    return hh


def plant_faults(rng, hh: list[dict], sett, union_utm) -> tuple[list[list], set[int]]:
    """Plant the documented faults on distinct households; return the planted_faults rows."""
    big = {s for s in sett.settlement_id if sum(h["sid"] == s for h in hh) >= 20}
    pool = [i for i, h in enumerate(hh) if h["sid"] in big]  # SMALL is never touched
    chosen = rng.choice(pool, sum(FAULTS.values()) + N_MISREPORTED, replace=False).tolist()
    todo = iter(chosen)
    utm = sett.to_crs(32748).set_index("settlement_id").geometry
    rows = []
    for fault, count in FAULTS.items():
        for j in range(count):
            h = hh[next(todo)]
            a = h["answers"]
            lat, lon, alt, acc = a["gps"]
            field, value = "gps", None
            if fault == "no_consent":  # a refusal ends the form: nothing else is answered
                h["answers"] = {k: v if k in ("start", "end", "enumerator") else None
                                for k, v in a.items()} | {"consent": "no"}
                field, value = "consent", "no"
            elif fault in ("hh_size_invalid", "rooms_out_of_range", "invalid_choice"):
                field, value = {"hh_size_invalid": ("household/hh_size", BAD_HH_SIZE),
                                "rooms_out_of_range": ("household/rooms_sleeping", BAD_ROOMS),
                                "invalid_choice": BAD_CHOICES[j]}[fault]
                a[field] = value = value[j] if isinstance(value, list) else value
            elif fault in ("far_away", "outside_settlement"):
                lo, hi = (3000, 8000) if fault == "far_away" else (100, 600)
                c = utm[h["sid"]].centroid
                lon, lat = point_near(rng, (c.x, c.y), union_utm, lo, hi)
                a["gps"] = (lat, lon, alt, acc)
                dist = union_utm.distance(points(*TO_UTM.transform(lon, lat)))
                value = f"{dist:.0f} m from the nearest settlement"
            else:
                a["gps"] = {"latlon_swapped": (lon, lat, alt, acc), "gps_missing": None,
                            "gps_zero": (0.0, 0.0, 0.0, 0.0)}[fault]
                value = a["gps"] and f"{a['gps'][0]} {a['gps'][1]}"
            rows.append([h["key"], fault, field, "empty" if value is None else value])
    for i in todo:  # what is left: households reporting a neighbouring settlement
        h = hh[i]
        near = [t for t, g in utm.items() if t != h["sid"] and g.distance(utm[h["sid"]]) < 50]
        h["answers"]["settlement_reported"] = other = near[rng.integers(len(near))]
        rows.append([h["key"], "settlement_reported_neighbour", "settlement_reported",
                     f"in {h['sid']}, reported {other}"])
    return rows, set(chosen)


def resubmit(rng, hh: list[dict], faulty: set[int]) -> tuple[dict, list[list]]:
    """Newer versions (seen only in the XLSX) of households in the CSV/XLSX overlap."""
    pool = [i for i, h in enumerate(hh) if XLSX_FROM <= h["sub"] <= CSV_UNTIL
            and i not in faulty and h["sid"] != SMALL]
    newer, rows = {}, []
    for i in sorted(rng.choice(pool, N_RESUBMITTED, replace=False).tolist()):
        h = dict(hh[i], answers=dict(hh[i]["answers"]))
        h["sub"] = CSV_UNTIL + hours(rng, 1, 60)
        minutes = h["answers"]["water/water_minutes"]
        field = "water/water_minutes" if i % 2 and minutes else "household/hh_size"
        old = h["answers"][field]
        h["answers"][field] = old + 10 if field == "water/water_minutes" else old + 1
        newer[h["key"]] = h
        rows.append([h["key"], "resubmitted", field, f"{old} -> {h['answers'][field]}"])
    return newer, rows


def columns(style: str) -> list[tuple[str, str, str | None]]:
    """Export columns as (header, field, part): part is a geopoint index or a choice name."""
    out = []
    for name, q in FORM.questions.items():
        head = name.rsplit("/", 1)[-1] if style == "kobo_xlsx" else name
        head = head.replace("/", "-") if style == "odk" else head
        if q.type == "geopoint":
            parts = (["gps-Latitude", "gps-Longitude", "gps-Altitude", "gps-Accuracy"]
                     if style == "odk" else
                     ["_gps_latitude", "_gps_longitude", "_gps_altitude", "_gps_precision"])
            out += [(head, name, None)] if style == "kobo_csv" else []
            out += [(pt, name, str(k)) for k, pt in enumerate(parts)]
            continue
        out.append((head, name, None))
        if q.type == "select_multiple" and style != "odk":
            out += [(f"{head}/{c}", name, c) for c in FORM.choice_names(name)]
    return out


def cell(h: dict, field: str, part: str | None):
    """One answer as a Python value (``None`` = empty)."""
    v = h["answers"][field]
    if v is None or part is None:
        return " ".join(str(x) for x in v) if field == "gps" and v else v
    return v[int(part)] if field == "gps" else int(part in v.split())


def export_rows(hh: list[dict], style: str) -> tuple[list[str], list[list]]:
    """Header and rows of one export (``kobo_csv``, ``kobo_xlsx`` or ``odk``)."""
    cols = columns(style)
    if style == "odk":
        head = ["SubmissionDate", *[c[0] for c in cols], "meta-instanceID", "KEY", "SubmitterID",
                "SubmitterName", "AttachmentsPresent", "AttachmentsExpected", "Status",
                "ReviewState", "Edits", "FormVersion"]
    else:
        head = [*[c[0] for c in cols], "_id", "_uuid", "_submission_time", "_validation_status",
                "_status", "_index"]
    rows = []
    for idx, h in enumerate(hh, start=1):
        answers = [cell(h, f, pt) for _, f, pt in cols]
        utc = h["sub"].astimezone(UTC)
        if style == "odk":
            key, sub = f"uuid:{h['key']}", utc.isoformat(timespec="milliseconds")[:-6] + "Z"
            submitter = 100 + int(h["answers"]["enumerator"][4:])
            rows.append([sub, *answers, key, key, submitter, "collector", 0, 0, None, None, 0, "1"])
        else:
            rows.append([*answers, h["id"], h["key"], utc.strftime("%Y-%m-%dT%H:%M:%S"), None,
                         "submitted_via_web", idx])
    return head, rows


DOCUMENTED = {"title_deed", "lease", "allotment_letter", "sale_agreement", "customary_certificate"}
MEMBER_FIELDS = ["member_sex", "member_age", "member_relation", "member_on_document",
                 "member_fears_loss"]


def draw_members(hh: list[dict], newer: dict) -> dict[str, list[list]]:
    """Each household's roster (CONTRACT.md §1b): as many persons as its largest version's
    hh_size, a version listing the first hh_size of them. A household whose hh_size is not a
    valid number in some version has no roster (it stays rejected for its size). Drawn from a
    seed of its own, so the households and the exports without a roster keep their bytes."""
    rng = np.random.default_rng(SEED + 1)
    out: dict[str, list[list]] = {}
    for h in hh:
        sizes = [v["answers"]["household/hh_size"] for v in (h, newer.get(h["key"], h))]
        if not all(isinstance(x, int) and 1 <= x <= 30 for x in sizes):
            continue
        a = h["answers"]
        n = max(sizes)
        head_sex = a["household/hh_head_sex"]
        if head_sex not in ("female", "male"):
            head_sex = ("female", "male")[int(rng.integers(2))]
        documented = a["tenure/tenure_documents"] in DOCUMENTED
        fear = a["tenure/eviction_fear"] if a["tenure/eviction_fear"] in (
            "yes", "no", "dont_know") else "dont_know"
        head_age = int(rng.integers(22, 78))
        people = [(head_sex, head_age, "head")]
        if n > 1 and rng.random() < 0.7:
            people.append(("male" if head_sex == "female" else "female",
                           int(np.clip(head_age + rng.integers(-8, 6), 18, 90)), "spouse"))
        while len(people) < n:
            kind = rng.random()
            if kind < 0.75:
                age, rel = int(rng.integers(0, max(1, min(30, head_age - 16)))), "child"
            elif kind < 0.85:
                age, rel = int(rng.integers(max(45, head_age + 18), 96)), "parent"
            elif kind < 0.97:
                age, rel = int(rng.integers(0, 70)), "other_relative"
            else:
                age, rel = int(rng.integers(18, 60)), "non_relative"
            people.append((("female", "male")[int(rng.integers(2))], min(age, 120), rel))
        rows = []
        for sex, age, rel in people:
            if age < 18:
                rows.append([sex, age, rel, None, None])
                continue
            p_doc = {"head": 0.8, "spouse": 0.45}.get(rel, 0.05) if documented else 0.01
            doc = "yes" if rng.random() < p_doc else ("dont_know" if rng.random() < 0.03
                                                      else "no")
            fears = fear if rng.random() < 0.85 else ("yes", "no", "dont_know")[
                int(rng.integers(3))]
            rows.append([sex, age, rel, doc, fears])
        out[h["key"]] = rows
    return out


def member_rows(hh: list[dict], members: dict[str, list[list]], style: str
                ) -> tuple[list[str], list[list]]:
    """The roster of one export's households, in its export's layout: a Kobo repeat CSV or
    sheet (linked by ``_parent_index`` and ``_submission__uuid``), or ODK Central's repeat CSV
    (``PARENT_KEY`` = the submission's ``KEY``)."""
    if style == "odk":
        head = [*MEMBER_FIELDS, "PARENT_KEY", "KEY"]
    else:
        names = (MEMBER_FIELDS if style == "kobo_xlsx"
                 else [f"household/members/{f}" for f in MEMBER_FIELDS])
        head = [*names, "_index", "_parent_table_name", "_parent_index", "_submission__id",
                "_submission__uuid", "_submission__submission_time"]
    rows: list[list] = []
    for idx, h in enumerate(hh, start=1):
        roster = members.get(h["key"], [])[:h["answers"]["household/hh_size"] if h["key"]
                                            in members else 0]
        for j, person in enumerate(roster, start=1):
            if style == "odk":
                key = f"uuid:{h['key']}"
                rows.append([*person, key, f"{key}/household/members[{j}]"])
            else:
                utc = h["sub"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
                rows.append([*person, len(rows) + 1, "enumeration", idx, h["id"], h["key"], utc])
    return head, rows


def write_csv(path: Path, head: list[str], rows: list[list], sep: str = ",", quote=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter=sep, lineterminator="\n", quoting=quote or csv.QUOTE_MINIMAL)
        w.writerows([head, *[["" if v is None else v for v in r] for r in rows]])


def write_xlsx(path: Path, head: list[str], rows: list[list],
               members: tuple[list[str], list[list]] | None = None) -> None:
    wb = Workbook()
    wb.active.title = "enumeration"
    for r in [head, *rows]:
        wb.active.append(r)
    if members is not None:  # Kobo puts each repeat group on a sheet named after it
        sheet = wb.create_sheet("members")
        for r in [members[0], *members[1]]:
            sheet.append(r)
    wb.save(path)
    normalise_xlsx(path)


def write_zip(path: Path, files: dict[str, bytes]) -> None:
    """An ODK Central "CSV zip", with the same bytes on every run."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(2026, 3, 1, 0, 0, 0)), data,
                       compress_type=zipfile.ZIP_DEFLATED)
    path.write_bytes(buf.getvalue())


def normalise_xlsx(path: Path) -> None:
    """Fix the zip timestamps and document dates so an .xlsx has the same bytes on every run."""
    with zipfile.ZipFile(path) as z:
        entries = [(i.filename, z.read(i)) for i in z.infolist()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            if name == "docProps/core.xml":
                data = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b"2026-03-01T00:00:00Z", data)
            z.writestr(zipfile.ZipInfo(name, date_time=(2026, 3, 1, 0, 0, 0)), data,
                       compress_type=zipfile.ZIP_DEFLATED)
    path.write_bytes(buf.getvalue())


def outcome(h: dict, union_utm) -> tuple[str, int]:
    """What CONTRACT.md makes of a household's kept version: its fate and its dropped values."""
    a = h["answers"]
    if a["consent"] == "no":
        return "no_consent", 0
    gps, size = a["gps"], a["household/hh_size"]
    far = gps is None or gps[:2] == (0, 0) or abs(gps[0]) > 90 or abs(gps[1]) > 180
    dist = np.inf if far else union_utm.distance(points(*TO_UTM.transform(gps[1], gps[0])))
    if dist > 1000 or not (isinstance(size, int) and 1 <= size <= 30):
        return "rejected", 0
    dropped = sum(a[f] not in FORM.choice_names(f) for f, q in FORM.questions.items()
                  if q.type == "select_one" and q.list_name != "settlements" and a[f] is not None)
    dropped += not (1 <= a["household/rooms_sleeping"] <= 20)
    return ("outside" if dist > 0 else "accepted"), dropped


def main() -> None:
    rng = np.random.default_rng(SEED)
    sett = load_settlements(rng)
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": "2026-03-01T00:00:00Z"})
    (HERE / "settlements.gpkg").unlink(missing_ok=True)
    cols = ["settlement_id", "name", "ward", "population_estimate", "recognition_status"]
    sett[[*cols, "geometry"]].to_file(HERE / "settlements.gpkg", layer="settlements",
                                      engine="pyogrio")
    depth, transform = write_flood(HERE / "hazards" / "flood_depth.tif", rng, sett)
    form = write_xlsform(HERE / "forms" / "enumeration.xlsx",
                         settlements=list(zip(sett.settlement_id, sett.name, strict=True)))
    normalise_xlsx(form)

    hh = build(rng, sett, depth, transform)
    union_utm = unary_union(sett.to_crs(32748).geometry)
    fault_rows, faulty = plant_faults(rng, hh, sett, union_utm)
    newer, resub_rows = resubmit(rng, hh, faulty)
    csv_hh = [h for h in hh if h["sub"] <= CSV_UNTIL]
    xlsx_hh = [newer.get(h["key"], h) for h in hh if h["sub"] >= XLSX_FROM]
    xlsx_hh = sorted([h for h in xlsx_hh if h["sub"] <= XLSX_UNTIL], key=lambda h: h["sub"])
    odk_hh = [h for h in hh if h["sub"] >= ODK_FROM and h["key"] not in newer]
    files = {"kobo_day1-4.csv": csv_hh, "kobo_day3-7.xlsx": xlsx_hh, "odk_day6-10.csv": odk_hh}
    members = draw_members(hh, newer)
    write_csv(HERE / "exports" / "kobo_day1-4.csv", *export_rows(csv_hh, "kobo_csv"), sep=";",
              quote=csv.QUOTE_ALL)
    write_csv(HERE / "exports" / "kobo_day1-4_members.csv",
              *member_rows(csv_hh, members, "kobo_csv"), sep=";", quote=csv.QUOTE_ALL)
    write_xlsx(HERE / "exports" / "kobo_day3-7.xlsx", *export_rows(xlsx_hh, "kobo_xlsx"),
               members=member_rows(xlsx_hh, members, "kobo_xlsx"))
    write_csv(HERE / "exports" / "odk_day6-10.csv", *export_rows(odk_hh, "odk"))
    roster = HERE / "exports" / "odk_day6-10-members.csv"
    write_csv(roster, *member_rows(odk_hh, members, "odk"))
    write_zip(HERE / "exports" / "odk_day6-10.zip", {
        "odk_day6-10.csv": (HERE / "exports" / "odk_day6-10.csv").read_bytes(),
        "odk_day6-10-members.csv": roster.read_bytes()})
    roster.unlink()
    write_csv(HERE / "planted_faults.csv", ["key", "fault", "field", "detail"],
              fault_rows + resub_rows)

    kept = {h["key"]: h for h in hh} | newer
    fates = [outcome(h, union_utm) for h in kept.values()]
    read = sum(len(v) for v in files.values())
    counts = {"read": read, "accepted": sum(f in ("accepted", "outside") for f, _ in fates),
              "rejected": sum(f == "rejected" for f, _ in fates), "duplicates": read - len(kept),
              "no_consent": sum(f == "no_consent" for f, _ in fates),
              "outside_settlements": sum(f == "outside" for f, _ in fates),
              "values_dropped": sum(d for _, d in fates)}
    # the roster: the kept version of an accepted household keeps its members, every other
    # listed member is dropped with its household version (no member links to nothing)
    def listed(h: dict) -> int:
        return h["answers"]["household/hh_size"] if h["key"] in members else 0

    members_read = sum(listed(h) for v in files.values() for h in v)
    members_kept = sum(listed(h) for h, (f, _) in zip(kept.values(), fates, strict=True)
                       if f in ("accepted", "outside"))
    roster_counts = {"members_read": members_read, "members_kept": members_kept,
                     "members_rejected": 0, "members_dropped": members_read - members_kept}
    planted = {"rejected": sum(FAULTS[f] for f in REJECTING), "no_consent": FAULTS["no_consent"],
               "outside_settlements": FAULTS["outside_settlement"],
               "values_dropped": FAULTS["invalid_choice"] + FAULTS["rooms_out_of_range"]}
    assert planted.items() <= counts.items(), (planted, counts)
    assert set(kept) == {h["key"] for v in files.values() for h in v}  # every household exported
    expected = {"counts": counts, "roster_counts": roster_counts, "households": len(kept),
                "rows_per_file": {k: len(v) for k, v in files.items()},
                "planted": FAULTS | {"resubmitted": N_RESUBMITTED,
                                     "settlement_reported_neighbour": N_MISREPORTED},
                "rejecting_faults": list(REJECTING),
                "households_per_settlement": {s: sum(h["sid"] == s for h in hh)
                                              for s in sett.settlement_id}}
    (HERE / "expected_counts.json").write_text(json.dumps(expected, indent=2) + "\n")
    print(json.dumps({**counts, "rows_per_file": expected["rows_per_file"]}, indent=2))


if __name__ == "__main__":
    main()
