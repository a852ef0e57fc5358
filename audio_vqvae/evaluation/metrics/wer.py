"""Word error rate, and an offline English recogniser (pocketsphinx) to measure it on speech.

Voice conversion should keep what is said. ``Recognizer`` transcribes a waveform with CMU
pocketsphinx 5 and its bundled US English acoustic model, dictionary and 3-gram LM (CPU only, no
download; ``pip install 'audio_vqvae[wer]'``), and ``word_error_rate`` compares transcripts with
the known text. Pocketsphinx is a small, old recogniser: on clean read speech its WER is far from
zero, so a conversion's WER means something only beside the WER of real speech of the same
sentences through the same recogniser (``evaluate_conversion`` reports both).

WER is the word-level Levenshtein distance (substitutions + deletions + insertions) divided by the
number of reference words, summed over the corpus before dividing (not a mean of per-utterance
rates). Both sides are normalised first (``normalize_words``): lower case, punctuation dropped,
apostrophes kept inside words ("don't") but stripped at their ends ('quoted'). Numbers are not
spelled out, so a reference "1990" never matches a recognised "nineteen ninety".
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from ...data.prepare import normalize_text

INSTALL_HINT = "pip install 'audio_vqvae[wer]'"


def normalize_words(text: str) -> list[str]:
    """The words WER counts: ``prepare.normalize_text`` split on spaces, outer apostrophes removed."""
    words = (w.strip("'") for w in normalize_text(text).split())
    return [w for w in words if w]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(errors, reference words): the minimum number of word substitutions, deletions and insertions
    that turn ``hypothesis`` into ``reference``, after ``normalize_words`` on both."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    row = list(range(len(hyp) + 1))  # distance from ref[:0] to hyp[:j]
    for i, r in enumerate(ref, 1):
        diagonal, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (r != h))
    return row[-1], len(ref)


def word_error_rate(pairs: Iterable[tuple[str, str]]) -> float:
    """Corpus WER of (reference, hypothesis) pairs: total errors / total reference words.

    Can exceed 1 when the hypotheses insert many words.

    Raises:
        ValueError: the references hold no words at all (WER undefined).
    """
    errors = words = 0
    for reference, hypothesis in pairs:
        e, n = word_errors(reference, hypothesis)
        errors, words = errors + e, words + n
    if not words:
        raise ValueError("word error rate is undefined: the references hold no words")
    return errors / words


class Recognizer:
    """Offline English speech recognition with pocketsphinx 5 (``pocketsphinx.Decoder``, default model).

    ``transcribe`` resamples to the model's rate (16 kHz for the bundled model, read from the
    decoder's ``samprate``), scales the peak to ``peak``, adds ``pad_seconds`` of silence at both
    ends, then a Gaussian noise floor of RMS ``noise_floor`` (full scale 1) from a fixed seed, and
    decodes the whole utterance at once (batch cepstral mean normalisation). The noise floor
    matters: stretches of exact digital zeros (synthetic speech, trimmed or padded files) derail
    pocketsphinx's features and with them the whole sentence; at -60 dB it is far below any
    recording's own noise. The result depends only on the input: the same waveform always gives
    the same transcript, whatever was decoded before.

    Args:
        noise_floor: RMS of the added noise (0 turns it off).
        pad_seconds: silence added before and after the speech.
        peak: the waveform's absolute peak is scaled to this (0 or None: left as it is).
        seed: seed of the noise floor.
        **decoder_options: passed to ``pocketsphinx.Decoder`` (``hmm``, ``lm``, ``dict`` for another
            model; ``loglevel`` defaults to "ERROR").
    Raises:
        ModuleNotFoundError: pocketsphinx is not installed (``pip install 'audio_vqvae[wer]'``).
    """

    def __init__(
        self,
        *,
        noise_floor: float = 1e-3,
        pad_seconds: float = 0.25,
        peak: float | None = 0.9,
        seed: int = 0,
        **decoder_options,
    ) -> None:
        try:
            import pocketsphinx
        except ImportError as e:
            raise ModuleNotFoundError(
                f"word error rate needs the pocketsphinx recogniser, which is not installed: {INSTALL_HINT}",
                name="pocketsphinx",
            ) from e
        self.noise_floor, self.pad_seconds, self.peak, self.seed = noise_floor, pad_seconds, peak, seed
        self._decoder = pocketsphinx.Decoder(**{"loglevel": "ERROR", **decoder_options})
        self.sample_rate = int(self._decoder.config["samprate"])

    def pcm(self, wav: Tensor, sample_rate: int) -> bytes:
        """The little-endian int16 mono bytes ``transcribe`` decodes (see the class for the steps)."""
        from ...data.audio import resample

        if wav.dim() > 1 and wav.numel() != wav.shape[-1]:
            raise ValueError(f"expected one mono waveform, got shape {tuple(wav.shape)}")
        x = wav.detach().to("cpu", torch.float32).reshape(-1)
        if int(sample_rate) != self.sample_rate and x.numel():
            x = resample(x, int(sample_rate), self.sample_rate)
        top = float(x.abs().max()) if x.numel() else 0.0
        if self.peak and top > 0:
            x = x * (self.peak / top)
        pad = torch.zeros(round(self.pad_seconds * self.sample_rate))
        x = torch.cat([pad, x, pad])
        if self.noise_floor:
            generator = torch.Generator().manual_seed(self.seed)
            x = x + self.noise_floor * torch.randn(x.shape, generator=generator)
        return (x.clamp(-1, 1) * 32767).round().to(torch.int16).numpy().astype("<i2").tobytes()

    def transcribe(self, wav: Tensor, sample_rate: int) -> str:
        """The recognised words of one (T,) waveform at ``sample_rate``, lower case, space-separated
        ("" when nothing is recognised)."""
        data = self.pcm(wav, sample_rate)
        self._decoder.start_utt()
        try:
            self._decoder.process_raw(data, full_utt=True)
        finally:
            self._decoder.end_utt()
        hyp = self._decoder.hyp()
        return "" if hyp is None else " ".join(hyp.hypstr.split())
