"""Make the sample city's second enumeration: the same city two years on, with known changes.

A Community Upgrading Fund is judged by what changed where it was spent (issue 22, CONTRACT.md
§6). This script writes a second round of the sample enumeration in which the changes are
planted, so that ``profiling compare`` can be checked against them:

- every export of the first round is rewritten in its own format (the Kobo CSV, the Kobo XLSX
  with its ``members`` sheet, the ODK Central CSV), each row two years later (``2026-`` becomes
  ``2028-`` in every interview and submission time), with a new submission key (a UUID made from
  the old one, so that a household exported twice is still one household);
- **toilets** in the settlements of :data:`TOILETS`: every household there now has a flush
  toilet to the sewer that it does not share;
- **water points** in the settlements of :data:`WATER`: a household that drank from an
  unprotected well or spring or from surface water now uses a public tap, 10 minutes away;
- **departures**: :data:`DEPARTED` of the structures, drawn at random, are gone (every row of
  their households is left out);
- **arrivals**: :data:`ARRIVALS` new households in new structures (copies of households of the
  first Kobo export, with a structure id of their own);
- **one shared structure id**: in :data:`SHARED_IN`, one household is given the structure id of
  another, so that the id holds two households and matches neither;
- **re-visits with the same form**: in :data:`SAME_FORM_IN`, :data:`SAME_FORM` households keep
  their first round's submission key and have no structure id written: they are matched on
  the key.

The settlement of a row is found from its GPS point (the polygon that covers it; on a shared
boundary, the lowest ``settlement_id``). Nothing else changes: the first round's planted faults
(refusals, invalid values, rows without a location) are still there.

Run: ``python sample_data/second_round.py OUT_DIR [--seed N]``. It writes ``OUT_DIR/exports/``,
``OUT_DIR/round2.yaml`` (the demo configuration with these exports, its outputs in
``OUT_DIR/out``) and ``OUT_DIR/planted_changes.json`` (each planted change and the rows it
touched: file, row, round-two key). Seeded: the same bytes on every run with the same seed.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import uuid
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import yaml
from shapely import points

HERE = Path(__file__).resolve().parent
DEMO = HERE.parent / "configs" / "demo.yaml"
SEED = 2028
TOILETS = ("JK03", "JK08", "JK14")
WATER = ("JK09", "JK30")
UNPROTECTED = {"unprotected_well", "unprotected_spring", "surface_water"}
DEPARTED = 0.05
ARRIVALS = 40
SHARED_IN = "JK10"
SAME_FORM_IN = "JK12"
SAME_FORM = 6
NAMESPACE = uuid.UUID("5b0f3c1e-7d1a-4c55-9a43-2028a0000000")


def new_key(old: str) -> str:
    """The round-two key of a round-one submission key (``uuid:`` kept where it was)."""
    prefix = "uuid:" if old.startswith("uuid:") else ""
    return prefix + str(uuid.uuid5(NAMESPACE, old.removeprefix("uuid:")))


def later(value: object) -> object:
    """A time two years on; anything else (blank, not a date) as it was."""
    return "2028-" + value[5:] if isinstance(value, str) and value.startswith("2026-") else value


class Layout:
    """Where one export keeps what this script changes."""

    def __init__(self, kind: str) -> None:
        g = {"kobo_csv": "/", "xlsx": "", "odk": "-"}[kind]

        def col(group: str, name: str) -> str:
            return f"{group}{g}{name}" if g else name

        self.kind = kind
        self.keys = ["meta-instanceID", "KEY"] if kind == "odk" else ["_uuid"]
        self.times = (["SubmissionDate", "start", "end"] if kind == "odk"
                      else ["start", "end", "_submission_time"])
        self.lat, self.lon = (("gps-Latitude", "gps-Longitude") if kind == "odk"
                              else ("_gps_latitude", "_gps_longitude"))
        self.toilet, self.shared, self.households = (
            col("sanitation", "toilet_type"), col("sanitation", "toilet_shared"),
            col("sanitation", "toilet_households"))
        self.water, self.minutes = col("water", "water_source"), col("water", "water_minutes")


def read(path: Path) -> tuple[pd.DataFrame, Layout]:
    if path.suffix == ".xlsx":
        ws = openpyxl.load_workbook(path)["enumeration"]
        rows = list(ws.iter_rows(values_only=True))
        frame = pd.DataFrame(rows[1:], columns=rows[0], dtype=object)
        return frame, Layout("xlsx")
    kind = "kobo_csv" if path.name.startswith("kobo") else "odk"
    frame = pd.read_csv(path, sep=";" if kind == "kobo_csv" else ",", dtype=str,
                        keep_default_na=False)
    return frame, Layout(kind)


def settlement_of(frame: pd.DataFrame, lay: Layout, shapes: gpd.GeoDataFrame) -> np.ndarray:
    """Each row's settlement by its point (None without a usable one)."""
    lat = pd.to_numeric(frame[lay.lat], errors="coerce").to_numpy(dtype=float)
    lon = pd.to_numeric(frame[lay.lon], errors="coerce").to_numpy(dtype=float)
    out = np.full(len(frame), None, dtype=object)
    pts = points(lon, lat)
    # lowest id first, so that a point on a shared boundary goes to the lowest
    for sid, geom in sorted(zip(shapes["settlement_id"], shapes.geometry, strict=True),
                            reverse=True):
        out[np.asarray(geom.covers(pts)) & np.isfinite(lat) & np.isfinite(lon)] = sid
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    raw = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    shapes = gpd.read_file((DEMO.parent / raw["boundaries"]).resolve())
    sources = [(DEMO.parent / s).resolve() for s in raw["surveys"]]
    frames = [(p, *read(p)) for p in sources]
    planted: dict[str, list[dict[str, object]]] = {
        "toilets": [], "water": [], "departed": [], "arrivals": [], "shared_structure_id": [],
        "same_form": []}

    # the structures that are gone, and the households re-visited with the same form
    sids = sorted({str(s) for _, f, _ in frames for s in f["structure_id"] if s})
    gone = set(rng.choice(sids, size=round(DEPARTED * len(sids)), replace=False).tolist())
    placed = {p: settlement_of(f, lay, shapes) for p, f, lay in frames}
    in_same = sorted({str(s) for p, f, _ in frames for s, at in zip(
        f["structure_id"], placed[p], strict=True) if at == SAME_FORM_IN and s
        and s not in gone})
    same_form = set(rng.choice(in_same, size=SAME_FORM, replace=False).tolist())
    in_shared = sorted({str(s) for p, f, _ in frames for s, at in zip(
        f["structure_id"], placed[p], strict=True) if at == SHARED_IN and s
        and s not in gone and s not in same_form})
    giver, taker = (str(x) for x in rng.choice(in_shared, size=2, replace=False))

    out = args.out_dir.resolve()
    (out / "exports").mkdir(parents=True, exist_ok=True)
    written = []
    for path, frame, lay in frames:
        at = placed[path]
        sid = frame["structure_id"].astype(object)
        drop = sid.isin(gone).to_numpy()
        for r in np.flatnonzero(drop):
            planted["departed"].append({"file": path.name, "row": int(r) + 2,
                                        "structure_id": str(sid.iloc[r])})
        keep_key = sid.isin(same_form).to_numpy()
        for key in lay.keys:
            frame[key] = [k if keep or not k else new_key(str(k))
                          for k, keep in zip(frame[key], keep_key, strict=True)]
        for t in lay.times:
            frame[t] = frame[t].map(later)
        blank = "" if lay.kind != "xlsx" else None
        frame.loc[keep_key, "structure_id"] = blank
        frame.loc[(sid == taker).to_numpy(), "structure_id"] = giver
        toilets = np.isin(at.astype(str), TOILETS) & ~drop
        frame.loc[toilets, lay.toilet] = "flush_sewer"
        frame.loc[toilets, lay.shared] = "no"
        frame.loc[toilets, lay.households] = blank
        water = (np.isin(at.astype(str), WATER) & frame[lay.water].isin(UNPROTECTED).to_numpy()
                 & ~drop)
        frame.loc[water, lay.water] = "public_tap"
        frame.loc[water, lay.minutes] = "10" if lay.kind != "xlsx" else 10
        key0 = lay.keys[0]
        for name, mask in (("toilets", toilets), ("water", water),
                           ("same_form", keep_key & ~drop),
                           ("shared_structure_id", (sid == taker).to_numpy() & ~drop)):
            for r in np.flatnonzero(mask):
                planted[name].append({"file": path.name, "row": int(r) + 2,
                                      "key": str(frame[key0].iloc[r]),
                                      "settlement_id": at[r]})
        kept = frame.loc[~drop]
        if lay.kind == "kobo_csv":  # the arrivals: new households in new structures
            somewhere = np.array([a is not None for a in at])
            pick = rng.choice(np.flatnonzero(~drop & ~keep_key & somewhere), size=ARRIVALS,
                              replace=False)
            extra = frame.iloc[np.sort(pick)].copy()
            extra[key0] = [new_key("arrival:" + str(k)) for k in extra[key0]]
            extra["structure_id"] = [f"{s}-N" for s in extra["structure_id"]]
            extra["_id"] = [str(900000 + i) for i in range(len(extra))]
            extra["_index"] = [str(len(frame) + 1 + i) for i in range(len(extra))]
            for i, (k, s) in enumerate(zip(extra[key0], at[np.sort(pick)], strict=True)):
                planted["arrivals"].append({"file": path.name, "row": len(kept) + 2 + i,
                                            "key": str(k), "settlement_id": s})
            kept = pd.concat([kept, extra], ignore_index=True)
        dst = out / "exports" / path.name.replace("2026", "2028").replace("day", "r2_day")
        if lay.kind == "xlsx":
            wb = openpyxl.load_workbook(path)
            ws = wb["enumeration"]
            ws.delete_rows(2, ws.max_row)
            for row in kept.itertuples(index=False):
                ws.append([None if isinstance(v, float) and np.isnan(v) else v for v in row])
            members = wb["members"]
            head = [c.value for c in members[1]]
            link = head.index("_submission__uuid")
            for row in members.iter_rows(min_row=2):
                cell = row[link]
                if cell.value and str(cell.value) not in {
                        str(k) for k in frame.loc[keep_key, key0]}:
                    cell.value = new_key(str(cell.value))
            wb.save(dst)
        elif lay.kind == "kobo_csv":
            kept.to_csv(dst, sep=";", index=False, quoting=csv.QUOTE_ALL)
        else:
            kept.to_csv(dst, sep=",", index=False)
        written.append(dst)
    planted["shared_structure_id"].insert(0, {"structure_id": giver, "taker": taker})

    cfg = dict(raw)
    cfg["surveys"] = [str(p) for p in written]
    for key in ("form", "boundaries"):
        cfg[key] = str((DEMO.parent / raw[key]).resolve())
    cfg["hazards"] = [{**h, "path": str((DEMO.parent / h["path"]).resolve())}
                      for h in raw["hazards"]]
    cfg["cuf"] = {**raw["cuf"],
                  "interventions": str((DEMO.parent / raw["cuf"]["interventions"]).resolve())}
    cfg["output_dir"] = str(out / "out")
    cfg["map"] = {**raw.get("map", {}), "title": "Central Jakarta, sample city, second round "
                                                 "(generated enumeration)"}
    (out / "round2.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False),
                                     encoding="utf-8")
    (out / "planted_changes.json").write_text(json.dumps(
        {"seed": args.seed, "toilets_in": list(TOILETS), "water_in": list(WATER),
         "shared_in": SHARED_IN, "same_form_in": SAME_FORM_IN, **planted}, indent=1),
        encoding="utf-8")
    print(f"second round in {out}: {len(written)} exports; {len(gone)} structures gone, "
          f"{ARRIVALS} arrivals; round2.yaml and planted_changes.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
