"""Disclosure control: the audit finds every planted personal value, location and small cell,
finds nothing in a normal run, and a run with a leak is not marked complete."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import struct
import zlib
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from profiling import pipeline
from profiling.audit import Secrets, audit
from profiling.config import load_config

REPO = Path(__file__).resolve().parents[1]
SECRET = "a-test-secret-that-is-long-enough-0123456789abcdef"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PROFILING_SECRET", SECRET)
    out = tmp_path_factory.mktemp("demo")
    cfg = load_config(REPO / "configs" / "demo.yaml")
    result = pipeline.run(cfg, out)
    settlements = pipeline.load_settlements(cfg)
    secrets = Secrets.from_frames(result.ingest.personal, result.ingest.households, 5,
                                  settlements.frame.geometry)
    yield result, out, secrets
    mp.undo()


def test_a_normal_run_is_clean_and_complete(demo):
    _, out, secrets = demo
    assert audit(out, secrets) == []
    assert json.loads((out / "run_manifest.json").read_text())["status"] == "complete"


def _copy(out: Path, tmp: Path) -> Path:
    import shutil

    dst = tmp / "published"
    shutil.copytree(out, dst)
    return dst


def test_planted_personal_values_are_found_everywhere(demo, tmp_path):
    result, out, secrets = demo
    pub = _copy(out, tmp_path)
    person = result.ingest.personal.iloc[0]
    name, phone, nid = person["respondent_name"], person["phone"], person["national_id"]
    # a name in a CSV cell, a phone written differently in HTML, an ID in JSON, a key in JS
    table = pd.read_csv(pub / "cuf_priorities.csv")
    table.loc[0, "explanation"] = f"contact {name}"
    table.to_csv(pub / "cuf_priorities.csv", index=False)
    (pub / "page.html").write_text(f"<p>call {phone.replace(' ', '-')}</p>", encoding="utf-8")
    (pub / "data.json").write_text(json.dumps({"id": nid}), encoding="utf-8")
    (pub / "app.js").write_text(f"var k = '{person['key']}';", encoding="utf-8")
    layer = gpd.read_file(pub / "settlements.gpkg", layer="settlement_indicators")
    layer.loc[0, "name"] = name
    layer.to_file(pub / "settlements.gpkg", layer="settlement_indicators", driver="GPKG")
    geo = gpd.read_parquet(pub / "settlements.parquet")
    geo.loc[3, "name"] = f"{name} and family"
    geo.to_parquet(pub / "settlements.parquet")
    _png_with_text(pub / "map.png", f"author {nid}")
    _pdf_with_text(pub / "profile.pdf", f"Household of {name}")
    found = {(f.kind, f.file.split(":")[0]) for f in audit(pub, secrets)}
    assert found == {("personal", "cuf_priorities.csv"), ("personal", "page.html"),
                     ("personal", "data.json"), ("personal", "app.js"),
                     ("personal", "settlements.gpkg"), ("personal", "settlements.parquet"),
                     ("personal", "map.png"), ("personal", "profile.pdf")}
    # findings name the field, never the value
    assert not any(name in str(f) or nid in str(f) for f in audit(pub, secrets))


def test_geoparquet_geometry_is_checked_for_household_points(demo, tmp_path):
    """The GeoParquet export is read as a layer: a household's point in its geometry is
    found (in any CRS), the settlement polygons are not, and a geometry whose CRS is unknown
    cannot be cleared."""
    result, out, secrets = demo
    pub = _copy(out, tmp_path)
    assert audit(pub, secrets) == []
    hh = result.ingest.households.dropna(subset=["longitude"]).iloc[7]
    point = gpd.GeoDataFrame({"n": [1]}, geometry=[shapely.Point(hh["longitude"],
                                                                 hh["latitude"])],
                             crs="EPSG:4326").to_crs("EPSG:32748")
    point.to_parquet(pub / "extra.parquet")
    gpd.GeoDataFrame({"n": [1]}, geometry=[shapely.Point(0, 0)]).to_parquet(
        pub / "nocrs.parquet")
    found = sorted((f.kind, f.file, f.where) for f in audit(pub, secrets))
    assert found == [("location", "extra.parquet", "geometry"),
                     ("unreadable", "nocrs.parquet", "geometry")]


def test_household_locations_are_found_but_boundaries_are_not(demo, tmp_path):
    result, out, secrets = demo
    pub = _copy(out, tmp_path)
    hh = result.ingest.households.dropna(subset=["longitude"]).iloc[5]
    near = gpd.GeoDataFrame({"n": [1]}, geometry=[shapely.Point(hh["longitude"] + 0.0001,
                                                                hh["latitude"])],
                            crs="EPSG:4326")  # about 11 m east of a household
    (pub / "points.geojson").write_text(near.to_json(), encoding="utf-8")
    (pub / "note.txt").write_text(f"lat {hh['latitude']:.6f}, lon {hh['longitude']:.6f}",
                                  encoding="utf-8")
    boundaries = pipeline.load_settlements(load_config(REPO / "configs" / "demo.yaml"))
    (pub / "boundaries.geojson").write_text(boundaries.frame[["settlement_id", "geometry"]]
                                            .to_json(), encoding="utf-8")
    found = {(f.kind, f.file) for f in audit(pub, secrets)}
    assert found == {("location", "points.geojson"), ("location", "note.txt")}


def test_small_cells_are_found(demo, tmp_path):
    _, out, secrets = demo
    pub = _copy(out, tmp_path)
    table = pd.read_csv(pub / "settlement_indicators.csv")
    table.loc[0, "households"] = 3
    table.loc[1, "water_basic_n"] = 4
    table.to_csv(pub / "settlement_indicators.csv", index=False)
    found = [f for f in audit(pub, secrets) if f.kind == "small_cell"]
    assert sorted(f.where for f in found) == ["table row 1, column households",
                                              "table row 2, column water_basic_n"]


def test_a_leaking_run_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "published_rejects",
                        lambda rejects, secret: rejects)  # a bug that publishes raw keys
    with pytest.raises(pipeline.DisclosureError, match=r"personal: rejects\.csv"):
        pipeline.run(load_config(REPO / "configs" / "demo.yaml"), tmp_path)
    manifest = json.loads((tmp_path / "run_manifest.json").read_text())
    assert manifest["status"].startswith("incomplete") and manifest["audit"]["findings"] > 0


def test_rejects_name_households_by_keyed_hash(demo):
    result, out, _ = demo
    rejects = pd.read_csv(out / "rejects.csv", dtype=str)
    assert "key" not in rejects.columns
    expected = {hmac.new(SECRET.encode(), k.encode(), hashlib.sha256).hexdigest()
                for k in result.ingest.rejects["key"].dropna()}
    assert set(rejects["household_id"].dropna()) == expected


def test_small_settlement_is_suppressed_everywhere_and_the_total_hides_it(demo):
    result, out, _ = demo
    table = pd.read_csv(out / "settlement_indicators.csv").set_index("settlement_id")
    layer = gpd.read_file(out / "settlements.gpkg", layer="settlement_indicators").set_index(
        "settlement_id")
    # the hazards' area figures describe land, not households: never suppressed
    land = tuple(f"{h}_" for h in ("flood", "landslide", "heat"))
    household_cols = [c for c in table.columns if c in ("households", "population")
                      or (c.endswith(("_share", "_n", "_lo", "_hi")) and not (
                          c.startswith(land) and "_exposed_" not in c))]
    assert table.loc["JK01", household_cols].isna().all()
    assert layer.loc["JK01", household_cols].isna().all()
    city = pd.read_csv(out / "city_summary.csv").set_index("indicator")
    slum = city.loc["sdg_11_1_1_slum_population"]
    # the city total is the sum over published settlements: subtracting them leaves nothing
    assert slum["denominator"] == table["population"].sum()
    assert slum["excluded_settlements"] == "JK01"
    hh = result.ingest.households
    jk01_people = hh.loc[hh["settlement_id"] == "JK01", "hh_size"].sum()
    assert slum["denominator"] + jk01_people == hh.loc[hh["settlement_id"].notna(),
                                                       "hh_size"].sum()


def test_verbose_logs_carry_no_personal_value(tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("PROFILING_SECRET", raising=False)
    caplog.set_level(logging.DEBUG)
    result = pipeline.run(load_config(REPO / "configs" / "demo.yaml"), tmp_path)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert text
    values = {str(v) for v in result.ingest.personal.to_numpy().ravel()
              if pd.notna(v) and len(str(v)) >= 4}
    assert not [v for v in values if v in text]


def _png_with_text(path: Path, text: str) -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    raw = b"\x00\x00\x00\x00"  # one grey pixel row: filter byte + pixel
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
           + chunk(b"tEXt", b"Comment\x00" + text.encode("latin-1"))
           + chunk(b"IDAT", zlib.compress(raw[:2])) + chunk(b"IEND", b""))
    path.write_bytes(png)


def _pdf_with_text(path: Path, text: str) -> None:
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
            .encode())
    path.write_bytes(out)


def test_run_from_the_store_and_audit_command_against_it(tmp_path, monkeypatch):
    import subprocess
    import sys

    import yaml

    exe = str(Path(sys.executable).parent / "profiling")
    monkeypatch.setenv("PROFILING_SECRET", SECRET)
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    base = REPO / "configs"
    for key in ("form", "boundaries"):
        cfg[key] = str((base / cfg[key]).resolve())
    cfg["surveys"] = [str((base / s).resolve()) for s in cfg["surveys"]]
    for h in cfg["hazards"]:
        h["path"] = str((base / h["path"]).resolve())
    cfg["cuf"]["interventions"] = str((base / cfg["cuf"]["interventions"]).resolve())
    cfg["store"] = {"url": str(tmp_path / "store.gpkg")}
    cfg["output_dir"] = str(tmp_path / "out")
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(cfg))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, *args], capture_output=True, text=True, timeout=600,
                              check=False)

    assert cli("load", str(path), "-q").returncode == 0
    ran = cli("run", str(path), "-q")
    assert ran.returncode == 0, ran.stderr
    # the run analysed the store: the same settlement table as a run on the exports themselves
    direct = tmp_path / "direct"
    pipeline.run(load_config(REPO / "configs" / "demo.yaml"), direct)
    from_store = pd.read_csv(tmp_path / "out" / "settlement_indicators.csv")
    pd.testing.assert_frame_equal(from_store, pd.read_csv(direct / "settlement_indicators.csv"))
    # and on a local Dask cluster: the store is read here, the heavy stages run on the workers
    dask = cli("run", str(path), "--workers", "2", "--out", str(tmp_path / "dask"), "-q")
    assert dask.returncode == 0, dask.stderr
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "dask" / "settlement_indicators.csv"),
                                  from_store, check_exact=False, rtol=0, atol=1e-12)
    for name in ("city_summary.csv", "hexagons.csv", "supervision_report.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "dask" / name),
                                      pd.read_csv(tmp_path / "out" / name), check_exact=True)
    counts = json.loads((tmp_path / "out" / "run_manifest.json").read_text())["counts"]
    assert counts["read"] == (counts["accepted"] + counts["rejected"] + counts["duplicates"]
                              + counts["no_consent"])
    clean = cli("audit", str(tmp_path / "out"), "--config", str(path))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    name = load_config(path)  # the store holds the names: plant one into an output
    from profiling.store import open_configured

    with open_configured(name) as store:
        personal, _ = store.disclosure_reference()
    planted = str(personal["respondent_name"].dropna().iloc[0])
    (tmp_path / "out" / "notes.txt").write_text(f"interviewed {planted}")
    leak = cli("audit", str(tmp_path / "out"), "--config", str(path))
    assert leak.returncode == 1
    assert "personal: notes.txt" in leak.stdout and planted not in leak.stdout


# -- exact matching by kind of value (issue 14) ---------------------------------------------

def _secrets_with(demo, **personal: str) -> Secrets:
    """The demo's secrets (points, boundaries) with these personal values only."""
    result, _, secrets = demo
    frame = pd.DataFrame({k: [v] for k, v in personal.items()})
    s = Secrets.from_frames(frame, result.ingest.households, 5, secrets.boundaries)
    return s


def test_a_structure_id_is_not_found_in_leaflets_code(demo):
    _, out, _ = demo
    # Leaflet's minified code holds `Math.log(t/256)`: the id T-256 is not there as a value
    assert "t/256" in (out / "map_files" / "leaflet" / "leaflet.js").read_text()
    assert audit(out, _secrets_with(demo, structure_id="T-256")) == []


def test_ids_are_found_only_whole_with_their_own_separators(demo, tmp_path):
    _, out, _ = demo
    pub = _copy(out, tmp_path)
    # a settlement id beside a date, and beside a household count, as the outputs print them
    (pub / "enumeration_dates.csv").write_text(
        "settlement_id,first_interview,last_interview\nJK01,2026-03-02,2026-03-13\n")
    (pub / "atlas" / "extra.html").write_text("<td>Palmeriam JKT-020 265 100%</td>")
    secrets = _secrets_with(demo, structure_id="JK01-2026", national_id="JKT-020-265")
    assert audit(pub, secrets) == []
    # the same values where they stand whole are found: in a CSV field, a JSON string, text
    (pub / "leak.csv").write_text("a,b\nx,JK01-2026\n")
    (pub / "leak.json").write_text(json.dumps({"id": "jkt-020-265"}))
    (pub / "leak.txt").write_text("structure JK01-2026.")
    found = sorted((f.file, f.detail) for f in audit(pub, secrets))
    assert found == [("leak.csv", "a value of the personal field 'structure_id'"),
                     ("leak.json", "a value of the personal field 'national_id'"),
                     ("leak.txt", "a value of the personal field 'structure_id'")]


def test_names_are_found_in_any_case_and_spacing_but_not_inside_words(demo, tmp_path):
    _, out, _ = demo
    pub = _copy(out, tmp_path)
    secrets = _secrets_with(demo, respondent_name="Siti Nur Aisyah")
    (pub / "a.txt").write_text("Signed: SITI   nur-Aisyah, 3 March")
    (pub / "b.txt").write_text("Sitinur Aisyahs")  # other words that share its letters
    assert [f.file for f in audit(pub, secrets)] == ["a.txt"]


def test_a_name_with_sharp_s_is_found_as_written_and_in_capitals(demo, tmp_path):
    # lower case keeps ß, but capitals write it SS: the name is sought both ways
    _, out, _ = demo
    pub = _copy(out, tmp_path)
    secrets = _secrets_with(demo, respondent_name="Jürgen Straßmann")
    (pub / "a.txt").write_text("Interviewed: Jürgen Straßmann")
    (pub / "b.txt").write_text("JÜRGEN STRASSMANN, 3 March")
    (pub / "c.txt").write_text("jürgen strasmann")  # another name
    assert sorted(f.file for f in audit(pub, secrets)) == ["a.txt", "b.txt"]


def test_phones_are_found_in_national_and_international_form(demo, tmp_path):
    _, out, _ = demo
    pub = _copy(out, tmp_path)
    secrets = _secrets_with(demo, phone="+62 811 0000 0002")
    (pub / "a.txt").write_text("call 0811-0000-0002 today")
    (pub / "b.txt").write_text("or (+62) 811.0000.0002")
    (pub / "c.txt").write_text("or 62811000000029")  # a longer number is another number
    assert sorted(f.file for f in audit(pub, secrets)) == ["a.txt", "b.txt"]


def test_a_decimal_number_is_not_a_phone_and_a_phone_is_placed_by_line(demo, tmp_path):
    """A share printed with many decimals holds the phone's digits, but is a number; the
    phone itself, further on, is found on its own line, at its own offset."""
    _, out, _ = demo
    pub = _copy(out, tmp_path)
    secrets = _secrets_with(demo, phone="0811 0000 0002")
    text = "share;0811.00000002\nx;1.0811000000\ncall;0811 0000 0002\n"
    (pub / "a.csv").write_text(text)
    found = [f for f in audit(pub, secrets) if f.file == "a.csv"]
    assert [f.where for f in found] == [f"line 3, offset {text.index('0811 0000')}"]


def test_a_phone_repeated_on_several_lines_is_found_on_each(demo, tmp_path):
    _, out, _ = demo
    pub = _copy(out, tmp_path)
    secrets = _secrets_with(demo, phone="0811 0000 0002")
    (pub / "b.txt").write_text("a 0811 0000 0002\nb\nc 0811-0000-0002\nd (0811) 0000 0002\n")
    found = [f.where.split(",")[0] for f in audit(pub, secrets) if f.file == "b.txt"]
    assert found == ["line 1", "line 3", "line 4"]


def test_vendored_assets_are_checked_by_hash_not_scanned(demo, tmp_path):
    result, out, secrets = demo
    pub = _copy(out, tmp_path)
    name = str(result.ingest.personal["respondent_name"].dropna().iloc[0])
    js = pub / "map_files" / "leaflet" / "leaflet.js"
    js.write_text(js.read_text() + f"\n// {name}\n")
    found = audit(pub, secrets)
    assert [(f.kind, f.file) for f in found] == [("vendored", "map_files/leaflet/leaflet.js")]
    assert name not in str(found[0])


@pytest.mark.parametrize("name", ["households.parquet", "outputs.zip", "blob.bin", "README"])
def test_a_file_the_audit_cannot_read_is_a_finding(demo, tmp_path, name):
    _, out, secrets = demo
    pub = _copy(out, tmp_path)
    (pub / name).write_bytes(b"PK\x03\x04 whatever it holds")
    found = audit(pub, secrets)
    assert [(f.kind, f.file) for f in found] == [("unreadable", name)]


def test_a_phone_kept_in_national_form_is_found_in_international_form(demo, tmp_path):
    """With the configured country code, 0811-0000-0002 in the store is found written as
    +62 811 0000 0002 (and without it, a national number cannot be told from another)."""
    result, out, secrets = demo
    pub = _copy(out, tmp_path)
    (pub / "note.txt").write_text("call +62 811 0000 0002")
    frame = pd.DataFrame({"phone": ["0811-0000-0002"]})
    with_code = Secrets.from_frames(frame, result.ingest.households, 5, secrets.boundaries,
                                    country_code="62")
    assert [f.file for f in audit(pub, with_code)] == ["note.txt"]
    without = Secrets.from_frames(frame, result.ingest.households, 5, secrets.boundaries)
    assert audit(pub, without) == []


def test_an_audit_in_processes_finds_what_one_here_finds(demo, tmp_path, monkeypatch):
    from profiling import audit as audit_module

    result, out, secrets = demo
    pub = _copy(out, tmp_path)
    person = result.ingest.personal.iloc[0]
    (pub / "atlas" / "leak.html").write_text(f"<p>{person['respondent_name']}</p>")
    (pub / "zz.txt").write_text(f"call {person['phone']}")
    (pub / "blob.bin").write_bytes(b"\x00")
    here = audit(pub, secrets, workers=1)
    monkeypatch.setattr(audit_module, "PARALLEL_FROM", 1)
    ticks = []
    forked = audit(pub, secrets, on_file=lambda: ticks.append(1), workers=2)
    assert forked == here  # the same findings, in file order, however the files are shared
    assert {(f.kind, f.file) for f in here} == {("personal", "atlas/leak.html"),
                                              ("personal", "zz.txt"), ("unreadable", "blob.bin")}
    assert len(ticks) == sum(1 for p in pub.rglob("*") if p.is_file())


def test_a_household_point_in_arabic_indic_digits_is_found(demo, tmp_path):
    """A coordinate pair written in another script's digits is still a coordinate pair: found
    next to a household, and the file (with ordinary ASCII numbers beside it) stays readable."""
    result, out, secrets = demo
    pub = _copy(out, tmp_path)
    hh = result.ingest.households.dropna(subset=["longitude"]).iloc[3]
    arabic = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
    text = (f"lat {hh['latitude']:.6f}".translate(arabic) + " lon "
            + f"{hh['longitude']:.6f}".translate(arabic) + "\nshare 0.4512 of 12.3456 m")
    (pub / "note.txt").write_text(text, encoding="utf-8")
    found = [f for f in audit(pub, secrets) if f.file == "note.txt"]
    assert [f.kind for f in found] == ["location"]
