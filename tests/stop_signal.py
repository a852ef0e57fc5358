"""A scheduler's SIGTERM to a training command, once its loop has started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sigterm_once_started(args: list[str]) -> tuple[int, str, str]:
    """Run ``python -m audio_vqvae ARGS`` in a process group of its own, wait for its "training utterances"
    log line, let it take a few steps, send SIGTERM to the whole group (DataLoader workers included).

    Returns:
        The exit status, stdout, and stderr (all of it).
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "audio_vqvae", *args],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a job's
    )
    try:
        log = []
        for line in proc.stderr:  # wait until the loop starts, then let it take a few steps
            log.append(line)
            if "training utterances" in line:
                break
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, out, "".join(log) + err
