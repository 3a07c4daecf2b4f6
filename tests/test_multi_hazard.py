"""Every hazard alike (CONTRACT.md §3): flood depth, landslide classes and heat side by side.

The sample city has three rasters (``configs/demo.yaml``). Each hazard's household indicator is
recounted here from the raster cells under the households' points (read with rasterio), each
settlement's area figures are recomputed with exactextract, and ``hazardous_location`` is
worked by hand as Kleene's "or" over the hazards' ``high`` thresholds.
"""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from pyproj import Transformer

from profiling.config import ConfigError, load_config, parse_config
from profiling.indicators import HazardRule, Thresholds, compute_indicators

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
DEMO = REPO / "configs" / "demo.yaml"
#: name: (file, exposed, high), as configs/demo.yaml gives them
HAZARDS = {"flood": ("flood_depth.tif", 0.15, 0.5), "landslide": ("landslide_class.tif", 3, 4),
           "heat": ("heat_lst.tif", 34.0, 35.5)}
RULES = (HazardRule("flood", 0.15, 0.5, "depth", "m", "flood depth"),
         HazardRule("landslide", 3, 4, "class", "", "landslide susceptibility class"),
         HazardRule("heat", 34, 35.5, "continuous", "°C", "land surface temperature"))
T, F, U = True, False, None


def test_the_demo_configuration_holds_the_three_hazards_this_module_checks():
    cfg = load_config(DEMO)
    got = {h.name: (Path(h.path).name, h.thresholds["exposed"], h.thresholds["high"])
           for h in cfg.hazards}
    assert got == HAZARDS
    assert [h.rule() for h in cfg.hazards] == list(RULES)


@pytest.mark.parametrize("flood,landslide,heat,exposed,location", [
    # flood_exposed, landslide_exposed, heat_exposed; hazardous_location
    (0.0, 1, 30.0, (F, F, F), F),
    (0.15, 3, 34.0, (T, T, T), F),  # each at its exposed threshold, none at its high one
    (0.5, 1, 30.0, (T, F, F), T),
    (0.0, 4, 30.0, (F, T, F), T),
    (0.0, 1, 35.5, (F, F, T), T),
    (np.nan, 1, 30.0, (U, F, F), U),  # flood unknown, the others below: unknown
    (np.nan, 4, np.nan, (U, T, U), T),  # one at its high threshold decides it
    (np.nan, np.nan, np.nan, (U, U, U), U),
])
def test_each_hazard_is_judged_by_its_own_thresholds(flood, landslide, heat, exposed,
                                                      location):
    hh = pd.DataFrame({"flood": [flood], "landslide": [landslide], "heat": [heat]}, dtype=float)
    ind = compute_indicators(hh, Thresholds(hazards=RULES)).iloc[0]

    def value(x: object) -> bool | None:
        return None if pd.isna(x) else bool(x)

    assert tuple(value(ind[f"{n}_exposed"]) for n in HAZARDS) == exposed
    assert value(ind["hazardous_location"]) is location


def test_a_hazard_without_thresholds_has_area_figures_only():
    rules = (HazardRule("heat", None, None, "continuous", "°C", "land surface temperature"),)
    ind = compute_indicators(pd.DataFrame({"heat": [40.0]}), Thresholds(hazards=rules))
    assert "heat_exposed" not in ind.columns and "hazardous_location" not in ind.columns


def _sampled(households: pd.DataFrame, tif: str) -> np.ndarray:
    with rasterio.open(SAMPLE / "hazards" / tif) as src:
        x, y = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True).transform(
            households["longitude"].to_numpy(), households["latitude"].to_numpy())
        v = np.array([s[0] for s in src.sample(zip(x, y, strict=True))], dtype=float)
        v[v == src.nodata] = np.nan
    return v


@pytest.fixture(scope="module")
def run(demo: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The sample city's households (with their points) and its published tables."""
    from profiling import pipeline

    cfg = load_config(DEMO)
    res = pipeline.ingest_config(cfg, settlements=pipeline.load_settlements(cfg))
    table = pd.read_csv(demo / "settlement_indicators.csv", dtype={"settlement_id": str})
    city = pd.read_csv(demo / "city_summary.csv")
    return res.households, table.set_index("settlement_id"), city


def test_household_figures_of_every_hazard_are_recounted_from_the_rasters(run):
    households, table, city = run
    hh = households[households["settlement_id"].notna()].copy()
    known_high, any_high = np.ones(len(hh), bool), np.zeros(len(hh), bool)
    for name, (tif, exposed, high) in HAZARDS.items():
        v = _sampled(hh, tif)
        hh[f"{name}_known"] = ~np.isnan(v)
        hh[f"{name}_true"] = v >= exposed
        known_high &= ~np.isnan(v)
        any_high |= v >= high
    # Kleene "or": true when any is at or above its high threshold, else known only when all are
    hh["hazardous_location_true"] = any_high
    hh["hazardous_location_known"] = any_high | known_high
    sums = hh.groupby("settlement_id")[[c for c in hh.columns if c.endswith(("_true", "_known"))]
                                       ].sum()
    shown = table[table["households"].notna()]
    assert len(shown) > 20
    for name in [*HAZARDS, "hazardous_location"]:
        field = name if name == "hazardous_location" else f"{name}_exposed"
        n = sums.loc[shown.index, f"{name}_known"]
        ok = n >= 5
        assert (shown.loc[ok[ok].index, f"{field}_n"] == n[ok]).all(), name
        want = sums.loc[shown.index, f"{name}_true"] / n
        got = shown[f"{field}_share"]
        assert np.allclose(got[ok], want[ok]), name
        assert got[~ok].isna().all(), name
    # the city summary, households and persons, over the settlements with a published figure
    rows = city.set_index("indicator")
    for name in [*(f"{n}_exposed" for n in HAZARDS), "hazardous_location"]:
        published = shown[shown[f"{name}_n"].notna()].index
        key = name.removesuffix("_exposed") if name != "hazardous_location" else name
        expect = sums.loc[published, f"{key}_true"].sum() / sums.loc[published,
                                                                     f"{key}_known"].sum()
        assert rows.loc[f"{name}_households", "value"] == pytest.approx(expect)
        assert f"{name}_persons" in rows.index


def test_area_figures_of_every_hazard_equal_exactextract(run):
    exactextract = pytest.importorskip("exactextract")
    _, table, _ = run
    polygons = gpd.read_file(SAMPLE / "settlements.gpkg")
    for name, (tif, exposed, high) in HAZARDS.items():
        with rasterio.open(SAMPLE / "hazards" / tif) as src:
            crs = src.crs
        gdf = polygons.to_crs(crs)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Spatial reference system", RuntimeWarning)
            ee = exactextract.exact_extract(str(SAMPLE / "hazards" / tif), gdf,
                                            ["mean", "values", "coverage"], output="pandas")
        ee.index = gdf["settlement_id"]

        def share(t: float, ee: pd.DataFrame = ee) -> pd.Series:
            return pd.Series([float(np.sum(c[v >= t]) / np.sum(c)) if np.sum(c) > 0 else np.nan
                              for v, c in zip(ee["values"], ee["coverage"], strict=True)],
                             index=ee.index)

        mean = "flood_depth_mean" if name == "flood" else f"{name}_mean"
        for column, want in ((f"{name}_area_share", share(exposed)),
                             (f"{name}_high_area_share", share(high)),
                             (mean, ee["mean"].astype(float))):
            got = table.loc[want.index, column].astype(float)
            assert np.allclose(got, want, atol=1e-6, equal_nan=True), column


def test_the_map_the_atlas_and_the_cuf_carry_every_hazard(demo: Path):
    import json

    text = (demo / "map_files" / "data.js").read_text(encoding="utf-8")
    data = json.loads(text[text.index("{"):text.rindex("}") + 1])
    layers = [lay["key"] for lay in data["layers"]]
    assert {"flood_area_share", "landslide_area_share", "heat_area_share"} <= set(layers)
    overlays = {h["name"]: h for h in data["hazards"]}
    assert overlays["flood"]["unit"] == "flood depth (metres)"
    assert overlays["landslide"]["unit"] == "landslide susceptibility class"
    assert overlays["heat"]["unit"] == "land surface temperature (°C)"
    assert [label for _, label in overlays["heat"]["legend"]] == ["34 to 35.5 °C",
                                                                   "35.5 °C or more"]
    assert [label for _, label in overlays["landslide"]["legend"]] == [
        f"class {k}" for k in (1, 2, 3, 4)]
    assert {h["source"] for h in data["hazards"]} == {t for t, _, _ in HAZARDS.values()}
    table = pd.read_csv(demo / "settlement_indicators.csv", dtype={"settlement_id": str})
    sid = table.loc[table["households"].notna(), "settlement_id"].iloc[0]
    page = (demo / "atlas" / f"{sid}.html").read_text(encoding="utf-8")
    for words in ("Households where flood depth ≥ 0.15 m",
                  "Households where landslide susceptibility class ≥ 3",
                  "Households where land surface temperature ≥ 34 °C",
                  "(≥ 35.5 °C)", "land surface temperature</td>"):
        assert words in page, words
    index = (demo / "atlas" / "index.html").read_text(encoding="utf-8")
    assert "Area where landslide susceptibility class ≥ 3" in index


def test_a_hazard_given_a_cuf_weight_becomes_a_criterion():
    from profiling import pipeline

    cfg = load_config(DEMO)
    names = [c.name for c in pipeline.cuf_criteria(cfg)]
    # the flood layer's weight is a default; the others rank only when given one
    assert names == ["slum", "water", "sanitation", "people", "flood", "community"]
    heat = next(h for h in cfg.hazards if h.name == "heat")
    heat.cuf_weight = 0.2
    criteria = {c.name: c for c in pipeline.cuf_criteria(cfg)}
    assert criteria["heat"].column == "heat_area_share" and criteria["heat"].weight == 0.2
    assert "land surface temperature is at or above 34 °C" in criteria["heat"].label


@pytest.mark.parametrize("entry,words", [
    ({"name": "heat", "kind": "continuous"}, "give its 'unit'"),
    ({"name": "../heat", "kind": "depth"}, "name"),
    ({"name": "Heat Wave", "kind": "depth"}, "name"),
    ({"name": "heat", "kind": "continuous", "unit": "°C", "label": "<b>hot</b>"}, "plain text"),
    ({"name": "heat", "kind": "continuous", "unit": "{x}"}, "plain text"),
    # flood's default high (0.5 m) under a raised exposed threshold: said, not assumed
    ({"name": "flood", "thresholds": {"exposed": 0.8}}, "is above the 'high' one"),
])
def test_a_hazard_entry_that_cannot_name_columns_or_be_shown_is_refused(entry, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        parse_config({"surveys": ["a.csv"], "hazards": [{"path": "h.tif", **entry}]})


def test_a_bad_hazard_entry_exits_2_with_a_message(tmp_path: Path):
    import subprocess
    import sys

    cfg = yaml.safe_load(DEMO.read_text())
    cfg["hazards"][2].pop("unit")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    exe = Path(sys.executable).with_name("profiling")
    proc = subprocess.run([str(exe), "validate", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "unit" in proc.stderr and "Traceback" not in proc.stderr


def test_no_code_after_configuration_loading_tests_a_hazards_name():
    """Only the configuration gives the reference flood layer its defaults; the rest of the
    package treats every hazard alike (no comparison with, or prefix test on, a name)."""
    offenders = []
    for path in (REPO / "src" / "profiling").rglob("*.py"):
        if path.name == "config.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(
                    r"(flood|landslide|heat)(_.*)?", node.value) and node.value not in (
                    "flood_depth",):
                offenders.append(f"{path.name}: {node.value!r}")
    assert offenders == ["indicators.py: 'flood'"]  # the default Thresholds' flood rule


def test_a_stack_of_return_periods_gives_expected_annual_exposure(tmp_path: Path):
    """A flood stack of 10- and 100-year depths: flood_exposed reads the first scenario, and
    each household's expected annual exposure is worked by hand from the two cells under its
    point: 0.01 x [100-year exposed] + 0.09 x ([10-year] + [100-year]) / 2."""
    from profiling import pipeline
    from profiling.indicators import city_summary, partial_counts, settlement_indicators

    with rasterio.open(SAMPLE / "hazards" / "flood_depth.tif") as src:
        depth, profile = src.read(1), src.profile
    wet = depth != profile["nodata"]
    rp10 = np.where(wet, np.round(depth * 0.6, 2), profile["nodata"]).astype("float32")
    rp100 = np.where(wet, np.round(depth * 1.3, 2), profile["nodata"]).astype("float32")
    stack = tmp_path / "flood_stack.tif"
    with rasterio.open(stack, "w", **{**profile, "count": 2}) as dst:
        dst.write(np.stack([rp10, rp100]))
    raw = yaml.safe_load(DEMO.read_text())
    raw["hazards"] = [{"name": "flood", "path": str(stack), "kind": "depth",
                       "return_periods": [10, 100]}]
    for key in ("form", "boundaries"):
        raw[key] = str((DEMO.parent / raw[key]).resolve())
    raw["surveys"] = [str((DEMO.parent / s).resolve()) for s in raw["surveys"]]
    raw.pop("cuf")
    cfg = parse_config(raw)
    t = pipeline.thresholds(cfg)
    assert t.hazards[0].scenarios == ("flood_rp10", "flood_rp100")
    settlements = pipeline.load_settlements(cfg)
    res = pipeline.ingest_config(cfg, settlements=settlements)
    hh, zones = pipeline.hazard_exposure(cfg, settlements, res.households)
    ind = compute_indicators(hh, t)

    def sample(band: int) -> np.ndarray:
        with rasterio.open(stack) as src:
            x, y = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True).transform(
                hh["longitude"].to_numpy(), hh["latitude"].to_numpy())
            v = np.array([s[band - 1] for s in src.sample(zip(x, y, strict=True))], float)
        return np.where(v == profile["nodata"], np.nan, v)

    d10, d100 = sample(1), sample(2)
    e10, e100 = (d10 >= 0.15).astype(float), (d100 >= 0.15).astype(float)
    want = np.where(np.isnan(d10) | np.isnan(d100), np.nan,
                    0.01 * e100 + 0.09 * (e10 + e100) / 2)
    got = ind["flood_expected_annual_exposure"].to_numpy(dtype=float)
    assert np.allclose(got, want, equal_nan=True) and np.nanmax(want) > 0
    assert (ind["flood_exposed"].astype("boolean") == pd.array(d10 >= 0.15, dtype="boolean")
            ).where(~np.isnan(d10), True).all()
    inside = hh["settlement_id"].notna().to_numpy()
    counts = partial_counts(hh.loc[inside], ind.loc[inside])
    table = settlement_indicators(settlements.frame, counts, 5, zones, hazards=t.hazards)
    frame = pd.DataFrame({"sid": hh.loc[inside, "settlement_id"], "p": want[inside]})
    mean = frame.dropna().groupby("sid")["p"].agg(["mean", "size"])
    shown = table.set_index("settlement_id").loc[mean.index[mean["size"] >= 5]]
    assert np.allclose(shown["flood_expected_annual_exposure_share"],
                       mean.loc[shown.index, "mean"])
    rows = city_summary(counts, t, 5, published=table).set_index("indicator")
    # persons: each household's probability weighed by its size, over the settlements whose
    # figure is published
    published = set(table.loc[table["flood_expected_annual_exposure_n"].notna(),
                              "settlement_id"])
    keep = inside & hh["settlement_id"].isin(published).to_numpy() & ~np.isnan(want)
    size = hh["hh_size"].to_numpy(dtype=float)[keep]
    assert rows.loc["flood_expected_annual_exposure_persons", "value"] == pytest.approx(
        float((want[keep] * size).sum() / size.sum()))
    assert rows.loc["flood_expected_annual_exposure_households", "value"] == pytest.approx(
        float(want[keep].mean()))
    # the contract's area columns read the first scenario, as flood_exposed does
    assert table["flood_area_share"].notna().sum() >= 25
    assert np.allclose(table["flood_area_share"], table["flood_rp10_area_share_exposed"],
                       equal_nan=True)
    assert np.allclose(table["flood_depth_mean"], table["flood_rp10_mean"], equal_nan=True)
    assert "flood_expected_annual_area_share_exposed" in table.columns
    assert "flood_expected_annual_exposure_lo" not in table.columns  # not a proportion


def test_overlays_render_in_another_process_and_their_warnings_come_back(tmp_path: Path):
    """The overlays render in a process of its own (a fork server's, not a thread of the run):
    what it would log, here a raster far from every settlement, returns to the run."""
    from concurrent.futures import ProcessPoolExecutor

    from profiling import pipeline
    from profiling.publish import start_overlays

    far = tmp_path / "far.tif"
    profile = {"driver": "GTiff", "width": 4, "height": 4, "count": 1, "dtype": "float32",
               "crs": "EPSG:32748", "nodata": -9999.0,
               "transform": rasterio.transform.Affine(10, 0, 200000, 0, -10, 9000000)}
    with rasterio.open(far, "w", **profile) as dst:
        dst.write(np.ones((1, 4, 4), "float32"))
    cfg = parse_config({"surveys": ["a.csv"], "hazards": [{"name": "flood", "path": str(far)}]})
    settlements = gpd.read_file(SAMPLE / "settlements.gpkg")
    with pipeline._background() as pool:
        assert isinstance(pool, ProcessPoolExecutor)
        future = start_overlays(cfg, pool, (tuple(settlements.total_bounds), settlements.crs))
        assert future is not None
        rendered, notes = future.result()
    assert rendered == []
    assert [m for _, m in notes] == [f"{far}: the raster does not reach the settlements; "
                                     "no overlay"]


def test_a_hazard_named_like_a_survey_field_is_refused():
    from profiling.households import with_hazard_values

    cfg = parse_config({"surveys": ["a.csv"], "hazards": [{"name": "hh_size",
                                                            "path": "x.tif"}]})
    hh = pd.DataFrame({"hh_size": [3], "longitude": [106.8], "latitude": [-6.2]})
    with pytest.raises(ConfigError, match="hh_size are also columns of the households"):
        with_hazard_values(hh, cfg.hazards)
