"""Safe outputs: temporaries unique per process, one writer per folder, stale temporaries removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from audio_vqvae.fileio import LOCK, FolderInUseError, atomic_write, folder_lock, remove_stale_temporaries, temp_path

HOLD = """
import sys
from audio_vqvae.fileio import folder_lock
with folder_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process that holds ``folder``'s lock until its stdin closes."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def dead_pid() -> int:
    """The id of a process that has exited (and was reaped)."""
    out = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(out.stdout)


def test_temporary_names_are_unique_per_process_and_carry_the_pid(tmp_path):
    names = {temp_path(tmp_path / "units.txt").name for _ in range(50)}
    assert len(names) == 50 and all(n.startswith(f".units.txt.{os.getpid()}-") for n in names)
    seen = []
    atomic_write(tmp_path / "a.bin", lambda f: seen.extend(p.name for p in tmp_path.iterdir()))
    assert len(seen) == 1 and seen[0].startswith(f".a.bin.{os.getpid()}-") and seen[0].endswith(".tmp")
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_a_second_writer_is_refused_while_another_process_holds_the_folder(tmp_path):
    out = tmp_path / "out"
    proc = hold_lock(out)
    try:
        with pytest.raises(FolderInUseError) as e:
            with folder_lock(out):
                pass
        message = str(e.value)
        assert message.startswith(f"{out}: in use by another run (process {proc.pid})") and "\n" not in message
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0 and not (out / LOCK).exists()
    with folder_lock(out):  # released at the holder's exit
        with pytest.raises(FolderInUseError):  # and refused within one process too
            with folder_lock(out):
                pass


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    proc = hold_lock(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert (tmp_path / LOCK).read_text().strip() == str(proc.pid)  # left behind, but no longer held
    with folder_lock(tmp_path):
        assert (tmp_path / LOCK).read_text().strip() == str(os.getpid())
    assert not (tmp_path / LOCK).exists()


def test_the_lock_is_released_on_errors_and_a_folder_it_made_is_removed_when_empty(tmp_path):
    new = tmp_path / "new" / "out"
    with pytest.raises(KeyError):
        with folder_lock(new):
            assert new.is_dir()
            raise KeyError("boom")
    assert not new.exists()
    with folder_lock(new):
        (new / "kept.txt").write_text("x")
    assert [p.name for p in new.iterdir()] == ["kept.txt"]


def test_stale_temporaries_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    pid = dead_pid()
    stale = [
        tmp_path / f".units.txt.{pid}-0a1b2c3d.tmp",
        tmp_path / "npy" / f".x.npy.{pid}-ab_cd12z.tmp",
        tmp_path / f".tokens.{pid}-0a1b2c3d.tmp" / "npy" / "x.npy",  # a staging folder, removed whole
    ]
    kept = [
        tmp_path / f".units.txt.{os.getppid()}-0a1b2c3d.tmp",  # a live process
        tmp_path / f".units.txt.{os.getpid()}-0a1b2c3d.tmp",  # this one
        tmp_path / "npy" / "x.npy",
        tmp_path / "notes.tmp",
        tmp_path / "deep" / "er" / f".y.{pid}-0a1b2c3d.tmp",  # only the folder and its subfolders are swept
    ]
    for p in stale + kept:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([stale[0], stale[1], stale[2].parents[1]])
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)
    for p in kept[:2]:
        p.unlink()
    (tmp_path / f".wav.{pid}-11223344.tmp").write_text("x")
    with folder_lock(tmp_path):  # every run that locks the folder sweeps it
        assert not (tmp_path / f".wav.{pid}-11223344.tmp").exists()
