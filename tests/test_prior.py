"""The learned prior over codes: incremental decoding equals the full forward pass, causality,
learning, sampling filters and prompts, and clear errors."""

from __future__ import annotations

import pytest
import torch

from audio_vqvae.generation.codes import filter_logits, sample_codes
from audio_vqvae.models.prior import CodePrior


def tiny(n_speakers: int = 0, **kwargs) -> CodePrior:
    torch.manual_seed(0)
    options = {"codebook_size": 11, "max_len": 24, "d_model": 16, "n_layers": 2, "n_heads": 2, "dropout": 0.1}
    return CodePrior(**{**options, **kwargs}, n_speakers=n_speakers).eval()


@pytest.mark.parametrize("n_speakers", [0, 3])
def test_incremental_decoding_gives_the_forward_passs_logits(n_speakers):
    prior = tiny(n_speakers)
    codes = torch.randint(0, 11, (2, 17))
    speaker = torch.tensor([0, 2]) if n_speakers else None
    with torch.no_grad():
        full = prior(codes, speaker)  # (B, L, K)
        cache = prior.new_cache(2)
        steps = [prior.step(None, cache, speaker)]
        steps += [prior.step(codes[:, t - 1], cache, speaker) for t in range(1, 17)]
    assert cache.length == 17
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5)


def test_a_position_sees_only_the_codes_before_it():
    prior = tiny()
    codes = torch.randint(0, 11, (1, 20))
    changed = codes.clone()
    changed[0, 9] = (codes[0, 9] + 1) % 11
    with torch.no_grad():
        a, b = prior(codes), prior(changed)
    assert torch.equal(a[:, :10], b[:, :10])  # position 9 predicts code 9 from codes 0..8
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_the_prior_learns_a_repeating_sequence_and_a_speakers_sequence():
    """Two speakers, each with its own cycle: a speaker-conditioned prior learns both to well under
    the 2.4 nats of a uniform guess over 11 codes."""
    prior = tiny(2, dropout=0.0).train()
    cycles = torch.tensor([[1, 5, 2, 7], [3, 3, 9, 0]])
    codes = torch.stack([cycles[i % 2].repeat(6) for i in range(8)])  # (8, 24)
    speaker = torch.arange(8) % 2
    optimizer = torch.optim.Adam(prior.parameters(), lr=3e-3)
    for _ in range(150):
        loss = prior.loss(codes, speaker)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    prior.eval()
    with torch.no_grad():
        assert float(prior.loss(codes, speaker, mask=torch.arange(24) >= 4)) < 0.1
        sampled = sample_codes(prior, 20, speaker=torch.tensor([1]), prompt=cycles[1:, :3], temperature=0)
    assert torch.equal(sampled[0], cycles[1].repeat(6)[:23])


def test_filter_logits_keeps_the_top_k_and_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.05, 0.3, 0.15]]))
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, True, False, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.7)).tolist() == [[False, True, False, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.5)).tolist() == [[False, True, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.01)).tolist() == [[False, True, True, True]]  # the top code stays
    assert not torch.isinf(filter_logits(logits, top_k=10, top_p=1.0)).any()
    with pytest.raises(ValueError, match="top_k"):
        filter_logits(logits, top_k=0)
    with pytest.raises(ValueError, match="top_p"):
        filter_logits(logits, top_p=0.0)


def test_sampling_keeps_the_prompt_and_follows_its_generator():
    prior = tiny(3)
    prompt = torch.randint(0, 11, (2, 5))
    speaker = torch.tensor([1, 2])

    def draw(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return sample_codes(prior, 10, speaker=speaker, prompt=prompt, top_k=5, top_p=0.9, generator=generator)

    a = draw(0)
    assert a.shape == (2, 15) and torch.equal(a[:, :5], prompt)
    assert torch.equal(a, draw(0)) and not torch.equal(a, draw(1))
    greedy = sample_codes(prior, 10, speaker=speaker, prompt=prompt, temperature=0)
    with torch.no_grad():
        assert torch.equal(
            prior(greedy, speaker)[:, 5:].argmax(-1), greedy[:, 5:]
        )  # each code the argmax given the rest


def test_bad_inputs_get_clear_errors():
    prior, conditioned = tiny(), tiny(2)
    with pytest.raises(ValueError, match=r"in \[0, 11\)"):
        prior(torch.tensor([[3, 11]]))
    with pytest.raises(ValueError, match="max_len 24"):
        prior(torch.zeros(1, 25, dtype=torch.long))
    with pytest.raises(ValueError, match="needs speakers"):
        conditioned(torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="max_len 24"):
        sample_codes(prior, 20, prompt=torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="prompt codes"):
        sample_codes(prior, 2, prompt=torch.full((1, 2), 12))
    cache = prior.new_cache(1)
    for _ in range(24):
        prior.step(None if cache.length == 0 else torch.tensor([1]), cache)
    with pytest.raises(ValueError, match="context is full"):
        prior.step(torch.tensor([1]), cache)


def test_bits_per_code_of_the_prior_and_the_ngram_baselines():
    from audio_vqvae.evaluation.metrics.lm import ngram_bits, prior_bits

    torch.manual_seed(0)
    uniform = [torch.randint(0, 8, (500,)) for _ in range(4)]
    assert abs(ngram_bits(uniform[:3], uniform[3:], 8, 1) - 3.0) < 0.05  # log2(8) bits for uniform codes
    cyclic = [torch.arange(8).repeat(40) for _ in range(3)]
    assert ngram_bits(cyclic[:2], cyclic[2:], 8, 2) < 0.05 < ngram_bits(cyclic[:2], cyclic[2:], 8, 1)
    prior = tiny()
    codes = torch.randint(0, 11, (50,))  # two windows of max_len 24 and one of 2
    with torch.no_grad():
        want = (
            sum(
                float(torch.nn.functional.cross_entropy(prior(w.unsqueeze(0))[0], w, reduction="sum"))
                for w in codes.split(24)
            )
            / 50
            / torch.log(torch.tensor(2.0)).item()
        )
    assert abs(prior_bits(prior, [codes]) - want) < 1e-5
    with pytest.raises(ValueError, match="order"):
        ngram_bits(uniform, uniform, 8, 3)
