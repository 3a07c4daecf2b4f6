"""The settlement profiles in the configured language (issue 20): the sample city run with
``language: fr`` leaves no English on any profile, and the catalogues hold together.

What counts as English is decided here, independently of the catalogues: words of the
profile's English text that are not French (a list written by hand), looked for in the
visible text of every page once the data the configuration itself names (settlement names and
ids, the intervention catalogue's names) is taken out. The same check run on the English
profiles must find them, so it cannot pass by looking at nothing.
"""

from __future__ import annotations

import html
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, demo_config_data

LOCALE = REPO / "src" / "profiling" / "locale"

#: Words of the profiles' English text that French does not use (so none is a French word
#: too: "part", "surface", "durable", "services", "sources", "budget", "score" and
#: "interventions" are left out on purpose).
ENGLISH = frozenset({
    "the", "of", "and", "with", "from", "than", "which", "where", "when", "households",
    "household", "share", "known", "not", "ranked", "rank", "funded", "figures", "water",
    "sanitation", "persons", "people", "settlement", "settlements", "hazard", "key", "data",
    "quality", "definitions", "community", "upgrading", "fund", "none", "basic", "limited",
    "unimproved", "improved", "toilet", "toilets", "tenure", "housing", "overcrowded",
    "electricity", "waste", "collected", "flood", "depth", "land", "temperature", "class",
    "mean", "area", "modelled", "threshold", "high", "recommended", "map", "all", "cell",
    "size", "enumerated", "slum", "lies", "city", "served", "portfolio", "runs", "weights",
    "weight", "normalised", "sum", "largest", "is", "are", "at", "or", "to", "in", "by",
    "for", "contract", "sdg", "who", "drinking", "ladder", "hygiene", "handwashing", "soap",
    "eviction", "fear", "documented", "secure", "safely", "managed", "open", "defecation",
    "priorities", "exposure", "checked", "interval", "intervals"
})


class _Text(HTMLParser):
    """The text a reader sees: everything outside <script> and <style>, and the <title>."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:  # what a screen reader or a hover says is read too
            if name in ("aria-label", "title", "alt") and value:
                self.parts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def visible_text(path: Path) -> str:
    p = _Text()
    p.feed(path.read_text(encoding="utf-8"))
    return html.unescape(" ".join(p.parts))


def english_words(text: str, data: list[str]) -> set[str]:
    """The words of ENGLISH in ``text`` once each of ``data`` (names the configuration
    gives) is taken out."""
    for d in sorted(data, key=len, reverse=True):
        text = text.replace(d, " ")
    return {w for w in re.findall(r"[^\W\d_]+", text) if w.lower() in ENGLISH}


def _data_names(table: pd.DataFrame) -> list[str]:
    catalogue = yaml.safe_load(Path(demo_config_data()["cuf"]["interventions"]).read_text())
    return [*table["name"].astype(str), *table["settlement_id"].astype(str),
            *(iv["name"] for iv in catalogue["interventions"]),
            *(iv["reason_not_advised"] for iv in catalogue["interventions"]
              if iv.get("reason_not_advised")),
            "CONTRACT.md"]  # a file's name


def _pages(out: Path) -> list[Path]:
    """Every settlement's profile (one per row of the settlement table)."""
    table = pd.read_csv(out / "settlement_indicators.csv", dtype={"settlement_id": str})
    pages = [out / "atlas" / f"{sid}.html" for sid in table["settlement_id"]]
    assert len(pages) > 20 and all(p.exists() for p in pages)
    return pages


def test_no_english_is_left_on_a_french_profile(french: Path) -> None:
    table = pd.read_csv(french / "settlement_indicators.csv", dtype={"settlement_id": str})
    data = _data_names(table)
    left = {p.name: english_words(visible_text(p), data) for p in _pages(french)}
    assert {name: words for name, words in left.items() if words} == {}
    assert all('<html lang="fr">' in p.read_text(encoding="utf-8") for p in _pages(french))


def test_the_check_finds_the_english_of_an_english_profile(demo: Path) -> None:
    # the same check on the English run: it must find English on every page, or the test
    # above would pass by looking at nothing
    table = pd.read_csv(demo / "settlement_indicators.csv", dtype={"settlement_id": str})
    data = _data_names(table)
    found = [english_words(visible_text(p), data) for p in _pages(demo)]
    assert all({"households", "the", "of"} & {w.lower() for w in words} for words in found)


def test_a_french_profile_says_its_figures_and_reasons_in_french(french: Path) -> None:
    # the words of one ranked settlement's page, checked against its own tables
    pri = pd.read_csv(french / "cuf_priorities.csv", dtype={"settlement_id": str})
    first = pri.iloc[0]
    text = " ".join(visible_text(french / "atlas" / f"{first['settlement_id']}.html").split())
    n_ranked = int(pri["cuf_rank"].notna().sum())
    assert f"Rang au FAC {int(first['cuf_rank'])} sur {n_ranked}." in text
    assert str(first["explanation"]).startswith(f"Rang {int(first['cuf_rank'])} sur {n_ranked}, ")
    assert "Chiffres clés" in text and "Définitions et sources" in text
    # the plain-words definitions carry the run's thresholds: 30 minutes, 3 persons a room
    assert "30 minutes ou moins" in text and "Plus de 3 personnes par pièce" in text
    small = pri.loc[pri["cuf_rank"].isna()].iloc[0]
    small_text = " ".join(visible_text(
        french / "atlas" / f"{small['settlement_id']}.html").split())
    assert small_text.count("Non classé") == 1
    assert "Non classé : moins de 5 ménages recensés." in small_text


@pytest.mark.parametrize("language, heading", [("es", "Cifras clave"),
                                               ("pt", "Números-chave")])
def test_spanish_and_portuguese_profiles_have_their_headings(french: Path, language: str,
                                                             heading: str) -> None:
    from profiling.publish._data import read_tables
    from profiling.publish.atlas import render_page

    tables = read_tables(french)
    tables.language = language
    row = tables.settlements.loc[tables.settlements["households"].notna()].iloc[0]
    _, page = render_page(tables, row)
    headings = re.findall(r"<h[12][^>]*>(.*?)</h[12]>", page, re.S)
    assert f"<h2>{heading}</h2>" in page and f'<html lang="{language}">' in page
    english = {"Key figures", "Community priorities", "Community Upgrading Fund",
               "Data quality", "Definitions and sources", "Water, sanitation and hygiene",
               "Tenure", "Housing and overcrowding", "Hazard exposure of the land"}
    assert not english & {html.unescape(h).strip() for h in headings}


@pytest.mark.parametrize("language", ["fr", "es", "pt"])
def test_every_translation_keeps_the_placeholders_of_its_message(language: str) -> None:
    # a translation that drops or renames a %(name)s or {name} would fail at run time
    from babel.messages.pofile import read_po

    po = LOCALE / language / "LC_MESSAGES" / "profiling.po"
    catalog = read_po(io.BytesIO(po.read_bytes()), locale=language)
    pattern = re.compile(r"%\(\w+\)[-#0 +]*\d*(?:\.\d+)?[sdf]|\{\w+(?::[^}]*)?\}")
    bad = [m.id for m in catalog if m.id and m.string
           and sorted(pattern.findall(m.id)) != sorted(pattern.findall(m.string))]
    assert bad == []


def test_french_profiles_print_one_pdf_each(french: Path, tmp_path: Path) -> None:
    # Chromium prints ten profiles a document and cuts it where each profile's heading and
    # its line "Identifiant du quartier <id>" stand (the English line would be found nowhere)
    import shutil

    import pypdfium2 as pdfium
    from typer.testing import CliRunner

    from profiling.cli import app
    from profiling.publish.pdf import _parts

    out = tmp_path / "out"
    shutil.copytree(french, out)
    page = out / "atlas" / "JK30.html"
    assert _parts(page)[2] == ("Petojo Selatan RW 01", "Identifiant du quartier JK30")
    cfg = french.parent / "fr.yaml"
    result = CliRunner().invoke(app, ["atlas", str(cfg), "--out", str(out), "--pdf", "-q"])
    assert result.exit_code == 0, result.output
    for page in _pages(out):
        doc = pdfium.PdfDocument(out / "atlas" / "pdf" / f"{page.stem}.pdf")
        texts = [p.get_textpage().get_text_range() for p in doc]
        assert f"Identifiant du quartier {page.stem}" in " ".join(texts[0].split())
        assert "Définitions et sources" in " ".join(texts[-1].split())
        assert not any("Identifiant du quartier" in t for t in texts[1:])


def test_the_french_atlas_index_is_french_up_to_the_city_summary(french: Path,
                                                                  tmp_path: Path) -> None:
    # the headline, the chart, the table of settlements: French; the city summary's
    # definitions (long texts in code names) are still English, so the page is read up to it
    index = (french / "atlas" / "index.html").read_text(encoding="utf-8")
    assert '<html lang="fr">' in index and "<h1>Atlas des quartiers</h1>" in index
    head, city = index.split("<h2>Résumé de la ville</h2>")
    part = tmp_path / "head.html"
    part.write_text(head, encoding="utf-8")
    table = pd.read_csv(french / "settlement_indicators.csv", dtype={"settlement_id": str})
    assert english_words(visible_text(part), _data_names(table)) == set()
    # each headline figure named in French, with its value from the city summary
    summary = pd.read_csv(french / "city_summary.csv").set_index("indicator")["value"]
    share = summary["sdg_11_1_1_slum_population"]
    assert ("<dt>Personnes vivant dans des ménages de bidonville (ODD 11.1.1)</dt>"
            f"<dd>{share:.0%}</dd>") in " ".join(head.split()).replace("> <", "><")
    assert "<td>Eau de boisson: de base</td>" in city  # a ladder's level, named in French
