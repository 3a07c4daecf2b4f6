"""The analyst notebooks are committed without outputs (they run in CI through nbmake)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_four_stories():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_are_stripped(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    text = "".join("".join(c["source"]) for c in code)
    # only the package's public API: no private modules
    assert "profiling._" not in text


@pytest.mark.slow
def test_the_cuf_notebook_shows_its_plots():
    """Run as an analyst runs it, the CUF notebook's plots are there: nothing the package does
    (the run draws PNG maps with matplotlib) switches off the kernel's inline backend."""
    import nbformat
    from nbclient import NotebookClient

    path = next(p for p in NOTEBOOKS if p.name.startswith("04"))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) >= 3
