"""Fixtures shared by the test modules."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import skarim.imaging.batch

#: The real EVLA Measurement Set kept beside the repository (../shared/data), read-only.
EVLA_MS = Path(__file__).resolve().parents[2] / "shared" / "data" / "evla_ka_J1008.ms"


@pytest.fixture
def evla_ms(tmp_path) -> Path:
    """A writable copy of the real EVLA Measurement Set (skips when it is absent)."""
    if not EVLA_MS.is_dir():
        pytest.skip(f"EVLA test set not found at {EVLA_MS}")
    copy = Path(shutil.copytree(EVLA_MS, tmp_path / EVLA_MS.name))
    for item in (copy, *copy.rglob("*")):  # the shared original is read-only
        item.chmod(0o755 if item.is_dir() else 0o644)
    return copy


@pytest.fixture
def count_passes(monkeypatch):
    """Counts the passes over the Measurement Set that the grid and residual stages start."""
    passes = []
    iter_chunks = skarim.imaging.batch.iter_chunks

    def counted(*args, **kwargs):
        passes.append(1)
        return iter_chunks(*args, **kwargs)

    monkeypatch.setattr(skarim.imaging.batch, "iter_chunks", counted)
    return passes
