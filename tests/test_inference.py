"""Using a trained model from Python: VQVAE.load, speaker names, exact chunked encoding, batched conversion."""

from __future__ import annotations

import pytest
import soundfile as sf
import torch
from trained_tiny import trained_checkpoint, write_tone

from audio_vqvae import VQVAE
from audio_vqvae.config import apply_overrides, preset
from audio_vqvae.data.audio import mu_law_decode, resampled_length
from audio_vqvae.generation import clock_period, generate
from audio_vqvae.inference import convert, decode_tokens, extract_tokens
from audio_vqvae.inference.synthesis import decode_chunked, decode_stream, generate_chunked
from audio_vqvae.inference.windows import encode_chunked, plan_windows
from audio_vqvae.models.vqvae import SpeakerError


@pytest.fixture(scope="session")
def checkpoint(prepared_corpus, tmp_path_factory):
    return trained_checkpoint(prepared_corpus, tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="session")
def model(checkpoint):
    return VQVAE.load(checkpoint)


def test_load_restores_speakers_and_names_work_like_ids(model, checkpoint):
    assert not model.training and model.speakers == ["spk0", "spk1", "spk2"]
    assert model.checkpoint == checkpoint and model.checkpoint_step == 8
    codes = torch.randint(0, model.quantizer.codebook_size, (2, 3))
    by_id = model.decode(codes, torch.tensor([2, 0]), temperature=0)
    assert torch.equal(model.decode(codes, ["spk2", "spk0"], temperature=0), by_id)
    assert torch.equal(model.decode(codes[:1], "spk1", temperature=0), model.decode(codes[:1], 1, temperature=0))
    with pytest.raises(SpeakerError, match=r"unknown speaker 'bob'; known \(3\): spk0, spk1, spk2$"):
        model.decode(codes, "bob")
    many = VQVAE.from_config(apply_overrides(preset("tiny"), {"decoder": {"n_speakers": 40}}))
    many.speakers = [f"p{i:03d}" for i in range(40)]
    with pytest.raises(SpeakerError, match=r"known \(40\): p000, .*p011, \.\.\. \(28 more\)"):
        many.speaker_ids("p999", 1)


def test_windows_cover_every_frame_once():
    for n_samples in (64, 1000, 64 * 250 + 17, 16000 * 7):
        windows = plan_windows(0, n_samples, 64, (191, 191), chunk_frames=100)
        frames = [f for w in windows for f in range(w.first, w.last)]
        assert frames == list(range(n_samples // 64))
        for w in windows:
            assert w.start % 64 == 0 and w.start <= max(0, w.first * 64 - 191)
            assert w.end == n_samples or w.end >= w.last * 64 + 191


def test_chunked_encoding_equals_whole_file_encoding_on_a_long_random_signal():
    """The paper's encoder on 20 s of noise: every chunking gives the codes of one whole-file pass, but
    at near ties (``VectorQuantizer.is_near_tie``), which may flip with float32 rounding."""
    torch.manual_seed(0)
    model = VQVAE.from_config(preset("paper")).eval()
    wav = torch.randn(20 * 16000 + 123) * 0.3
    z = model.encoder(wav.view(1, 1, -1)).detach()[0]  # (D, N)
    with torch.no_grad():  # a codebook of the signal's own latents, so the codes vary from frame to frame
        model.quantizer.codebook.copy_(z[:, torch.randperm(z.size(1))[:512]].t())
    whole = model.encode(wav)[0]
    assert whole.numel() == wav.numel() // 64 and whole.unique().numel() > 200
    tie = model.quantizer.is_near_tie(z.unsqueeze(0))[0]  # (N,)
    for chunk, batch in [(1.0, 4.0), (0.37, 100.0), (3.3, 1.0), (100.0, 100.0)]:
        (out,) = encode_chunked(model, [wav], chunk_seconds=chunk, batch_seconds=batch, latents="continuous")
        differ = out.codes != whole  # float32 rounding differs with the chunking and thread count: near ties flip
        assert torch.equal(out.codes[~tie], whole[~tie]) and differ.float().mean() < 0.01, (chunk, batch)
        assert torch.allclose(out.latents, z.t(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("normalised", [True, False])
def test_codes_do_not_depend_on_the_batch_except_at_near_ties(normalised):
    """20 noise files of 0.06-3 s encoded in one run (several per pass) or each alone: latents agree to
    1e-5 and codes agree at every frame but near ties, which are rare."""
    torch.manual_seed(0)
    overrides = {"quantizer": {"codebook_size": 512, "batch_norm": normalised, "cosine_similarity": normalised}}
    model = VQVAE.from_config(apply_overrides(preset("tiny"), overrides)).eval()
    quantizer = model.quantizer
    wavs = [torch.randn(n) * float(s) for n, s in zip(torch.randint(1000, 48000, (20,)), torch.rand(20) * 0.5)]
    with torch.no_grad():  # codes and statistics from the signals' own latents, so the codes vary
        z = torch.cat([model.encoder(w.view(1, 1, -1))[0] for w in wavs], 1)  # (D, N)
        if normalised:
            quantizer.running_mean.copy_(z.mean(1))
            quantizer.running_var.copy_(z.var(1))
        quantizer.codebook.copy_(quantizer._normalize_input(z[:, torch.randperm(z.size(1))[:512]].t())[0])
    together = list(encode_chunked(model, wavs, latents="continuous"))
    frames = flips = 0
    for w, one in zip(wavs, together):
        (alone,) = encode_chunked(model, [w], latents="continuous")
        assert torch.allclose(one.latents, alone.latents, atol=1e-5, rtol=0)
        differ = one.codes != alone.codes
        for latents in (one.latents, alone.latents):
            assert quantizer.is_near_tie(latents.t().unsqueeze(0))[0][differ].all()
        frames, flips = frames + differ.numel(), flips + int(differ.sum())
    assert flips < 0.01 * frames and len(torch.cat([e.codes for e in together]).unique()) > 100


def test_encoder_passes_hold_at_most_the_batch_budget(model, monkeypatch):
    sizes = []
    forward = model.encoder.forward
    monkeypatch.setattr(
        model.encoder, "forward", lambda wav, lengths=None: sizes.append(wav.shape) or forward(wav, lengths)
    )
    wavs = [torch.randn(n) * 0.1 for n in (16000 * 12, 3000, 16000 * 2, 700)]
    encoded = list(encode_chunked(model, iter(wavs), chunk_seconds=1.0, batch_seconds=3.0))
    assert [e.index for e in encoded] == [0, 1, 2, 3]
    assert [e.codes.numel() for e in encoded] == [w.numel() // 64 for w in wavs]
    assert all(b * t <= 3 * 16000 for b, _, t in sizes) and len(sizes) >= 6


@pytest.mark.parametrize("mel_conditioning, pre_emphasis", [(False, 0.0), (True, 0.0), (False, 0.85)])
def test_chunked_generation_equals_one_uninterrupted_pass(mel_conditioning, pre_emphasis):
    """Chunk by chunk (caches carried, clock wrapped), each row gets the samples of generating it alone;
    with mel conditioning, each row's predicted spectrogram is its own too, whatever the padding; with
    pre-emphasis, the de-emphasis filter carries each row's state across chunks."""
    torch.manual_seed(0)
    overrides = {"decoder": {"layers_per_stack": 8}, "mel_conditioning": mel_conditioning, "pre_emphasis": pre_emphasis}
    model = VQVAE.from_config(apply_overrides(preset("tiny"), overrides)).eval()
    assert clock_period(model.decoder) == 128  # the buffer clock wraps every 2 frames: chunks of 3 test it
    codes = torch.randint(0, 32, (3, 9))
    lengths, speakers = torch.tensor([9, 4, 7]), torch.tensor([0, 3, 1])
    uniforms = torch.rand(3, 9 * 64)
    outs = decode_chunked(model, codes, speakers, lengths, chunk_frames=3, uniforms=uniforms)
    greedy = decode_chunked(model, codes, speakers, lengths, chunk_frames=2, temperature=0, one_pass_bytes=0)
    for b in range(3):
        n = int(lengths[b])
        latents = model.conditioning_features(model.quantizer.dequantize(codes[b : b + 1, :n]), speakers[b : b + 1])
        alone = generate(model.decoder, latents, speakers[b : b + 1], uniforms=uniforms[b : b + 1, : n * 64])
        expected = model.waveform(alone)[0]
        assert torch.equal(outs[b], expected) and alone.unique().numel() > 20
        assert torch.equal(expected, mu_law_decode(alone[0])) == (pre_emphasis == 0)
        assert torch.equal(greedy[b], model.decode(codes[b : b + 1, :n], int(speakers[b]), temperature=0)[0, 0])


@pytest.mark.parametrize("loop", ["torch", "native"])
def test_a_seed_gives_the_same_samples_in_one_pass_and_in_chunks_of_any_size(loop, monkeypatch):
    """decode_chunked's one-call path and its chunked path, at several chunk sizes, sample the same
    waveform from the same seed: both take their uniforms from one UniformStream, in the rows' order."""
    from audio_vqvae import generation
    from audio_vqvae.generation import fastgen
    from audio_vqvae.inference import synthesis

    if loop == "native" and not fastgen.available():
        pytest.skip(f"native generator unavailable: {fastgen.unavailable_reason()}")
    torch.manual_seed(0)
    model = VQVAE.from_config(apply_overrides(preset("tiny"), {"pre_emphasis": 0.85})).eval()
    codes, lengths, speakers = torch.randint(0, 32, (3, 70)), torch.tensor([40, 70, 13]), torch.tensor([2, 0, 1])
    chunked = synthesis.generate_chunked
    monkeypatch.setattr(synthesis, "generate_chunked", lambda *a, **k: chunked(*a, **k, backend=loop))
    front_door = generation.generate
    monkeypatch.setattr(generation, "generate", lambda *a, **k: front_door(*a, **k, backend=loop))

    def run(**options):
        return decode_chunked(model, codes, speakers, lengths, generator=torch.Generator().manual_seed(5), **options)

    one_pass = run()  # within the one-call budget: one WaveNet.generate call
    assert [w.numel() for w in one_pass] == [n * 64 for n in lengths.tolist()] and one_pass[1].abs().sum() > 0
    for chunk_frames in (3, 16, 64):  # 70 frames x 64 samples cross the uniforms' 4,096-sample blocks
        chunks = run(one_pass_bytes=0, chunk_frames=chunk_frames)
        assert all(torch.equal(a, b) for a, b in zip(one_pass, chunks)), chunk_frames
    other_seed = decode_chunked(model, codes, speakers, lengths, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(other_seed[1], one_pass[1])


@pytest.mark.parametrize("mel_conditioning, pre_emphasis", [(False, 0.0), (True, 0.85)])
def test_native_and_pytorch_chunk_loops_give_the_same_samples(mel_conditioning, pre_emphasis):
    """The native loop resumed chunk by chunk (fastgen.generate_chunk) and the PyTorch loop agree."""
    from audio_vqvae.generation import fastgen

    if not fastgen.available():
        pytest.skip(f"native generator unavailable: {fastgen.unavailable_reason()}")
    torch.manual_seed(0)
    overrides = {"decoder": {"layers_per_stack": 8}, "mel_conditioning": mel_conditioning, "pre_emphasis": pre_emphasis}
    model = VQVAE.from_config(apply_overrides(preset("tiny"), overrides)).eval()
    codes, lengths, speakers = torch.randint(0, 32, (3, 9)), torch.tensor([9, 4, 7]), torch.tensor([0, 3, 1])
    uniforms = torch.rand(3, 9 * 64)
    runs = {
        loop: torch.cat([w for _, w in generate_chunked(model, codes, speakers, lengths, chunk_frames=3,
                                                        uniforms=uniforms, backend=loop)], 1)
        for loop in ("torch", "native")
    }  # fmt: skip
    assert torch.equal(runs["torch"], runs["native"]) and runs["native"].abs().sum() > 0


def test_decode_stream_hands_each_row_on_in_pieces_that_join_to_the_waveform():
    """A batch over the one-pass budget comes chunk by chunk: pieces of at most chunk_frames frames, in
    order per row, the last one flagged; joined, each row is decode_chunked's waveform."""
    torch.manual_seed(0)
    model = VQVAE.from_config(preset("tiny")).eval()
    codes, lengths, speakers = torch.randint(0, 32, (3, 20)), torch.tensor([20, 7, 13]), torch.tensor([0, 1, 2])
    pieces = list(decode_stream(model, codes, speakers, lengths, chunk_frames=4, temperature=0, one_pass_bytes=0))
    assert max(p.numel() for _, p, _ in pieces) == 4 * 64
    whole = decode_chunked(model, codes, speakers, lengths, temperature=0)  # one pass (within the budget)
    for b in range(3):
        mine = [(p, last) for row, p, last in pieces if row == b]
        assert [last for _, last in mine] == [False] * (len(mine) - 1) + [True]
        assert torch.equal(torch.cat([p for p, _ in mine]), whole[b]) and whole[b].numel() == lengths[b] * 64


def test_convert_gives_the_right_length_and_rate_for_several_speakers(model, tmp_path):
    a = write_tone(tmp_path / "a.wav", 0.1)
    b = write_tone(tmp_path / "b.flac", 0.08, rate=22050, f0=120.0)  # another format and rate: resampled
    c = torch.randn(1000) * 0.1
    outs = convert(model, [a, b, c], ["spk0", "spk2", 1], batch_size=2, generator=torch.Generator().manual_seed(0))
    n_b = resampled_length(sf.info(b).frames, 22050, 16000)  # soxr's: T * 16000 / 22050 rounded
    assert [o.numel() for o in outs] == [1600 // 64 * 64, n_b // 64 * 64, 1000 // 64 * 64]
    assert all(o.dtype == torch.float32 and o.abs().max() <= 1 for o in outs)
    same_codes = decode_tokens(model, [torch.arange(6)] * 3, ["spk0", "spk1", "spk2"], temperature=0)
    assert all(o.numel() == 6 * 64 for o in same_codes)
    assert not torch.equal(same_codes[0], same_codes[1]) and not torch.equal(same_codes[1], same_codes[2])


def test_extract_tokens_names_utterances_and_gives_vectors(model, tmp_path):
    a = write_tone(tmp_path / "x.y z.wav", 0.2)
    b = write_tone(tmp_path / "second.wav", 0.1, f0=240.0)
    quantized = extract_tokens(model, [a, b], latents="quantized")
    assert [t.id for t in quantized] == ["x.y z", "second"]
    for t, path in zip(quantized, [a, b]):
        assert torch.equal(t.codes, model.encode(torch.from_numpy(sf.read(path, dtype="float32")[0]))[0])
        assert torch.equal(t.latents, model.quantizer.codebook[t.codes])
    continuous = extract_tokens(model, [a, b], latents="continuous")
    for q, c in zip(quantized, continuous):
        assert torch.equal(model.quantizer.quantize(c.latents.t().unsqueeze(0))[0], q.codes)
    with pytest.raises(ValueError, match="also that of"):
        extract_tokens(model, [a, tmp_path / "sub" / "x.y z.wav"])
