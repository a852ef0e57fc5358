"""encode's inputs: folders (recursive, ids keep relative paths) and fairseq/textlesslib TSV manifests."""

from __future__ import annotations

import pytest
from trained_tiny import trained_checkpoint, write_tone

from audio_vqvae import VQVAE
from audio_vqvae.cli import main
from audio_vqvae.errors import InputNotFoundError, ManifestError, UsageError
from audio_vqvae.inference import extract_tokens
from audio_vqvae.inference.encode_inputs import encode_inputs, read_tsv_manifest
from audio_vqvae.inference.tokens import read_tokens, read_tsv


@pytest.fixture(scope="module")
def checkpoint(prepared_corpus, tmp_path_factory):
    return trained_checkpoint(prepared_corpus, tmp_path_factory.mktemp("trained"))


@pytest.fixture
def corpus(tmp_path):
    """Nested audio (the same name in two folders), plus files encode must skip."""
    root = tmp_path / "corpus"
    write_tone(root / "spk1" / "ch1" / "a.wav", 0.05)
    write_tone(root / "spk1" / "ch2" / "a.flac", 0.06, f0=220)
    write_tone(root / "top.b.wav", 0.05, 22050, f0=260)
    write_tone(root / ".hidden" / "x.wav", 0.05)
    (root / "spk1" / "notes.txt").write_text("not audio\n")
    return root


def encode(capsys, *args) -> None:
    capsys.readouterr()
    code = main(["encode", *map(str, args)])
    assert code == 0, capsys.readouterr().err


def test_a_folder_gives_ids_with_relative_paths_and_matching_subfolders(checkpoint, corpus, tmp_path, capsys):
    sources, ids = encode_inputs([corpus])
    assert ids == ["spk1/ch1/a", "spk1/ch2/a", "top.b"]
    out = tmp_path / "tok"
    encode(capsys, "--ckpt", checkpoint, "--out", out, "--format", "units,codes,bare", corpus)
    expected = [(t.id, t.codes.tolist()) for t in extract_tokens(VQVAE.load(checkpoint), sources, ids)]
    for source in (out / "units.txt", out / "codes", out / "units.bare.txt"):
        assert [(u, c.tolist()) for u, c in read_tokens(source)] == expected, source
    assert (out / "codes" / "spk1" / "ch2" / "a.npy").is_file()
    assert (out / "ids.txt").read_text().splitlines() == ids


def test_a_fairseq_tsv_manifest_is_encoded_with_its_relative_paths(checkpoint, corpus, tmp_path, capsys):
    tsv = tmp_path / "train.tsv"
    tsv.write_text(f"{corpus}\nspk1/ch2/a.flac\t960\ntop.b.wav\t1102\n")
    out = tmp_path / "tok"
    encode(capsys, "--ckpt", checkpoint, "--out", out, "--format", "tsv", "--manifest", tsv)
    sources = [corpus / "spk1" / "ch2" / "a.flac", corpus / "top.b.wav"]
    expected = [(t.id, t.codes.tolist()) for t in extract_tokens(VQVAE.load(checkpoint), sources, ["a", "b"])]
    got = read_tsv(out / "units.tsv")
    assert [u for u, _ in got] == ["spk1/ch2/a", "top.b"]
    assert [c.tolist() for _, c in got] == [c for _, c in expected]


def test_bad_manifest_lines_and_inputs_are_named(corpus, tmp_path):
    tsv = tmp_path / "bad.tsv"
    for text, message in [
        ("\nx.wav\t10\n", r"bad.tsv:1: expected the root folder"),
        (f"{corpus}\ntop.b.wav\t10\nno-tab-here\n", r"bad.tsv:3: expected 'relative_path<TAB>n_samples'"),
        (f"{corpus}\ntop.b.wav\tmany\n", r"bad.tsv:2: expected 'relative_path<TAB>n_samples'"),
        (f"{corpus}\n../up.wav\t10\n", r"bad.tsv:2: ../up.wav must be a path relative to the root"),
        (f"{corpus}\na.wav\t1\na.flac\t1\n", r"bad.tsv:3: duplicate utterance id 'a'"),
        (f"{corpus}\n", r"bad.tsv: no utterances"),
    ]:
        tsv.write_text(text)
        with pytest.raises(ManifestError, match=message):
            encode_inputs(manifest=tsv)
    tsv.write_text(f"{corpus}\ntop.b.wav\t1\n\n")
    assert read_tsv_manifest(tsv) == [(corpus / "top.b.wav", "top.b")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputNotFoundError, match="empty: no audio files found"):
        encode_inputs([tmp_path / "empty"])
    with pytest.raises(UsageError, match="utterance id 'top.b' is also that of"):
        encode_inputs([corpus, corpus / "top.b.wav"])
