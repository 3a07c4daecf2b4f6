"""The analyst notebooks are committed with their outputs, so that the repository shows their
tables and charts (``make notebooks`` runs them again); nbmake runs each in CI as well.

What a committed output may hold is checked here: it was run top to bottom without an error,
every plot cell drew a chart with something in it, and no output holds a personal value of the
sample exports. A notebook run afresh must draw the same charts (nothing the package does may
switch off the kernel's inline backend)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PERSONAL = ("respondent_name", "phone", "national_id", "structure_id")


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def draws(cell: dict) -> bool:
    """A cell that makes a chart (matplotlib through pyplot or pandas' ``.plot``)."""
    src = "".join(cell["source"])
    return "plt." in src or ".plot" in src


def images(cell: dict) -> list[np.ndarray]:
    from matplotlib.image import imread

    return [imread(io.BytesIO(base64.b64decode(o["data"]["image/png"])), format="png")
            for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]


def inked(img: np.ndarray) -> float:
    """The share of a chart's pixels in colour (not white, grey or black): an empty set of
    axes, its frame, ticks and labels, has none."""
    rgb = img[..., :3].astype(float)
    return float(((rgb.max(axis=-1) - rgb.min(axis=-1)) > 0.15).mean())


def texts(cell: dict) -> str:
    parts = []
    for o in cell.get("outputs", []):
        parts.append("".join(o.get("text", "")))
        for kind in ("text/plain", "text/html"):
            parts.append("".join(o.get("data", {}).get(kind, "")))
        parts.append("".join(o.get("traceback", [])))
    return "\n".join(parts)


def test_there_are_four_stories():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"]


def test_inked_tells_an_empty_chart_from_a_drawn_one():
    from matplotlib.figure import Figure

    def png(fig: Figure) -> np.ndarray:
        from matplotlib.image import imread

        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return imread(io.BytesIO(buf.getvalue()), format="png")

    empty = Figure()
    empty.add_subplot().set_xlabel("rank")
    drawn = Figure()
    drawn.add_subplot().bar(["a", "b"], [1, 2])
    assert inked(png(empty)) == 0.0
    assert inked(png(drawn)) > 0.05


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_are_committed_from_one_clean_run(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = code_cells(nb)
    assert code and [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    text = "".join("".join(c["source"]) for c in code)
    assert "profiling._" not in text  # only the package's public API: no private modules
    plots = [c for c in code if draws(c)]
    assert plots
    for cell in plots:
        pics = images(cell)
        assert pics, f"no chart under {''.join(cell['source'])[:60]!r}"
        assert all(inked(p) > 0.002 for p in pics), "an empty chart"


def sample_personal_values() -> set[str]:
    exports = ROOT / "sample_data" / "exports"
    frames = [pd.read_csv(exports / "kobo_day1-4.csv", sep=None, engine="python", dtype=str),
              pd.read_csv(exports / "odk_day6-10.csv", dtype=str),
              pd.read_excel(exports / "kobo_day3-7.xlsx", dtype=str)]
    values: set[str] = set()
    for frame in frames:
        for col in frame.columns:
            if col.split("/")[-1].split("-")[-1] in PERSONAL:
                values |= {v.strip() for v in frame[col].dropna() if len(v.strip()) >= 4}
    return values


def test_no_output_holds_a_personal_value():
    values = sample_personal_values()
    assert len(values) > 500  # the sample exports' names, phones, ids and structure ids
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text(encoding="utf-8"))
        out = "\n".join(texts(c) for c in code_cells(nb))
        found = sorted(v for v in values if v in out)
        assert not found, f"{path.name}: {found[:5]}"
        assert str(ROOT) not in out and "/tmp/" not in out  # paths of this machine scrubbed


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_fresh_run_draws_every_chart(path):
    """Run as an analyst runs it, each plot cell draws its chart, not an empty one: nothing
    the package does (a run draws PNG maps with matplotlib) switches off the inline backend."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in (c for c in nb.cells if c.cell_type == "code" and draws(c)):
        pics = images(cell)
        assert pics and all(inked(p) > 0.002 for p in pics), "".join(cell.source)[:60]
