"""Shared fixtures: paths to the real data beside the checkout, and a tiny hand-made city.

The hand-made city has two 100 m squares in UTM zone 48S sharing an edge: ``A`` (x 700000 to
700100) and ``B`` (x 700100 to 700200), both y 9300000 to 9300100. Test exports place points in
it by metric coordinates converted to WGS84, so every expected placement can be read off a sketch.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from pyproj import Transformer

from profiling.join import Settlements, check_boundaries, prepare

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE = REPO / "sample_data"
UTM = "EPSG:32748"
_TO_WGS84 = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)


def demo_config_data() -> dict:
    """configs/demo.yaml as a mapping whose paths are absolute: a test writes it, changed,
    wherever it likes."""
    import yaml

    data = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    base = REPO / "configs"
    for k in ("form", "boundaries"):
        data[k] = str((base / data[k]).resolve())
    data["surveys"] = [str((base / s).resolve()) for s in data["surveys"]]
    data["hazards"] = [{**h, "path": str((base / h["path"]).resolve())} for h in data["hazards"]]
    data["cuf"]["interventions"] = str((base / data["cuf"]["interventions"]).resolve())
    return data


@pytest.fixture(scope="session")
def second(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample city's second round, as ``sample_data/second_round.py`` makes it."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("round2")
    proc = subprocess.run([sys.executable, str(SAMPLE / "second_round.py"), str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="session")
def compared(second: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``profiling compare`` of the sample city's two rounds, both given as configurations."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("compare") / "c"
    exe = str(Path(sys.executable).parent / "profiling")
    proc = subprocess.run([exe, "compare", str(REPO / "configs" / "demo.yaml"),
                           str(second / "round2.yaml"), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return out


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of the sample city, shared by the test modules that only read its outputs
    (a module that changes them overrides this with its own copy)."""
    from profiling import pipeline
    from profiling.config import load_config

    out = tmp_path_factory.mktemp("demo")
    pipeline.run(load_config(REPO / "configs" / "demo.yaml"), out)
    return out


@pytest.fixture(scope="session")
def french(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample city run with ``language: fr`` (its configuration beside the output, as
    ``fr.yaml``)."""
    import json

    import yaml

    from profiling import pipeline
    from profiling.config import load_config

    folder = tmp_path_factory.mktemp("fr")
    data = demo_config_data()
    data["language"] = "fr"
    data["output_dir"] = str(folder / "out")
    cfg = folder / "fr.yaml"
    cfg.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    pipeline.run(load_config(cfg))
    out = folder / "out"
    assert json.loads((out / "run_manifest.json").read_text())["status"] == "complete"
    return out


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.fail(f"the shared data folder {SHARED_DATA} is missing: CI places ../shared beside "
                    "the checkout")
    return SHARED_DATA


def lonlat(x: float, y: float) -> tuple[float, float]:
    """WGS84 longitude and latitude of a UTM 48S point."""
    lon, lat = _TO_WGS84.transform(x, y)
    return float(lon), float(lat)


def two_squares() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"settlement_id": ["B", "A"], "name": ["Bravo", "Alpha"]},
        geometry=[shapely.box(700100, 9300000, 700200, 9300100),
                  shapely.box(700000, 9300000, 700100, 9300100)],
        crs=UTM,
    )


@pytest.fixture
def squares() -> Settlements:
    return prepare(check_boundaries(two_squares(), "two squares"))


@pytest.fixture
def squares_file(tmp_path: Path) -> Path:
    path = tmp_path / "squares.gpkg"
    two_squares().to_file(path, layer="settlements")
    return path


def household(key: str, x: float = 700050, y: float = 9300050, **answers: str) -> dict[str, str]:
    """A valid household of the reference form at UTM point (x, y), answers overridable."""
    lon, lat = lonlat(x, y)
    row = {
        "start": "2026-03-02T09:00:00+07:00", "end": "2026-03-02T09:30:00+07:00",
        "enumerator": "E1", "consent": "yes", "settlement_reported": "A", "structure_id": "S-1",
        "gps": f"{lat:.8f} {lon:.8f} 10 5",
        "_gps_latitude": f"{lat:.8f}", "_gps_longitude": f"{lon:.8f}", "_gps_altitude": "10",
        "_gps_precision": "5",
        "respondent_name": "Test Person", "phone": "+62 800 0000", "national_id": "3171000",
        "household/hh_size": "4", "household/hh_head_sex": "female",
        "household/rooms_sleeping": "2",
        "tenure/tenure_status": "tenant_informal", "tenure/tenure_documents": "rent_receipt",
        "tenure/eviction_fear": "yes",
        "water/water_source": "public_tap", "water/water_minutes": "20",
        "water/water_sufficient": "yes",
        "sanitation/toilet_type": "pit_slab", "sanitation/toilet_shared": "yes",
        "sanitation/toilet_households": "4", "hygiene/handwashing": "water_only",
        "waste/waste_disposal": "dumped_drain", "energy/electricity": "grid_shared",
        "housing/wall_material": "iron_sheet", "housing/roof_material": "iron_sheet",
        "housing/floor_material": "cement", "hazards/flooded_past_year": "yes",
        "priorities/priority_needs": "drainage toilets",
        "_id": "1", "_uuid": key, "_submission_time": "2026-03-02T12:00:00", "_index": "1",
    }
    row.update(answers)
    return row


def write_csv(path: Path, rows: list[dict[str, str]], sep: str = ";",
              rename: Callable[[str], str] | None = None) -> Path:
    """Write rows as a CSV export; ``rename`` maps reference headers to the export's."""
    header: list[str] = []
    for r in rows:
        header += [k for k in r if k not in header]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=sep)
        w.writerow([rename(h) if rename else h for h in header])
        for r in rows:
            w.writerow([r.get(h, "") for h in header])
    return path
