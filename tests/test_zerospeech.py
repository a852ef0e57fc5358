"""ZeroSpeech 2021 phonetic submissions: encode writes a layout the validators accept; broken ones are named."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import yaml
from trained_tiny import trained_checkpoint, write_tone

from audio_vqvae import VQVAE
from audio_vqvae.inference import extract_tokens
from audio_vqvae.inference.jobs import encode_files
from audio_vqvae.inference.tokens import TokenFormatError, Tokens, TokenWriter
from audio_vqvae.inference.zerospeech import META, PHONETIC, check_meta, check_submission, validate_submission

FIELDS = {"author": "A. Author", "affiliation": "Lab", "train_set": "test tones", "gpu_budget": 2}


@pytest.fixture(scope="module")
def checkpoint(prepared_corpus, tmp_path_factory):
    return trained_checkpoint(prepared_corpus, tmp_path_factory.mktemp("trained"))


@pytest.fixture
def dataset(tmp_path):
    """A ZeroSpeech-like dataset: phonetic/<subset>/*.wav for the two dev subsets."""
    root = tmp_path / "zr2021"
    for i, rel in enumerate(["dev-clean/1272-1-0000", "dev-clean/1272-1-0001", "dev-other/116-2-0000"]):
        write_tone(root / PHONETIC / f"{rel}.wav", 0.05 + 0.01 * i, f0=150 + 30 * i)
    return root


def test_encode_writes_a_submission_the_validators_accept(checkpoint, dataset, tmp_path):
    out = tmp_path / "tok"
    encode_files(VQVAE.load(checkpoint), out, [dataset / PHONETIC], formats=["zerospeech"], zerospeech_meta=FIELDS)
    submission = out / "zerospeech"
    assert check_submission(submission, dataset) == []
    validate_submission(submission, dataset)
    meta = yaml.safe_load((submission / META).read_text())
    assert meta["parameters"]["phonetic"] == {"metric": "cosine", "frame_shift": 64 / 16000}
    assert meta["gpu_budget"] == 2.0 and isinstance(meta["gpu_budget"], float) and meta["author"] == "A. Author"
    wavs = sorted((dataset / PHONETIC).rglob("*.wav"))
    expected = extract_tokens(VQVAE.load(checkpoint), wavs, latents="quantized")
    for wav, t in zip(wavs, expected):
        rel = wav.relative_to(dataset).with_suffix(".txt")
        features = np.loadtxt(submission / rel)  # as the benchmark reads a .txt
        assert features.dtype == np.float64 and features.shape == tuple(t.latents.shape)
        assert np.array_equal(features.astype(np.float32), t.latents.numpy())


def write_submission(root, dims: int = 3) -> None:
    """A valid submission written by the package (no model): two dev subsets, two files each."""
    with TokenWriter(root, ["zerospeech"], False, 32, zerospeech=FIELDS) as writer:
        for uid in ["dev-clean/a", "dev-clean/b", "dev-other/c", "dev-other/d"]:
            writer.add(Tokens(uid, torch.tensor([1, 2, 2]), torch.randn(3, dims)))
        writer.close({"frame_rate": 100.0})


def test_broken_submissions_fail_with_the_file_named(tmp_path):
    write_submission(tmp_path / "ok")
    good = tmp_path / "ok" / "zerospeech"
    assert check_submission(good) == []

    def broken(name: str, change) -> list[str]:
        root = tmp_path / name
        shutil.copytree(good, root)
        change(root)
        problems = check_submission(root)
        with pytest.raises(TokenFormatError):
            validate_submission(root)
        return problems

    one_d = broken("one_d", lambda r: np.savetxt(r / PHONETIC / "dev-clean" / "a.txt", np.ones(3)[None]))
    assert one_d == [f"{tmp_path}/one_d/{PHONETIC}/dev-clean/a.txt: 1-D array (3,), the validator wants (frames, dims)"]
    dims = broken("dims", lambda r: np.savetxt(r / PHONETIC / "dev-other" / "d.txt", np.ones((4, 5))))
    assert len(dims) == 1 and "d.txt: 5 dims, but" in dims[0] and "has 3" in dims[0]
    ints = broken("ints", lambda r: np.save(r / PHONETIC / "dev-other" / "e.npy", np.ones((4, 3), dtype=np.int16)))
    assert len(ints) == 1 and "e.npy: dtype int16, the validator wants float64" in ints[0]

    def drop(key):
        def change(root):
            meta = yaml.safe_load((root / META).read_text())
            del meta[key]
            (root / META).write_text(yaml.safe_dump(meta))

        return change

    assert broken("no_author", drop("author")) == [f"{tmp_path}/no_author/{META}: missing key(s) author"]
    assert broken("no_meta", lambda r: (r / META).unlink()) == [f"{tmp_path}/no_meta/{META}: missing"]
    other = broken("no_other", lambda r: shutil.rmtree(r / PHONETIC / "dev-other"))
    assert other == [f"{tmp_path}/no_other/{PHONETIC}/dev-other: missing; the dev set needs dev-clean and dev-other"]


def test_meta_values_the_validator_refuses_are_named(tmp_path):
    write_submission(tmp_path)
    meta_path = tmp_path / "zerospeech" / META
    meta = yaml.safe_load(meta_path.read_text())
    meta["gpu_budget"] = 10
    meta["parameters"]["phonetic"]["metric"] = "manhattan"
    meta["extra"] = 1
    meta_path.write_text(yaml.safe_dump(meta))
    problems = check_meta(meta_path.parent)
    assert any("gpu_budget must be a float, got 10 (write 10.0, not 10)" in p for p in problems)
    assert any("parameters/phonetic/metric must be one of cosine" in p for p in problems)
    assert any("unknown key(s) extra" in p for p in problems)
    # without the user's fields, meta.yaml holds template values the validator asks to fill in
    with TokenWriter(tmp_path / "t", ["zerospeech"], False, 32) as writer:
        writer.add(Tokens("dev-clean/a", torch.tensor([1, 1]), torch.zeros(2, 2)))
        writer.close({"frame_rate": 250.0})
    problems = check_meta(tmp_path / "t" / "zerospeech")
    assert any("author is a template value" in p for p in problems)
    assert any("gpu_budget is a template value" in p for p in problems)


def test_missing_and_extra_files_against_the_dataset(tmp_path, dataset):
    write_submission(tmp_path)  # a, b, c, d: not the dataset's names
    problems = check_submission(tmp_path / "zerospeech", dataset)
    assert f"{tmp_path}/zerospeech/{PHONETIC}/dev-clean/1272-1-0000.txt: missing" in problems[0]
    assert any("dev-clean/a: extra file" in p for p in problems)


def test_ids_outside_a_subset_are_refused_before_any_work(checkpoint, tmp_path):
    wav = write_tone(tmp_path / "in" / "x.wav", 0.05)
    with pytest.raises(TokenFormatError, match=r"utterance id 'x': the zerospeech format needs ids '<subset>/<name>'"):
        encode_files(VQVAE.load(checkpoint), tmp_path / "out", [tmp_path / "in"], formats=["zerospeech"])
    assert wav.is_file() and not (tmp_path / "out").exists()
