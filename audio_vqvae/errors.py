"""The exception types that mean "the user's input is wrong": the CLI prints them as one line."""

from __future__ import annotations

from .config import ConfigError
from .fileio import FolderInUseError
from .manifest import ManifestError


def _user_errors() -> tuple[type[BaseException], ...]:
    from .audio import AudioError
    from .checkpoint import CheckpointError
    from .train import TrainingError

    # ValueError covers bad sizes in a config (e.g. a kernel shorter than its stride), found when modules are built.
    return (
        ConfigError,
        ManifestError,
        FolderInUseError,
        AudioError,
        CheckpointError,
        TrainingError,
        FileExistsError,
        FileNotFoundError,
        ValueError,
    )


USER_ERRORS = _user_errors()
