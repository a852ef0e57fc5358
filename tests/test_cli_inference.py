"""convert, reconstruct, encode and decode from the command line: outputs, round trips, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from cli_run import one_line_error, run
from trained_tiny import trained_checkpoint, write_tone

from audio_vqvae import VQVAE
from audio_vqvae.data.audio import resampled_length
from audio_vqvae.data.manifest import Utterance, write_manifest
from audio_vqvae.fileio import folder_lock
from audio_vqvae.inference import extract_tokens
from audio_vqvae.inference.tokens import read_jsonl, read_npy_dir, read_tokens


@pytest.fixture(scope="session")
def checkpoint(prepared_corpus, tmp_path_factory):
    return trained_checkpoint(prepared_corpus, tmp_path_factory.mktemp("trained"))


@pytest.fixture
def inputs(tmp_path):
    """Two short files, ids with dots and spaces; the second at another rate."""
    return [write_tone(tmp_path / "in" / "utt 1.v2.wav", 0.06), write_tone(tmp_path / "in" / "b.flac", 0.05, 22050)]


def test_convert_writes_each_file_at_the_model_rate_and_never_overwrites(checkpoint, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run(capsys, "convert", "--ckpt", checkpoint, "--speaker", "spk2", "--out", out, *inputs)
    assert code == 0, err
    at_16k = resampled_length(sf.info(inputs[1]).frames, 22050, 16000)  # b.flac, resampled
    for path, n in [(out / "utt 1.v2_to_spk2.wav", 960), (out / "b_to_spk2.wav", at_16k)]:
        info = sf.info(path)
        assert info.samplerate == 16000 and info.frames == n // 64 * 64
    target = out / "b_to_spk2.wav"
    before = target.read_bytes()
    err = one_line_error(capsys, "convert", "--ckpt", checkpoint, "--speaker", "spk2", "--out", out, inputs[1])
    assert str(target) in err and "--force" in err
    assert target.read_bytes() == before
    code, _ = run(capsys, "convert", "--ckpt", checkpoint, "--speaker", "spk2", "--out", out, "--force", inputs[1])
    assert code == 0


def test_pairs_file_converts_to_several_speakers_at_once(checkpoint, inputs, tmp_path, capsys):
    pairs = tmp_path / "in" / "pairs.txt"
    pairs.write_text(f"# source, speaker, name\nutt 1.v2.wav\tspk0\tfirst\n{inputs[1]} spk1\n{inputs[1]} 2 again.wav\n")
    code, err = run(
        capsys, "convert", "--ckpt", checkpoint, "--pairs", pairs, "--out", tmp_path / "o", "--batch-size", 2
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["again.wav", "b_to_spk1.wav", "first.wav"]


def test_one_line_errors_name_the_speaker_checkpoint_and_file(checkpoint, inputs, tmp_path, capsys):
    args = ["--out", tmp_path / "o", inputs[0]]
    err = one_line_error(capsys, "convert", "--ckpt", checkpoint, "--speaker", "bob", *args)
    assert "unknown speaker 'bob'" in err and "spk0, spk1, spk2" in err
    err = one_line_error(capsys, "convert", "--ckpt", tmp_path / "missing.pt", "--speaker", "spk0", *args)
    assert f"{tmp_path / 'missing.pt'}: checkpoint not found" in err
    bad = tmp_path / "in" / "broken.wav"
    bad.write_bytes(b"RIFF not really a wav file")
    err = one_line_error(capsys, "convert", "--ckpt", checkpoint, "--speaker", "spk0", "--out", tmp_path / "o", bad)
    assert f"{bad}: cannot read audio" in err
    err = one_line_error(capsys, "encode", "--ckpt", checkpoint, "--out", tmp_path / "t", inputs[0], bad)
    assert str(bad) in err
    err = one_line_error(capsys, "reconstruct", "--ckpt", checkpoint, "--out", tmp_path / "r", inputs[0])
    assert "--speaker" in err and "--manifest" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "t").exists()  # nothing written on any error


def test_reconstruct_takes_each_speaker_from_the_manifest(checkpoint, inputs, tmp_path, capsys):
    rows = [
        Utterance("u.1", str(inputs[0]), "spk2", 0.06, 16000, 960),
        Utterance("u 2", "in/b.flac", "spk0", 0.05, 22050, 1102),
    ]
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    code, err = run(capsys, "reconstruct", "--ckpt", checkpoint, "--manifest", manifest, "--out", tmp_path / "r")
    assert code == 0, err
    assert sf.info(tmp_path / "r" / "u.1.wav").frames == 960 // 64 * 64
    assert sf.info(tmp_path / "r" / "u 2.wav").frames == resampled_length(1102, 22050, 16000) // 64 * 64
    rows[1].speaker = "nobody"
    write_manifest(manifest, rows)
    err = one_line_error(capsys, "reconstruct", "--ckpt", checkpoint, "--manifest", manifest, "--out", tmp_path / "r2")
    assert "b.flac: unknown speaker 'nobody'" in err


def test_encode_formats_agree_and_decode_speaks_them(checkpoint, inputs, tmp_path, capsys):
    tok = tmp_path / "tok"
    formats = "units,codes,jsonl,vectors"
    code, err = run(capsys, "encode", "--ckpt", checkpoint, "--out", tok, "--format", formats, "--dedup", *inputs)
    assert code == 0, err
    model = VQVAE.load(checkpoint)
    expected = {t.id: t.codes for t in extract_tokens(model, inputs)}
    assert sorted(expected) == ["b", "utt 1.v2"]
    for rows in (read_tokens(tok / "units.txt"), read_jsonl(tok / "units.jsonl"), read_npy_dir(tok / "codes")):
        assert {uid: codes.tolist() for uid, codes in rows} == {k: v.tolist() for k, v in expected.items()}
    meta = json.loads((tok / "tokens.json").read_text())
    assert meta["codebook_size"] == 32 and meta["hop_length"] == 64 and meta["frame_rate"] == 250
    assert meta["sample_rate"] == 16000 and meta["checkpoint"]["step"] == 8 and len(meta["checkpoint"]["sha256"]) == 64
    assert meta["deduplicated"] and meta["vectors"] == "quantized"
    for source in (tok / "units.txt", tok / "units.jsonl", tok / "codes"):
        out = tmp_path / f"speech_{source.name}"
        code, err = run(capsys, "decode", "--ckpt", checkpoint, "--units", source, "--speaker", "spk1", "--out", out)
        assert code == 0, err
        for uid, codes in expected.items():
            info = sf.info(out / f"{uid}.wav")
            assert info.samplerate == 16000 and info.frames == codes.numel() * 64
    err = one_line_error(capsys, "encode", "--ckpt", checkpoint, "--out", tok, inputs[0])
    assert str(tok / "tokens.json") in err


def files_of(folder) -> dict:
    """Every file under ``folder``, hidden ones included -> its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_folder_in_use_is_refused_in_one_line(checkpoint, inputs, tmp_path, capsys):
    """A second writer into an output folder is refused, not interleaved (item 1)."""
    out = tmp_path / "out"
    with folder_lock(out):
        err = one_line_error(capsys, "encode", "--ckpt", checkpoint, "--out", out, *inputs)
        message = f"{out}: in use by another run (process {os.getpid()}); wait for it to end or choose another output"
        assert err.endswith(message + " folder")
        err = one_line_error(capsys, "convert", "--ckpt", checkpoint, "--speaker", "spk0", "--out", out, inputs[0])
        assert f"{out}: in use by another run" in err
        err = one_line_error(capsys, "reconstruct", "--ckpt", checkpoint, "--speaker", "spk0", "--out", out, inputs[0])
        assert f"{out}: in use by another run" in err
        assert [p.name for p in out.iterdir()] == [".lock"]
    assert not out.exists()  # the lock's folder, made for it and empty, is gone
    code, err = run(capsys, "encode", "--ckpt", checkpoint, "--out", out, *inputs)
    assert code == 0, err
    assert sorted(files_of(out)) == ["tokens.json", "units.txt"]  # no lock file or temporaries left


def test_a_failed_encode_force_leaves_the_previous_outputs_whole(checkpoint, inputs, tmp_path, capsys):
    """A NaN file found in a later batch stops the run before anything is replaced (item 2)."""
    out = tmp_path / "tok"
    args = ["encode", "--ckpt", checkpoint, "--out", out, "--format", "units,codes,jsonl,vectors", "--dedup"]
    code, err = run(capsys, *args, *inputs)
    assert code == 0, err
    before = files_of(out)
    write_tone(inputs[0], 0.06, f0=430.0)  # new audio under the same id: its codes differ
    nan = tmp_path / "in" / "z.wav"
    samples = np.zeros(1600, dtype=np.float32)
    samples[1000] = np.nan
    sf.write(nan, samples, 16000, subtype="FLOAT")
    err = one_line_error(capsys, *args, "--force", "--batch-seconds", "0.05", *inputs, nan)
    assert str(nan) in err and "not finite" in err
    assert files_of(out) == before
    code, err = run(capsys, *args, "--force", *inputs)
    assert code == 0, err
    assert files_of(out)["codes/utt 1.v2.npy"] != before["codes/utt 1.v2.npy"]  # the test's new audio did change codes


def test_decode_refuses_units_that_are_not_integers(checkpoint, tmp_path, capsys):
    """1.5 in units.jsonl or a float .npy is an error naming the file and position, not truncated (item 4)."""
    jsonl = tmp_path / "units.jsonl"
    jsonl.write_text('{"id": "a", "units": [1, 2, 3]}\n{"id": "b", "units": [1, 1.5, 2, 3]}\n')
    args = ["--ckpt", checkpoint, "--speaker", "spk0", "--out", tmp_path / "o"]
    err = one_line_error(capsys, "decode", "--units", jsonl, *args)
    assert err.endswith(f"{jsonl}:2: units[1] is 1.5, not an integer")
    npy = tmp_path / "npy"
    npy.mkdir()
    np.save(npy / "a.npy", np.array([1.0, 2.5, 3.0], dtype=np.float32))
    err = one_line_error(capsys, "decode", "--units", npy, *args)
    assert err.endswith(f"{npy / 'a.npy'}: units must be integers, got a float32 array; position 1 is 2.5")
    assert not (tmp_path / "o").exists()


def test_the_next_encode_removes_the_temporaries_of_a_killed_one(checkpoint, inputs, tmp_path, capsys):
    """What a ``kill -9`` leaves (temporaries of a dead process, older fixed names) goes at the next run (item 10)."""
    out = tmp_path / "tok"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(gone.stdout)  # a process that has exited
    stale = [
        out / ".units.txt.partial",
        out / f".units.txt.{pid}-0a1b2c3d.tmp",
        out / f".tokens.{pid}-0a1b2c3d.tmp" / "codes" / "b.npy",
        out / "codes" / f".b.npy.{pid}-x1_y2z3w.tmp",
        out / f".b_to_spk0.wav.{pid}-0a1b2c3d.tmp",
    ]
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("torn")
    code, err = run(capsys, "encode", "--ckpt", checkpoint, "--out", out, "--format", "units,codes", *inputs)
    assert code == 0, err
    assert sorted(files_of(out)) == ["codes/b.npy", "codes/utt 1.v2.npy", "tokens.json", "units.txt"]
