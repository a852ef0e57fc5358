"""Stop signals: the first is recorded for the loop to act on, a second goes to the handler from before."""

from __future__ import annotations

import os
import signal

import pytest

from audio_vqvae.training.stopping import StopSignals


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_first_signal_is_recorded_second_goes_to_the_previous_handler(signum):
    seen: list[int] = []
    before = signal.signal(signum, lambda s, frame: seen.append(s))
    try:
        with StopSignals() as stop:
            assert stop.received is None and stop.name is None
            os.kill(os.getpid(), signum)  # Python runs the handler before the next line
            assert stop.received == signum and stop.name == signal.Signals(signum).name
            assert seen == []  # the first one only asks to stop
            os.kill(os.getpid(), signum)
            assert seen == [signum]  # a second one acts as without StopSignals (by default: abort)
        os.kill(os.getpid(), signum)
        assert seen == [signum, signum]  # the handler from before is back after the block
    finally:
        signal.signal(signum, before)


def test_handlers_are_restored_when_no_signal_came():
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    with StopSignals():
        assert all(signal.getsignal(s) != h for s, h in before.items())
    assert {s: signal.getsignal(s) for s in before} == before
