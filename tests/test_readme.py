"""The README's Python example runs as written (with the tiny preset and a short file)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile as sf

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no Python example"
    code = blocks[0]
    assert 'preset("paper")' in code
    code = code.replace('preset("paper")', 'preset("tiny")')  # same code path, CPU-test sizes
    t = np.arange(2400) / 22050
    sf.write(tmp_path / "utterance.flac", 0.3 * np.sin(2 * np.pi * 220 * t), 22050)  # another rate on purpose
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    out, rate = sf.read(tmp_path / "converted.wav")
    codes = namespace["codes"]
    assert rate == 16000 and codes.shape == (1, 1741 // 64)  # 2400 samples at 22.05 kHz = 1741 at 16 kHz
    assert len(out) == codes.shape[1] * 64
