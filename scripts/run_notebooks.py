"""Run the analyst notebooks on the sample city and save them with their outputs, so that the
repository shows their tables and charts (``make notebooks``).

Each notebook runs in a fresh kernel from the ``notebooks`` folder, as an analyst opens it.
What the outputs may hold is the notebooks' own business, checked by ``tests/test_notebooks.py``:
figures of the synthetic sample city, never a personal field. Paths of temporary folders are
written as ``<tmp>`` so that a re-run changes only what the data changed.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
_TMP = re.compile(re.escape(tempfile.gettempdir()) + r"/[A-Za-z0-9_.-]+")


def _scrub(text: str) -> str:
    return _TMP.sub("<tmp>", text).replace(str(ROOT), "<repo>")


def run(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = _scrub(out["text"])
            for kind in ("text/plain", "text/html"):
                if kind in out.get("data", {}):
                    out["data"][kind] = _scrub(out["data"][kind])
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    print(f"ran {path.relative_to(ROOT)}")


def main(argv: list[str]) -> int:
    for path in [Path(a) for a in argv] or NOTEBOOKS:
        run(path.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
