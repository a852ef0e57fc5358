"""Naturalness as a listener would rate it: DNSMOS P.808 and P.835, predicted without a reference (speechmos).

DNSMOS (Reddy, Gopal & Cutler, ICASSP 2021; the P.835 form, ICASSP 2022) are convolutional networks
that Microsoft trained on tens of thousands of crowd-sourced listening-test ratings to predict a mean
opinion score (1 bad .. 5 excellent) from the audio alone:

- **P.808**: the overall quality of an ITU-T P.808 absolute category rating test, from a log-mel
  spectrogram (``model_v8.onnx``);
- **P.835**: the three scales of ITU-T P.835, from the raw waveform (``sig_bak_ovr.onnx``): **SIG**,
  the speech signal itself (distortion, buzz, whisper, robotic voice), **BAK**, the background (noise
  and artefacts between and under the words; higher is cleaner), and **OVRL**, overall quality, each
  mapped by the published polynomial onto the listeners' scale.

The ONNX models ship inside the ``speechmos`` wheel (Microsoft's AEC/DNS challenge organisers, MIT
licence) and run on the CPU with onnxruntime: nothing is downloaded (``pip install -e ".[eval]"``).
``DNSMOS.score`` runs speechmos's own scoring (``speechmos.dnsmos.DNSMOS.__call__``, the DNS
challenge's ``dnsmos_local.py``) with sessions of a chosen thread count: 16 kHz audio, repeated end
to end until it lasts 9.01 s, windows of 9.01 s every second, the windows' scores averaged. The level
is not normalised (the challenge scores files as they are); samples beyond full scale are clipped,
as writing a file would. Sentences of espeak-ng's synthetic voices score P.808 2.8-3.4, OVRL
2.3-3.1 and BAK 3.2-3.9 here; the same with white noise at 0 dB SNR, P.808 2.1-2.2, OVRL 1.1-1.4 and
BAK 1.2-1.4.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...errors import MissingPackageError

INSTALL_HINT = 'pip install -e ".[eval]"'
SAMPLE_RATE = 16000  # the models' rate
SCORES = ("p808", "sig", "bak", "ovrl")  # the keys of a score dict
DEFINITION = (
    "DNSMOS (speechmos): P.808 MOS from model_v8.onnx; P.835 SIG, BAK, OVRL from sig_bak_ovr.onnx; "
    "16 kHz, 9.01 s windows every 1 s, shorter audio repeated"
)


class DNSMOS:
    """The DNSMOS P.808 and P.835 predictors of the speechmos wheel, on the CPU.

    Args:
        threads: onnxruntime's intra-op threads (default ``torch.get_num_threads()``, so
            ``OMP_NUM_THREADS`` and ``torch.set_num_threads`` bound it as they bound torch).
    Raises:
        MissingPackageError: speechmos or onnxruntime is not installed (``pip install -e ".[eval]"``).
    """

    def __init__(self, *, threads: int | None = None) -> None:
        try:
            import onnxruntime
            from speechmos import dnsmos as reference
        except ImportError as e:
            raise MissingPackageError(
                f"DNSMOS needs speechmos and onnxruntime, which are not installed: {INSTALL_HINT}", name=e.name
            ) from e
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        models = Path(reference.__file__).resolve().parent / "dnsmos_models"

        def session(name: str):
            return onnxruntime.InferenceSession(str(models / name), options, providers=["CPUExecutionProvider"])

        # speechmos's scorer, with our sessions in place of the ones its constructor makes (all cores)
        scorer = object.__new__(reference.DNSMOS)
        scorer.primary_model_path = str(models / "sig_bak_ovr.onnx")
        scorer.onnx_sess, scorer.p808_onnx_sess = session("sig_bak_ovr.onnx"), session("model_v8.onnx")
        self._scorer = scorer

    def score(self, wav: Tensor, sample_rate: int) -> dict[str, float] | None:
        """``{"p808", "sig", "bak", "ovrl"}`` MOS of one (T,) waveform at ``sample_rate``; None when it is
        empty or silent (all zeros)."""
        from ...data.audio import resample

        x = wav.detach().to("cpu", torch.float32).reshape(-1)
        if int(sample_rate) != SAMPLE_RATE and x.numel():
            x = resample(x, int(sample_rate), SAMPLE_RATE)
        if not x.numel() or not bool(x.abs().max() > 0):
            return None
        scores = self._scorer(x.clamp(-1, 1).numpy(), SAMPLE_RATE, False)
        return {key: float(scores[f"{key}_mos"]) for key in SCORES}


def mean_scores(scores: Sequence[Mapping[str, float] | None]) -> dict[str, Any]:
    """Each score's mean over the utterances that have one, and their number ``n`` (None means with n = 0)."""
    kept = [s for s in scores if s is not None]
    return {**{key: float(np.mean([s[key] for s in kept])) if kept else None for key in SCORES}, "n": len(kept)}


def naturalness(
    scorer: DNSMOS, groups: Mapping[str, Sequence[Tensor | None]], sample_rate: int
) -> tuple[dict[str, Any], dict[str, list[dict[str, float] | None]]]:
    """DNSMOS of named groups of waveforms (conversions, resyntheses, real readings, ...).

    Args:
        scorer: a ``DNSMOS``.
        groups: name -> (T,) waveforms at ``sample_rate``; None entries (a missing recording) are skipped.
    Returns:
        ``{"definition": DEFINITION, name: mean_scores(...), or None when the group has no score}``, and
        name -> each waveform's score dict (None where it has none), in order.
    """
    scores = {name: [w if w is None else scorer.score(w, sample_rate) for w in wavs] for name, wavs in groups.items()}
    summary: dict[str, Any] = {"definition": DEFINITION}
    for name, group in scores.items():
        summary[name] = mean_scores(group) if any(s is not None for s in group) else None
    return summary, scores
