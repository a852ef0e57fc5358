"""Training data: resumable sample stream, rank shards, hop-aligned deterministic crops."""

from __future__ import annotations

import itertools

import pytest
import torch

from audio_vqvae.data.audio import AudioError
from audio_vqvae.data.manifest import ManifestError, read_manifest, read_speakers
from audio_vqvae.training import TrainingError
from audio_vqvae.training.dataset import SegmentDataset, StreamSampler, validation_batches


def take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_stream_resumes_exactly_and_spans_epochs():
    full = take(StreamSampler(7, seed=3), 30)
    assert take(StreamSampler(7, seed=3, start=11), 19) == full[11:]
    for epoch in range(4):  # each epoch is a permutation
        assert sorted(i.index for i in full[7 * epoch : 7 * epoch + 7]) == list(range(7))
    assert full[:7] != full[7:14]  # and a new one each epoch
    assert take(StreamSampler(7, seed=4), 7) != full[:7]


def test_ranks_get_disjoint_shards_of_each_epoch():
    r0 = take(StreamSampler(10, seed=1, rank=0, world_size=2), 5)
    r1 = take(StreamSampler(10, seed=1, rank=1, world_size=2), 5)
    assert sorted(i.index for i in r0 + r1) == list(range(10))
    with pytest.raises(TrainingError, match="cannot be shared"):
        StreamSampler(1, world_size=2)


def test_crops_are_hop_aligned_deterministic_and_padded(prepared_corpus):
    rows = read_manifest(prepared_corpus / "train.jsonl")
    speakers = read_speakers(prepared_corpus / "speakers.txt")
    ds = SegmentDataset(rows, speakers, segment_length=1024, hop_length=64, sample_rate=16000)
    items = take(StreamSampler(len(ds), seed=0), 12)
    for item in items:
        a, b = ds[item], ds[item]
        assert torch.equal(a["wav"], b["wav"]) and a["wav"].shape == (1, 1024)
        assert int(a["speaker"]) == speakers.index(rows[item.index].speaker)
    # a crop equals the file's samples at some hop-aligned offset
    full = ds.read(items[0].index, 0, 1024)
    long = SegmentDataset(rows, speakers, segment_length=64 * 200, hop_length=64, sample_rate=16000)
    whole = long.read(items[0].index, 0, 64 * 200)
    got = ds[items[0]]["wav"][0]
    offsets = [o for o in range(0, whole.numel() - 1024 + 1, 64) if torch.equal(whole[o : o + 1024], got)]
    assert offsets, "crop is not a hop-aligned window of the file"
    n = rows[items[0].index].n_samples
    assert (whole[n:] == 0).all() and whole[:n].abs().sum() > 0  # zero-padded past the end
    assert full.shape == (1024,)
    batches = list(validation_batches(ds, count=5, batch_size=2))
    assert [b["wav"].shape[0] for b in batches] == [2, 2, 1]


def test_bad_rows_are_named(prepared_corpus, tmp_path):
    rows = read_manifest(prepared_corpus / "train.jsonl")
    speakers = read_speakers(prepared_corpus / "speakers.txt")
    with pytest.raises(ManifestError, match="not in the speaker list"):
        SegmentDataset(rows, speakers[:1], 1024, 64, 16000)
    rows[0].sample_rate = 22050
    with pytest.raises(AudioError, match=rows[0].path):
        SegmentDataset(rows, speakers, 1024, 64, 16000)
    rows[0].sample_rate = 16000
    rows[0].path = str(tmp_path / "gone.wav")
    ds = SegmentDataset(rows, speakers, 1024, 64, 16000)
    with pytest.raises(AudioError, match="gone.wav"):
        ds.crop(0, 0)
    with pytest.raises(ValueError, match="multiple of the hop"):
        SegmentDataset(rows, speakers, 1000, 64, 16000)
