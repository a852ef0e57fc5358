"""Codes read as phones: the code-to-phone mapping, merged runs, and a phone bigram that prefers speech-like
order and durations."""

from __future__ import annotations

import pytest
import torch

from audio_vqvae.evaluation.metrics.phone_lm import (
    PhoneBigram,
    code_to_phone,
    phone_likeness,
    phone_runs,
    unigram_draws,
)


def test_each_code_maps_to_the_phone_it_covers_most_and_unseen_codes_to_the_commonest():
    codes = [torch.tensor([0, 0, 1, 1, 1, 2]), torch.tensor([1, 0])]
    labels = [["a", "a", "b", "b", "a", "c"], ["b", "a"]]
    assert code_to_phone(codes, labels, 4) == ["a", "b", "c", "a"]  # code 3 unseen: 'a' (4 frames, 'b' 3)
    with pytest.raises(ValueError, match="labels"):
        code_to_phone([torch.tensor([0, 1])], [["a"]], 2)


def test_runs_merge_repeats_only():
    assert phone_runs(list("aabbba")) == ["a", "b", "a"] and phone_runs([]) == []


def test_sequences_in_the_order_of_speech_cost_fewer_bits_than_shuffled_ones():
    real = [list("sil h e l o sil".split())] * 20
    bigram = PhoneBigram(real)
    in_order = bigram.bits_per_phone([["sil", "h", "e", "l", "o", "sil"]])
    shuffled = bigram.bits_per_phone([["l", "sil", "o", "h", "sil", "e"]])
    unknown = bigram.bits_per_phone([["zz"]])
    assert in_order < 0.5 < shuffled and unknown > shuffled / 2


def test_codes_that_hold_a_phone_for_frames_read_as_speech_and_unigram_draws_do_not():
    mapping = ["sil", "h", "e", "l", "o"]
    real = [["sil"] * 5 + ["h"] * 4 + ["e"] * 6 + ["l"] * 3 + ["o"] * 8 + ["sil"] * 5] * 10
    bigram = PhoneBigram(real)  # frame labels: how long phones last, and which follows which
    speechlike = [torch.tensor([0] * 5 + [1] * 4 + [2] * 6 + [3] * 3 + [4] * 8 + [0] * 5)]
    draws = unigram_draws(speechlike, [31], 5, seed=1)
    good, bad = phone_likeness(speechlike, mapping, bigram, 250.0), phone_likeness(draws, mapping, bigram, 250.0)
    assert good["mean_phone_frames"] == pytest.approx(31 / 6) and good["phones_per_second"] == pytest.approx(
        6 * 250 / 31
    )
    assert good["bits_per_frame"] < 1.0 < 3.0 < bad["bits_per_frame"] and bad["mean_phone_frames"] < 2.5
