"""Clean stops on SIGTERM and SIGINT: the first asks the training loop to save and stop, a second aborts.

Cluster schedulers send SIGTERM before they preempt or time out a job, and Ctrl-C sends SIGINT: both
would otherwise lose every step since the last checkpoint.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger("audio_vqvae.training")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Within ``with StopSignals() as stop:``, SIGTERM or SIGINT sets ``stop.received`` (the signal number).

    The loop polls ``stop.received`` at the end of each step and stops there. A second signal restores the
    previous handlers and re-sends itself, so it acts as it would have without this (SIGINT raises
    KeyboardInterrupt; SIGTERM ends the process). Outside the main thread, where Python cannot set
    handlers, it does nothing.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def name(self) -> str | None:
        """The name of the signal received ("SIGTERM", "SIGINT"), or None."""
        return None if self.received is None else signal.Signals(self.received).name

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)  # None: set outside Python
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is None:
            self.received = signum
            log.warning("%s received: stopping after this step with a checkpoint (again: abort without one)", name)
            return
        log.warning("second stop signal (%s): aborting without a checkpoint", name)
        self._restore()
        signal.raise_signal(signum)


def ignore_stop_signals(worker_id: int = 0) -> None:
    """``worker_init_fn`` of DataLoader workers: Ctrl-C reaches the whole process group, but only the main
    process must act on it; a worker that died of it would end training before its checkpoint."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)
