"""SIGINT and SIGTERM as one interrupt: real signals sent to this process."""

from __future__ import annotations

import os
import signal
import time

import pytest

from skarim.run.signals import exit_status, interrupts, shielded, signal_name


def _wait_for_signal():
    """Let the pending signal's handler run (it runs between two bytecodes of this thread)."""
    for _ in range(100):
        time.sleep(0.01)


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_the_first_signal_interrupts_and_later_ones_are_ignored(sig, status):
    before = signal.getsignal(signal.SIGTERM)
    with interrupts() as received:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), sig)
            _wait_for_signal()
        os.kill(os.getpid(), signal.SIGTERM)  # while the run winds down: no second interrupt
        _wait_for_signal()
    assert received == [sig, signal.SIGTERM]
    assert exit_status(received) == status and signal_name(received) == sig.name
    assert signal.getsignal(signal.SIGTERM) is before  # the handlers are put back


def test_a_shielded_block_is_finished_before_the_interrupt():
    done = []
    with interrupts() as received:
        with pytest.raises(KeyboardInterrupt):
            with shielded():
                os.kill(os.getpid(), signal.SIGTERM)
                _wait_for_signal()
                done.append("the cluster started")  # not cut in the middle
            done.append("never")
    assert done == ["the cluster started"] and received == [signal.SIGTERM]
    with interrupts(), shielded():  # no signal: nothing raised
        pass
