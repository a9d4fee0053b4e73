"""The notebooks run end to end on a small observation; their own ``assert`` cells must hold.

Each notebook has a cell tagged ``parameters``; the test appends smaller values to it (as
papermill would inject them) and executes the notebook with nbclient in a temporary
directory. ``03-cluster.ipynb`` needs a batch scheduler and is not executed here.
"""

from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _execute(name: str, workdir: Path, **params: object) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source += "\n# injected by tests/test_notebooks.py\n"
    cell.source += "\n".join(f"{key} = {value!r}" for key, value in params.items())
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    return nb


def _stdout(nb: nbformat.NotebookNode) -> str:
    return "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.get("output_type") == "stream" and out.get("name") == "stdout"
    )


def _figures(nb: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )


def test_quickstart_images_the_demo_and_finds_the_brightest_source(tmp_path):
    nb = _execute(
        "01-quickstart.ipynb",
        tmp_path,
        OUT="qs",
        NPIX=64,
        NCHAN=2,
        MAJOR_CYCLES=1,
        DEVICE="cpu",
        SCHEDULER="sync",
    )
    out = _stdout(nb)
    assert "BUNIT     JY/BEAM" in out and "brightest restored pixel" in out
    assert _figures(nb) == 2  # the three images, the spectrum
    for name in ("image", "residual", "MFS-image", "MFS-psf"):
        assert (tmp_path / "qs" / f"demo-{name}.fits").is_file()


def test_inspect_run_reads_the_store_cycle_by_cycle(tmp_path):
    nb = _execute(
        "02-inspect-run.ipynb", tmp_path, NPIX=64, TILE=32, MAJOR_CYCLES=2, SCHEDULER="sync"
    )
    out = _stdout(nb)
    assert "cycle 2 channel 0: residual rms" in out and "misfit" in out
    assert _figures(nb) == 3  # tile RMS maps, RIM steps, convergence
    assert (tmp_path / "skarim-inspect" / "run.zarr" / "zarr.json").is_file()
