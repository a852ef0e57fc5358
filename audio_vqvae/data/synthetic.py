"""SYNTHETIC speech-like corpus (not real speech): a seeded formant synthesiser for tests and the offline demo.

Every waveform here is machine-made by a small source-filter formant synthesiser in the style of
Klatt (1980, JASA 67(3)): a glottal pulse train (Rosenberg 1971 shape) with intonation, jitter and
breath noise drives a cascade of time-varying resonators; fricatives and stop bursts add band-passed
noise in parallel. Several speakers (differing in f0, vocal-tract length, speaking rate and
breathiness) each read the same sentences (a parallel corpus, like VCTK's shared sentences), and
every utterance comes with an exact phone alignment. It needs no download and is deterministic given
the seed. It is learnable (phones have distinct spectra, speakers distinct voices) but not trivial:
durations, formants and intonation vary per token, and phones blend across their boundaries.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, lfilter, sosfilt


@dataclass(frozen=True)
class Phone:
    """One phone of the synthetic inventory; frequencies are for a vocal-tract length factor of 1."""

    name: str
    cls: str  # "vowel" | "nasal" | "fricative" | "stop" | "silence"
    formants: tuple[float, float, float]  # F1-F3 targets in Hz; for consonants, the place loci of the transitions
    bandwidths: tuple[float, float, float]  # B1-B3 in Hz
    duration: float  # mean duration in s at speaking rate 1
    voicing: float = 0.0  # glottal source level (for voiced stops, the voice bar of the closure)
    noise_band: tuple[float, float] | None = None  # frication or burst band in Hz
    noise_level: float = 0.0  # frication or burst RMS relative to the vowels' RMS
    aspiration: float = 0.0  # aspiration level after a stop's release (voiceless stops)


def _inventory() -> dict[str, Phone]:
    v_bw, c_bw, n_bw = (60.0, 90.0, 150.0), (80.0, 120.0, 180.0), (100.0, 250.0, 300.0)
    labial, alveolar, velar = (300.0, 900.0, 2200.0), (300.0, 1700.0, 2600.0), (300.0, 2000.0, 2400.0)
    vowels = {  # F1-F3 after Peterson & Barney (1952), adult male averages
        "iy": (270.0, 2290.0, 3010.0),
        "eh": (530.0, 1840.0, 2480.0),
        "ae": (660.0, 1720.0, 2410.0),
        "aa": (730.0, 1090.0, 2440.0),
        "ao": (570.0, 840.0, 2410.0),
        "ah": (640.0, 1190.0, 2390.0),
        "uw": (300.0, 870.0, 2240.0),
    }
    table = [Phone("sil", "silence", (500.0, 1500.0, 2500.0), c_bw, 0.15)]
    table += [Phone(name, "vowel", f, v_bw, 0.10, voicing=1.0) for name, f in vowels.items()]
    table += [  # nasal murmur: low F1, wide bandwidths, weak
        Phone("m", "nasal", (250.0, 1100.0, 2300.0), n_bw, 0.07, voicing=0.35),
        Phone("n", "nasal", (250.0, 1600.0, 2500.0), n_bw, 0.07, voicing=0.35),
    ]
    table += [
        Phone("f", "fricative", labial, c_bw, 0.10, noise_band=(1200.0, 7000.0), noise_level=0.12),
        Phone("s", "fricative", alveolar, c_bw, 0.11, noise_band=(4800.0, 7600.0), noise_level=0.35),
        Phone("sh", "fricative", (300.0, 2000.0, 2700.0), c_bw, 0.11, noise_band=(2200.0, 4500.0), noise_level=0.4),
    ]
    stops = (
        ("p", labial, (400.0, 1800.0), 0.3),
        ("t", alveolar, (3000.0, 6500.0), 0.5),
        ("k", velar, (1500.0, 3200.0), 0.45),
    )
    for (name, place, band, level), voiced_name in zip(stops, ("b", "d", "g"), strict=True):
        table.append(Phone(name, "stop", place, c_bw, 0.09, noise_band=band, noise_level=level, aspiration=0.35))
        table.append(
            Phone(voiced_name, "stop", place, c_bw, 0.08, voicing=0.12, noise_band=band, noise_level=level / 2)
        )
    return {p.name: p for p in table}


PHONES: dict[str, Phone] = _inventory()
VOWELS = tuple(n for n, p in PHONES.items() if p.cls == "vowel")
CONSONANTS = tuple(n for n, p in PHONES.items() if p.cls in ("nasal", "fricative", "stop"))


@dataclass(frozen=True)
class Voice:
    """A synthetic speaker."""

    f0: float  # mean fundamental frequency in Hz
    vtl: float  # vocal-tract length factor: formants are divided by it (longer tract, lower formants)
    rate: float  # speaking rate: phone durations are divided by it
    breathiness: float  # 0..1: aspiration noise in voiced phones, wider glottal opening, steeper spectral tilt


def speaker_voices(n_speakers: int = 4, seed: int = 0) -> list[Voice]:
    """Voices spread over f0 90-250 Hz, vtl 0.85-1.15, rate 0.8-1.25 and breathiness 0.05-0.4.

    Speaker i sits at low-discrepancy positions (multiples of irrational steps, mod 1) plus a seeded
    nudge, so any n speakers are well spread and speaker i's voice does not depend on n_speakers.
    Longer vocal tracts go with lower voices, as in people.
    """
    steps = np.array([0.6180340, 0.4142136, 0.7548777])  # golden ratio, sqrt(2) - 1, plastic number - 1
    voices = []
    for i in range(n_speakers):
        rng = np.random.default_rng([seed, 1, i])
        pos = (np.array([0.0, 0.5, 0.25]) + i * steps + rng.uniform(-0.03, 0.03, 3)) % 1.0  # f0, rate, breathiness
        vtl = float(np.clip(1.15 - 0.3 * pos[0] + rng.uniform(-0.04, 0.04), 0.85, 1.15))
        f0, rate, breathiness = 90.0 * (250.0 / 90.0) ** pos[0], 0.8 * (1.25 / 0.8) ** pos[1], 0.05 + 0.35 * pos[2]
        voices.append(Voice(f0=float(f0), vtl=vtl, rate=float(rate), breathiness=float(breathiness)))
    return voices


def sentences(n_sentences: int = 20, seed: int = 0) -> list[list[str]]:
    """Phone sequences: silence, 4-7 CV / CVC / V syllables (sometimes a pause between them), silence.

    Sentence k depends only on (seed, k). No phone follows itself.
    """
    out = []
    for k in range(n_sentences):
        rng = np.random.default_rng([seed, 0, k])
        phones = ["sil"]
        for i in range(int(rng.integers(4, 8))):
            if i > 0 and rng.random() < 0.15:
                phones.append("sil")
            for slot in ("CV", "CV", "CVC", "CVC", "V")[rng.integers(5)]:
                pool = VOWELS if slot == "V" else CONSONANTS
                phone = phones[-1]
                while phone == phones[-1]:
                    phone = pool[rng.integers(len(pool))]
                phones.append(phone)
        out.append(phones + ["sil"])
    return out


@functools.lru_cache(maxsize=256)
def _band_sos(lo: float, hi: float, sample_rate: int) -> np.ndarray:
    hi = min(hi, 0.45 * sample_rate)
    return butter(2, [min(lo, 0.7 * hi), hi], btype="band", fs=sample_rate, output="sos")


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average along axis 0 (edges held), so that steps become linear ramps."""
    if width <= 1:
        return x
    pad = np.concatenate([np.repeat(x[:1], width // 2, 0), x, np.repeat(x[-1:], width - 1 - width // 2, 0)])
    c = np.cumsum(np.concatenate([np.zeros_like(pad[:1]), pad]), axis=0)
    return (c[width:] - c[:-width]) / width


def _cascade(x: np.ndarray, freqs: np.ndarray, bws: np.ndarray, hop: int, sample_rate: int) -> np.ndarray:
    """Cascade of Klatt resonators (unity DC gain) whose coefficients change every ``hop`` samples.

    Args:
        x: (T,) source. freqs, bws: (n_blocks, n_formants) in Hz, n_blocks = ceil(T / hop).
    """
    r = np.exp(-np.pi * bws / sample_rate)
    a1, a2 = -2.0 * r * np.cos(2.0 * np.pi * freqs / sample_rate), r**2
    sos = np.zeros(freqs.shape + (6,))  # (n_blocks, n_formants, 6)
    sos[..., 0], sos[..., 3], sos[..., 4], sos[..., 5] = 1.0 + a1 + a2, 1.0, a1, a2
    y, z = np.empty_like(x), np.zeros((freqs.shape[1], 2))
    for j in range(len(freqs)):
        if j:  # keep each section's last two outputs, re-expressed as direct-form-II-transposed state
            y1 = -z[:, 1] / a2[j - 1]
            y2 = -(z[:, 0] + a1[j - 1] * y1) / a2[j - 1]
            z = np.stack([-a1[j] * y1 - a2[j] * y2, -a2[j] * y1], axis=1)
        y[j * hop : (j + 1) * hop], z = sosfilt(sos[j], x[j * hop : (j + 1) * hop], zi=z)
    return y


def synthesize_utterance(
    phones: Sequence[str], voice: Voice, sample_rate: int = 16000, rng: np.random.Generator | int = 0
) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """Synthesise one phone sequence in one voice.

    Args:
        phones: names from ``PHONES``.
        voice: the speaker.
        sample_rate: Hz.
        rng: a Generator, or a seed for one; it draws durations, formant and intonation variation and noise.
    Returns:
        wav (T,) float32 with peak 0.9, and the alignment [(start_s, end_s, phone)], contiguous over [0, T / sr].
    """
    rng = np.random.default_rng(rng)
    table = [PHONES[p] for p in phones]
    sr, hop = sample_rate, max(1, sample_rate // 200)  # coefficients and f0 move every 5 ms
    dur = (
        np.array([p.duration for p in table])
        / voice.rate
        * np.exp(rng.normal(0.0, 0.15, len(table)) + rng.normal(0.0, 0.05))
    )
    n = np.maximum(np.round(dur * sr).astype(int), round(0.03 * sr))
    edges = np.concatenate([[0], np.cumsum(n)])
    T = int(edges[-1])

    # Levels per sample; a stop is closure, then a 12 ms burst, then (voiceless) aspiration.
    voicing, aspiration, noise_segments = np.repeat([p.voicing for p in table], n), np.zeros(T), []
    for p, s0, s1 in zip(table, edges[:-1], edges[1:], strict=True):
        if p.cls == "fricative":
            noise_segments.append((p, s0, s1, round(0.015 * sr)))
        elif p.cls == "stop":
            n_asp = int(0.35 * (s1 - s0)) if p.aspiration else 0
            n_burst = round(0.012 * sr)
            noise_segments.append((p, s1 - n_asp - n_burst, s1 - n_asp, round(0.002 * sr)))
            aspiration[s1 - n_asp : s1] = p.aspiration
    ramp = round(0.006 * sr)
    voicing, aspiration = _smooth(voicing, ramp), _smooth(aspiration, ramp)

    # Formant and bandwidth tracks at the block rate, each token nudged by ~3 %, blended over 25 ms.
    n_blocks = -(-T // hop)
    token = np.minimum(np.searchsorted(edges, np.arange(n_blocks) * hop + hop // 2, side="right") - 1, len(table) - 1)
    f_tok = np.array([p.formants for p in table]) * np.exp(rng.normal(0.0, 0.03, (len(table), 3))) / voice.vtl
    freqs = np.concatenate([f_tok[token], np.tile([3500.0 / voice.vtl, 4500.0 / voice.vtl], (n_blocks, 1))], axis=1)
    bws = np.concatenate(
        [np.array([p.bandwidths for p in table])[token], np.tile([250.0, 300.0], (n_blocks, 1))], axis=1
    )
    blend = max(1, round(0.025 * sr / hop))
    freqs, bws = np.minimum(_smooth(freqs, blend), 0.45 * sr), _smooth(bws, blend)

    # Glottal source: Rosenberg pulses at f0 (declination, a pitch accent, jitter) plus breath noise.
    t = (np.arange(n_blocks) + 0.5) * hop / sr
    semitones = 1.0 - 2.0 * t / t[-1] + np.sin(2 * np.pi * t / rng.uniform(0.5, 1.0) + rng.uniform(0, 2 * np.pi))
    f0 = voice.f0 * 2.0 ** ((semitones + rng.normal(0.0, 0.15, n_blocks)) / 12.0)
    f0 = np.interp(np.arange(T), np.arange(n_blocks) * hop + hop / 2, f0)
    frac = np.cumsum(f0 / sr) % 1.0
    open_q = 0.55 + 0.25 * voice.breathiness
    t_open, t_close = 0.75 * open_q, 0.25 * open_q
    flow = np.where(frac < t_open, 0.5 - 0.5 * np.cos(np.pi * frac / t_open), 0.0)
    closing = (frac >= t_open) & (frac < open_q)
    flow[closing] = np.cos(0.5 * np.pi * (frac[closing] - t_open) / t_close)
    tilt = 0.6 * voice.breathiness  # breathy voices lose their upper harmonics
    pulses = lfilter([1.0 - tilt], [1.0, -tilt], np.diff(flow, prepend=0.0))  # flow derivative: lip radiation
    pulses /= np.sqrt(np.mean(pulses**2)) + 1e-12
    breath = aspiration + voice.breathiness * voicing * (0.4 + 0.6 * flow)
    wav = _cascade(voicing * pulses + breath * rng.standard_normal(T), freqs, bws, hop, sr)
    vowel = np.repeat([p.cls == "vowel" for p in table], n)
    wav /= np.sqrt(np.mean(wav[vowel] ** 2 if vowel.any() else wav**2)) + 1e-12  # vowels at RMS 1

    # Frication and bursts in parallel: band-passed noise with raised-cosine ramps.
    for p, s0, s1, ramp in noise_segments:
        lo, hi = p.noise_band
        noise = sosfilt(_band_sos(lo / voice.vtl, hi / voice.vtl, sr), rng.standard_normal(s1 - s0 + 256))[256:]
        env = np.ones(s1 - s0)
        k = min(ramp, (s1 - s0) // 2)
        env[:k] = env[s1 - s0 - k :][::-1] = 0.5 - 0.5 * np.cos(np.pi * np.arange(k) / max(k, 1))
        wav[s0:s1] += p.noise_level * env * noise / (np.sqrt(np.mean(noise**2)) + 1e-12)

    wav += 1e-3 * rng.standard_normal(T)  # a recording noise floor 60 dB below the vowels
    wav = (0.9 / np.max(np.abs(wav)) * wav).astype(np.float32)
    alignment = [(float(a) / sr, float(b) / sr, p) for a, b, p in zip(edges[:-1], edges[1:], phones, strict=True)]
    return wav, alignment


@dataclass
class SyntheticUtterance:
    """One synthetic utterance with its phone alignment."""

    id: str  # f"{speaker}_{sentence:03d}", e.g. "spk00_007"
    speaker: str  # "spk00", "spk01", ...
    sentence: int  # every speaker says every sentence
    wav: np.ndarray  # (T,) float32 at sample_rate, peak <= 0.95
    phones: list[tuple[float, float, str]]  # (start_s, end_s, phone), contiguous, covering [0, T / sample_rate]
    text: str  # the sentence's phone sequence, space separated


def synthesize_corpus(
    n_speakers: int = 4, n_sentences: int = 20, sample_rate: int = 16000, seed: int = 0
) -> Iterator[SyntheticUtterance]:
    """Yield every speaker saying every sentence (speaker-major), deterministically.

    Utterance (speaker s, sentence k) depends only on (seed, s, k), so any slice of the corpus is
    the same bytes however it was asked for. ``seed`` must be non-negative.
    """
    texts = sentences(n_sentences, seed)
    for s, voice in enumerate(speaker_voices(n_speakers, seed)):
        speaker = f"spk{s:02d}"
        for k, phones in enumerate(texts):
            wav, alignment = synthesize_utterance(phones, voice, sample_rate, np.random.default_rng([seed, 2, s, k]))
            yield SyntheticUtterance(f"{speaker}_{k:03d}", speaker, k, wav, alignment, " ".join(phones))
