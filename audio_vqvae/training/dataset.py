"""Training data: random hop-aligned crops of prepared utterances, in an order that can be resumed exactly.

The data order and every crop are pure functions of (seed, position in the sample stream), so
resuming at step s only needs s: no worker or sampler state is saved, and any number of workers
gives the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset, Sampler

from ..data.audio import AudioError
from ..data.manifest import Utterance
from ..errors import ManifestError, TrainingError


@dataclass(frozen=True)
class Item:
    """What the sampler hands the dataset: which utterance, and the seed of its random crop."""

    index: int
    crop_seed: int


class StreamSampler(Sampler[Item]):
    """An endless stream of epochs, each a seeded permutation, sharded across ranks.

    Rank r takes positions r, r + W, r + 2W, ... of each epoch's permutation (the last
    ``n % W`` are dropped so every rank sees the same number per epoch). Its k-th item is fixed
    by (seed, k), so a sampler built with ``start = step * batch_size`` resumes exactly.

    Args:
        n: utterances in the dataset.
        seed: base seed of the permutations and crops.
        rank, world_size: this process's shard.
        start: items of this rank's stream to skip.
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world_size: int = 1, start: int = 0):
        if n < world_size:
            raise TrainingError(f"{n} training utterances cannot be shared by {world_size} processes")
        self.n, self.seed, self.rank, self.world_size, self.start = n, seed, rank, world_size, start
        self.per_epoch = n // world_size

    def __iter__(self) -> Iterator[Item]:
        epoch, k = divmod(self.start, self.per_epoch)
        while True:
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
            for j in range(k, self.per_epoch):
                position = self.rank + j * self.world_size
                crop_seed = (self.seed * 1_000_003 + epoch) * 1_000_033 + position
                yield Item(int(perm[position]), crop_seed)
            epoch, k = epoch + 1, 0

    def __len__(self) -> int:  # endless; the training loop counts steps
        return 2**62


class SegmentDataset(Dataset):
    """Crops of ``segment_length`` samples from prepared utterances, with speaker ids.

    Only the crop is read from disk (prepared files are at the model rate). Utterances shorter
    than a segment are zero-padded at the end.

    With a ``context``, each item also holds the audio around its crop that the encoder reads
    (``encoder.training_context``), as far as the utterance has it: ``encoder_wav``, the crop with up to
    ``context[0]`` samples before it and ``context[1]`` after, left-aligned and zero-padded to a fixed
    size; ``encoder_length``, its valid samples; ``encoder_first_frame``, the frame where the crop starts in it.

    Args:
        rows: manifest rows (prepared audio at ``sample_rate``).
        speakers: speaker list; a row's speaker id is its index here.
        segment_length: samples per crop, a multiple of ``hop_length``.
        hop_length: crops start at multiples of the hop.
        context: (before, after) samples of encoder context, rounded up to whole hops; (0, 0): none.
    """

    def __init__(
        self,
        rows: Sequence[Utterance],
        speakers: Sequence[str],
        segment_length: int,
        hop_length: int,
        sample_rate: int,
        context: tuple[int, int] = (0, 0),
    ):
        if segment_length < hop_length or segment_length % hop_length:
            raise ValueError(f"segment_length {segment_length} must be a positive multiple of the hop {hop_length}")
        index = {s: i for i, s in enumerate(speakers)}
        for row in rows:
            if row.speaker not in index:
                raise ManifestError(f"utterance '{row.id}' has speaker '{row.speaker}', not in the speaker list")
            if row.sample_rate != sample_rate:
                raise AudioError(
                    f"{row.path}: sample rate {row.sample_rate} Hz, the model runs at {sample_rate} Hz; "
                    "prepare the corpus with audio-vqvae prepare (it resamples once)"
                )
        self.rows = list(rows)
        self.speaker_ids = [index[r.speaker] for r in self.rows]
        self.segment_length, self.hop_length = segment_length, hop_length
        self.context = tuple(-(-c // hop_length) * hop_length for c in context)

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, index: int, start: int, length: int) -> torch.Tensor:
        """Samples ``start .. start + length`` of utterance ``index``, zero-padded past its end: (length,)."""
        row = self.rows[index]
        try:
            wav, _ = sf.read(row.path, start=start, frames=length, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            raise AudioError(f"{row.path}: cannot read audio: {e}") from None
        wav = torch.from_numpy(wav.mean(axis=1))
        if not torch.isfinite(wav).all():
            raise AudioError(f"{row.path}: non-finite samples in the crop at {start}")
        out = torch.zeros(length)
        out[: wav.numel()] = wav
        return out

    def crop(self, index: int, offset: int) -> dict[str, torch.Tensor]:
        """The item of the crop at ``offset`` (a multiple of the hop): ``wav`` (1, segment_length), and with a
        context ``encoder_wav`` (1, before + segment_length + after), ``encoder_length``, ``encoder_first_frame``."""
        before, after = self.context
        if not before and not after:
            return {"wav": self.read(index, offset, self.segment_length).unsqueeze(0)}
        start = max(0, offset - before)
        size = before + self.segment_length + after
        wav = self.read(index, start, size)
        valid = max(0, min(self.rows[index].n_samples - start, size))
        wav[valid:] = 0.0
        first = offset - start
        return {
            "wav": wav[first : first + self.segment_length].clone().unsqueeze(0),
            "encoder_wav": wav.unsqueeze(0),
            "encoder_length": torch.tensor(valid),
            "encoder_first_frame": torch.tensor(first // self.hop_length),
        }

    def __getitem__(self, item: Item) -> dict[str, torch.Tensor]:
        row = self.rows[item.index]
        rng = np.random.default_rng(item.crop_seed)
        n_starts = max(0, row.n_samples - self.segment_length) // self.hop_length + 1
        offset = int(rng.integers(n_starts)) * self.hop_length
        return {**self.crop(item.index, offset), "speaker": torch.tensor(self.speaker_ids[item.index])}


def validation_batches(dataset: SegmentDataset, count: int, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    """Fixed validation crops: the first segment of each of the first ``count`` utterances."""
    n = min(count, len(dataset))
    for lo in range(0, n, batch_size):
        idx = range(lo, min(n, lo + batch_size))
        items = [dataset.crop(i, 0) for i in idx]
        batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
        yield {**batch, "speaker": torch.tensor([dataset.speaker_ids[i] for i in idx])}
