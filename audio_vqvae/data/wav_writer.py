"""A 16-bit WAV written block by block, atomically: long outputs never have to be held whole."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

import numpy as np
import soundfile as sf
from torch import Tensor

from ..errors import OutputExistsError
from ..fileio import temp_path
from .audio import move_no_clobber, to_pcm16


class WavWriter:
    """Write a mono 16-bit PCM WAV in pieces; the file appears at ``path`` only when it is complete.

    The samples go to a temporary file beside ``path`` (``fileio.temp_path``), which is flushed to
    disk and moved into place on a clean exit from the ``with`` block; on an error it is removed and
    ``path`` is left as it was. Without ``overwrite`` the move fails if ``path`` appeared meanwhile.
    The file is byte for byte ``save_audio``'s of the joined pieces.

    Args:
        path: destination; missing parent folders are created.
        sample_rate: in Hz.
        overwrite: replace an existing file at ``path``.

    Example::

        with WavWriter("out.wav", 16000) as out:
            for piece in pieces:
                out.write(piece)  # (n,) float waveform
    """

    def __init__(self, path: str | os.PathLike[str], sample_rate: int, *, overwrite: bool = False):
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.overwrite = overwrite
        self.n_samples = 0
        self._tmp: Path | None = None
        self._file = None
        self._sound: sf.SoundFile | None = None

    def __enter__(self) -> WavWriter:
        if self.path.is_dir():
            raise OutputExistsError(f"{self.path}: is a folder")
        if self.path.exists() and not self.overwrite:
            raise OutputExistsError(f"{self.path}: already exists; pass overwrite=True to replace it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_path(self.path)  # .<name>.<pid>-<random>.tmp: stale ones are found by the next run
        # os.open applies the umask to 0o666, so the file gets the same mode as any new file would.
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        self._file = os.fdopen(fd, "w+b")  # soundfile seeks back to finish the header
        self._sound = sf.SoundFile(self._file, "w", self.sample_rate, 1, "PCM_16", format="WAV")
        return self

    def write(self, piece: Tensor | np.ndarray) -> None:
        """Append (n,) float samples (clipped to [-1, 1], like ``save_audio``).

        Raises:
            ValueError: the piece holds NaN or Inf samples.
        """
        data = piece.detach().to("cpu").float().numpy() if isinstance(piece, Tensor) else np.asarray(piece)
        if not np.isfinite(data).all():
            raise ValueError(f"{self.path}: {int((~np.isfinite(data)).sum())} non-finite samples, refusing to write")
        pcm = to_pcm16(data)
        self._sound.write(pcm)
        self.n_samples += pcm.size

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            if self._sound is not None:
                self._sound.close()  # writes the final header
            if kind is None:
                self._file.flush()
                os.fsync(self._file.fileno())
            self._file.close()
            if kind is None:
                if self.overwrite:
                    os.replace(self._tmp, self.path)
                else:
                    move_no_clobber(self._tmp, self.path)
        finally:
            if self._file is not None and not self._file.closed:
                self._file.close()
            if self._tmp is not None and self._tmp.exists():
                self._tmp.unlink()
