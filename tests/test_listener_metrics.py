"""Figures a listener would trust: DNSMOS naturalness (metrics.dnsmos, speechmos) and speaker similarity by a
speaker-verification embedding (metrics.speaker_embedding, resemblyzer), in ``evaluate_conversion``, its report,
``evaluate conversion --dnsmos --speaker-embedding`` and without the ``eval`` extra.

The tests of the real models skip where speechmos, onnxruntime or resemblyzer are not installed (the ``eval``
extra, also in ``dev``) or espeak-ng is missing; the others run everywhere."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from audio_vqvae import VQVAE, preset
from audio_vqvae.data.audio import load_audio, resample
from audio_vqvae.data.manifest import Utterance, write_manifest, write_speakers
from audio_vqvae.errors import AudioVQVAEError, MissingPackageError
from audio_vqvae.evaluation.evaluate import ConversionPair, evaluate_conversion, format_conversion_report
from audio_vqvae.evaluation.metrics.dnsmos import DNSMOS, SCORES
from audio_vqvae.evaluation.metrics.speaker import add_white_noise, held_out_split
from audio_vqvae.evaluation.metrics.speaker_embedding import SpeakerEncoder, embedding_speaker_metrics

SR = 16000
SECONDS = 2.4  # DNSMOS repeats a clip to 9.6 s: one 9.01 s window, the cheapest length (shorter ones need up to 9)
VOICES = {"m": "en-us+m1", "f": "en-us+f2"}  # two espeak-ng voices: a man's and a woman's
SENTENCES = (
    "The quick brown fox jumped over the lazy dog.",
    "She sells sea shells by the shore.",
    "Please call Stella and ask her to bring these things.",
    "We will meet at nine in the morning.",
)

# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> dict[str, list[torch.Tensor]]:
    """voice -> the four sentences read by it, (T,) at 16 kHz (espeak-ng's 22.05 kHz resampled by load_audio),
    cropped or padded with silence to ``SECONDS``."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    root, n = tmp_path_factory.mktemp("espeak"), round(SECONDS * SR)
    out: dict[str, list[torch.Tensor]] = {}
    for key, voice in VOICES.items():
        out[key] = []
        for i, text in enumerate(SENTENCES):
            path = root / f"{key}{i}.wav"
            subprocess.run(
                ["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True, timeout=30
            )
            wav = load_audio(path, SR)[:n]
            out[key].append(torch.nn.functional.pad(wav, (0, n - wav.numel())))
    return out


@pytest.fixture(scope="module")
def scorer() -> DNSMOS:
    try:
        return DNSMOS(threads=1)
    except MissingPackageError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def encoder() -> SpeakerEncoder:
    try:
        return SpeakerEncoder()
    except MissingPackageError as e:
        pytest.skip(str(e))


def noisy(wav: torch.Tensor, snr_db: float) -> torch.Tensor:
    """``wav`` with white noise ``snr_db`` below it, scaled back to the clean peak."""
    x = add_white_noise(wav, snr_db, torch.Generator().manual_seed(0))
    return x * (wav.abs().max() / x.abs().max())


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b)


# ------------------------------------------------------------------------------------------ DNSMOS


def test_dnsmos_rates_clean_speech_above_the_same_speech_in_white_noise(speech, scorer):
    for voice in VOICES:
        clean = scorer.score(speech[voice][0], SR)
        buried = scorer.score(noisy(speech[voice][0], 0.0), SR)  # 0 dB SNR
        assert set(clean) == set(SCORES) and all(1 <= v <= 5 for v in [*clean.values(), *buried.values()])
        # measured with speechmos 0.0.1.1: OVRL 2.31, 2.25 clean, 1.43, 1.36 at 0 dB; BAK 3.53, 3.22 and 1.43, 1.31
        assert clean["ovrl"] > buried["ovrl"] + 0.5, (clean, buried)
        assert clean["bak"] > buried["bak"] + 1.0, (clean, buried)
        assert clean["p808"] > buried["p808"] + 0.3, (clean, buried)
    wav = speech["f"][0]
    assert scorer.score(wav, SR) == scorer.score(wav, SR)  # deterministic
    at_22k = scorer.score(resample(wav, SR, 22050), 22050)  # resampled to the model's 16 kHz
    assert all(abs(at_22k[k] - clean[k]) < 0.15 for k in SCORES), (at_22k, clean)
    assert scorer.score(torch.zeros(0), SR) is None and scorer.score(torch.zeros(800), SR) is None


# ------------------------------------------------------------------------------------------ speaker embedding


def test_speaker_embedding_puts_one_voice_nearer_itself_than_another_voice(speech, encoder):
    m = encoder.embed_all(speech["m"][:2], SR)  # (2, 256), two sentences by the man's voice
    f = encoder.embed_all(speech["f"][:2], SR)
    assert m.shape == (2, 256) and torch.allclose(torch.cat([m, f]).norm(dim=1), torch.ones(4), atol=1e-5)
    same = [cos(m[0], m[1]), cos(f[0], f[1])]  # measured: 0.84 and 0.79
    other = [cos(a, b) for a in m for b in f]  # measured: 0.55-0.64
    assert min(same) > max(other) + 0.1, (same, other)
    # another sample rate is resampled to the encoder's 16 kHz first
    assert cos(encoder.embed(resample(speech["m"][0], SR, 22050), 22050), m[0]) > 0.98
    assert not encoder.embed(torch.zeros(1600), SR).any() and not encoder.embed(torch.zeros(0), SR).any()


def test_nearest_centroid_names_held_out_speech_and_the_voice_of_a_conversion(speech, encoder):
    real = [(w, voice) for voice in VOICES for w in speech[voice][:3]]  # 3 sentences each: 2 make centroids
    wavs, speakers = [w for w, _ in real], [s for _, s in real]
    conversions = [
        (speech["f"][3], "m", "f"),  # a perfect conversion of the man's sentence to the woman's voice
        (speech["m"][3], "f", "m"),
        (speech["m"][3], "someone else", "m"),  # a source without real speech: left out of the source rate
    ]
    summary, rows = embedding_speaker_metrics(encoder, wavs, speakers, conversions, SR, held_out_fraction=1 / 3)
    train, held = held_out_split(speakers, 1 / 3, 0)  # the MFCC classifier's split: the same utterances
    assert (summary["centroid_utterances"], summary["held_out_utterances"]) == (len(train), len(held)) == (4, 2)
    assert summary["speakers"] == ["f", "m"] and summary["accuracy"] == 1.0
    assert summary["real_own_similarity"] > summary["real_other_similarity"] + 0.1
    assert summary["target_rate"] == 1.0 and summary["source_rate"] == 0.0 and summary["n_source_known"] == 2
    assert summary["target_similarity"] > summary["source_similarity"] + 0.1
    assert [r["embedding_predicted_speaker"] for r in rows] == ["f", "m", "m"]
    assert rows[2]["embedding_source_similarity"] is None and rows[2]["embedding_target_similarity"] > 0.7
    with pytest.raises(ValueError, match="nobody"):
        embedding_speaker_metrics(encoder, wavs, speakers, [(speech["m"][3], "m", "nobody")], SR)


# ------------------------------------------------------------------------------------------ in evaluate_conversion


def test_evaluate_conversion_reports_both_beside_the_mfcc_classifier(speech, scorer, encoder):
    torch.manual_seed(0)
    model = VQVAE.from_config(preset("tiny")).eval()
    assert model.sample_rate == SR
    m, f = speech["m"], speech["f"]
    pairs = [ConversionPair(f[3], m[3], "m", "f", f[3]), ConversionPair(m[3], f[3], "f", "m")]  # perfect ones
    real = [(f"{voice}{i}", speech[voice][i], voice) for voice in VOICES for i in range(3)]
    reconstructions = [(m[0], noisy(m[0], 0.0))]  # a resynthesis buried in noise
    result = evaluate_conversion(
        model, pairs, real, reconstructions=reconstructions, dnsmos=scorer, speaker_encoder=encoder
    )
    json.dumps(result)
    emb, nat = result["speaker_embedding"], result["naturalness"]
    assert emb["target_rate"] == 1.0 and emb["source_rate"] == 0.0 and emb["accuracy"] == 1.0
    assert emb["centroid_utterances"] == result["speaker"]["classifier_train_utterances"]  # the same real speech
    assert nat["converted"]["n"] == 2 and nat["target_real"]["n"] == 1 and nat["resynthesis"]["n"] == 1
    assert nat["resynthesis"]["ovrl"] < nat["original"]["ovrl"] - 0.5
    first, second = result["pairs"]
    assert first["dnsmos_converted"] == first["dnsmos_target_real"]  # the same audio
    assert second["dnsmos_target_real"] is None and first["embedding_predicted_speaker"] == "f"
    report = format_conversion_report(result)
    assert "embedding: as target      100.0 %" in report and "DNSMOS (1-5)" in report
    assert "real target readings" in report and "resynthesis" in report


def test_evaluate_conversion_without_them_has_no_keys_and_no_lines():
    torch.manual_seed(0)
    model = VQVAE.from_config(preset("tiny")).eval()
    real = [(f"{s}{i}", tone(0.3, 120 + 80 * j, i), s) for j, s in enumerate(["a", "b"]) for i in range(3)]
    result = evaluate_conversion(model, [ConversionPair(tone(0.3, 200), tone(0.3, 120), "a", "b")], real)
    assert "naturalness" not in result and "speaker_embedding" not in result
    assert not any(k.startswith(("dnsmos", "embedding")) for k in result["pairs"][0])
    report = format_conversion_report(result)
    assert "DNSMOS" not in report and "embedding" not in report


# ------------------------------------------------------------------------------------------ without the extra


def test_missing_packages_are_one_package_error_naming_the_extra(monkeypatch):
    from audio_vqvae.cli.evaluate import listener_scorers

    monkeypatch.setitem(sys.modules, "speechmos", None)  # makes `import speechmos` fail
    monkeypatch.setitem(sys.modules, "resemblyzer", None)
    for make, package in ((DNSMOS, "speechmos"), (SpeakerEncoder, "resemblyzer")):
        with pytest.raises(MissingPackageError, match=r'pip install -e "\.\[eval\]"') as caught:
            make()
        assert isinstance(caught.value, ModuleNotFoundError) and isinstance(caught.value, AudioVQVAEError)
        assert package in str(caught.value)
    scorer, encoder, notes = listener_scorers(False, False)
    assert scorer is None and encoder is None and len(notes) == 1
    assert "--dnsmos" in notes[0] and "--speaker-embedding" in notes[0] and '".[eval]"' in notes[0]
    with pytest.raises(MissingPackageError):
        listener_scorers(False, True)


# ------------------------------------------------------------------------------------------ the command line


def tone(seconds: float, f0: float, seed: int = 0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    noise = 0.01 * torch.randn(t.numel(), generator=torch.Generator().manual_seed(seed))
    return sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 4)) * 0.2 + noise


@pytest.fixture(scope="module")
def checkpoint_and_corpus(tmp_path_factory) -> tuple[Path, Path]:
    """An untrained tiny model of speakers spk0..2, and a parallel corpus of tones: 3 sentences per speaker,
    the third in valid."""
    from audio_vqvae.checkpoint import save_checkpoint
    from audio_vqvae.config import experiment_config, to_dict

    root = tmp_path_factory.mktemp("listener")
    speakers = ["spk0", "spk1", "spk2"]
    cfg = experiment_config("tiny", {"model": {"decoder": {"n_speakers": 3}}})
    torch.manual_seed(0)
    state = {"config": to_dict(cfg), "speakers": speakers, "model": VQVAE.from_config(cfg.model).state_dict()}
    ckpt = save_checkpoint(root / "model.pt", state)
    data, rows = root / "data", {"train": [], "valid": []}
    for s, spk in enumerate(speakers):
        for u in range(3):
            wav = tone(0.25 + 0.02 * u, 110 * (1 + 0.4 * s), seed=10 * s + u).numpy()
            path = data / "wav" / f"{spk}_{u}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wav, SR, subtype="PCM_16")
            row = Utterance(f"{spk}_{u}", str(path.relative_to(data)), spk, wav.size / SR, SR, wav.size)
            rows["valid" if u == 2 else "train"].append(dataclasses.replace(row, text=f"Sentence {u}."))
    for split, r in rows.items():
        write_manifest(data / f"{split}.jsonl", r)
    write_speakers(data / "speakers.txt", speakers)
    return ckpt, data


def conversion_args(ckpt: Path, data: Path, *extra: str) -> list[str]:
    return ["evaluate", "conversion", "--ckpt", str(ckpt), "--data", str(data), "--split", "valid",
            "--n-sources", "2", "--real-per-speaker", "2", "--reconstructions", "1", "--temperature", "0",
            "--device", "cpu", *extra]  # fmt: skip


def test_cli_without_the_extra_works_as_before_and_says_so_in_one_line(
    checkpoint_and_corpus, tmp_path, monkeypatch, capsys
):
    from audio_vqvae.cli import main

    monkeypatch.setitem(sys.modules, "speechmos", None)
    monkeypatch.setitem(sys.modules, "resemblyzer", None)
    ckpt, data = checkpoint_and_corpus
    out = tmp_path / "conv.json"
    assert main(conversion_args(ckpt, data, "--out", str(out))) == 0
    result = json.loads(out.read_text())
    assert result["n_pairs"] == 4 and "naturalness" not in result and "speaker_embedding" not in result
    notes = [line for line in capsys.readouterr().out.splitlines() if "[eval]" in line]
    assert len(notes) == 1 and notes[0].strip().startswith("note:") and result["notes"] == [notes[0].split(": ", 1)[1]]
    # asked for, they are a one-line error naming the extra
    for flag in ("--dnsmos", "--speaker-embedding"):
        assert main(conversion_args(ckpt, data, flag)) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and '".[eval]"' in err and "Traceback" not in err


class FakeDNSMOS:
    """Stands in for ``DNSMOS``: scores by length, so each group's mean is known."""

    def score(self, wav: torch.Tensor, sample_rate: int) -> dict[str, float]:
        return dict.fromkeys(SCORES, 1 + wav.numel() / sample_rate)


class FakeEncoder:
    """Stands in for ``SpeakerEncoder``: the embedding is the direction of the loudest frequency, so each
    speaker's tones share one."""

    def embed_all(self, wavs, sample_rate: int) -> torch.Tensor:
        peaks = [float(torch.fft.rfft(w).abs().argmax()) * sample_rate / w.numel() for w in wavs]
        return torch.tensor([[math.cos(p / 100), math.sin(p / 100)] for p in peaks])


def test_cli_flags_score_conversions_resyntheses_and_real_readings(
    checkpoint_and_corpus, tmp_path, monkeypatch, capsys
):
    from audio_vqvae.cli import evaluate as evaluate_cli
    from audio_vqvae.cli import main
    from audio_vqvae.evaluation.report import conversion_table

    monkeypatch.setattr(evaluate_cli, "DNSMOS", FakeDNSMOS)
    monkeypatch.setattr(evaluate_cli, "SpeakerEncoder", FakeEncoder)
    ckpt, data = checkpoint_and_corpus
    out = tmp_path / "conv.json"
    assert main(conversion_args(ckpt, data, "--dnsmos", "--speaker-embedding", "--out", str(out))) == 0
    result = json.loads(out.read_text())
    nat, emb = result["naturalness"], result["speaker_embedding"]
    assert [nat[k]["n"] for k in ("converted", "resynthesis", "original", "target_real")] == [4, 1, 1, 4]
    assert nat["original"]["ovrl"] == pytest.approx(1 + 0.29)  # spk0_2 and spk1_2: 0.29 s, the first source
    assert emb["centroid_utterances"] == result["speaker"]["classifier_train_utterances"] == 3
    assert emb["accuracy"] == 1.0 and emb["n_source_known"] == 4 and 0 <= emb["target_rate"] <= 1
    assert all("dnsmos_converted" in p and "embedding_target_similarity" in p for p in result["pairs"])
    assert result["notes"] == []
    report = capsys.readouterr().out
    assert "DNSMOS (1-5)" in report and "embedding: as target" in report and "note:" not in report

    labels = [row[0] for row in conversion_table(result)[0].rows]
    assert "DNSMOS OVRL, conversions (P.808; SIG, BAK)" in labels
    assert "speaker embedding: conversions nearest the target speaker (%)" in labels
    plain = {k: v for k, v in result.items() if k not in ("naturalness", "speaker_embedding")}
    assert not any("DNSMOS" in row[0] or "embedding" in row[0] for row in conversion_table(plain)[0].rows)

    from bench.learn import listener_summary

    assert "DNSMOS OVRL" in listener_summary(result) and "by speaker embedding" in listener_summary(result)
    assert listener_summary(plain) == ""
