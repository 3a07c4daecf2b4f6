"""The settlement atlas: escaped names, suppressed small settlements, figures from the table."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from profiling.publish._data import read_tables
from profiling.publish.atlas import write_atlas

REPO = Path(__file__).resolve().parents[1]
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def table(demo: Path) -> pd.DataFrame:
    return pd.read_csv(demo / "settlement_indicators.csv", dtype={"settlement_id": str})


def test_names_and_free_text_are_escaped(demo: Path, tmp_path: Path) -> None:
    tables = read_tables(demo)
    tables.out = tmp_path
    tables.settlements.loc[tables.settlements["settlement_id"] == "JK30", "name"] = HOSTILE
    tables.priorities.loc[tables.priorities["settlement_id"] == "JK30", "explanation"] = (
        '<img src=x onerror="alert(2)">')
    write_atlas(tables)
    page = (tmp_path / "atlas" / "JK30.html").read_text(encoding="utf-8")
    index = (tmp_path / "atlas" / "index.html").read_text(encoding="utf-8")
    for html in (page, index):
        assert HOSTILE not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in page


def test_small_settlement_page_has_no_household_figure(demo: Path) -> None:
    html = (demo / "atlas" / "JK01.html").read_text(encoding="utf-8")
    assert "suppressed (fewer than 5 households)" in html
    for absent in ('id="key-figures"', "Households known", "class=\"bar\"",
                   "Community priorities", "Enumerated from"):
        assert absent not in html
    index = (demo / "atlas" / "index.html").read_text(encoding="utf-8")
    row = index[index.index('href="JK01.html"'):]
    row = row[:row.index("</tr>")]
    assert "suppressed" in row


def test_page_figures_come_from_the_table(demo: Path, table: pd.DataFrame) -> None:
    row = table.set_index("settlement_id").loc["JK30"]
    html = (demo / "atlas" / "JK30.html").read_text(encoding="utf-8")
    assert f'<div class="value">{int(row["households"]):,}</div>' in html
    assert f'<div class="value">{round(row["slum_household_share"] * 100)}%</div>' in html
    assert f'<strong id="cuf-rank">{int(row["cuf_rank"])}</strong>' in html
    dates = pd.read_csv(demo / "enumeration_dates.csv", dtype=str).set_index("settlement_id")
    assert (f"Enumerated from {dates.loc['JK30', 'first_interview']} to "
            f"{dates.loc['JK30', 'last_interview']}") in html
    assert "no figure is published from fewer than 5 households" in html
    # each ladder's parts add up to the whole
    for ladder, levels in (("water", 5), ("sanitation", 4), ("hygiene", 3)):
        cols = [c for c in table.columns if c.startswith(f"{ladder}_ladder_")
                and c.endswith("_share")]
        assert len(cols) == levels
        assert sum(row[c] for c in cols) == pytest.approx(1.0)


def test_print_stylesheet_is_a4(demo: Path) -> None:
    css = (demo / "atlas" / "atlas.css").read_text(encoding="utf-8")
    assert "@page { size: A4;" in css


def test_atlas_without_geometry_still_writes_pages(demo: Path, tmp_path: Path) -> None:
    for name in ("settlement_indicators.csv", "cuf_priorities.csv", "parameters.csv"):
        shutil.copy(demo / name, tmp_path / name)
    tables = read_tables(tmp_path)
    assert not tables.has_geometry
    written = write_atlas(tables)
    assert (tmp_path / "atlas" / "index.html").exists()
    assert len(written) == 32


def test_ids_that_differ_only_in_punctuation_get_their_own_pages(demo: Path,
                                                                 tmp_path: Path) -> None:
    from profiling.publish._data import safe_id

    assert safe_id("JK01") == "JK01" and safe_id("rw-3_b") == "rw-3_b"
    names = {safe_id(i) for i in ("RW 01/02", "RW 01-02", "RW_01_02", "RW 01:02", "Kampung é")}
    assert len(names) == 5 and "RW_01_02" in names
    assert all(n.replace("-", "").replace("_", "").replace(".", "").isalnum() for n in names)

    for name in ("settlement_indicators.csv", "cuf_priorities.csv", "parameters.csv"):
        shutil.copy(demo / name, tmp_path / name)
    table = pd.read_csv(tmp_path / "settlement_indicators.csv", dtype={"settlement_id": str})
    table.loc[table["settlement_id"] == "JK30", "name"] = "Slash"
    table.loc[table["settlement_id"] == "JK31", "name"] = "Colon"
    table["settlement_id"] = table["settlement_id"].replace({"JK30": "RW 1/2", "JK31": "RW 1:2"})
    table.to_csv(tmp_path / "settlement_indicators.csv", index=False)
    written = write_atlas(read_tables(tmp_path))
    slash, colon = written["atlas_RW 1/2"], written["atlas_RW 1:2"]
    assert slash != colon
    assert "Slash" in slash.read_text(encoding="utf-8")
    assert "Colon" in colon.read_text(encoding="utf-8")
    assert len({p for p in (tmp_path / "atlas").glob("*.html")}) == 32  # 31 pages and the index


def test_long_and_reserved_ids_become_safe_file_names(demo: Path, tmp_path: Path) -> None:
    """A 300-character id and an id Windows reserves (CON) still get a page each."""
    from profiling.publish._data import MAX_NAME, safe_id

    long_id = "S" * 300
    assert len(safe_id(long_id)) == MAX_NAME + 13 and safe_id(long_id).startswith("S" * 64)
    for reserved in ("CON", "nul", "Com1", "LPT9"):
        name = safe_id(reserved)
        assert name != reserved and name.startswith(reserved + ".")
    assert safe_id("CONSTANT") == "CONSTANT"
    for name in ("settlement_indicators.csv", "cuf_priorities.csv", "parameters.csv"):
        shutil.copy(demo / name, tmp_path / name)
    table = pd.read_csv(tmp_path / "settlement_indicators.csv", dtype={"settlement_id": str})
    table["settlement_id"] = table["settlement_id"].replace({"JK30": long_id, "JK31": "CON"})
    table.to_csv(tmp_path / "settlement_indicators.csv", index=False)
    written = write_atlas(read_tables(tmp_path))
    assert written[f"atlas_{long_id}"].exists() and written["atlas_CON"].exists()
    assert written["atlas_CON"].name != "CON.html"


def test_an_atlas_rendered_in_processes_equals_one_rendered_here(demo: Path, tmp_path: Path,
                                                                 monkeypatch) -> None:
    from profiling.publish import atlas

    for name in ("settlement_indicators.csv", "cuf_priorities.csv", "parameters.csv",
                 "enumeration_dates.csv", "city_summary.csv"):
        shutil.copy(demo / name, tmp_path / name)
    here = atlas.write_atlas(read_tables(tmp_path), workers=1)
    pages = {k: p.read_text(encoding="utf-8") for k, p in here.items()}
    monkeypatch.setattr(atlas, "PARALLEL_FROM", 1)
    monkeypatch.setattr(atlas, "CHUNK", 4)
    ticks = []
    forked = atlas.write_atlas(read_tables(tmp_path), on_page=lambda: ticks.append(1),
                               workers=2)
    assert {k: p.read_text(encoding="utf-8") for k, p in forked.items()} == pages
    assert len(ticks) == len(pages) - 1  # one per settlement page, not the index


def test_the_index_says_what_small_settlements_lack_once(demo: Path) -> None:
    """The index's note on small settlements is one plain sentence, not a suppression text
    nested in brackets inside another ("(suppressed (fewer than 5 households))")."""
    text = (demo / "atlas" / "index.html").read_text(encoding="utf-8")
    assert "(suppressed (" not in text
    assert ("Settlements with fewer than 5 households show no household figures, so that no "
            "household can be recognised from them.") in " ".join(text.split())


def _text(html: str) -> str:
    import html as h
    import re

    body = re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S)
    return re.sub(r"\s+", " ", h.unescape(re.sub(r"<[^>]+>", " ", body)))


def test_the_index_opens_with_the_citys_headline_in_words(demo: Path,
                                                          table: pd.DataFrame) -> None:
    """Headline figures first, then the settlements, then the city's figures with their
    definitions: each figure named in words, none by its column name, and each headline
    figure equal to the tables' (counted here from the CSV files)."""
    import re

    html = (demo / "atlas" / "index.html").read_text(encoding="utf-8")
    text = _text(html)
    assert text.index('Settlements 31 ') < text.index("Click a column heading") < text.index(
        "City summary")
    households = int(table["households"].sum())  # suppressed settlements are empty
    ranked = int(table["cuf_rank"].notna().sum())
    city = pd.read_csv(demo / "city_summary.csv").set_index("indicator")
    slum = round(float(city.loc["sdg_11_1_1_slum_population", "value"]) * 100)
    head = text[:text.index("Click a column heading")]
    for words in (f"Households enumerated, in settlements of at least 5 households "
                  f"{households:,}", f"Settlements ranked for the Community Upgrading Fund "
                  f"{ranked}", f"Persons living in slum households (SDG 11.1.1) {slum}%"):
        assert words in head, words
    # no machine label, no code name in backticks, the slum components said once
    labels = re.findall(r'<table id="city">.*?</table>', html, flags=re.S)[0]
    first_cells = re.findall(r"<tr><td>([^<]*)</td>", labels)
    assert len(first_cells) == len(city) - 1  # all but the slum components' sentence
    assert not [c for c in first_cells if "_" in c or c[:1].islower()]
    assert "Drinking water: basic" in first_cells and "`" not in text
    assert text.count("Slum status is decided on") == 1
    # the tables behind it, linked, and each one there
    links = re.findall(r'href="\.\./([^"]+\.csv)"', html)
    assert {"settlement_indicators.csv", "cuf_priorities.csv", "city_summary.csv"} <= set(links)
    assert all((demo / name).is_file() for name in links)


def test_the_index_table_has_the_main_shares(demo: Path, table: pd.DataFrame) -> None:
    html = (demo / "atlas" / "index.html").read_text(encoding="utf-8")
    row = html[html.index('href="JK30.html"'):]
    cells = _text(row[:row.index("</tr>")]).split()
    r = table.set_index("settlement_id").loc["JK30"]
    want = [f"{int(r['households']):,}"] + [
        f"{round(r[c] * 100)}%" for c in ("slum_household_share", "water_basic_share",
                                          "sanitation_basic_share", "tenure_secure_share",
                                          "overcrowded_share")]
    assert cells[cells.index("JK30") + 1:][:6] == want


def test_the_cuf_block_says_how_firm_the_rank_is_and_what_is_funded(demo: Path,
                                                                     table: pd.DataFrame
                                                                     ) -> None:
    """Figures from cuf_priorities.csv and cuf_portfolio.csv, the top need from the
    settlement table's priority shares: each computed here from those files."""
    pri = pd.read_csv(demo / "cuf_priorities.csv", dtype={"settlement_id": str}).set_index(
        "settlement_id")
    port = pd.read_csv(demo / "cuf_portfolio.csv", dtype={"settlement_id": str})
    checked = 0
    for sid in ("JK30", "JK06", "JK03"):
        text = _text((demo / "atlas" / f"{sid}.html").read_text(encoding="utf-8"))
        p = pri.loc[sid]
        lo, hi = int(p["rank_p05"]), int(p["rank_p95"])
        where = f"rank {lo}" if lo == hi else f"ranks {lo}–{hi}"
        assert (f"top 10 in {round(p['p_top_10'] * 100)}% of runs; {where} in 9 of 10."
                in text)
        here = port[port["settlement_id"] == sid]
        if len(here):
            assert f"Funded: {here['cost'].sum():,.0f}, serving" in text
        row = table.set_index("settlement_id").loc[sid]
        shares = {c.removeprefix("priority_").removesuffix("_share"): row[c]
                  for c in table.columns if c.startswith("priority_") and c.endswith("_share")}
        top = max(shares, key=lambda n: shares[n])
        words = top.replace("_", " ")
        assert p["top_need"] == words  # the need named most, as counted here
        assert bool(p["top_need_funded"]) == bool((here["need"] == top).any())
        assert f"Most named need, {words}: {p['top_need_reason']}." in text
        checked += 1
    assert checked == 3
    small = _text((demo / "atlas" / "JK01.html").read_text(encoding="utf-8"))
    assert small.count("Not ranked") == 1 and "Not ranked: fewer than 5 households" in small


def test_the_index_chart_draws_each_ranked_settlement_at_its_rank_and_share(
        demo: Path, table: pd.DataFrame) -> None:
    """One dot per ranked settlement with a published slum share, placed by its rank and its
    share on the chart's axes (worked out here from the table), filled where the portfolio
    funds it; a hostile name in its title stays text."""
    import html as html_lib
    import re

    from profiling.publish.atlas import CHART_H, CHART_MARGIN, CHART_W

    index = (demo / "atlas" / "index.html").read_text(encoding="utf-8")
    svg = re.search(r'<svg id="index-chart".*?</svg>', index, re.S)
    assert svg is not None
    dots = re.findall(r'<circle class="(\w+)" cx="([\d.]+)" cy="([\d.]+)" r="4"><title>(.*?)'
                      r"</title></circle>", svg.group(0))
    shown = table.dropna(subset=["cuf_rank", "slum_household_share"])
    assert len(dots) == len(shown) > 20
    funded = set(pd.read_csv(demo / "cuf_portfolio.csv", dtype={"settlement_id": str})
                 ["settlement_id"])
    left, top, right, bottom = CHART_MARGIN
    last = int(table["cuf_rank"].max())
    by_name = {html_lib.unescape(t).split(": rank")[0]: (c, float(x), float(y))
               for c, x, y, t in dots}
    for r in shown.itertuples():
        cls, x, y = by_name[r.name]
        assert x == pytest.approx(left + (r.cuf_rank - 1) / (last - 1) * (CHART_W - left - right),
                                  abs=0.06)
        assert y == pytest.approx(top + (1 - r.slum_household_share) * (CHART_H - top - bottom),
                                  abs=0.06)
        assert cls == ("funded" if r.settlement_id in funded else "unfunded")
    assert "Filled dots: settlements the CUF portfolio funds." in index


def test_a_hostile_name_in_the_index_chart_stays_text(demo: Path, tmp_path: Path) -> None:
    tables = read_tables(demo)
    tables.out = tmp_path
    tables.settlements.loc[tables.settlements["settlement_id"] == "JK30", "name"] = HOSTILE
    write_atlas(tables)
    index = (tmp_path / "atlas" / "index.html").read_text(encoding="utf-8")
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt;: rank" in index


def _path_points(d: str) -> list[tuple[float, float]]:
    import re

    return [(float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", d)]


def test_each_profile_has_a_locator_map_of_its_settlement_in_the_city(demo: Path) -> None:
    """Inline SVG, nothing fetched: the city's outline, and the settlement where its polygon
    lies within the city's bounds (its centre at the same fraction of the city's width and
    height as the polygon's, worked out here from the boundaries)."""
    import re

    import geopandas as gpd

    shapes = gpd.read_file(demo / "settlements.gpkg").to_crs(4326).set_index("settlement_id")
    w, s, e, n = shapes.total_bounds
    for sid in ("JK03", "JK17", "JK30"):
        page = (demo / "atlas" / f"{sid}.html").read_text(encoding="utf-8")
        svg = re.search(r'<svg class="locator" id="locator" viewBox="0 0 ([\d.]+) ([\d.]+)"'
                        r'.*?</svg>', page, re.S)
        assert svg is not None, sid
        assert "href" not in svg.group(0) and "<image" not in svg.group(0)
        city = _path_points(re.search(r'class="city" d="([^"]+)"', svg.group(0)).group(1))
        here = _path_points(re.search(r'class="here" d="([^"]+)"', svg.group(0)).group(1))
        cx0, cx1 = min(p[0] for p in city), max(p[0] for p in city)
        cy0, cy1 = min(p[1] for p in city), max(p[1] for p in city)
        hx = (min(p[0] for p in here) + max(p[0] for p in here)) / 2
        hy = (min(p[1] for p in here) + max(p[1] for p in here)) / 2
        b = shapes.geometry.loc[sid].bounds
        lon, lat = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        assert (hx - cx0) / (cx1 - cx0) == pytest.approx((lon - w) / (e - w), abs=0.03), sid
        assert (hy - cy0) / (cy1 - cy0) == pytest.approx((n - lat) / (n - s), abs=0.03), sid
    assert "<svg class=\"locator\"" not in (demo / "atlas" / "index.html").read_text()


def _in_need(iv: dict, row: pd.Series) -> float:
    """The share of a settlement's households an intervention serves: those where the
    indicator it improves is false (true when it is bad), or those naming its need when it
    improves no indicator."""
    if "improves" not in iv:
        return float(row[f"priority_{iv['need']}_share"])
    share = float(row[f"{iv['improves']}_share"])
    return share if iv.get("improves_is_bad") else 1 - share


def test_why_the_most_named_need_is_not_funded_is_worked_out_from_the_catalogue(
        demo: Path, table: pd.DataFrame) -> None:
    """Each reason of cuf_priorities.csv against the catalogue, the settlement table and the
    portfolio, worked out here: a need the catalogue has nothing for; not advised where more
    than half of the land floods; no household in need; dearer per person served than
    anything funded; else the budget ran out."""
    import yaml

    pri = pd.read_csv(demo / "cuf_priorities.csv", dtype={"settlement_id": str}).set_index(
        "settlement_id")
    port = pd.read_csv(demo / "cuf_portfolio.csv", dtype={"settlement_id": str})
    catalogue = yaml.safe_load((REPO / "configs" / "interventions.yaml").read_text())[
        "interventions"]
    t = table.set_index("settlement_id")
    dearest = (port["cost"] / port["beneficiaries"]).max()
    seen = set()
    for sid, p in pri.dropna(subset=["top_need"]).iterrows():
        need = str(p["top_need"]).replace(" ", "_")
        reason = str(p["top_need_reason"])
        row = t.loc[sid]
        size = row["population"] / row["households"]
        ivs = [iv for iv in catalogue if iv["need"] == need]
        if bool(p["top_need_funded"]):
            assert reason == "funded here"
            seen.add("funded")
            continue
        if not ivs:
            assert reason == "the fund's catalogue has nothing for it", sid
            seen.add("catalogue")
            continue
        open_ = [iv for iv in ivs if not any(row[c] > v for c, v in
                                            iv.get("not_advised_above", {}).items())]
        if not open_:
            assert reason == f"not advised here ({ivs[0]['reason_not_advised']})", sid
            seen.add("advised")
            continue
        lack = [iv for iv in open_ if _in_need(iv, row) > 0]
        if not lack:
            assert reason == "no household here lacks it", sid
            seen.add("none")
            continue
        per_person = min(iv["unit_cost"] * iv.get("units_per_household", 1)
                         / (iv.get("households_per_unit", 1) * size) for iv in lack)
        if per_person > dearest:
            assert reason == (f"too costly per person served: {per_person:,.0f} a person "
                              f"here, the portfolio funds nothing above {dearest:,.0f}"), sid
            seen.add("costly")
        else:
            assert reason == (f"the budget ran out ({port['cost'].sum():,.0f} of 250,000 "
                              f"spent) before it, at {per_person:,.0f} a person served here"), sid
            seen.add("budget")
    assert seen == {"funded", "catalogue", "advised", "none", "costly", "budget"}


def _wilson(x: float, n: float, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval, from its textbook formula (Wilson 1927)."""
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_each_share_stands_beside_the_citys_with_its_interval_where_the_sample_is_small(
        demo: Path, table: pd.DataFrame) -> None:
    import re

    labels = {"water_basic": "Basic drinking water", "tenure_documented": "Tenure documented",
              "durable_housing": "Durable housing", "electricity_access": "Electricity"}
    shown = narrow = 0
    for _, row in table.loc[table["households"].notna()].iterrows():
        page = (demo / "atlas" / f"{row['settlement_id']}.html").read_text(encoding="utf-8")
        for name, label in labels.items():
            share, n = row[f"{name}_share"], row[f"{name}_n"]
            if pd.isna(share):
                continue
            # the city's share: the households for whom it holds over those known, summed
            # over the settlements that publish it
            ok = table[f"{name}_share"].notna()
            city = ((table.loc[ok, f"{name}_share"] * table.loc[ok, f"{name}_n"]).round().sum()
                    / table.loc[ok, f"{name}_n"].sum())
            lo, hi = _wilson(round(share * n), n)
            cell = re.search(rf"<tr><td>{re.escape(label)}</td><td class=\"num\">(.*?)</td>"
                             rf"<td class=\"num city\">(.*?)</td>", page)
            assert cell is not None, (row["settlement_id"], label)
            assert cell.group(2) == f"{city:.0%}"
            if max(share - lo, hi - share) > 0.10:
                shown += 1
                assert cell.group(1).endswith(
                    f"({round(lo * 100)}–{round(hi * 100)}%)</span>"), cell.group(1)
            else:
                narrow += 1
                assert cell.group(1) == f"{share:.0%}"
    assert shown > 0 and narrow > 0
