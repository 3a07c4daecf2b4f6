"""The whole pipeline on the sample city, checked against what its generator planted.

``sample_data/generate.py`` records every fault it plants (``planted_faults.csv``) and the
accounting that follows from them (``expected_counts.json``), independently of ingest.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from profiling.config import load_config
from profiling.pipeline import run

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
CHECKER = REPO.parent / "shared" / "tools" / "check_outputs.py"

REJECTED = {"latlon_swapped": "swapped", "gps_missing": "missing", "gps_zero": "0/0",
            "hh_size_invalid": "hh_size", "far_away": "farther than 1000 m"}
DROPPED = {"invalid_choice": "not a choice", "rooms_out_of_range": "constraint"}


SECRET = "sample-city-test-secret-0123456789abcdef"


def pseudonym(key: str) -> str:
    """The keyed hash rejects.csv names a household by (HMAC-SHA256, worked independently)."""
    import hashlib
    import hmac

    return hmac.new(SECRET.encode(), key.encode(), hashlib.sha256).hexdigest()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PROFILING_SECRET", SECRET)
    out = tmp_path_factory.mktemp("demo")
    result = run(load_config(REPO / "configs" / "demo.yaml"), out)
    yield result, out
    mp.undo()


@pytest.fixture(scope="module")
def planted() -> list[dict[str, str]]:
    with (SAMPLE / "planted_faults.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_counts_match_the_generator(demo):
    result, out = demo
    expected = json.loads((SAMPLE / "expected_counts.json").read_text())["counts"]
    assert result.counts == expected
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["counts"] == expected


def test_every_planted_fault_is_found(demo, planted):
    _, out = demo
    rejects = pd.read_csv(out / "rejects.csv", dtype=str)
    by_key = {k: g for k, g in rejects.groupby("household_id")}
    for fault in planted:
        key, kind = pseudonym(fault["key"]), fault["fault"]
        if kind in REJECTED:
            rows = by_key[key]
            assert rows["action"].tolist() == ["row_rejected"], fault
            assert REJECTED[kind] in rows["reason"].iloc[0], fault
        elif kind in DROPPED:
            rows = by_key[key]
            assert rows["action"].tolist() == ["value_dropped"], fault
            assert rows["field"].iloc[0].endswith(fault["field"].rsplit("/", 1)[-1]), fault
            assert DROPPED[kind] in rows["reason"].iloc[0], fault
    assert set(rejects["household_id"]) == {pseudonym(f["key"]) for f in planted
                                            if f["fault"] in REJECTED or f["fault"] in DROPPED}


def test_refusals_and_resubmissions(demo, planted):
    result, _ = demo
    keys = set(result.ingest.households["key"])
    refused = {f["key"] for f in planted if f["fault"] == "no_consent"}
    assert not refused & keys
    assert not refused & set(result.ingest.personal["key"])
    outside = {f["key"] for f in planted if f["fault"] == "outside_settlement"}
    hh = result.ingest.households.set_index("key")
    assert hh.loc[sorted(outside), "settlement_id"].isna().all()
    assert (hh.loc[sorted(outside), "distance_m"].between(0, 1000)).all()


def test_resubmissions_keep_the_newer_answer(demo, planted):
    result, _ = demo
    hh = result.ingest.households.set_index("key")
    resub = [f for f in planted if f["fault"] == "resubmitted"]
    assert len(resub) == 30
    for f in resub:
        field = f["field"].rsplit("/", 1)[-1]
        new = f["detail"].split("->")[-1].strip()
        assert str(hh.loc[f["key"], field]) == new, f


def test_settlement_mismatches_are_flagged(demo, planted):
    result, _ = demo
    hh = result.ingest.households.set_index("key")
    neighbours = {f["key"] for f in planted if f["fault"] == "settlement_reported_neighbour"}
    flagged = set(hh.index[hh["settlement_mismatch"].fillna(False).astype(bool)])
    assert flagged == neighbours & set(hh.index[hh["settlement_id"].notna()])


def test_outputs_pass_the_shared_checker(demo):
    _, out = demo
    proc = subprocess.run([sys.executable, str(CHECKER), str(out)], capture_output=True,
                          text=True, check=False)
    lines = proc.stdout.splitlines()
    assert any(line.startswith("ok") and "read" in line for line in lines), proc.stdout
    # what later stages write (CUF ranking, map, atlas) is not checked here
    later = ("cuf_priorities.csv", "map.html", "atlas/index.html")
    assert not [line for line in lines if line.startswith("PROBLEM")
                and not any(name in line for name in later)], proc.stdout
    assert any("31 settlements checked" in line for line in lines), proc.stdout


def test_supervision_report_totals(demo):
    result, out = demo
    sup = pd.read_csv(out / "supervision_report.csv")
    c = result.counts
    assert sup["submissions"].sum() == c["accepted"] + c["rejected"] + c["no_consent"]
    assert sup["accepted"].sum() == c["accepted"]
    assert sup["no_consent"].sum() == c["no_consent"]
    assert sup["values_dropped"].sum() == c["values_dropped"]
    assert sup["outside_settlements"].sum() == c["outside_settlements"]


def test_no_personal_value_in_any_output(demo):
    result, out = demo
    personal = result.ingest.personal.drop(columns=["key"])
    values = {str(v) for v in personal.to_numpy().ravel() if pd.notna(v) and len(str(v)) > 3}
    assert values
    for path in out.rglob("*"):
        if path.is_dir():
            continue
        data = path.read_bytes()  # text outputs and the GeoPackage alike
        leaked = [v for v in values if v.encode("utf-8") in data]
        assert not leaked, (path.name, leaked[:3])


def test_settlement_layer_matches_the_csv(demo):
    import geopandas as gpd

    _, out = demo
    csv_table = pd.read_csv(out / "settlement_indicators.csv")
    layer = gpd.read_file(out / "settlements.gpkg", layer="settlement_indicators")
    assert len(layer) == len(csv_table) == 31
    assert layer["settlement_id"].tolist() == csv_table["settlement_id"].tolist()
    pd.testing.assert_series_equal(layer["slum_household_share"], csv_table[
        "slum_household_share"], check_dtype=False)
    # the 3-household settlement is suppressed in both
    small = csv_table.set_index("settlement_id").loc["JK01"]
    assert pd.isna(small["households"]) and pd.isna(small["population"])
    # the GeoParquet export: the same table, column for column, and the same polygons
    geo = gpd.read_parquet(out / "settlements.parquet")
    assert list(geo.drop(columns="geometry").columns) == list(csv_table.columns)
    for c in csv_table.columns:
        a, b = geo[c].to_numpy(), csv_table[c].to_numpy()
        same = [x == y or (pd.isna(x) and pd.isna(y)) or (
            isinstance(y, float) and abs(float(x) - y) < 1e-12) for x, y in zip(a, b, strict=True)]
        assert all(same), c
    assert geo.crs == layer.crs and geo.geometry.geom_equals_exact(layer.geometry, 1e-9).all()


def test_household_flood_depths_are_the_raster_cells_under_their_points():
    import numpy as np
    import rasterio
    from pyproj import Transformer

    from profiling import pipeline

    cfg = load_config(REPO / "configs" / "demo.yaml")
    settlements = pipeline.load_settlements(cfg)
    res = pipeline.ingest_config(cfg, settlements=settlements)
    households, zones = pipeline.hazard_exposure(cfg, settlements, res.households)
    with rasterio.open(SAMPLE / "hazards" / "flood_depth.tif") as src:
        x, y = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True).transform(
            households["longitude"].to_numpy(), households["latitude"].to_numpy())
        sampled = np.array([v[0] for v in src.sample(zip(x, y, strict=True))], dtype=float)
        sampled[sampled == src.nodata] = np.nan
    assert np.allclose(households["flood"].to_numpy(), sampled, equal_nan=True)
    assert zones is not None and len(zones) == 31
    assert zones["flood_area_share_exposed"].between(0, 1).all()
