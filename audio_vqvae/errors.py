"""The package's exception types: a user's mistake raises one of them, and the CLI prints it as one line.

Every error a user can cause and fix (a missing input, an output that exists, a bad option, config,
manifest, corpus, audio or checkpoint) is an ``AudioVQVAEError``; anything else (a ``ValueError``, a
``FileNotFoundError``, ... raised by our code or by a library) is a bug, and the CLI shows its traceback.
``--debug`` or ``AUDIO_VQVAE_DEBUG=1`` shows the traceback of a user error too.

Each type also derives from the builtin that library callers caught before it existed (``ValueError``,
``FileNotFoundError``, ``FileExistsError``, ``RuntimeError``, ``ModuleNotFoundError``), so ``except ValueError``
around a library call still catches a bad config. The modules that raise a type re-export it (``config.ConfigError``,
``audio.AudioError``, ...), so either import works.

This module imports nothing from the package: every other module may import it.
"""

from __future__ import annotations

import os

DEBUG_VARIABLE = "AUDIO_VQVAE_DEBUG"


class AudioVQVAEError(Exception):
    """Base of the user errors: the message says what is wrong and names the file, key or option."""


class UsageError(AudioVQVAEError, ValueError):
    """Options or arguments that are out of range or do not go together (``--speaker`` with ``--pairs``)."""


class InputNotFoundError(AudioVQVAEError, FileNotFoundError):
    """A file or folder the user named is not there (a units file, a pairs file, alignments)."""


class OutputExistsError(AudioVQVAEError, FileExistsError):
    """An output is already there and overwriting was not asked for (``--force``, ``overwrite=True``)."""


class ConfigError(AudioVQVAEError, ValueError):
    """A config key is unknown or its value has the wrong type or size; the message names the key."""


class ManifestError(AudioVQVAEError, ValueError):
    """A manifest, speaker list or pairs file is malformed; the message names the file (and line)."""


class CorpusError(AudioVQVAEError, ValueError):
    """A corpus cannot be prepared: not found, no audio, names that cannot be files, nothing usable."""


class AudioError(AudioVQVAEError, ValueError):
    """A bad audio file; the message starts with the file's path when there is one."""


class AlignmentError(AudioVQVAEError, ValueError):
    """A malformed TextGrid or phone table; the message names the file and line."""


class TokenFormatError(AudioVQVAEError, ValueError):
    """A malformed token file or an id a format cannot hold; the message names the file or id."""


class SpeakerError(AudioVQVAEError, ValueError):
    """A speaker name or id the model does not know; the message lists the known ones."""


class EvaluationError(AudioVQVAEError, ValueError):
    """An evaluation's data cannot be scored (no aligned utterances, a target speaker without real speech)."""


class MissingPackageError(AudioVQVAEError, ModuleNotFoundError):
    """An optional package a metric needs is not installed; the message names the pip extra that brings it."""


class CheckpointError(AudioVQVAEError, RuntimeError):
    """A checkpoint is missing, unreadable or not ours; the message names the file."""


class TrainingError(AudioVQVAEError, RuntimeError):
    """Training cannot go on (bad data folder, diverged loss, mismatched resume); the message says why."""


class FolderInUseError(AudioVQVAEError, RuntimeError):
    """Another process holds an output folder's lock; the message names the folder."""


def debug_requested() -> bool:
    """True when ``AUDIO_VQVAE_DEBUG`` is set to anything but empty, 0, false, no or off."""
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() not in ("", "0", "false", "no", "off")
