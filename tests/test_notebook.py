"""Execute notebooks/evaluation.ipynb headless so it never rots."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "evaluation.ipynb"


def test_evaluation_notebook_runs(trained_run: Path, smoke_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    nbformat = pytest.importorskip("nbformat", reason="install ferkit[dev] to run the notebook test")
    nbclient = pytest.importorskip("nbclient", reason="install ferkit[dev] to run the notebook test")
    monkeypatch.setenv("FERKIT_WEIGHTS", str(trained_run))
    monkeypatch.setenv("FERKIT_DATA", str(smoke_data))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "64 test faces" in text and "accuracy" in text and "macro avg" in text
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert len(images) == 4
