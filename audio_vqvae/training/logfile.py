"""A run's log lines appended to a file in its folder (``train.log``), besides the console."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(message)s"  # the console's (cli.main), with the date: a file outlives a day


class _FolderFileHandler(logging.FileHandler):
    """Opens (appends to) its file at the first line only, making the folder then: a run that fails
    before logging anything leaves no file and no folder behind."""

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


class _Forward(logging.Handler):
    """Hands records on to the parent logger's handlers as propagation would have without the lowered
    level: those at or above ``threshold``, and those a descendant logger's own level let through (a
    ``caplog.at_level`` or a user's DEBUG on ``audio_vqvae.training``). What the console shows does not change."""

    def __init__(self, threshold: int, logger: logging.Logger):
        super().__init__()
        self.threshold, self.logger = threshold, logger

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= self.threshold or self._let_through_below(record):
            self.logger.parent.handle(record)

    def _let_through_below(self, record: logging.LogRecord) -> bool:
        name = record.name
        while name and name != self.logger.name:
            level = logging.getLogger(name).level
            if level:
                return record.levelno >= level
            name = name.rpartition(".")[0]
        return False


@contextmanager
def log_to_file(path: str | Path, logger: str = "audio_vqvae", enabled: bool = True) -> Iterator[None]:
    """Append ``logger``'s INFO (and higher) lines to ``path`` while the block runs.

    INFO lines reach the file even where the console shows only warnings (a library call without
    ``logging.basicConfig``): the logger's level is lowered to INFO for the block, and only the
    records the console would have had are handed on to it; all is restored on exit.
    ``enabled=False`` does nothing (e.g. ranks other than 0 under torchrun).
    """
    if not enabled:
        yield
        return
    handler = _FolderFileHandler(path, mode="a", encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.INFO)
    log = logging.getLogger(logger)
    level, propagate, threshold = log.level, log.propagate, log.getEffectiveLevel()
    handlers = [handler]
    if threshold > logging.INFO and propagate and log.parent is not None:
        handlers.append(_Forward(threshold, log))
        log.propagate = False
    if threshold > logging.INFO:
        log.setLevel(logging.INFO)
    for h in handlers:
        log.addHandler(h)
    try:
        yield
    finally:
        for h in handlers:
            log.removeHandler(h)
        log.setLevel(level)
        log.propagate = propagate
        handler.close()
