"""train.precision auto: bf16 where the CPU has native bf16, fp32 where it does not, logged with the reason."""

from __future__ import annotations

import logging

import pytest
import torch

from audio_vqvae.config import experiment_config
from audio_vqvae.models.vqvae import VQVAE
from audio_vqvae.training import precision as precision_module
from audio_vqvae.training import train
from audio_vqvae.training.precision import cpu_flags, resolve_precision

X86 = "processor\t: 0\nmodel name\t: Some Xeon\nflags\t\t: fpu sse avx2 avx512f {extra}\n\nprocessor\t: 1\n"
ARM = "processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: fp asimd sve {extra}\n"


def test_cpu_flags_read_x86_and_arm_listings(tmp_path):
    (tmp_path / "x86").write_text(X86.format(extra="avx512_bf16 amx_bf16"))
    (tmp_path / "arm").write_text(ARM.format(extra="bf16 i8mm"))
    assert {"avx2", "avx512f", "avx512_bf16", "amx_bf16"} <= cpu_flags(tmp_path / "x86")
    assert {"sve", "bf16", "i8mm"} <= cpu_flags(tmp_path / "arm")
    assert cpu_flags(tmp_path / "missing") == set()


def test_auto_picks_bf16_only_with_native_bf16():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu, {"avx512f", "avx512_bf16"})[0] == "bf16"
    assert resolve_precision("auto", cpu, {"asimd", "bf16"})[0] == "bf16"
    chosen, reason = resolve_precision("auto", cpu, {"avx2", "avx512f"})  # avx512f alone emulates bf16
    assert chosen == "fp32" and "no native bf16" in reason
    for explicit in ("fp32", "bf16", "fp16"):  # a precision that the config names is kept
        assert resolve_precision(explicit, cpu, set()) == (explicit, "set in the config")


@pytest.mark.parametrize("flags, expected", [(set(), "fp32"), ({"avx512_bf16"}, "bf16")])
def test_training_with_auto_runs_in_the_chosen_precision_and_logs_why(
    prepared_corpus, tmp_path, caplog, monkeypatch, flags, expected
):
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: flags)
    cfg = experiment_config(
        "tiny",
        {
            "data": {"segment_length": 1024, "batch_size": 2, "num_workers": 0, "valid_utterances": 2},
            "train": {"steps": 2, "log_every": 1, "valid_every": 2, "audio_every": None, "precision": "auto"},
        },
    )
    dtypes = []
    original = VQVAE.forward

    def forward(self, wav, speaker, crop=None):
        out = original(self, wav, speaker, crop)
        if self.training:
            dtypes.append(out.logits.dtype)
        return out

    monkeypatch.setattr(VQVAE, "forward", forward)
    with caplog.at_level(logging.INFO, logger="audio_vqvae.training"):
        assert train(cfg, prepared_corpus, tmp_path / expected).step == 2
    assert dtypes == [torch.bfloat16 if expected == "bf16" else torch.float32] * 2
    assert any(f"precision {expected} (train.precision auto:" in r.getMessage() for r in caplog.records)


def test_cpu_description_names_the_model_and_the_flags_that_matter(tmp_path):
    (tmp_path / "cpuinfo").write_text(X86.format(extra="avx512_bf16 sse4_2"))
    text = precision_module.cpu_description(tmp_path / "cpuinfo")
    assert text == "Some Xeon; flags: avx2 avx512f avx512_bf16"
