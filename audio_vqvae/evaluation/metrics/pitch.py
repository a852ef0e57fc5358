"""f0 and voicing of a recording with YIN: is a conversion voiced at all, and at what pitch.

The YIN of ``audio_vqvae.models.pitch.yin_f0`` (de Cheveigné & Kawahara 2002, with a voicing
decision and a silence floor), on frames of ``frame_ms`` every ``hop_ms``. Whisper-like output, the
WaveNet decoder's failure after short trainings, shows as a small voiced share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ...models.pitch import yin_f0


@dataclass(frozen=True)
class PitchTrack:
    """Per-frame YIN output: ``f0`` (N,) Hz, NaN where unvoiced; ``voiced`` (N,) bool; ``hop_s`` frame step."""

    f0: np.ndarray
    voiced: np.ndarray
    hop_s: float

    @property
    def voiced_fraction(self) -> float | None:
        """Share of voiced frames; None for a recording shorter than one frame."""
        return float(self.voiced.mean()) if self.voiced.size else None

    @property
    def median_f0(self) -> float | None:
        """Median f0 (Hz) over voiced frames; None when none is voiced."""
        return float(np.median(self.f0[self.voiced])) if self.voiced.any() else None


def yin(
    wav: Tensor | np.ndarray,
    sample_rate: int,
    *,
    fmin: float = 60.0,
    fmax: float = 500.0,
    threshold: float = 0.15,
    frame_ms: float = 25.0,
    hop_ms: float = 10.0,
    silence_db: float = -40.0,
) -> PitchTrack:
    """YIN f0 and voicing decision of each frame (see the module docstring).

    Args:
        wav: (T,) waveform.
        sample_rate: Hz.
        fmin, fmax: f0 search range in Hz (lags sr / fmax .. sr / fmin).
        threshold: absolute threshold on the cumulative mean normalised difference (0.1-0.2 in
            the paper).
        frame_ms: integration window W; each frame reads W + sr / fmin samples.
        hop_ms: frame step.
        silence_db: frames whose energy is this far below the loudest frame's are unvoiced.
    Returns:
        A ``PitchTrack`` with N = T // hop frames, frame n starting at sample n * hop.
    """
    hop = max(1, round(sample_rate * hop_ms / 1000))
    x = torch.as_tensor(wav).detach().to("cpu", torch.float64).reshape(-1)
    f0 = yin_f0(
        x, sample_rate, hop, fmin=fmin, fmax=fmax, threshold=threshold, frame_ms=frame_ms, silence_db=silence_db
    ).numpy()
    f0 = np.where(f0 > 0, f0, np.nan)
    return PitchTrack(f0, ~np.isnan(f0), hop / sample_rate)


def pooled_voicing(tracks: Sequence[PitchTrack]) -> tuple[float | None, float | None]:
    """(voiced frames / frames, median f0 in Hz over all voiced frames) of several tracks, frames pooled;
    None without frames, or without a voiced one for the f0."""
    voiced = np.concatenate([t.voiced for t in tracks]) if tracks else np.zeros(0, dtype=bool)
    f0 = np.concatenate([t.f0[t.voiced] for t in tracks]) if tracks else np.zeros(0)
    return (float(voiced.mean()) if voiced.size else None), (float(np.median(f0)) if f0.size else None)


def voicing_summary(wavs: list[Tensor | np.ndarray], sample_rate: int) -> dict[str, float | None]:
    """``pooled_voicing`` of ``yin`` on several recordings, as ``voiced`` and ``median_f0_hz``."""
    voiced, median_f0 = pooled_voicing([yin(w, sample_rate) for w in wavs])
    return {"voiced": voiced, "median_f0_hz": median_f0}
