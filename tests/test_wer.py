"""Word error rate (audio_vqvae.evaluation.metrics.wer): edit distance, the pocketsphinx recogniser on synthetic
speech, and its place in ``evaluate_conversion`` and ``evaluate conversion --wer``."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audio_vqvae.data.manifest import Utterance, write_manifest, write_speakers
from audio_vqvae.evaluation.metrics.wer import Recognizer, normalize_words, word_error_rate, word_errors

# --------------------------------------------------------------------------------------- edit distance


def test_identical_and_normalised_text_has_no_errors():
    assert word_errors("the cat sat", "the cat sat") == (0, 3)
    # case, punctuation, outer quotes and extra spaces do not count; apostrophes inside words do
    assert word_errors('Please, call "Stella"!  Don\'t wait.', "please call stella don't wait") == (0, 5)
    assert word_errors("'Hello,' she said", "hello she said") == (0, 3)
    assert word_errors("don't", "dont") == (1, 1)
    assert normalize_words("A well-known  fact... isn't it?") == ["a", "well", "known", "fact", "isn't", "it"]


def test_substitution_deletion_insertion():
    assert word_errors("the cat sat on the mat", "the dog sat on the mat") == (1, 6)  # substitution
    assert word_errors("the cat sat on the mat", "the cat on the mat") == (1, 6)  # deletion
    assert word_errors("the cat sat on the mat", "the cat sat down on the mat") == (1, 6)  # insertion
    assert word_errors("a b c d", "b c d e") == (2, 4)  # a deleted, e inserted (not 4 substitutions)
    assert word_errors("a b", "c d e f g") == (5, 2)  # WER may exceed 1
    assert word_errors("x y z", "z y x") == (2, 3)


def test_empty_hypothesis_and_reference():
    assert word_errors("one two three", "") == (3, 3)
    assert word_errors("one two three", "  ,.  ") == (3, 3)
    assert word_errors("", "") == (0, 0)
    assert word_errors("", "spurious words") == (2, 0)


def test_corpus_rate_weights_by_reference_length():
    pairs = [("one", "two"), ("a b c d e f g h i", "a b c d e f g h i")]
    assert word_error_rate(pairs) == pytest.approx(1 / 10)  # not the mean of 1.0 and 0.0
    assert word_error_rate(iter([("a b", "a"), ("c d", "c x d")])) == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="no words"):
        word_error_rate([("", "something"), ("...", "")])
    with pytest.raises(ValueError, match="no words"):
        word_error_rate([])


def test_missing_pocketsphinx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)  # makes `import pocketsphinx` fail
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'audio_vqvae\[wer\]'"):
        Recognizer()


# ------------------------------------------------------------------------------------------ recogniser

SENTENCE = "The quick brown fox jumped over the lazy dog."


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    pytest.importorskip("pocketsphinx", reason="pocketsphinx not installed (pip install 'audio_vqvae[wer]')")
    return Recognizer()


def espeak(text: str, path: Path) -> tuple[torch.Tensor, int]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), text], check=True, capture_output=True, timeout=30)
    wav, sr = sf.read(path, dtype="float32")
    return torch.from_numpy(wav), sr


def test_recognizer_transcribes_synthetic_speech_but_not_noise(recognizer, tmp_path):
    wav, sr = espeak(SENTENCE, tmp_path / "fox.wav")  # 22.05 kHz: resampled to the model's 16 kHz
    assert recognizer.sample_rate == 16000
    hyp = recognizer.transcribe(wav, sr)
    errors, words = word_errors(SENTENCE, hyp)
    # Measured: 0 errors in 9 words with pocketsphinx 5.1.1 and espeak-ng 1.51. Pocketsphinx on
    # other espeak sentences often gets 30-60 %, hence the loose bound; noise below gets 100 %.
    assert errors / words <= 0.35, hyp
    assert recognizer.transcribe(wav.unsqueeze(0) * 0.02, sr) == hyp  # level and a (1, T) shape do not matter
    assert recognizer.transcribe(wav, sr) == hyp  # deterministic, whatever was decoded before

    noise = 0.1 * torch.randn(wav.numel() * 16000 // sr, generator=torch.Generator().manual_seed(0))
    noise_hyp = recognizer.transcribe(noise, 16000)
    assert word_errors(SENTENCE, noise_hyp)[0] / words >= 0.8, noise_hyp
    assert recognizer.transcribe(torch.zeros(0), 16000) == ""


def test_decoded_audio_is_resampled_padded_and_deterministic(recognizer):
    """16 kHz int16 with 0.25 s margins; the noise floor has a fixed seed, so the bytes depend on the input only."""
    wav = torch.from_numpy(np.sin(np.arange(8000) / 10).astype(np.float32))  # 1 s at 8 kHz
    first = recognizer.pcm(wav, 8000)
    assert recognizer.pcm(wav, 8000) == first and len(first) == 2 * (16000 + 2 * 4000)
    peak = np.abs(np.frombuffer(first, dtype="<i2")).max() / 32767
    assert 0.85 < peak < 0.95  # scaled to 0.9 (plus the -60 dB noise floor)
    with pytest.raises(ValueError, match="mono"):
        recognizer.pcm(torch.zeros(2, 100), 16000)


# ---------------------------------------------------------------------------------------- evaluation


class ScriptedRecognizer:
    """Stands in for ``Recognizer``: the transcript is chosen by the waveform's length."""

    def __init__(self, by_length: dict[int, str]):
        self.by_length, self.calls = by_length, 0

    def transcribe(self, wav: torch.Tensor, sample_rate: int) -> str:
        self.calls += 1
        return self.by_length[wav.numel()]


def tone(seconds: float, f0: float, seed: int = 0) -> torch.Tensor:
    t = torch.arange(int(seconds * 16000)) / 16000
    noise = 0.01 * torch.randn(t.numel(), generator=torch.Generator().manual_seed(seed))
    return sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 4)) * 0.2 + noise


def test_evaluate_conversion_reports_word_error_rates():
    from audio_vqvae import VQVAE, preset
    from audio_vqvae.evaluation.evaluate import ConversionPair, evaluate_conversion, format_conversion_report

    torch.manual_seed(0)
    model = VQVAE.from_config(preset("tiny")).eval()
    real = [(f"{s}_{i}", tone(0.3, 120 + 80 * j, i), s) for j, s in enumerate(["a", "b"]) for i in range(4)]
    # lengths pick the scripted transcripts: converted 4800 / 4864 samples, sources 4928, target 4992
    conv1, conv2, source, target = (tone(n / 16000, 150) for n in (4800, 4864, 4928, 4992))
    recognizer = ScriptedRecognizer(
        {4800: "the cat sat", 4864: "a dog sat on", 4928: "the cat sat on the mat", 4992: "the cat sat on a mat"}
    )
    pairs = [
        ConversionPair(conv1, source, "a", "b", target),  # 3 deletions; target 1 substitution
        ConversionPair(conv2, source, "a", "b"),  # no parallel target: 2 subs + 2 deletions
        ConversionPair(conv1, source, "b", "a"),  # no text: not scored
    ]
    texts = ["The cat sat on the mat.", "the cat sat on the mat", None]
    result = evaluate_conversion(model, pairs, real, texts=texts, recognizer=recognizer)
    content = result["content"]
    assert content["wer_converted"] == pytest.approx((3 + 4) / 12)
    assert content["wer_source_real"] == 0
    assert content["wer_target_real"] == pytest.approx(1 / 6)
    assert (content["n_wer"], content["n_wer_target"]) == (2, 1)
    assert recognizer.calls == 5  # converted + source twice, one target
    first, second, third = result["pairs"]
    assert first["text"] == texts[0] and first["hypothesis_converted"] == "the cat sat"
    assert first["hypothesis_target"] == "the cat sat on a mat" and first["wer_converted"] == pytest.approx(0.5)
    assert second["hypothesis_target"] is None and second["hypothesis_source"] == "the cat sat on the mat"
    assert "text" not in third and "hypothesis_converted" not in third
    json.dumps(result)
    table = format_conversion_report(result)
    assert "WER converted" in table and "58.3 %" in table and "WER target real" in table and "16.7" in table

    # without texts: no recogniser is needed, the entries are empty and the table has no WER rows
    plain = evaluate_conversion(model, pairs, real)
    assert plain["content"]["wer_converted"] is None and plain["content"]["n_wer"] == 0
    assert "WER" not in format_conversion_report(plain) and "text" not in plain["pairs"][0]
    with pytest.raises(ValueError, match="one per pair"):
        evaluate_conversion(model, pairs, real, texts=texts[:2], recognizer=recognizer)


WORDS = ["zero", "one", "two"]


def write_parallel_corpus(root: Path) -> Path:
    """3 speakers x 3 sentences of tones with texts; the third sentence of each speaker is in valid."""
    speakers = ["spk0", "spk1", "spk2"]
    rows: dict[str, list[Utterance]] = {"train": [], "valid": []}
    for s, spk in enumerate(speakers):
        for u in range(3):
            wav = tone(0.25 + 0.02 * u, 110 * (1 + 0.4 * s), seed=10 * s + u).numpy()
            uid = f"{spk}_{u:03d}"
            path = root / "wav" / spk / f"{uid}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wav, 16000, subtype="PCM_16")
            row = Utterance(uid, str(path.relative_to(root)), spk, wav.size / 16000, 16000, wav.size)
            rows["valid" if u == 2 else "train"].append(dataclasses.replace(row, text=f"Sentence {WORDS[u]}."))
    for split, r in rows.items():
        write_manifest(root / f"{split}.jsonl", r)
    write_speakers(root / "speakers.txt", speakers)
    return root


@pytest.fixture(scope="module")
def untrained_checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    from audio_vqvae import VQVAE
    from audio_vqvae.checkpoint import save_checkpoint
    from audio_vqvae.config import experiment_config, to_dict

    root = tmp_path_factory.mktemp("wer")
    cfg = experiment_config("tiny", {"model": {"decoder": {"n_speakers": 3}}})
    torch.manual_seed(0)
    model = VQVAE.from_config(cfg.model)
    ckpt = save_checkpoint(
        root / "model.pt", {"config": to_dict(cfg), "speakers": ["spk0", "spk1", "spk2"], "model": model.state_dict()}
    )
    return ckpt, write_parallel_corpus(root / "data")


def conversion_args(ckpt: Path, data: Path, *extra: str) -> list[str]:
    return ["evaluate", "conversion", "--ckpt", str(ckpt), "--data", str(data), "--split", "valid",
            "--n-sources", "2", "--real-per-speaker", "2", "--reconstructions", "0", "--temperature", "0",
            "--device", "cpu", *extra]  # fmt: skip


def test_cli_wer_flag_scores_the_manifest_texts(untrained_checkpoint, tmp_path, monkeypatch, capsys):
    from audio_vqvae.cli import evaluate as evaluate_cli
    from audio_vqvae.cli import main

    ckpt, data = untrained_checkpoint
    heard: list[int] = []

    class Fake:
        def transcribe(self, wav, sample_rate):
            heard.append(wav.numel())
            return "sentence two"

    monkeypatch.setattr(evaluate_cli, "word_recognizer", Fake)
    out = tmp_path / "conv.json"
    assert main(conversion_args(ckpt, data, "--wer", "--out", str(out))) == 0
    result = json.loads(out.read_text())
    content = result["content"]
    assert content["n_wer"] == 4 and content["n_wer_target"] == 4  # 2 sources x 2 targets, all parallel
    assert content["wer_converted"] == 0 and content["wer_target_real"] == 0
    assert all(p["text"] == "Sentence two." and p["hypothesis_converted"] == "sentence two" for p in result["pairs"])
    assert "WER converted" in capsys.readouterr().out
    assert len(heard) == 12

    # crops would cut words off: --max-seconds below every duration leaves nothing to score
    assert main(conversion_args(ckpt, data, "--wer", "--max-seconds", "0.1")) == 2
    assert "--max-seconds" in capsys.readouterr().err

    # without --wer nothing needs pocketsphinx; with it, its absence is a one-line error naming the extra
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)
    assert main(conversion_args(ckpt, data, "--out", str(out))) == 0
    assert json.loads(out.read_text())["content"]["n_wer"] == 0
    capsys.readouterr()
    assert main(conversion_args(ckpt, data, "--wer")) == 2
    err = capsys.readouterr().err
    assert "audio_vqvae[wer]" in err and err.strip().count("\n") == 0
