"""map.html and the PNG maps: offline, classified, simplified as a coverage, no household drawn."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer
from typer.testing import CliRunner

from profiling.cli import app
from profiling.publish._data import MAIN_INDICATORS
from profiling.publish.maps import class_of, classify, display_geometry, fisher_jenks

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module rewrites the atlas: its own copy of the shared sample run."""
    out = tmp_path_factory.mktemp("demo")
    shutil.copytree(demo, out, dirs_exist_ok=True)
    return out


def map_data(out: Path) -> dict:
    text = (out / "map_files" / "data.js").read_text(encoding="utf-8")
    return json.loads(text[text.index("{"):text.rindex("}") + 1])


def test_fisher_jenks_is_the_optimum() -> None:
    # by hand: three clear groups
    assert fisher_jenks(np.array([12, 1, 30, 2, 11, 3, 10.0]), 3) == [3.0, 12.0, 30.0]

    def cost(x: np.ndarray, bounds: list[float]) -> float:  # squared deviations in classes
        total, lo = 0.0, -np.inf
        for b in bounds:
            c = x[(x > lo) & (x <= b)]
            total += float(((c - c.mean()) ** 2).sum()) if len(c) else 0.0
            lo = b
        return total

    import itertools

    import mapclassify  # an independent implementation (numba), in the test extras only

    rng = np.random.default_rng(7)
    for _ in range(20):  # small sets: every partition into 3 classes tried
        x = np.sort(np.round(rng.gamma(1.5, size=12), 2))
        brute = min(cost(x, [x[a], x[b], x[-1]]) for a, b in itertools.combinations(
            range(11), 2))
        assert cost(x, fisher_jenks(x, 3)) == pytest.approx(brute)
    for n in (40, 700, 2500):  # at least as good a partition as mapclassify's
        x = rng.gamma(2.0, size=n)
        theirs = list(mapclassify.FisherJenks(x, k=5).bins)
        assert cost(x, fisher_jenks(x, 5)) <= cost(x, theirs) * (1 + 1e-12)
        if n <= 700:
            assert fisher_jenks(x, 5) == pytest.approx(theirs)
    for _ in range(60):  # ties
        x = np.round(rng.gamma(1.5, size=int(rng.integers(8, 150))), 1)
        if len(np.unique(x)) > 5:
            assert cost(x, fisher_jenks(x, 5)) == pytest.approx(
                cost(x, list(mapclassify.FisherJenks(x, k=5).bins)))


def test_classify_natural_breaks_and_few_values() -> None:
    method, bounds = classify(pd.Series([0.1, 0.11, 0.12, 0.5, 0.52, 0.9, 0.91, 0.3, 0.31, 0.7,
                                         np.nan]), k=5)
    assert method == "Fisher-Jenks natural breaks, 5 classes"
    assert bounds == pytest.approx([0.12, 0.31, 0.52, 0.7, 0.91])
    method, bounds = classify(pd.Series([1.0, 0.0, 1.0, np.nan]))
    assert method == "one class per value (2)" and bounds == [0.0, 1.0]
    assert [class_of(v, [0.12, 0.31, 0.52]) for v in (0.12, 0.13, 0.6, np.nan)] == [0, 1, 2, -1]


def test_ranks_come_in_groups_a_planner_reads() -> None:
    from profiling.publish.maps import RANK_GROUPS, legend_labels, rank_groups

    method, bounds = rank_groups(pd.Series([3, 1, 2, np.nan, 30, 12, 25]))
    assert (method, bounds) == (RANK_GROUPS, [10.0, 20.0, 30.0])
    assert legend_labels(bounds, "rank", method) == ["top 10", "11 to 20", "21 to 30"]
    assert [class_of(v, bounds) for v in (1, 10, 11, 20, 21, 30, np.nan)] == [
        0, 0, 1, 1, 2, 2, -1]
    _, city = rank_groups(pd.Series(range(1, 2001)))
    assert city == [10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0]
    assert legend_labels(city, "rank", method)[-1] == "1,001 to 2,000"
    _, few = rank_groups(pd.Series([1, 2, 3]))
    assert few == [3.0] and legend_labels(few, "rank", method) == ["top 3"]
    _, eleven = rank_groups(pd.Series(range(1, 12)))
    assert legend_labels(eleven, "rank", method) == ["top 10", "11"]


def test_an_indicator_without_values_has_an_empty_legend() -> None:
    from profiling.publish.maps import colours, legend_labels

    method, bounds = classify(pd.Series([np.nan, np.nan]))
    assert (method, bounds) == ("no values", [])
    assert colours(len(bounds), True) == [] == legend_labels(bounds, "share", method)
    assert len(colours(1, True)) == 1


def test_nothing_is_fetched_from_outside_the_folder(demo: Path) -> None:
    html = (demo / "map.html").read_text(encoding="utf-8")
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html)
    assert refs, "map.html links its scripts and styles"
    for ref in refs:
        assert not re.match(r"^(https?:)?//", ref), ref
        assert (demo / ref).exists(), ref
    for path in (demo / "map_files").rglob("*.css"):
        for url in re.findall(r"url\(([^)]+)\)", path.read_text(encoding="utf-8")):
            url = url.strip("'\"")
            assert not re.match(r"^(https?:)?//", url), (path, url)
    assert (demo / "map_files" / "leaflet" / "LICENSE").exists()


def test_display_geometry_keeps_a_coverage(demo: Path) -> None:
    b = gpd.read_file(demo / "settlements.gpkg").to_crs("EPSG:4326")
    simple = display_geometry(b)
    assert shapely.is_valid(simple).all()
    utm = "EPSG:32748"
    orig_m = gpd.GeoSeries(b.geometry.values, crs=4326).to_crs(utm)
    simp_m = gpd.GeoSeries(simple, crs=4326).to_crs(utm)
    # no overlaps: the parts add up to their union; no gaps: the union is the original's
    assert simp_m.area.sum() == pytest.approx(simp_m.union_all().area, rel=1e-6)
    assert simp_m.union_all().area == pytest.approx(orig_m.union_all().area, rel=1e-3)
    assert shapely.get_num_coordinates(simple).sum() <= shapely.get_num_coordinates(
        b.geometry.values).sum()


def test_layers_hold_the_main_indicators_with_their_classes(demo: Path) -> None:
    d = map_data(demo)
    # the main indicators, each of the demo's hazards by its exposed area share, the rank
    assert [lay["key"] for lay in d["layers"]] == [m.column for m in MAIN_INDICATORS] + [
        "flood_area_share", "landslide_area_share", "heat_area_share", "cuf_rank"]
    table = pd.read_csv(demo / "settlement_indicators.csv", dtype={"settlement_id": str})
    slum = next(lay for lay in d["layers"] if lay["key"] == "slum_household_share")
    assert len(slum["colours"]) == len(slum["labels"])
    _, bounds = classify(table["slum_household_share"])
    by_id = {f["properties"]["id"]: f["properties"] for f in d["settlements"]["features"]}
    for _, row in table.iterrows():
        assert by_id[row["settlement_id"]]["cls"]["slum_household_share"] == class_of(
            row["slum_household_share"], bounds)


def test_small_settlement_carries_no_household_figure(demo: Path) -> None:
    d = map_data(demo)
    jk01 = next(f["properties"] for f in d["settlements"]["features"]
                if f["properties"]["id"] == "JK01")
    assert jk01["suppressed"] is True
    rows = dict(jk01["popup"])
    assert rows["Households"] == "suppressed (fewer than 5 households)"
    # land, not households: each hazard's area share is shown even here
    assert set(rows) == {"Households", "Area where flood depth ≥ 0.15 m",
                         "Area where landslide susceptibility class ≥ 3",
                         "Area where land surface temperature ≥ 34 °C", "CUF rank",
                         "Funded by the CUF portfolio"}
    assert rows["Funded by the CUF portfolio"] == "nothing"  # not ranked, so not funded
    assert jk01["fig"]["slum_household_share"] == "suppressed (fewer than 5 households)"


def test_hexagons_are_h3_cells_of_at_least_k_households(demo: Path) -> None:
    cells = pd.read_csv(demo / "hexagons.csv")
    assert set(cells.columns) == {"h3_cell", "households", "slum_household_share",
                                  "slum_household_n"}
    assert (cells["households"] >= 5).all()
    hexes = map_data(demo)["hexagons"]
    assert len(hexes) == len(cells)
    to_merc = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    lat, lon = zip(*h3.cell_to_boundary(str(cells["h3_cell"].iloc[0])), strict=True)
    x, y = to_merc.transform(lon, lat)
    assert hexes[0]["xy"] == [[round(a), round(b)] for a, b in zip(x, y, strict=True)]
    assert hexes[0]["households"] == cells["households"].iloc[0]


def test_png_maps_are_written(demo: Path) -> None:
    for m in MAIN_INDICATORS:
        png = demo / "maps" / f"{m.column}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_atlas_command_rewrites_and_prints_pdfs(demo: Path) -> None:
    (demo / "map.html").unlink()
    result = CliRunner().invoke(app, ["atlas", str(REPO / "configs" / "demo.yaml"), "--out",
                                      str(demo), "--pdf", "-q"])
    assert result.exit_code == 0, result.output
    assert (demo / "map.html").exists()
    pdf = (demo / "atlas" / "pdf" / "JK30.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    import weasyprint

    doc = weasyprint.HTML(filename=str(demo / "atlas" / "JK30.html")).render()
    px_per_mm = 96 / 25.4  # CSS pixels
    assert {(round(p.width / px_per_mm), round(p.height / px_per_mm)) for p in doc.pages} == {
        (210, 297)}
    # every profile prints on one A4 sheet, both sides, the way communities receive it, and
    # no text on it is smaller than 7 pt
    from pypdf import PdfReader

    pages = {p.stem: PdfReader(str(p)).pages for p in (demo / "atlas" / "pdf").glob("JK*.pdf")}
    assert len(pages) == 31 and {len(v) for v in pages.values()} == {2}
    sizes: set[float] = set()

    def text_size(text, cm, tm, font, size):  # type: ignore[no-untyped-def]
        if text.strip():
            sizes.add(size * abs(tm[3]) * abs(cm[3]))  # points: font size x text/user scale

    for page in pages["JK30"]:
        page.extract_text(visitor_text=text_size)
    assert len(sizes) > 3 and min(sizes) >= 7.0, sorted(sizes)
    # the rewritten folder was audited again, PDFs included, and the manifest says so
    manifest = json.loads((demo / "run_manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "complete"
    assert manifest["rewritten"][-1]["by"] == "profiling atlas --pdf"
    assert manifest["rewritten"][-1]["findings"] == 0
    assert "atlas/pdf/JK30.pdf" in manifest["outputs"]


def test_atlas_command_audits_what_it_prints(demo: Path, tmp_path: Path) -> None:
    """A personal value that reached the tables is caught in the pages and their PDFs, the
    command fails and the manifest no longer calls the folder complete."""
    from profiling.config import load_config
    from profiling.pipeline import ingest_config

    name = str(ingest_config(load_config(REPO / "configs" / "demo.yaml")).personal[
        "respondent_name"].dropna().iloc[0])
    out = tmp_path / "out"
    shutil.copytree(demo, out)
    table = pd.read_csv(out / "settlement_indicators.csv", dtype={"settlement_id": str})
    table.loc[table["settlement_id"] == "JK30", "name"] = name
    table.to_csv(out / "settlement_indicators.csv", index=False)
    layer = gpd.read_file(out / "settlements.gpkg", layer="settlement_indicators")
    layer.loc[layer["settlement_id"] == "JK30", "name"] = name
    layer.to_file(out / "settlements.gpkg", layer="settlement_indicators", driver="GPKG")
    result = CliRunner().invoke(app, ["atlas", str(REPO / "configs" / "demo.yaml"), "--out",
                                      str(out), "--pdf", "-q"])
    assert result.exit_code == 2, result.output
    assert "disclosure audit found" in result.output
    assert "atlas/pdf/JK30.pdf" in result.output and name not in result.output
    manifest = json.loads((out / "run_manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"].startswith("incomplete")
    assert manifest["rewritten"][-1]["findings"] > 0


def test_atlas_command_without_a_run_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["atlas", str(REPO / "configs" / "demo.yaml"), "--out",
                                      str(tmp_path)])
    assert result.exit_code == 2
    assert "run `profiling run` first" in result.output


def test_drawing_maps_leaves_a_notebook_s_backend_alone(demo: Path, tmp_path: Path) -> None:
    """PNG maps and hazard overlays are drawn with matplotlib's object API: the backend a
    notebook chose (inline there; here ``svg``, another one than Agg) is still the one after,
    so its own plots still show."""
    import matplotlib
    import numpy as np

    from profiling.config import MapSettings
    from profiling.publish._data import read_tables
    from profiling.publish.maps import save_overlays, write_pngs

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        copy = tmp_path / "run"
        shutil.copytree(demo, copy)
        written = write_pngs(read_tables(copy), MapSettings())
        assert written and all(p.read_bytes()[:4] == b"\x89PNG" for p in written.values())
        save_overlays([({"image": "x.png"}, np.zeros((4, 4, 4)))], tmp_path)
        assert (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
