"""Safe outputs: atomic file writes, one writer per output folder, and the removal of stale temporaries.

A file is written to a temporary beside it, fsynced and renamed, so a crash never leaves a torn
file. Temporary names carry the writer's process id (``.<name>.<pid>-<random>.tmp``): two processes
never share one, and those of a dead process are recognised as stale and removed by the next run
that locks the folder (``folder_lock``).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import AudioVQVAEError, FolderInUseError, OutputExistsError

try:
    import fcntl
except ImportError:  # Windows: no flock; folders are not locked there
    fcntl = None

LOCK = ".lock"
_TEMPORARY = re.compile(r"^\..+\.(?P<pid>\d+)-[0-9a-z_]+\.tmp$")


def temp_path(path: str | Path) -> Path:
    """A temporary name beside ``path`` unique to this process: ``.<name>.<pid>-<random>.tmp``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None], overwrite: bool = True) -> Path:
    """Call ``write(f)`` on a temporary binary file beside ``path``, fsync it, then rename it to ``path``.

    The new file gets the usual permissions (0666 less the umask), not mkstemp's 0600, and the
    rename is made durable by fsyncing the folder. On any error the temporary file is removed and
    an existing ``path`` is left untouched. Without ``overwrite`` the file is moved in by
    ``move_no_clobber``: an OutputExistsError if ``path`` exists, even one created meanwhile.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            move_no_clobber(Path(tmp), path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
    return path


def move_no_clobber(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst`` unless ``dst`` exists, atomically where the file system has hard links."""
    try:
        os.link(src, dst)  # fails with FileExistsError if dst exists, even one created a moment ago
    except FileExistsError:
        raise OutputExistsError(f"{dst}: already exists; pass overwrite=True to replace it") from None
    except OSError:  # no hard links here (some network or FAT file systems): check, then move
        if dst.exists():
            raise OutputExistsError(f"{dst}: already exists; pass overwrite=True to replace it") from None
        os.replace(src, dst)
    else:
        src.unlink()


def fsync_folder(folder: str | Path) -> None:
    """Make the renames into ``folder`` durable."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically (see ``atomic_write``)."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporaries (files or folders) of dead processes in ``folder`` and its subfolders.

    Only names made by ``temp_path`` and ``atomic_write`` are touched, and only when their process
    is gone (a killed run's leftovers); a live process's temporaries are kept.

    Returns:
        The paths removed.
    """
    folder = Path(folder)
    removed = []

    def sweep(parent: Path) -> None:
        for entry in list(parent.iterdir()):
            m = _TEMPORARY.match(entry.name)
            if m is None:
                if parent == folder and entry.is_dir() and not entry.is_symlink():
                    sweep(entry)  # codes/, vectors/, ...: one level down
            elif int(m["pid"]) != os.getpid() and not _alive(int(m["pid"])):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)

    sweep(folder)
    return removed


def _holder(fd: int) -> str:
    """' (process <pid>)' from a lock file's contents, when readable."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (process {text})" if text.isdigit() else ""


def _open_locked(path: Path) -> int:
    """Open and flock ``path`` (created if needed) without waiting; the descriptor of the locked file."""
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:  # the folder was removed meanwhile: make it again
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise FolderInUseError(
                f"{path.parent}: in use by another run{holder}; wait for it to end or choose another output folder"
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed this file as it released it: lock the current one


@contextmanager
def folder_lock(folder: str | Path) -> Iterator[Path]:
    """Hold ``folder/.lock`` (``flock``) while writing into ``folder``, so that one run writes there at a time.

    The folder is created if needed, and the stale temporaries of killed runs in it are removed.
    The lock is released on exit, errors included, and the kernel releases it when the process
    dies, so a lock file left by a killed run never blocks. A folder this call created is
    removed again on exit when it is still empty (a run that failed leaves no trace).

    Raises:
        FolderInUseError: another process holds the folder.
    """
    folder = Path(folder)
    created = not folder.exists()
    if fcntl is None:
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    path = folder / LOCK
    fd = _open_locked(path)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        remove_stale_temporaries(folder)
        yield folder
    finally:
        path.unlink(missing_ok=True)  # before the release: no one can lock this file after us
        os.close(fd)
        if created:
            try:
                folder.rmdir()
            except OSError:  # not empty: outputs were written
                pass


def read_utf8_lines(path: Path, error: type[AudioVQVAEError]) -> list[str]:
    """The lines of a UTF-8 text file; bytes that are not UTF-8 raise ``error`` naming the file and line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        lineno = data.count(b"\n", 0, e.start) + 1
        raise error(f"{path}:{lineno}: not UTF-8 text (byte {data[e.start]:#04x})") from None
