"""Corpus preparation: the shared pipeline, alignments, and each data_prep module on tiny fake corpora."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_vqvae.data.alignment import (
    AlignmentError,
    PhoneSegment,
    frame_labels,
    read_phone_table,
    read_segment_table,
    read_textgrid,
    write_phone_table,
)
from audio_vqvae.data.corpora import folder, librispeech, vctk
from audio_vqvae.data.manifest import SPLITS, Utterance, read_manifest, read_speakers
from audio_vqvae.data.prepare import (
    SourceUtterance,
    normalize_text,
    prepare_audio,
    split_by_sentence,
    split_by_utterance,
)

ROOT = Path(__file__).resolve().parents[1]
FRACTIONS = {"valid_fraction": 0.2, "test_fraction": 0.2}  # tiny corpora: hold something out


def tone(path: Path, seconds: float, sr: int, seed: int = 0, lead: float = 0.0, subtype: str = "PCM_16") -> None:
    """A noisy harmonic tone (loud enough, distinct per seed), with ``lead`` seconds of silence on both sides."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 100 + 20 * seed % 150
    wav = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * 3 * f0 * t) + 0.01 * rng.standard_normal(t.size)
    pad = np.zeros(int(lead * sr))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.concatenate([pad, wav, pad]).astype(np.float32), sr, subtype=subtype)


def check_layout(out: Path, sample_rate: int = 16000) -> dict[str, list[Utterance]]:
    """The invariants of every prepared corpus; returns the manifests."""
    splits = {split: read_manifest(out / f"{split}.jsonl") for split in SPLITS}
    rows = [r for split in SPLITS for r in splits[split]]
    speakers = read_speakers(out / "speakers.txt")
    assert speakers == sorted({r.speaker for r in rows})
    assert {r.speaker for r in splits["train"]} == set(speakers), "every speaker must be in train"
    assert len({r.id for r in rows}) == len(rows)
    for r in rows:
        info = sf.info(r.path)
        assert Path(r.path) == (out / "wav" / r.speaker / f"{r.id}.wav").resolve()
        assert (info.samplerate, info.channels, info.subtype) == (sample_rate, 1, "PCM_16")
        assert info.frames == r.n_samples and r.sample_rate == sample_rate
        assert r.duration == pytest.approx(r.n_samples / sample_rate)
    assert (out / "bad_files.tsv").read_text().splitlines()[0] == "path\treason"
    return splits


def split_of(splits: dict[str, list[Utterance]]) -> dict[str, str]:
    return {r.id: split for split, rows in splits.items() for r in rows}


# -- VCTK ----------------------------------------------------------------------------------------

SHARED = {"001": "Please call Stella.", "002": "Ask her to bring these things with her from the store."}


def fake_vctk_092(root: Path) -> Path:
    """p225 (both mics), p280 (no mic2), p315 (no transcripts); 001-002 shared, 003-006 own sentences."""
    seed = 0
    for speaker in ("p225", "p280", "p315"):
        for number in ("001", "002", "003", "004", "005", "006"):
            stem = f"{speaker}_{number}"
            for mic in ("mic1", "mic2"):
                if mic == "mic2" and speaker == "p280":
                    continue
                seed += 1
                tone(root / "wav48_silence_trimmed" / speaker / f"{stem}_{mic}.flac", 0.3, 48000, seed)
            if speaker != "p315":
                text = SHARED.get(number, f"Newspaper sentence {number} read by {speaker}.")
                (root / "txt" / speaker).mkdir(parents=True, exist_ok=True)
                (root / "txt" / speaker / f"{stem}.txt").write_text(text + "\n")
    return root


def test_vctk_092_layout_splits_and_quirks(tmp_path):
    corpus = fake_vctk_092(tmp_path / "VCTK")
    report = vctk.prepare(corpus, tmp_path / "out", **FRACTIONS)
    splits = check_layout(tmp_path / "out")
    rows = {r.id: r for rows in splits.values() for r in rows}
    assert report.kept == len(rows) == 18 and report.skipped == []
    assert rows["p225_001"].text == "Please call Stella." and rows["p315_001"].text is None
    assert rows["p225_003"].n_samples == int(0.3 * 16000)  # 48 kHz -> 16 kHz, once
    where = split_of(splits)
    assert any(where[u] != "train" for u in rows), "something must be held out"
    for number in SHARED:  # a shared sentence (p315's reading included, by its number) is never split
        assert len({where[f"{s}_{number}"] for s in ("p225", "p280", "p315")}) == 1
    assert any("p315" in note for note in report.notes)


def test_vctk_mic2_falls_back_to_mic1_for_p280_and_both_keeps_two(tmp_path):
    corpus = fake_vctk_092(tmp_path / "VCTK")
    report = vctk.prepare(corpus, tmp_path / "mic2", mic="mic2")
    rows = {r.id for rows in check_layout(tmp_path / "mic2").values() for r in rows}
    assert {"p280_001", "p225_001"} <= rows and report.kept == 18
    assert any("6 utterance(s) have no mic2" in note and "p280" in note for note in report.notes)

    vctk.prepare(corpus, tmp_path / "both", mic="both", **FRACTIONS)
    splits = check_layout(tmp_path / "both")
    where = split_of(splits)
    assert len(where) == 30 and "p225_004_mic1" in where and "p280_004_mic2" not in where
    for speaker in ("p225", "p315"):  # two mics of one reading: one sentence, one split
        for number in ("001", "003", "006"):
            assert where[f"{speaker}_{number}_mic1"] == where[f"{speaker}_{number}_mic2"]


def test_vctk_080_is_detected_and_trimmed_by_default(tmp_path):
    corpus = tmp_path / "VCTK-Corpus"
    for i, speaker in enumerate(("p225", "p226")):
        for n in ("001", "002", "003"):
            tone(corpus / "wav48" / speaker / f"{speaker}_{n}.wav", 0.4, 48000, seed=i * 10 + int(n), lead=0.3)
            (corpus / "txt" / speaker).mkdir(parents=True, exist_ok=True)
            (corpus / "txt" / speaker / f"{speaker}_{n}.txt").write_text(f"Sentence {n}.")
    report = vctk.prepare(corpus, tmp_path / "out")
    rows = [r for rows in check_layout(tmp_path / "out").values() for r in rows]
    assert report.kept == 6 and "VCTK 0.80, mic mic1" in report.notes
    assert all(0.38 < r.duration < 0.5 for r in rows), [r.duration for r in rows]  # 1.0 s before trimming
    vctk.prepare(corpus, tmp_path / "untrimmed", trim_top_db=None)
    rows = [r for rows in check_layout(tmp_path / "untrimmed").values() for r in rows]
    assert all(r.duration == pytest.approx(1.0) for r in rows)
    with pytest.raises(ValueError, match="one microphone"):
        vctk.prepare(corpus, tmp_path / "x", mic="mic2")


# -- LibriSpeech ---------------------------------------------------------------------------------

LONG_TEXTGRID = """File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 0.5
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "words"
        xmin = 0
        xmax = 0.5
        intervals: size = 1
        intervals [1]:
            xmin = 0
            xmax = 0.5
            text = "hi"
    item [2]:
        class = "IntervalTier"
        name = "phones"
        xmin = 0
        xmax = 0.5
        intervals: size = 3
        intervals [1]:
            xmin = 0
            xmax = 0.1
            text = ""
        intervals [2]:
            xmin = 0.1
            xmax = 0.3125
            text = "HH"
        intervals [3]:
            xmin = 0.3125
            xmax = 0.5
            text = "AY1"
"""

SHORT_TEXTGRID = """File type = "ooTextFile"
Object class = "TextGrid"

0
0.5
<exists>
2
"IntervalTier"
"words"
0
0.5
1
0
0.5
"hi"
"IntervalTier"
"phones"
0
0.5
3
0
0.1
""
0.1
0.3125
"HH"
0.3125
0.5
"AY1"
"""

HI = [PhoneSegment(0.0, 0.1, "sil"), PhoneSegment(0.1, 0.3125, "HH"), PhoneSegment(0.3125, 0.5, "AY1")]


def fake_librispeech(root: Path) -> Path:
    """train-clean-100 with speakers 19 and 26 (one chapter each, 3 utterances), dev-clean with speaker 84."""
    seed = 100
    for subset, speaker, chapter in (
        ("train-clean-100", "19", "198"),
        ("train-clean-100", "26", "495"),
        ("dev-clean", "84", "121"),
    ):
        folder_ = root / subset / speaker / chapter
        lines = []
        for k in range(3):
            utt = f"{speaker}-{chapter}-{k:04d}"
            seed += 1
            tone(folder_ / f"{utt}.flac", 0.5, 16000, seed)
            lines.append(f"{utt} {'CHAPTER ONE' if k == 0 else f'WORDS OF {utt}'}")
        (folder_ / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def test_librispeech_textgrids_and_table(tmp_path):
    corpus = fake_librispeech(tmp_path / "LibriSpeech")
    grids = tmp_path / "mfa"
    (grids / "19").mkdir(parents=True)
    (grids / "19" / "19-198-0000.TextGrid").write_text(LONG_TEXTGRID)  # <speaker>/<utt>.TextGrid
    (grids / "26-495-0001.TextGrid").write_text(SHORT_TEXTGRID)  # flat
    report = librispeech.prepare(corpus, tmp_path / "out", alignments=grids, **FRACTIONS)
    splits = check_layout(tmp_path / "out")
    where = split_of(splits)
    assert report.kept == len(where) == 9 and "84" in read_speakers(tmp_path / "out" / "speakers.txt")
    assert len({where[u] for u in ("19-198-0000", "26-495-0000", "84-121-0000")}) == 1  # "CHAPTER ONE" x 3
    assert read_phone_table(tmp_path / "out" / "phones.tsv") == {"19-198-0000": HI, "26-495-0001": HI}
    assert "alignments: 2 of 9 utterances, 7 have none" in report.notes

    table = tmp_path / "phones.txt"
    table.write_text(
        "# utt start end phone\n84-121-0002 0 0.25 AH0\n84-121-0002\t0.25\t0.5\tsil\nnot-in-corpus 0 1 x\n"
    )
    report = librispeech.prepare(corpus / "dev-clean", tmp_path / "dev", alignments=table)
    assert report.kept == 3 and check_layout(tmp_path / "dev")
    assert read_phone_table(tmp_path / "dev" / "phones.tsv") == {
        "84-121-0002": [PhoneSegment(0.0, 0.25, "AH0"), PhoneSegment(0.25, 0.5, "sil")]
    }
    with pytest.raises(ValueError, match="no subset"):
        librispeech.prepare(corpus, tmp_path / "x", subsets=["test-other"])
    with pytest.raises(ValueError, match="untrimmed"):
        librispeech.prepare(corpus, tmp_path / "x", alignments=table, trim_top_db=40.0)


# -- folder corpora, bad files, re-runs ----------------------------------------------------------


def fake_folder(root: Path, bad: bool = True) -> Path:
    for i, name in enumerate(("a.wav", "b.flac", "sub/c.wav")):
        tone(root / "alice" / name, 0.3, 22050, seed=i)
        tone(root / "bob smith" / name, 0.3, 16000, seed=10 + i)
    tone(root / "bob smith" / "b.wav", 0.3, 16000, seed=20)  # same stem as b.flac: ids made unique
    if bad:
        (root / "carol").mkdir()
        (root / "carol" / "corrupt.flac").write_bytes(b"fLaC\x00\x00\x00\x22" + os.urandom(200))
        sf.write(root / "carol" / "empty.wav", np.zeros(0, np.float32), 16000)
        sf.write(root / "carol" / "silent.wav", np.zeros(8000, np.float32), 16000)
        sf.write(root / "carol" / "nan.wav", np.full(8000, np.nan, np.float32), 16000, subtype="FLOAT")
        tone(root / "carol" / "short.wav", 0.05, 16000, seed=30)
        tone(root / "carol" / "good.wav", 0.3, 16000, seed=31)
    return root


def test_bad_files_are_listed_with_reasons_never_in_a_manifest(tmp_path):
    corpus = fake_folder(tmp_path / "corpus")
    report = folder.prepare(corpus, tmp_path / "out")
    splits = check_layout(tmp_path / "out")
    ids = set(split_of(splits))
    assert report.kept == len(ids) == 8 and len(report.skipped) == 5
    assert {"alice_a", "alice_sub_c", "bob_smith_b", "bob_smith_b-2", "carol_good"} <= ids
    assert not any(bad in i for i in ids for bad in ("corrupt", "empty", "silent", "nan", "short"))
    lines = (tmp_path / "out" / "bad_files.tsv").read_text().splitlines()[1:]
    reasons = dict(line.split("\t") for line in lines)
    assert len(reasons) == 5
    expect = {"corrupt": "cannot read", "empty": "empty", "silent": "silent", "nan": "not finite", "short": "too short"}
    for stem, words in expect.items():
        (path,) = [p for p in reasons if Path(p).stem == stem]
        assert words in reasons[path], (stem, reasons[path])
    assert report.summary() == "kept 8, skipped 5 (see bad_files.tsv)"


def test_rerun_is_identical_and_reuses_outputs_until_sources_or_options_change(tmp_path):
    corpus = fake_folder(tmp_path / "corpus", bad=False)
    out = tmp_path / "out"
    folder.prepare(corpus, out)
    manifests = {s: (out / f"{s}.jsonl").read_bytes() for s in SPLITS}
    wav = out / "wav" / "alice" / "alice_a.wav"
    first = wav.stat().st_mtime_ns
    folder.prepare(corpus, out)
    assert {s: (out / f"{s}.jsonl").read_bytes() for s in SPLITS} == manifests
    assert wav.stat().st_mtime_ns == first, "an up-to-date output is reused, not rewritten"

    tone(corpus / "alice" / "a.wav", 0.6, 22050, seed=5)  # the source changed: rewritten
    os.utime(corpus / "alice" / "a.wav", ns=(first + 10**9, first + 10**9))
    folder.prepare(corpus, out)
    assert sf.info(wav).frames == int(0.6 * 16000)
    folder.prepare(corpus, out, min_duration=0.5)  # new options: nothing reused, short files now skipped
    assert len(split_of(check_layout(out))) == 1

    with pytest.raises(ValueError, match="overwrite this source"):  # never write over a source file
        prepare_audio([SourceUtterance("alice_a", wav, "alice")], out)


def test_folder_csv_with_and_without_header(tmp_path):
    corpus = fake_folder(tmp_path / "corpus", bad=False)
    (corpus / "list.csv").write_text("speaker,path,text\nalice,alice/a.wav,hello\nbob,bob smith/a.wav,\n")
    report = folder.prepare(corpus / "list.csv", tmp_path / "out", valid_fraction=0.0, test_fraction=0.0)
    rows = {r.id: r for r in check_layout(tmp_path / "out")["train"]}
    assert report.kept == 2 and rows["alice_alice_a"].text == "hello" and rows["bob_bob_smith_a"].text is None
    (corpus / "plain.csv").write_text(f"{corpus / 'alice' / 'b.flac'},alice\nmissing.wav,alice\n")
    report = folder.prepare(corpus / "plain.csv", tmp_path / "plain")
    assert report.kept == 1 and "not found" in report.skipped[0][1]
    (corpus / "bad.csv").write_text("alice/a.wav,alice\nonly-one-field\n")
    with pytest.raises(ValueError, match=r"bad\.csv:2"):
        folder.prepare(corpus / "bad.csv", tmp_path / "bad")


def test_folder_lists_dangling_symlinks_and_folders_named_like_audio_as_bad_files(tmp_path):
    corpus = fake_folder(tmp_path / "corpus", bad=False)
    (corpus / "alice" / "gone.wav").symlink_to(corpus / "alice" / "deleted.wav")  # skipped silently before
    (corpus / "alice" / "x.wav").mkdir()
    tone(corpus / "alice" / "x.wav" / "inner.wav", 0.5, 16000)
    report = folder.prepare(corpus, tmp_path / "out")
    lines = (tmp_path / "out" / "bad_files.tsv").read_text().splitlines()[1:]
    reasons = dict(line.split("\t") for line in lines)
    assert reasons == {
        str(corpus / "alice" / "gone.wav"): "file not found",
        str(corpus / "alice" / "x.wav"): "not a file",
    }
    assert sorted(report.skipped) == sorted(reasons.items())
    assert "alice_x.wav_inner" in split_of(check_layout(tmp_path / "out"))  # the folder's own audio is kept


def segments_for(k: int) -> list[PhoneSegment]:
    """A distinct 0.4 s alignment per sentence k (matching tone(..., 0.4, ...))."""
    cut = round(0.1 + 0.01 * k, 4)
    return [PhoneSegment(0.0, cut, "sil"), PhoneSegment(cut, 0.3, f"p{k}"), PhoneSegment(0.3, 0.4, "sil")]


def fake_devcorpus(root: Path, speakers: int = 3, sentences: int = 6) -> Path:
    """Like shared/devcorpus/make_corpus.py: utterances.csv (with extra columns), wav/<spk>/<utt>.wav and
    align/<spk>/<utt>.tsv ("start end phone native espeak" with a header); every speaker reads every sentence."""
    lines = ["utt_id,speaker,sentence_id,wav,align,duration_s,n_phones,text"]
    for s in range(speakers):
        speaker = f"fl_{'abc'[s]}"
        for k in range(sentences):
            utt = f"{speaker}_s{k:05d}"
            tone(root / "wav" / speaker / f"{utt}.wav", 0.4, 16000, seed=10 * s + k)
            table = ["start\tend\tphone\tnative\tespeak"]
            table += [f"{g.start:.4f}\t{g.end:.4f}\t{g.phone}\tx\t-" for g in segments_for(k)]
            (root / "align" / speaker).mkdir(parents=True, exist_ok=True)
            (root / "align" / speaker / f"{utt}.tsv").write_text("\n".join(table) + "\n")
            text = f'"Sentence {k}, read by everyone."'
            lines.append(f"{utt},{speaker},s{k:05d},wav/{speaker}/{utt}.wav,align/{speaker}/{utt}.tsv,0.4,3,{text}")
    (root / "utterances.csv").write_text("\n".join(lines) + "\n")
    return root / "utterances.csv"


def test_folder_csv_with_ids_sentences_and_alignments(tmp_path):
    csv_path = fake_devcorpus(tmp_path / "devc")
    (tmp_path / "devc" / "align" / "fl_b" / "fl_b_s00004.tsv").unlink()  # this utterance is skipped
    grid = tmp_path / "devc" / "hi.TextGrid"  # a TextGrid works too (its "phones" tier)
    grid.write_text(LONG_TEXTGRID)
    text = csv_path.read_text().replace("align/fl_c/fl_c_s00005.tsv", "hi.TextGrid")
    csv_path.write_text(text.replace("utt_id,speaker,sentence_id,wav,align", "UTT_ID,Speaker,Sentence_ID,WAV,Align"))
    report = folder.prepare(csv_path, tmp_path / "out", **FRACTIONS)
    splits = check_layout(tmp_path / "out")
    where = split_of(splits)
    expected_ids = {f"fl_{c}_s{k:05d}" for c in "abc" for k in range(6)} - {"fl_b_s00004"}
    assert set(where) == expected_ids and report.kept == 17  # the CSV's ids, as given
    for k in range(6):  # a held-out sentence is unheard in every voice
        assert len({where[u] for u in expected_ids if u.endswith(f"s{k:05d}")}) == 1
    assert {"train", "valid", "test"} == set(where.values())
    phones = read_phone_table(tmp_path / "out" / "phones.tsv")
    assert set(phones) == expected_ids
    assert phones["fl_a_s00003"] == segments_for(3) and phones["fl_c_s00005"] == HI
    rows = {r.id: r for r in read_manifest(tmp_path / "out" / "train.jsonl")}
    assert all(r.text.startswith("Sentence") for r in rows.values())
    bad = (tmp_path / "out" / "bad_files.tsv").read_text().splitlines()[1:]
    assert len(bad) == 1 and bad[0].startswith(str(tmp_path / "devc" / "wav" / "fl_b" / "fl_b_s00004.wav"))
    assert "alignment file not found" in bad[0] and "fl_b_s00004.tsv" in bad[0]
    assert report.summary() == "kept 17, skipped 1 (see bad_files.tsv)"
    assert any("split by sentence (sentence column): 6 sentence(s)" in note for note in report.notes)


def test_folder_csv_splits_by_normalised_text_without_a_sentence_column(tmp_path):
    corpus = fake_folder(tmp_path / "corpus", bad=False)
    lines = ["Audio,Speaker,Text,Comment"]
    for speaker in ("alice", "bob smith"):
        for name, text in (("a.wav", "Hello there!"), ("b.flac", "hello, THERE"), ("sub/c.wav", "Other.")):
            lines.append(f"{speaker}/{name},{speaker},{text!r},ignored".replace("'", '"'))
    (corpus / "list.csv").write_text("\n".join(lines) + "\n")
    for seed in range(4):
        folder.prepare(corpus / "list.csv", tmp_path / f"out{seed}", seed=seed, **FRACTIONS)
        where = split_of(check_layout(tmp_path / f"out{seed}"))
        hello = {where[f"{s}_{s}_{n}"] for s in ("alice", "bob_smith") for n in ("a", "b")}
        assert len(hello) == 1 and len(where) == 6  # one sentence: four utterances in one split


def test_folder_csv_alignment_errors_and_trimming(tmp_path):
    csv_path = fake_devcorpus(tmp_path / "devc", speakers=2, sentences=3)
    bad = tmp_path / "devc" / "align" / "fl_b" / "fl_b_s00001.tsv"
    bad.write_text("start\tend\tphone\n0\t0.1\tsil\n0.1\tlate\tAH\n")
    with pytest.raises(AlignmentError, match=r"fl_b_s00001\.tsv:3: start and end must be seconds"):
        folder.prepare(csv_path, tmp_path / "out")
    assert not (tmp_path / "out" / "train.jsonl").exists(), "alignments are read before any audio work"
    with pytest.raises(ValueError, match="untrimmed audio"):
        folder.prepare(csv_path, tmp_path / "out", trim_top_db=30.0)
    bad.write_text("start end phone\n")  # no segments: skipped like a missing file
    report = folder.prepare(csv_path, tmp_path / "out")
    assert report.kept == 5 and "holds no segments" in report.skipped[0][1]
    (tmp_path / "devc" / "dup.csv").write_text("utt_id,wav,speaker\nu 1,wav/fl_a/fl_a_s00000.wav,a\nu_1,x.wav,b\n")
    with pytest.raises(ValueError, match=r"dup\.csv:3: utterance id 'u_1'.*dup\.csv:2"):
        folder.prepare(tmp_path / "devc" / "dup.csv", tmp_path / "dup")
    (tmp_path / "devc" / "two.csv").write_text("path,wav,speaker\nwav/fl_a/fl_a_s00000.wav,x,a\n")
    with pytest.raises(ValueError, match=r"two\.csv:1: columns 'path' and 'wav' both name the path column"):
        folder.prepare(tmp_path / "devc" / "two.csv", tmp_path / "two")


def test_workers_give_the_same_corpus(tmp_path):
    corpus = fake_folder(tmp_path / "corpus")
    folder.prepare(corpus, tmp_path / "serial")
    folder.prepare(corpus, tmp_path / "parallel", workers=2)
    for name in [f"{s}.jsonl" for s in SPLITS] + ["bad_files.tsv", "speakers.txt"]:
        assert (tmp_path / "serial" / name).read_text() == (tmp_path / "parallel" / name).read_text()


# -- splits --------------------------------------------------------------------------------------


def rows_for(speakers: int, sentences: int) -> list[Utterance]:
    return [
        Utterance(f"s{s}_{k:03d}", f"s{s}_{k:03d}.wav", f"s{s}", 1.0, 16000, 16000, f"sentence {k}")
        for s in range(speakers)
        for k in range(sentences)
        if (s + k) % 3  # not every speaker reads every sentence
    ]


def test_split_by_sentence_holds_out_whole_sentences_and_keeps_speakers_in_train():
    rows = rows_for(6, 40) + [Utterance("lonely_000", "l.wav", "lonely", 1.0, 16000, 16000, "sentence 7")]
    for seed in range(5):
        splits = split_by_sentence(rows, lambda u: u.text, 0.1, 0.1, seed)
        assert splits == split_by_sentence(rows, lambda u: u.text, 0.1, 0.1, seed)  # deterministic
        assert sorted(r.id for s in splits.values() for r in s) == sorted(r.id for r in rows)
        texts = {split: {r.text for r in rs} for split, rs in splits.items()}
        assert not texts["train"] & texts["valid"] and not texts["train"] & texts["test"]
        assert not texts["valid"] & texts["test"]
        assert {r.speaker for r in splits["train"]} == {r.speaker for r in rows}
        assert 0.05 < len(splits["test"]) / len(rows) < 0.2 and 0.05 < len(splits["valid"]) / len(rows) < 0.2
    by_utt = split_by_utterance(rows, 0.1, 0.1, seed=1)
    assert {r.speaker for r in by_utt["train"]} == {r.speaker for r in rows} and by_utt["test"]
    assert normalize_text("Please, call  Stella!") == normalize_text("please call stella")


# -- alignments ----------------------------------------------------------------------------------


def test_textgrid_long_and_short_formats_agree(tmp_path):
    (tmp_path / "long.TextGrid").write_text(LONG_TEXTGRID)
    (tmp_path / "short.TextGrid").write_text(SHORT_TEXTGRID)
    (tmp_path / "utf16.TextGrid").write_bytes(LONG_TEXTGRID.encode("utf-16"))
    assert read_textgrid(tmp_path / "long.TextGrid") == HI  # empty label -> "sil"
    assert read_textgrid(tmp_path / "short.TextGrid") == HI
    assert read_textgrid(tmp_path / "utf16.TextGrid") == HI
    assert read_textgrid(tmp_path / "short.TextGrid", tier="words") == [PhoneSegment(0.0, 0.5, "hi")]
    with pytest.raises(AlignmentError, match="no tier named 'syllables'.*'words', 'phones'"):
        read_textgrid(tmp_path / "long.TextGrid", tier="syllables")
    (tmp_path / "bad.TextGrid").write_text(LONG_TEXTGRID.replace("xmax = 0.3125", 'xmax = "oops"'))
    with pytest.raises(AlignmentError, match=r"bad\.TextGrid:31: expected xmax"):
        read_textgrid(tmp_path / "bad.TextGrid")


def test_frame_labels_at_frame_centres():
    segs = [PhoneSegment(0.0, 0.01, "sil"), PhoneSegment(0.01, 0.03, "a"), PhoneSegment(0.03, 0.035, "b")]
    # 250 frames/s: centres at 2, 6, 10, 14, 18, 22, 26, 30, 34, 38 ms
    labels = frame_labels(segs, 10, 250.0)
    assert labels == ["sil", "sil", "a", "a", "a", "a", "a", "b", "b", "sil"]
    assert frame_labels(segs, 10, 250.0, fill="?")[-1] == "?"
    assert frame_labels(list(reversed(segs)), 10, 250.0) == labels


def test_phone_table_round_trip_and_errors_name_the_line(tmp_path):
    alignments = {"u1": HI, "u2": [PhoneSegment(0.0, 1 / 16000, "sil"), PhoneSegment(1 / 16000, 0.7, "sp")]}
    write_phone_table(tmp_path / "t.tsv", alignments)
    assert (tmp_path / "t.tsv").read_text().splitlines()[0] == "id\tstart\tend\tphone"
    assert read_phone_table(tmp_path / "t.tsv") == alignments
    (tmp_path / "ws.txt").write_text("# comment\n\nu1  0.1 0.3125 HH\nu1 0 0.1 sil\nu1\t0.3125\t0.5\tAY1\n")
    assert read_phone_table(tmp_path / "ws.txt") == {"u1": HI}  # any order, sorted by time
    for body, line, words in [
        ("id start end phone\nu1 0 0.1 sil\nu1 0.1 0.2\n", 3, "expected 4 fields"),
        ("u1 0 0.1 sil\nu1 0.1 abc x\n", 2, "start and end must be seconds"),
        ("u1 0 0.1 sil\nu1 0.3 0.2 x\n", 2, "bad segment times"),
        ("u1 0 0.2 sil\nu1 0.1 0.3 x\n", 2, "segment 0.1..0.3 of .u1. overlaps"),
    ]:
        (tmp_path / "bad.tsv").write_text(body)
        with pytest.raises(AlignmentError, match=rf"bad\.tsv:{line}: {words}"):
            read_phone_table(tmp_path / "bad.tsv")
    with pytest.raises(ValueError, match="whitespace"):
        write_phone_table(tmp_path / "x.tsv", {"u 1": HI})


def test_segment_table_with_header_extra_columns_and_errors_naming_the_line(tmp_path):
    (tmp_path / "u.tsv").write_text(
        "start\tend\tphone\tnative\tespeak\n0.1\t0.3125\tHH\thh\t-\n0.0000\t0.1\t\tpau\t-\n0.3125\t0.5\tAY1\n"
    )
    assert read_segment_table(tmp_path / "u.tsv") == HI  # any order, empty phone -> "sil", extra columns ignored
    (tmp_path / "ws.txt").write_text("# comment\n\n0 0.1 sil extra\n0.1  0.3125 HH\n0.3125 0.5 AY1\n")
    assert read_segment_table(tmp_path / "ws.txt") == HI
    (tmp_path / "empty.tsv").write_text("start\tend\tphone\n")
    assert read_segment_table(tmp_path / "empty.tsv") == []
    for body, line, words in [
        ("start end phone\n0 0.1 sil\n0.1 0.2\n", 3, "expected 3 fields"),
        ("0 0.1 sil\n0.1 abc x\n", 2, "start and end must be seconds"),
        ("0 0.1 sil\n0.3 0.2 x\n", 2, "bad segment times"),
        ("0 0.1 sil\n-0.1 0.2 x\n", 2, "bad segment times"),
        ("0\t0.1\ta b\n", 1, "phone 'a b' holds whitespace"),
        ("0 0.2 sil\n0.1 0.3 x\n", 2, "segment 0.1..0.3 overlaps"),
    ]:
        (tmp_path / "bad.tsv").write_text(body)
        with pytest.raises(AlignmentError, match=rf"bad\.tsv:{line}: {words}"):
            read_segment_table(tmp_path / "bad.tsv")
    with pytest.raises(AlignmentError, match="not found"):
        read_segment_table(tmp_path / "missing.tsv")


# -- synthetic corpus and command lines ----------------------------------------------------------


def test_synthetic_corpus_has_the_same_layout_and_exact_alignments(tmp_path):
    pytest.importorskip("audio_vqvae.data.synthetic")
    from audio_vqvae.data.corpora import synthetic

    report = synthetic.prepare(tmp_path / "out", n_speakers=3, n_sentences=6)
    assert "SYNTHETIC" in report.notes[0] and report.kept == 18
    splits = check_layout(tmp_path / "out")
    where = split_of(splits)
    for k in range(6):  # parallel corpus: a sentence is held out for all speakers at once
        assert len({where[f"spk{s:02d}_{k:03d}"] for s in range(3)}) == 1
    assert {"train", "valid", "test"} == set(where.values())
    phones = read_phone_table(tmp_path / "out" / "phones.tsv")
    rows = {r.id: r for r in read_manifest(tmp_path / "out" / "train.jsonl")}
    assert set(phones) == set(where)
    for utt, row in rows.items():
        assert phones[utt][0].start == 0 and phones[utt][-1].end == pytest.approx(row.duration, abs=1e-6)


def run_cli(module: str, *args: str, shim: bool = False) -> subprocess.CompletedProcess:
    """``audio-vqvae prepare MODULE ARGS``, or with ``shim`` the clone's ``python -m data_prep.MODULE ARGS``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = ["-m", f"data_prep.{module}"] if shim else ["-m", "audio_vqvae", "prepare", module]
    return subprocess.run([sys.executable, *command, *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_cli_prepares_and_fails_in_one_line(tmp_path):
    corpus = fake_vctk_092(tmp_path / "VCTK")
    out = run_cli("vctk", str(corpus), str(tmp_path / "out"), "--mic", "both", "--min-duration", "0.2")
    assert out.returncode == 0, out.stderr
    assert "kept 30, skipped 0 (see bad_files.tsv)" in out.stdout and check_layout(tmp_path / "out")
    for module in ("vctk", "librispeech", "folder"):
        out = run_cli(module, str(tmp_path / "nowhere"), str(tmp_path / "x"))
        assert out.returncode != 0 and out.stderr.count("\n") == 1 and "nowhere" in out.stderr, out.stderr
    (tmp_path / "empty").mkdir()
    out = run_cli("librispeech", str(tmp_path / "empty"), str(tmp_path / "x"))
    assert out.returncode != 0 and "no LibriSpeech audio" in out.stderr and out.stderr.count("\n") == 1
    # the clone's python -m data_prep.CORPUS runs the same code
    out = run_cli("vctk", str(corpus), str(tmp_path / "out2"), "--mic", "both", "--min-duration", "0.2", shim=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out2" / "train.jsonl").read_text() == (tmp_path / "out" / "train.jsonl").read_text()
