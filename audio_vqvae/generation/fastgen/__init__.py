"""Fast WaveNet generation on the CPU: a fused native sample loop, same samples as the reference.

A backend of ``audio_vqvae.generation``: its ``NativeSampler`` runs ``generate_chunk``, and
``generation.generate`` picks it, or falls back from it, with a one-line warning. It draws the same
samples as the reference from the same uniform numbers, many times faster (``bench/generate.py``
measures it; docs/speed.md has the figures); ``generation.native`` is the entry point of benchmarks
and tests that set its threads, teams or bf16 weights, or read its logits. The C source (fastgen.c) is
compiled with the system compiler at first use and cached (see ``_build``); where that is
impossible, ``available()`` is False.

Exactness: the fast loop does the reference's arithmetic in float32 but adds the terms of each dot
product in another order, so logits differ by about 1e-6. A sample can therefore differ only when its
uniform number lies that close to a CDF step (about once in 10^4 to 10^5 samples at paper size); the
two sequences then go their own ways, as two valid samples of the same model. That holds for float32
weights, which the front door uses where they fit the cores' L2 caches; larger decoders stream bf16
weights instead, for speed (``weights.auto_weight_dtype``; ``AUDIO_VQVAE_FASTGEN_WEIGHTS`` overrides it).
"""

from __future__ import annotations

import ctypes
import threading
import warnings
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from . import _build

if TYPE_CHECKING:
    from ...models.wavenet import WaveNet

__all__ = [
    "ChunkState",
    "available",
    "can_run",
    "chunk_state",
    "generate_chunk",
    "notice",
    "unavailable_reason",
    "unsupported",
]

_lock = threading.Lock()
_state: dict[str, object] = {"tried": False, "lib": None, "error": None}
_packed: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_warned: set[str] = set()


def notice(message: str) -> None:
    """One warning per distinct reason and process."""
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _library() -> ctypes.CDLL | None:
    with _lock:
        if not _state["tried"]:
            _state["tried"] = True
            try:
                _state["lib"] = _build.load()
            except _build.BuildError as e:
                _state["error"] = str(e)
                notice(
                    f"audio_vqvae.generation.fastgen: native generator unavailable ({e}); using the PyTorch generator"
                )
    return _state["lib"]  # type: ignore[return-value]


def available() -> bool:
    """Whether the native generator is built and loaded (builds it on the first call, about 2 s)."""
    return _library() is not None


def can_run(wavenet: WaveNet, latents: Tensor) -> bool:
    """Whether ``generate`` would run natively (no warning, no fallback): built, float32, on the CPU.

    For a backend switch that picks the native loop quietly where it applies.
    """
    return available() and unsupported(wavenet, latents) is None


def unavailable_reason() -> str | None:
    """Why ``available()`` is False, in one line; None when it is True (or not yet tried)."""
    return _state["error"]  # type: ignore[return-value]


def _reset() -> None:
    """Forget the loaded library and the warnings given (tests switch the compiler with this)."""
    with _lock:
        _state.update(tried=False, lib=None, error=None)
        _warned.clear()


class _Args(ctypes.Structure):
    """Mirror of ``fg_args`` in fastgen.c: same fields, same order."""

    _fields_ = [
        (name, ctypes.c_int64)
        for name in "batch n_frames hop n_layers kernel n_classes Rp Hp Sp Cp n_threads n_teams bf16".split()
    ] + [
        (name, ctypes.c_void_p)
        for name in (
            "dilations order n_samples w_conv w_out w_head1 w_head2 embedding b_res b_skip b_head1 b_head2 cond "
            "uniforms"
        ).split()
    ]
    _fields_ += [("temperature", ctypes.c_double), ("out", ctypes.c_void_p), ("logits", ctypes.c_void_p)]
    _fields_ += [("t0", ctypes.c_int64), ("rings", ctypes.c_void_p), ("classes", ctypes.c_void_p)]


@dataclass
class _Packed:
    """The module's weights in the panel layout of fastgen.c (kept alive here while C reads them)."""

    key: tuple
    Rp: int
    Hp: int
    Sp: int
    Cp: int
    tensors: dict[str, Tensor]


def _ceil(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _panels(w: Tensor, K_p: int, N_p: int, nb: int) -> Tensor:
    """(K, N) weights, zero-padded to (K_p, N_p), as N_p / nb panels of (K_p, nb), each contiguous."""
    w = F.pad(w, (0, N_p - w.size(1), 0, K_p - w.size(0)))
    return w.view(K_p, N_p // nb, nb).permute(1, 0, 2).contiguous()


def unsupported(wavenet: WaveNet, latents: Tensor) -> str | None:
    """Why the native loop cannot run this model on these latents (None if it can), built or not."""
    if latents.device.type != "cpu":
        return f"latents on {latents.device} (the native generator is CPU only)"
    params = list(wavenet.parameters())
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in params) or latents.dtype != torch.float32:
        return "weights or latents are not float32 on the CPU"
    head = list(wavenet.head)
    kinds = [type(m) for m in head]
    if kinds != [nn.ReLU, nn.Conv1d, nn.ReLU, nn.Conv1d] or any(m.kernel_size != (1,) for m in head[1::2]):
        return "the output head is not ReLU, 1x1 conv, ReLU, 1x1 conv"
    if len({layer.kernel_size for layer in wavenet.layers}) != 1:
        return "layers with different kernel sizes"
    return None


def _pack(wavenet: WaveNet, vw: int, bf16: bool) -> _Packed:
    params = tuple(wavenet.parameters())
    key = (vw, bf16, tuple((p.data_ptr(), p._version) for p in params))
    cached = _packed.get(wavenet)
    if cached is not None and cached.key == key:
        return cached
    nb = 2 * vw
    layers = list(wavenet.layers)
    R, G = layers[0].conv.in_channels, layers[0].conv.out_channels
    H, S, C = G // 2, layers[0].out.out_channels - R, wavenet.n_classes
    Rp, Hp, Sp, Cp = _ceil(R, nb), _ceil(H, vw), _ceil(S, nb), _ceil(C, nb)
    conv, out = [], []
    for layer in layers:
        w = layer.conv.weight.detach().permute(2, 1, 0)  # (k, R, G): tap j multiplies x[t - (k - 1 - j) d]
        w = F.pad(w, (0, 0, 0, Rp - R)).reshape(-1, 2, H)  # (k * Rp, 2, H): tanh half, sigmoid half
        w = F.pad(w, (0, Hp - H)).view(w.size(0), 2, Hp // vw, vw)
        conv.append(w.permute(2, 0, 1, 3).reshape(Hp // vw, -1, nb))  # panels: vw tanh | vw sigmoid channels
        w = layer.out.weight.detach()[:, :, 0].t()  # (H, R + S)
        out.append(torch.cat([_panels(w[:, :R], Hp, Rp, nb), _panels(w[:, R:], Hp, Sp, nb)]))
    w_head1 = _panels(wavenet.head[1].weight.detach()[:, :, 0].t(), Sp, Sp, nb)
    w_head2 = _panels(wavenet.head[3].weight.detach()[:, :, 0].t(), Sp, Cp, nb)
    weights = {"w_conv": torch.stack(conv), "w_out": torch.stack(out), "w_head1": w_head1, "w_head2": w_head2}
    for name, w in weights.items():
        if bf16:  # round to nearest even; panel rows interleaved (column i, column vw + i, ...): see load_row
            w = w.view(*w.shape[:-1], 2, vw).transpose(-1, -2).to(torch.bfloat16).view(torch.int16)
        weights[name] = w.contiguous()
    biases = torch.stack([layer.out.bias.detach() for layer in layers])  # (L, R + S)
    tensors = {
        **weights,
        "embedding": F.pad(wavenet.input_embedding.weight.detach(), (0, Rp - R)).contiguous(),
        "b_res": F.pad(biases[:, :R], (0, Rp - R)).contiguous(),
        "b_skip": F.pad(biases[:, R:].sum(0), (0, Sp - S)).contiguous(),
        "b_head1": F.pad(wavenet.head[1].bias.detach(), (0, Sp - S)).contiguous(),
        "b_head2": F.pad(wavenet.head[3].bias.detach(), (0, Cp - C)).contiguous(),
        "b_conv": torch.stack([layer.conv.bias.detach() for layer in layers]),  # (L, G), added to cond
        "dilations": torch.tensor([layer.dilation for layer in layers], dtype=torch.int64),
    }
    packed = _Packed(key, Rp, Hp, Sp, Cp, tensors)
    _packed[wavenet] = packed
    return packed


def default_teams(batch: int, threads: int) -> int:
    """Teams the threads form for a batch. A team shares every layer's channels between its threads
    (bandwidth bound at small batches: each thread streams 1/n of the weights; one barrier per layer);
    separate teams run separate utterances with no barrier (arithmetic bound). Two utterances per team
    is where the second wins (measured on 2 cores: bench/fastgen_notes.md)."""
    return max(1, min(threads, batch // 2))


def _launch(
    lib, wavenet, cond, order, n_samples, uniforms, temperature, out, logits, threads, weight_dtype, teams, state=None
) -> int:
    """Run fastgen_generate on (B, N, L, G) conditioning (a view; the conv biases are added to it in place)."""
    B, N, L, G = cond.shape
    vw = lib.fastgen_vector_width()
    p = _pack(wavenet, vw, weight_dtype == torch.bfloat16)
    w = p.tensors
    H = G // 2
    cond.add_(w["b_conv"])  # in place: at most two copies alive, as in the reference
    cond = cond.view(B, N, L, 2, H)  # tanh half, sigmoid half
    cond = (F.pad(cond, (0, p.Hp - H)) if p.Hp > H else cond).contiguous()  # (B, N, L, 2, Hp)

    threads = max(1, int(threads or torch.get_num_threads()))
    teams = max(1, min(int(teams or default_teams(B, threads)), B, threads))
    threads = min(threads, teams * (p.Hp // vw))  # a thread without gate channels would only wait
    args = _Args(
        batch=B, n_frames=N, hop=wavenet.hop_length, n_layers=L, kernel=wavenet.layers[0].kernel_size,
        n_classes=wavenet.n_classes, Rp=p.Rp, Hp=p.Hp, Sp=p.Sp, Cp=p.Cp, n_threads=threads, n_teams=teams,
        bf16=int(weight_dtype == torch.bfloat16),
        dilations=w["dilations"].data_ptr(), order=order.data_ptr(), n_samples=n_samples.data_ptr(),
        w_conv=w["w_conv"].data_ptr(), w_out=w["w_out"].data_ptr(), w_head1=w["w_head1"].data_ptr(),
        w_head2=w["w_head2"].data_ptr(), embedding=w["embedding"].data_ptr(), b_res=w["b_res"].data_ptr(),
        b_skip=w["b_skip"].data_ptr(), b_head1=w["b_head1"].data_ptr(), b_head2=w["b_head2"].data_ptr(),
        cond=cond.data_ptr(), uniforms=uniforms.data_ptr() if temperature > 0 else None,
        temperature=float(temperature), out=out.data_ptr(), logits=logits.data_ptr() if logits is not None else None,
        t0=state.t if state else 0, rings=state.rings.data_ptr() if state else None,
        classes=state.classes.data_ptr() if state else None,
    )  # fmt: skip
    return lib.fastgen_generate(ctypes.byref(args))  # releases the GIL while it runs


# ---- chunks of one long generation ----------------------------------------------------


@dataclass
class ChunkState:
    """What one ``generate_chunk`` call hands to the next, so that chunks give one uninterrupted run.

    Attributes:
        rings: (B, span_sum * Rp) float32, every layer's ring buffer of past inputs per row (span_sum:
            the layers' ``(kernel_size - 1) * dilation`` summed; Rp: residual channels padded).
        classes: (B,) int64, each row's last class (the start class before the first chunk).
        t: samples generated so far, the ring buffers' clock.
    """

    rings: Tensor
    classes: Tensor
    t: int = 0


def chunk_state(wavenet: WaveNet, batch: int) -> ChunkState:
    """The state before the first chunk: zero ring buffers (the causal convs' left padding), start classes.

    Raises:
        RuntimeError: the native generator is unavailable (check ``can_run`` first).
    """
    lib = _library()
    if lib is None:
        raise RuntimeError(f"native generator unavailable: {unavailable_reason()}")
    # Rp as _pack pads it, without packing: a pack here would be float32 and evict a bf16 one (repacked each call)
    Rp = _ceil(wavenet.layers[0].conv.in_channels, 2 * lib.fastgen_vector_width())
    span_sum = sum((layer.kernel_size - 1) * layer.dilation for layer in wavenet.layers)
    return ChunkState(torch.zeros(batch, span_sum * Rp), torch.full((batch,), wavenet.n_classes // 2), 0)


@torch.no_grad()
def generate_chunk(
    wavenet: WaveNet,
    cond: Tensor,
    state: ChunkState,
    n_samples: Tensor,
    temperature: float = 1.0,
    uniforms: Tensor | None = None,
    threads: int | None = None,
    *,
    weight_dtype: torch.dtype = torch.float32,
    teams: int | None = None,
    logits: Tensor | None = None,
) -> Tensor:
    """The next ``n * hop`` samples of a generation run in chunks, natively; ``state`` is updated in place.

    Chunk after chunk, each row gets the samples one ``generate`` call on the whole gives with the
    same uniforms (the chunks' conditioning must be that of the whole: ``generation.conditioning_window``).

    Args:
        wavenet: the decoder (``can_run`` must hold).
        cond: (B, n, L, G) gate conditioning of the chunk's n frames, without the conv biases (which
            are added to it in place).
        state: from ``chunk_state``, or as the previous chunk left it.
        n_samples: (B,) int64 samples each row generates in this chunk, in [0, n * hop] (a row that
            is done generates 0; rows leave the batch as in ``generate``, in any order).
        temperature: 0 is greedy; uniforms: (B, n * hop) numbers in [0, 1) (None when greedy).
        threads: CPU threads (default ``torch.get_num_threads()``).
        weight_dtype: torch.bfloat16 halves the weight bytes streamed per sample (faster at small batches;
            the logits change slightly; ``bench/generate.py`` measures by how much).
        teams: how many groups the threads form (default ``default_teams``); for benchmarks.
        logits: (B, n * hop, n_classes) float32 to receive every step's logits (a debug copy), or None.
    Returns:
        (B, n * hop) int64 classes; the start class past each row's samples.
    Raises:
        RuntimeError: the native generator is unavailable or failed (out of memory or threads).
    """
    if weight_dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"weight_dtype must be torch.float32 or torch.bfloat16, got {weight_dtype}")
    lib = _library()
    if lib is None:
        raise RuntimeError(f"native generator unavailable: {unavailable_reason()}")
    B, n = cond.size(0), cond.size(1)
    T = n * wavenet.hop_length
    out = torch.full((B, T), wavenet.n_classes // 2, dtype=torch.long)
    n_samples = n_samples.cpu().long().clamp(0, T).contiguous()
    if temperature > 0:
        uniforms = uniforms[:, :T].to(torch.float64).contiguous()
    order = torch.argsort(n_samples, descending=True, stable=True)
    if logits is not None and (logits.shape != (B, T, wavenet.n_classes) or not logits.is_contiguous()):
        raise ValueError(f"logits must be a contiguous ({B}, {T}, {wavenet.n_classes}) tensor")
    rc = _launch(lib, wavenet, cond, order, n_samples, uniforms, temperature, out, logits, threads, weight_dtype,
                 teams, state)  # fmt: skip
    if rc != 0:
        raise RuntimeError(
            f"audio_vqvae.generation.fastgen: native generator failed (code {rc}: out of memory or threads)"
        )
    state.t += T
    return out
