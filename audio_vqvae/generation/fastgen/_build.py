"""Compile fastgen.c with the system C compiler on first use and load it with ctypes.

No ninja, no torch headers, no build step at install time: the shared library is built once per
source, compiler and CPU, cached, and loaded from the cache afterwards.

Environment:
    AUDIO_VQVAE_FASTGEN=0         never build or load the native generator (use the reference).
    AUDIO_VQVAE_FASTGEN_CC        the compiler (default: $CC, else cc).
    AUDIO_VQVAE_FASTGEN_CACHE     where built libraries go (default: $XDG_CACHE_HOME or ~/.cache,
                                  then audio_vqvae/generation/fastgen; the system temp folder if not writable).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("fastgen.c")
# -march=native: the vector width (AVX-512, AVX2, ...) is chosen at compile time for this CPU, which is
# why the CPU's flags are part of the cache key. No -ffast-math: the sampling compares against
# uniforms and must round like the reference. The second flag set is for compilers without -march=native.
FLAG_SETS = (
    ["-O3", "-march=native", "-std=gnu11", "-fPIC", "-shared", "-pthread"],
    ["-O3", "-std=gnu11", "-fPIC", "-shared", "-pthread"],
)


class BuildError(RuntimeError):
    """The native generator could not be compiled or loaded; the message says why in one line."""


def compiler() -> list[str]:
    return shlex.split(os.environ.get("AUDIO_VQVAE_FASTGEN_CC") or os.environ.get("CC") or "cc")


def cache_dir() -> Path:
    configured = os.environ.get("AUDIO_VQVAE_FASTGEN_CACHE")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base / "audio_vqvae" / "fastgen"
    try:
        path.mkdir(parents=True, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"audio_vqvae-fastgen-{os.getuid() if hasattr(os, 'getuid') else 0}"


def _cpu_signature() -> str:
    """The CPU's feature flags (Linux) or its name: a library built with -march=native runs only there."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def _first_error_line(text: str) -> str:
    for line in text.splitlines():
        if "error" in line.lower():
            return line.strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "no output"


def build() -> Path:
    """Return the path of the compiled library, compiling it if the cache lacks it.

    Raises:
        BuildError: no compiler, a compile error, or an unwritable cache.
    """
    if os.environ.get("AUDIO_VQVAE_FASTGEN", "1") == "0":
        raise BuildError("disabled by AUDIO_VQVAE_FASTGEN=0")
    try:
        source = SOURCE.read_bytes()
    except OSError as e:  # a wheel built without package data for *.c
        raise BuildError(f"source {SOURCE.name} missing: {e}") from e
    cc = compiler()
    errors = []
    for flags in FLAG_SETS:
        key = hashlib.sha256(
            b"\0".join([source, " ".join(cc + flags).encode(), _cpu_signature().encode(), platform.platform().encode()])
        ).hexdigest()[:16]
        out_dir = cache_dir()
        target = out_dir / f"fastgen-{key}.so"
        if target.exists():
            return target
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".fastgen-", suffix=".so", dir=out_dir)
            os.close(fd)
        except OSError as e:
            raise BuildError(f"cache folder {out_dir} is not writable: {e}") from e
        try:
            proc = subprocess.run(
                cc + flags + [str(SOURCE), "-o", tmp, "-lm"], capture_output=True, text=True, timeout=300
            )
            if proc.returncode == 0:
                os.replace(tmp, target)  # atomic: a concurrent build or load never sees half a file
                return target
            errors.append(_first_error_line(proc.stderr + proc.stdout))
        except (OSError, subprocess.SubprocessError) as e:
            errors.append(f"{' '.join(cc)}: {e}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise BuildError(errors[0])


def load() -> ctypes.CDLL:
    """Build if needed and load the library, with argument types declared."""
    path = build()
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        raise BuildError(f"cannot load {path}: {e}") from e
    lib.fastgen_vector_width.restype = ctypes.c_int
    lib.fastgen_vector_width.argtypes = []
    lib.fastgen_generate.restype = ctypes.c_int
    lib.fastgen_generate.argtypes = [ctypes.c_void_p]
    return lib
