"""Conversion pairs: the round-robin pick over speakers, and one reading of pairs files for convert,
evaluate and the report."""

from __future__ import annotations

from collections import Counter

import pytest
from test_report import tone

from audio_vqvae.cli.evaluate import read_pair_file
from audio_vqvae.data.manifest import Utterance
from audio_vqvae.data.pairs import round_robin, spread
from audio_vqvae.errors import ManifestError
from audio_vqvae.evaluation.report import write_report
from audio_vqvae.inference.jobs import read_pairs


def rows(counts: dict[str, int]) -> list[Utterance]:
    return [Utterance(f"{s}_{k}", f"{s}_{k}.wav", s, 1.0, 16000, 16000) for s, n in counts.items() for k in range(n)]


@pytest.mark.parametrize("limit", [1, 2, 5, 7, 9, 100])
def test_round_robin_takes_every_speaker_in_turn_and_each_speakers_rows_in_order(limit):
    given = rows({"c": 4, "a": 1, "b": 3})
    picked = round_robin(given, limit)
    assert len(picked) == min(limit, len(given)) and len({r.id for r in picked}) == len(picked)
    per = Counter(r.speaker for r in picked)
    full = [s for s in per if per[s] < Counter(r.speaker for r in given)[s]]  # speakers with rows left
    assert all(per[s] >= max(per.values()) - 1 for s in full)  # none falls behind while it has rows
    for s in per:
        assert [r.id for r in picked if r.speaker == s] == [r.id for r in given if r.speaker == s][: per[s]]
    assert [r.speaker for r in picked[:3]] == ["a", "b", "c"][: len(picked[:3])]
    assert spread(given, limit) == (given if limit >= len(given) else picked)  # spread: the order kept when all fit


def test_pairs_files_skip_the_same_lines_and_refuse_an_empty_field(tmp_path):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("# source target\n\n  # indented comment\nu1\tspk2\nu2 spk1\n", encoding="utf-8")
    corpus = {r.id: r for r in [Utterance("u1", "u1.wav", "spk1", 1, 16000, 16000)]}
    corpus["u2"] = Utterance("u2", "u2.wav", "spk2", 1, 16000, 16000)
    assert [(j.source.name, j.speaker) for j in read_pairs(pairs, tmp_path)] == [("u1", "spk2"), ("u2", "spk1")]
    assert [(r.id, t) for r, t in read_pair_file(pairs, corpus)] == [("u1", "spk2"), ("u2", "spk1")]
    pairs.write_text("u1\t\n", encoding="utf-8")  # a tab, then no target
    for read in (lambda: read_pairs(pairs, tmp_path), lambda: read_pair_file(pairs, corpus)):
        with pytest.raises(ManifestError, match=r"pairs.txt:1: expected"):
            read()


def test_the_report_finds_outputs_by_the_names_convert_gives_them(tmp_path):
    source = tone(tmp_path / "in" / "x.wav")
    (tmp_path / "pairs.txt").write_text(f"{source}\tspk1\tnamed\n", encoding="utf-8")
    (job,) = read_pairs(tmp_path / "pairs.txt", tmp_path / "converted")
    assert job.output == tmp_path / "converted" / "named.wav"  # convert adds .wav
    tone(job.output)
    (tmp_path / "data").mkdir()
    md = write_report(
        tmp_path / "report.md", data=tmp_path / "data", converted=tmp_path / "converted", pairs=tmp_path / "pairs.txt"
    ).read_text(encoding="utf-8")
    assert "(converted/named.wav)" in md and "missing" not in md
    assert (tmp_path / "figures" / "spectrograms.png").is_file()
