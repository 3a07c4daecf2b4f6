"""The map and the atlas in a real browser: Debian's Chromium driven by Playwright.

Every request that is not for a local file is aborted and recorded; the tests assert that none
was made, that no request failed and that the console stayed free of errors. Expected figures
are read from the run's ``settlement_indicators.csv`` and formatted as the page promises (whole
percentages, thousands separators), never captured from the page itself. Screenshots are saved
to ``test-artifacts/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from profiling import pipeline
from profiling.config import load_config

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("PROFILING_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOSTILE = "<script>alert(1)</script>"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """pytest-playwright launches the system Chromium, never a downloaded browser."""
    if not Path(CHROMIUM).exists():
        message = (f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium "
                   "(scripts/install_chromium.sh)")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": FLAGS}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample city with settlement JK05 renamed to a script tag."""
    folder = tmp_path_factory.mktemp("hostile")
    cfg = load_config(REPO / "configs" / "demo.yaml")
    b = gpd.read_file(cfg.boundaries)
    b.loc[b["settlement_id"] == "JK05", "name"] = HOSTILE
    path = folder / "settlements.gpkg"
    b.to_file(path, layer="settlements")
    cfg.boundaries = path
    cfg.map.title = HOSTILE  # a configuration string is as hostile as a name
    out = folder / "out"
    pipeline.run(cfg, out)
    return out


@pytest.fixture(scope="module")
def table(demo: Path) -> pd.DataFrame:
    return pd.read_csv(demo / "settlement_indicators.csv", dtype={"settlement_id": str})


class Watch:
    """What a page did: requests to outside hosts, failed requests, console errors, dialogs."""

    def __init__(self, page) -> None:
        self.outside: list[str] = []
        self.failed: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []

        def route(r) -> None:
            url = r.request.url
            if url.startswith(("file://", "http://127.0.0.1", "data:", "blob:")):
                r.continue_()
            else:
                self.outside.append(url)
                r.abort()

        page.route("**/*", route)
        def failed(req) -> None:
            # a request the page cancelled itself (Leaflet drops the tiles of a zoom it
            # leaves before they arrive: net::ERR_ABORTED) is not a file that is missing
            if "ERR_ABORTED" not in str(req.failure or ""):
                self.failed.append(f"{req.url} ({req.failure})")

        page.on("requestfailed", failed)
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

        def dialog(d) -> None:
            self.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", dialog)

    def assert_clean(self) -> None:
        assert self.outside == [], f"requests outside the output folder: {self.outside}"
        assert self.failed == [], f"failed requests: {self.failed}"
        assert self.errors == [], f"console errors: {self.errors}"
        assert self.dialogs == [], f"dialogs opened: {self.dialogs}"


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def open_map(page, out: Path) -> Watch:
    page.set_viewport_size({"width": 1200, "height": 800})
    watch = Watch(page)
    page.goto((out / "map.html").as_uri())
    page.wait_for_selector("path.pm-settlement")
    return watch


def fills(page) -> list[str]:
    return page.eval_on_selector_all("path.pm-settlement", "ps => ps.map(p => p.getAttribute("
                                     "'fill'))")


def search(page, text: str) -> None:
    box = page.locator(".pm-search input")
    box.fill(text)
    box.press("Enter")
    # the popup of an earlier search fades out: wait until only the new one is left
    page.wait_for_function("document.querySelectorAll('.leaflet-popup-content .pm-popup')"
                           ".length === 1")


def popup_rows(page) -> dict[str, str]:
    rows = page.locator(".leaflet-popup-content tr")
    return {rows.nth(i).locator("th").inner_text(): rows.nth(i).locator("td").inner_text()
            for i in range(rows.count())}


def pct(x: float) -> str:
    return f"{round(x * 100)}%"


def test_map_loads_offline_with_legend_and_layer_control(page, demo: Path) -> None:
    watch = open_map(page, demo)
    assert page.locator(".leaflet-control-layers").is_visible()
    legend = page.locator(".pm-legend")
    assert legend.is_visible()
    text = legend.inner_text()
    assert "Slum households" in text and "Fisher-Jenks natural breaks" in text
    assert "suppressed (fewer than 5 households)" in text
    assert page.locator("path.pm-settlement").count() == 31
    shot(page, "map.png")
    watch.assert_clean()


def test_the_cuf_layer_is_drawn_in_rank_groups(page, demo: Path, table: pd.DataFrame) -> None:
    """The CUF layer in the groups a planner reads (top 10, 11 to 20, ...), each settlement
    in the group its rank in the table puts it in: counted here from the table."""
    ranks = table["cuf_rank"].dropna().astype(int)
    last = int(ranks.max())
    assert last == len(ranks) > 20  # the sample city: 30 ranked, 3 groups
    watch = open_map(page, demo)
    page.get_by_label("CUF priority rank (1 = first)").check()
    page.wait_for_function("document.querySelector('.pm-legend-title').textContent"
                           " === 'CUF priority rank (1 = first)'")
    text = page.locator(".pm-legend").inner_text()
    assert "CUF rank groups" in text and "Fisher-Jenks" not in text
    assert all(label in text for label in ("top 10", "11 to 20", f"21 to {last}"))
    counts = [page.locator(f"path.pm-settlement.pm-class-{c}").count() for c in range(3)]
    assert counts == [int((ranks <= 10).sum()), int(((ranks > 10) & (ranks <= 20)).sum()),
                      int((ranks > 20).sum())]
    assert page.locator("path.pm-settlement.pm-class--1").count() == len(table) - len(ranks)
    shot(page, "map-cuf-groups.png")
    watch.assert_clean()


def test_the_funded_settlements_and_the_portfolio_panel(page, demo: Path,
                                                        table: pd.DataFrame) -> None:
    """The settlements the portfolio funds outlined (as many as cuf_portfolio.csv names), the
    panel's total and per-intervention costs summed here from that file, and each popup saying
    what is funded there, or that nothing is."""
    portfolio = pd.read_csv(demo / "cuf_portfolio.csv", dtype={"settlement_id": str})
    funded = set(portfolio["settlement_id"])
    watch = open_map(page, demo)
    assert page.locator("path.pm-funded").count() == len(funded)
    assert "funded by the CUF portfolio" in page.locator(".pm-legend").inner_text()
    panel = page.locator("#pm-portfolio")
    summary = panel.locator("summary").inner_text()
    assert summary == (f"CUF portfolio: {portfolio['cost'].sum():,.0f} in {len(funded)} "
                       "settlements")
    panel.locator("summary").click()
    rows = panel.locator("#pm-portfolio-interventions tr")
    per = portfolio.groupby("intervention")["cost"].sum()
    got = {rows.nth(i).locator("td").nth(0).inner_text():
           rows.nth(i).locator("td").nth(2).inner_text() for i in range(1, rows.count())}
    assert got == {iv.replace("_", " "): f"{c:,.0f}" for iv, c in per.items()}
    shot(page, "map-portfolio.png")
    here = portfolio[portfolio["settlement_id"] == sorted(funded)[0]]
    name = table.set_index("settlement_id").loc[sorted(funded)[0], "name"]
    search(page, name)
    text = popup_rows(page)["Funded by the CUF portfolio"]
    for iv, units in zip(here["intervention"], here["units"], strict=True):
        assert f"{iv.replace('_', ' ')} × {int(units):,}" in text
    assert text.endswith(f": {here['cost'].sum():,.0f}")
    unfunded = table[~table["settlement_id"].isin(funded)]
    if len(unfunded):
        search(page, unfunded["name"].iloc[0])
        assert popup_rows(page)["Funded by the CUF portfolio"] == "nothing"
    watch.assert_clean()


def test_the_title_block_names_the_city_dates_sources_and_cell_size(page, demo: Path) -> None:
    """The configured title, the first and last interview of enumeration_dates.csv, every
    input file by name (from the configuration) and the minimum cell size."""
    cfg = load_config(REPO / "configs" / "demo.yaml")
    dates = pd.read_csv(demo / "enumeration_dates.csv", dtype=str)
    watch = open_map(page, demo)
    block = page.locator("#pm-about")
    assert block.is_visible()
    text = block.inner_text()
    assert page.locator(".pm-about-title").inner_text() == cfg.map.title
    assert (f"Enumerated from {dates['first_interview'].min()} to "
            f"{dates['last_interview'].max()}") in text
    assert ("Household enumeration: kobo_day1-4.csv, kobo_day3-7.xlsx, odk_day6-10.csv"
            in text)
    assert "Settlement boundaries: settlements.gpkg" in text
    assert ("Hazards: flood (flood_depth.tif), landslide (landslide_class.tif), "
            "heat (heat_lst.tif)") in text
    assert "No figure is computed from fewer than 5 households." in text
    assert "/" not in text.replace(" to ", "")  # file names only, never a folder
    watch.assert_clean()


def test_on_a_phone_the_layers_fold_and_search_and_zoom_stay_reachable(page, demo: Path,
                                                                       table: pd.DataFrame
                                                                       ) -> None:
    """At 390 px wide the layer list is folded into its button; the search box and the zoom
    buttons are not covered by any other control, and they work."""
    watch = Watch(page)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto((demo / "map.html").as_uri())
    page.wait_for_selector("path.pm-settlement")
    control = page.locator(".leaflet-control-layers")
    assert "leaflet-control-layers-expanded" not in (control.get_attribute("class") or "")
    boxes = page.evaluate("""() => [...document.querySelectorAll('.leaflet-control')]
        .map(e => { const r = e.getBoundingClientRect();
                    return [e.className, r.left, r.top, r.right, r.bottom]; })""")
    def overlap(a, b) -> bool:
        return a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]
    mine = [b for b in boxes if "pm-search" in b[0] or "leaflet-control-zoom" in b[0]]
    assert len(mine) == 2
    for b in mine:
        assert b[1] >= 0 and b[3] <= 390, b
        assert not [o for o in boxes if o is not b and overlap(b, o)], b
    zoom = page.evaluate("() => window[document.querySelector('.folium-map').id].getZoom()")
    page.locator(".leaflet-control-zoom-in").click()
    page.wait_for_function("z => window[document.querySelector('.folium-map').id].getZoom()"
                           " > z", arg=zoom)
    name = table.set_index("settlement_id").loc["JK30", "name"]
    search(page, name)
    assert page.locator(".leaflet-popup-content h3").inner_text() == name
    shot(page, "map-phone.png")
    watch.assert_clean()


def test_a_hazards_land_layer_and_overlay_read_in_its_unit(page, demo: Path) -> None:
    """The heat layer: the share of land at or above 34 °C, whose legend says nothing of
    suppression (land is never suppressed), and the temperature overlay's legend in °C."""
    watch = open_map(page, demo)
    page.get_by_label("Area where land surface temperature ≥ 34 °C").check()
    page.get_by_label("Hazard: heat").check()
    text = page.locator(".pm-legend").inner_text()
    assert "no data (not modelled)" in text and "suppressed" not in text
    assert "land surface temperature (°C)" in text and "35.5 °C or more" in text
    assert "Source: heat_lst.tif" in text
    shot(page, "map-heat.png")
    watch.assert_clean()


def test_switching_layer_changes_what_is_drawn(page, demo: Path, table: pd.DataFrame) -> None:
    watch = open_map(page, demo)
    before = fills(page)
    page.get_by_label("Basic drinking water").check()
    page.wait_for_function("document.querySelector('.pm-legend-title').textContent"
                           " === 'Basic drinking water'")
    after = fills(page)
    assert len(after) == len(before) == 31
    assert after != before
    row = table.set_index("settlement_id").loc["JK30"]
    name = row["name"]
    inside = gpd.read_file(demo / "settlements.gpkg").to_crs(4326).set_index(
        "settlement_id").geometry.loc["JK30"].representative_point()
    x, y = page.evaluate(
        "([lat, lon]) => { const el = document.querySelector('.folium-map');"
        " const p = window[el.id].latLngToContainerPoint([lat, lon]);"
        " const r = el.getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; }",
        [inside.y, inside.x])
    page.mouse.move(x, y)
    # the tooltip follows the pointer: wait for the settlement's under it (a neighbour's
    # may linger a moment on a busy machine); none naming it, and the test fails
    from playwright.sync_api import expect

    tooltip = page.locator(".leaflet-tooltip .pm-tooltip", has_text=name)
    expect(tooltip).to_be_visible(timeout=10_000)
    tip = tooltip.inner_text()
    assert name in tip and f"Basic drinking water: {pct(row['water_basic_share'])}" in tip
    shot(page, "map-water.png")
    watch.assert_clean()


def test_popup_shows_the_tables_figures(page, demo: Path, table: pd.DataFrame) -> None:
    row = table.sort_values("households", ascending=False).iloc[0]
    watch = open_map(page, demo)
    search(page, row["name"])
    assert page.locator(".leaflet-popup-content h3").inner_text() == row["name"]
    rows = popup_rows(page)
    assert rows["Households"] == f"{int(row['households']):,}"
    assert rows["Persons"] == f"{int(row['population']):,}"
    assert rows["Slum households"] == pct(row["slum_household_share"])
    assert rows["Basic drinking water"] == pct(row["water_basic_share"])
    # "rank 3 of 26": out of the settlements the ranking holds, counted from the table
    assert rows["CUF rank"] == f"{int(row['cuf_rank'])} of {int(table['cuf_rank'].notna().sum())}"
    link = page.locator(".leaflet-popup-content a.pm-atlas")
    assert link.get_attribute("href") == f"atlas/{row['settlement_id']}.html"
    shot(page, "map-popup.png")
    watch.assert_clean()


def test_search_finds_a_settlement_by_part_of_its_name(page, demo: Path,
                                                       table: pd.DataFrame) -> None:
    name = table.loc[table["settlement_id"] == "JK30", "name"].iloc[0]
    watch = open_map(page, demo)
    part = name[:-1].lower()  # "petojo selatan rw 0": any settlement whose name holds it
    search(page, part)
    assert part in page.locator(".leaflet-popup-content h3").inner_text().lower()
    search(page, name)
    assert page.locator(".leaflet-popup-content h3").inner_text() == name
    watch.assert_clean()


def test_small_settlement_popup_shows_no_household_figure(page, demo: Path,
                                                          table: pd.DataFrame) -> None:
    row = table.set_index("settlement_id").loc["JK01"]
    assert pd.isna(row["households"])  # 3 households: suppressed in the table
    watch = open_map(page, demo)
    search(page, row["name"])
    rows = popup_rows(page)
    assert rows["Households"] == "suppressed (fewer than 5 households)"
    household_labels = {"Persons", "Slum households", "Basic drinking water",
                        "Basic sanitation", "Secure tenure", "Overcrowded households"}
    assert not household_labels & set(rows)
    assert rows["CUF rank"] == "not ranked"
    watch.assert_clean()


def test_hazard_and_hexagon_layers(page, demo: Path) -> None:
    watch = open_map(page, demo)
    assert page.locator("img.leaflet-image-layer").count() == 0
    page.get_by_label("Hazard: flood").check()
    page.wait_for_selector("img.leaflet-image-layer")
    legend = page.locator(".pm-legend").inner_text()
    assert "flood depth (metres)" in legend
    assert "Source: flood_depth.tif" in legend  # the configured raster's file name
    # the hazard is drawn above the settlement fills, not mixed under them
    z = page.evaluate("""() => {
        const img = document.querySelector('img.leaflet-image-layer');
        const fill = document.querySelector('path.pm-settlement');
        const pane = el => +getComputedStyle(el.closest('.leaflet-pane:not(.leaflet-map-pane)'))
            .zIndex;
        return [pane(img), pane(fill)];
    }""")
    assert z[0] > z[1]
    cells = pd.read_csv(demo / "hexagons.csv")
    page.get_by_label("Households in hexagons", exact=False).check()
    page.wait_for_selector("path.pm-hexagon")
    assert page.locator("path.pm-hexagon").count() == len(cells)
    assert (cells["households"] >= 5).all()
    # graduated: each cell in its class of households per cell, with a legend of them;
    # the classes are the natural breaks of hexagons.csv, computed here by mapclassify
    import mapclassify

    legend = page.locator(".pm-legend").inner_text()
    assert "Households per hexagon" in legend
    counts = cells["households"].to_numpy()
    bins = (sorted(set(counts.tolist())) if len(set(counts.tolist())) <= 5
            else list(mapclassify.FisherJenks(counts, k=5).bins))
    want = np.searchsorted(np.asarray(bins, dtype=float), counts, side="left")
    got = [page.locator(f"path.pm-hexagon.pm-hex-class-{c}").count() for c in range(len(bins))]
    assert got == np.bincount(want, minlength=len(bins)).tolist()
    assert len({page.locator(f"path.pm-hex-class-{c}").first.get_attribute("fill")
                for c in range(len(bins)) if got[c]}) == sum(1 for g in got if g)
    assert page.locator(".pm-hex-legend").count() == len(bins)
    shot(page, "map-hazard-hexagons.png")
    watch.assert_clean()


def test_atlas_page_shows_the_settlement(page, demo: Path, table: pd.DataFrame) -> None:
    row = table.set_index("settlement_id").loc["JK30"]
    page.set_viewport_size({"width": 900, "height": 1200})
    watch = Watch(page)
    page.goto((demo / "atlas" / "JK30.html").as_uri())
    assert page.locator("#settlement-name").inner_text() == row["name"]
    figures = page.locator("#key-figures").inner_text()
    assert f"{int(row['households']):,}" in figures
    assert pct(row["slum_household_share"]) in figures
    assert page.locator(".bar").count() == 3
    assert page.locator(".bar").first.is_visible()
    assert page.locator("#cuf-rank").inner_text() == str(int(row["cuf_rank"]))
    pri = pd.read_csv(demo / "cuf_priorities.csv", dtype={"settlement_id": str})
    explanation = pri.set_index("settlement_id").loc["JK30", "explanation"]
    assert page.locator("#explanation").inner_text() == explanation
    shot(page, "atlas-JK30.png")
    watch.assert_clean()


def test_atlas_page_of_a_small_settlement_has_no_figures(page, demo: Path) -> None:
    watch = Watch(page)
    page.goto((demo / "atlas" / "JK01.html").as_uri())
    assert page.locator("#suppressed").is_visible()
    assert page.locator("#key-figures").count() == 0
    assert page.locator(".bar").count() == 0
    text = page.locator("body").inner_text()
    assert "Households known" not in text
    watch.assert_clean()


def test_atlas_index_sorts_by_households(page, demo: Path, table: pd.DataFrame) -> None:
    watch = Watch(page)
    page.goto((demo / "atlas" / "index.html").as_uri())
    page.get_by_role("columnheader", name="Households", exact=True).click()
    first = page.locator("#settlements tbody tr").first.locator("td").nth(1).inner_text()
    smallest = table.dropna(subset=["households"]).sort_values(
        ["households", "settlement_id"]).iloc[0]
    assert table.set_index("settlement_id").loc[first, "households"] == smallest["households"]
    page.get_by_role("columnheader", name="Households", exact=True).click()
    first = page.locator("#settlements tbody tr").first.locator("td").nth(1).inner_text()
    assert table.set_index("settlement_id").loc[first, "households"] == table[
        "households"].max()
    watch.assert_clean()


def test_hostile_name_renders_as_text(page, hostile: Path) -> None:
    watch = open_map(page, hostile)
    search(page, HOSTILE)
    assert page.locator(".leaflet-popup-content h3").inner_text() == HOSTILE
    shot(page, "map-hostile.png")
    assert page.locator(".pm-about-title").inner_text() == HOSTILE
    page.goto((hostile / "atlas" / "JK05.html").as_uri())
    assert page.locator("#settlement-name").inner_text() == HOSTILE
    assert page.title().startswith(HOSTILE)
    page.goto((hostile / "atlas" / "index.html").as_uri())
    assert page.get_by_role("link", name=HOSTILE).count() == 1
    watch.assert_clean()


def test_hostile_hazard_name_renders_as_text(page, tmp_path: Path) -> None:
    """A hazard named like an HTML element shows those characters in the layer control and
    the legend, and nothing runs."""
    name = "<img src=x onerror=alert(9)>"
    cfg = load_config(REPO / "configs" / "demo.yaml")
    cfg.hazards[0].name = name
    out = tmp_path / "out"
    pipeline.run(cfg, out)
    watch = open_map(page, out)
    assert page.locator(".leaflet-control-layers img").count() == 0
    box = page.get_by_label(f"Hazard: {name}")
    box.check()
    page.wait_for_selector("img.leaflet-image-layer")
    assert f"Hazard: {name}" in page.locator(".pm-legend").inner_text()
    assert page.locator(".pm-legend img").count() == 0
    watch.assert_clean()


def test_the_change_map_colours_each_settlement_by_its_verdict(page, compared: Path) -> None:
    """The comparison's map, offline: a layer per main indicator, each settlement coloured
    better, no clear change or worse by its 95 % interval as change_by_settlement.csv gives it
    (worked out here again from the interval), and the popup's link to its then-and-now page."""
    from profiling.publish.change import CHANGE_COLOURS

    change = pd.read_csv(compared / "change_by_settlement.csv", dtype={"settlement_id": str})
    watch = open_map(page, compared)
    page.get_by_label("Change: Basic sanitation").check()
    page.wait_for_function("document.querySelector('.pm-legend-title').textContent"
                           " === 'Change: Basic sanitation'")
    legend = page.locator(".pm-legend-row").all_inner_texts()
    assert [t.strip() for t in legend[:3]] == ["better", "no clear change", "worse"]
    rows = change[change["indicator"] == "sanitation_basic"].set_index("settlement_id")
    colour = {}
    for sid, r in rows.iterrows():
        if pd.isna(r["change"]):
            colour[sid] = "#d9d9d9"
        elif r["change_lo"] > 0:
            colour[sid] = CHANGE_COLOURS[0]  # more households with a basic toilet: better
        elif r["change_hi"] < 0:
            colour[sid] = CHANGE_COLOURS[2]
        else:
            colour[sid] = CHANGE_COLOURS[1]
    assert sum(c == CHANGE_COLOURS[0] for c in colour.values()) >= 3  # the planted toilets
    drawn = page.evaluate(
        "() => { const el = document.querySelector('.folium-map'); const m = window[el.id];"
        " const out = {}; m.eachLayer(l => { if (l.feature && l.options.fillColor)"
        " out[l.feature.properties.id] = l.options.fillColor; }); return out; }")
    assert {s: drawn[s] for s in colour} == colour
    search(page, "Cideng RW 01")
    link = page.locator(".leaflet-popup-content a.pm-atlas")
    assert link.get_attribute("href") == "atlas/JK03.html"
    assert "100%" in page.locator(".leaflet-popup-content").inner_text()
    shot(page, "map-change.png")
    watch.assert_clean()


def test_the_french_map_speaks_french(page, french: Path) -> None:
    """The sample city run with ``language: fr``: the layer control, the legend, the title
    block, the portfolio panel, the search box and a popup are in French, with the network
    cut."""
    table = pd.read_csv(french / "settlement_indicators.csv", dtype={"settlement_id": str})
    watch = open_map(page, french)
    assert page.locator("html").get_attribute("lang") == "fr"
    control = page.locator(".leaflet-control-layers").inner_text()
    assert "Ménages de bidonville" in control and "Financé par le portefeuille du FAC" in control
    legend = page.locator(".pm-legend").inner_text()
    assert "Classes : seuils naturels de Fisher-Jenks" in legend and "ou moins" in legend
    about = page.locator("#pm-about").inner_text()
    assert "Recensé du 2026-03-02 au 2026-03-13" in about
    assert "Aucun chiffre n'est calculé à partir de moins de 5 ménages." in about
    assert "Recensement des ménages" in about
    assert page.locator("#pm-portfolio summary").inner_text().startswith("Portefeuille du FAC : ")
    box = page.locator(".pm-search input")
    assert box.get_attribute("placeholder") == "Trouver un quartier"
    row = table.set_index("settlement_id").loc["JK30"]
    search(page, row["name"])
    rows = popup_rows(page)
    n = int(table["cuf_rank"].notna().sum())
    assert rows["Rang au FAC"] == f"{int(row['cuf_rank'])} sur {n}"
    assert rows["Ménages"] == f"{int(row['households']):,}"
    assert rows["Ménages de bidonville"] == pct(row["slum_household_share"])
    assert page.locator(".pm-atlas").inner_text() == "Ouvrir le profil du quartier"
    english = {"Households", "Slum households", "Classes:", "Open the settlement profile",
               "Find a settlement", "Enumerated from", "CUF portfolio"}
    text = page.locator("body").inner_text()
    assert not {w for w in english if w in text}
    shot(page, "map-fr.png")
    watch.assert_clean()
