"""Peak memory of encode and convert does not grow with the input's length, at any rate.

A 10-minute 48 kHz stereo file (115 MB as 16-bit PCM, 230 MB read as float32) is encoded and converted
with a tiny model, and the peak resident memory (Linux's VmHWM, reset through /proc/self/clear_refs
between runs) is compared with that of a 1-minute file in the same process. Before issue 12, the whole
file was read and resampled at once and the output generated and written whole: the long file then
peaked about 1 GB higher. The decoder is cut to one narrow layer and 16 classes so that generating 10
minutes takes a few seconds; its memory layout (chunked conditioning, ring buffers, pieces written as
they come) is that of any size. Measured after the change: within 25 MB (the codes and their text).
Each peak is taken above the RSS at its reset: the allocator keeps what an earlier job mapped, which
made the absolute peak of the long encode (run after the short convert) 26 to 41 MB higher by itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

GROWTH_MB = 40  # allowed growth of the peak from 1 to 10 minutes (the codes, allocator noise)

SCRIPT = r"""
import json, sys
from pathlib import Path

import soundfile
import torch

from audio_vqvae import VQVAE
from audio_vqvae.config import apply_overrides, preset
from audio_vqvae.inference.jobs import convert_job, encode_files, generate_speech

torch.set_num_threads(1)
torch.manual_seed(0)
decoder = {"residual_channels": 2, "gate_channels": 2, "skip_channels": 2, "layers_per_stack": 1, "n_stacks": 1}
model = VQVAE.from_config(apply_overrides(preset("tiny"), {"mu_law_classes": 16, "decoder": decoder})).eval()
out = Path(sys.argv[1])


def status_mb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024


def reset():
    # VmHWM back to the current RSS; the peak is then measured above that RSS, so memory that an
    # earlier job left mapped (and the allocator keeps) does not count against the next one
    open("/proc/self/clear_refs", "w").write("5")
    return status_mb("VmRSS:")


peaks = {}
for name in sys.argv[2:]:  # the short file first: it also warms up (imports, the native library)
    base = reset()
    encode_files(model, out / f"enc_{Path(name).stem}", [name])
    peaks["encode " + Path(name).stem] = status_mb("VmHWM:") - base
    base = reset()
    written = generate_speech(model, [convert_job(name, "1", out / f"conv_{Path(name).stem}")], chunk_frames=250)
    peaks["convert " + Path(name).stem] = status_mb("VmHWM:") - base
    peaks["frames " + Path(name).stem] = soundfile.info(str(written[0])).frames
print(json.dumps(peaks))
"""


def write_long(path: Path, minutes: float, rate: int = 48000, channels: int = 2) -> Path:
    """A noisy chord, written a second at a time (the test never holds the file)."""
    rng = np.random.default_rng(0)
    t = np.arange(rate) / rate
    second = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 9000 * t)
    with sf.SoundFile(str(path), "w", rate, channels, subtype="PCM_16") as f:
        for _ in range(round(minutes * 60)):
            block = second + 0.02 * rng.standard_normal(rate)
            f.write(np.repeat(block[:, None], channels, 1).astype(np.float32))
    return path


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs")
def test_peak_memory_of_encode_and_convert_is_the_same_for_1_and_10_minutes_at_48_khz_stereo(tmp_path):
    short = write_long(tmp_path / "short.wav", 1)
    long = write_long(tmp_path / "long.wav", 10)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "out"), str(short), str(long)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    peaks = json.loads(result.stdout.strip().splitlines()[-1])
    assert peaks["frames long"] == 10 * 60 * 16000 // 64 * 64  # the whole file was converted
    for job in ("encode", "convert"):
        short, long_ = peaks[f"{job} short"], peaks[f"{job} long"]
        assert long_ - short < GROWTH_MB, (
            f"{job}: peak {short:.0f} MB above the RSS for 1 minute, {long_:.0f} MB for 10"
        )
