"""The store lock: held by a real other process, refused; left by a killed one, taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from skarim.errors import InputError
from skarim.io.store_lock import hold_store, lock_path, output_directory

_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from skarim.io.store_lock import hold_store
    with hold_store(Path(sys.argv[1])):
        print("held", flush=True)
        time.sleep(600)
    """
)


def _holder(store):
    """A real process holding the lock of ``store``, once it says so."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(store)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_store_is_refused_naming_its_holder(tmp_path):
    store = tmp_path / "run.zarr"
    proc = _holder(store)
    try:
        with pytest.raises(InputError, match=rf"in use by another skarim run \(process {proc.pid}"):
            with hold_store(store):
                pass
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait()
    assert not lock_path(store).exists()  # KeyboardInterrupt ended the holder's with block


def test_a_lock_left_by_a_killed_run_is_taken_over_and_removed_at_the_end(tmp_path):
    store = tmp_path / "run.zarr"
    proc = _holder(store)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert lock_path(store).exists()  # nothing ran to remove it
    with hold_store(store) as left:
        assert left is not None and left.pid == proc.pid
        with pytest.raises(InputError, match=f"process {os.getpid()}"):  # held again, by us
            with hold_store(store):
                pass
    assert not lock_path(store).exists()
    with hold_store(store) as left:  # a clean end leaves nothing to take over
        assert left is None


@pytest.mark.parametrize("where", ["/proc/skarim-test", "{tmp}/afile/sub"])
def test_an_unwritable_output_directory_is_one_error(tmp_path, where):
    (tmp_path / "afile").write_text("")
    directory = where.format(tmp=tmp_path)
    with pytest.raises(InputError, match=f"cannot write in {directory} \\(the products\\)"):
        output_directory(directory, "the products")
    with pytest.raises(InputError, match="cannot write in"):
        with hold_store(tmp_path / "afile" / "run.zarr"):
            pass
