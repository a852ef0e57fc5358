"""File-to-file jobs behind ``convert``, ``reconstruct``, ``encode`` and ``decode``.

Every job checks all its inputs (checkpoint, speakers, audio headers, ids) and claims all its
outputs before any work: an existing output is an error unless ``force``, and is then left
byte-identical. Outputs are written atomically (temporary file, then rename), and speech as it is
generated (``write_pieces``), so memory does not grow with the audio's length. A job holds its
output folder's lock (``fileio.folder_lock``) while it runs, so a second job into the same folder
is refused, and the stale temporaries of killed jobs there are removed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from ..allocator import keep_freed_memory
from ..data.manifest import read_manifest
from ..data.pairs import pair_fields
from ..data.wav_writer import WavWriter
from ..errors import ManifestError, OutputExistsError, SpeakerError, UsageError
from ..fileio import folder_lock
from ..models.vqvae import VQVAE
from . import input_ids, input_samples, iter_decode_pieces, iter_tokens
from .encode_inputs import encode_inputs
from .envelope import check_envelope
from .tokens import (
    VECTOR_FORMATS,
    TokenWriter,
    check_code_rows,
    check_formats,
    check_id,
    file_sha256,
    model_metadata,
    output_paths,
    read_metadata,
    read_tokens,
)
from .windows import BATCH_SECONDS, CHUNK_SECONDS

log = logging.getLogger("audio_vqvae.inference.jobs")


@dataclass(frozen=True)
class SpeechJob:
    """Generate ``output`` from ``source`` (audio) with ``speaker``'s voice."""

    source: Path
    speaker: str
    output: Path


def read_pairs(path: str | Path, out_dir: str | Path) -> list[SpeechJob]:
    """Read a pairs file: lines ``source_path target_speaker [output_name]``.

    Fields are separated by tabs when the line has one (so paths may hold spaces), else by
    whitespace. Blank lines and lines starting with ``#`` are skipped. A relative source path is
    relative to the pairs file's folder; the output name defaults to ``<id>_to_<speaker>.wav``
    and gets ``.wav`` when it has no extension.
    """
    path = Path(path)
    jobs = []
    for lineno, line, fields in pair_fields(path):
        if len(fields) not in (2, 3) or not all(fields):
            raise ManifestError(f"{path}:{lineno}: expected 'source_path target_speaker [output_name]', got {line!r}")
        source = Path(fields[0]) if Path(fields[0]).is_absolute() else path.parent / fields[0]
        name = fields[2] if len(fields) == 3 else None
        jobs.append(convert_job(source, fields[1], out_dir, name))
    if not jobs:
        raise ManifestError(f"{path}: no pairs")
    return jobs


def convert_job(source: str | Path, speaker: str, out_dir: str | Path, name: str | None = None) -> SpeechJob:
    """One conversion; the output is ``out_dir/<id>_to_<speaker>.wav`` unless ``name`` is given."""
    if name is None:
        name = f"{check_id(Path(source).stem)}_to_{speaker}.wav"
    elif not Path(name).suffix:
        name += ".wav"
    check_id(Path(name).stem)
    if Path(name).name != name:
        raise UsageError(f"output name {name!r} must be a file name, not a path")
    return SpeechJob(Path(source), speaker, Path(out_dir) / name)


def reconstruct_jobs(
    out_dir: str | Path, files: Sequence[str] = (), manifest: str | Path | None = None, speaker: str | None = None
) -> list[SpeechJob]:
    """Each utterance with its own speaker: from a manifest's rows, or plain files with one ``speaker``."""
    out = Path(out_dir)
    if manifest is not None:
        if files:
            raise UsageError("give either a --manifest or files, not both")
        rows = read_manifest(manifest)
        return [SpeechJob(Path(r.path), r.speaker, out / f"{check_id(r.id)}.wav") for r in rows]
    if not files:
        raise UsageError("nothing to reconstruct: give files (with --speaker) or a --manifest")
    if speaker is None:
        raise UsageError(
            "plain files carry no speaker: pass --speaker NAME (the files' speaker), "
            "or a --manifest whose rows name each utterance's speaker"
        )
    ids = input_ids(files)
    return [SpeechJob(Path(f), speaker, out / f"{uid}.wav") for f, uid in zip(files, ids)]


def claim_outputs(paths: Sequence[Path], force: bool) -> None:
    """Refuse duplicate outputs, and existing ones unless ``force``, before any work."""
    seen: set[Path] = set()
    for p in paths:
        if p in seen:
            raise UsageError(f"{p}: two inputs would write this output; give them different names")
        seen.add(p)
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OutputExistsError(f"{existing[0]}: already exists{more}; pass --force to overwrite")


@contextmanager
def lock_outputs(paths: Sequence[Path]) -> Iterator[None]:
    """Hold the lock of every folder the ``paths`` go to (``fileio.folder_lock``), in a fixed order."""
    folders = {Path(p).parent.resolve(): Path(p).parent for p in paths}  # as the user wrote them, for messages
    with ExitStack() as stack:
        for key in sorted(folders):
            stack.enter_context(folder_lock(folders[key]))
        yield


class RealTimeBar:
    """A tqdm bar over seconds of audio that shows the real-time factor (compute time / audio time)."""

    def __init__(self, total_samples: int, sample_rate: int, desc: str):
        self.rate = sample_rate
        self.start = time.perf_counter()
        self.done = 0
        self.bar = tqdm(total=round(total_samples / sample_rate, 2), unit="s", desc=desc, disable=None)

    def __call__(self, samples: int) -> None:
        self.done += samples
        self.bar.update(round(samples / self.rate, 2))
        audio = self.done / self.rate
        if audio:
            self.bar.set_postfix(rtf=f"{(time.perf_counter() - self.start) / audio:.3g}")

    def close(self) -> float:
        """Close the bar; return the real-time factor of the whole run."""
        self.bar.close()
        audio = self.done / self.rate
        return (time.perf_counter() - self.start) / audio if audio else float("nan")


def check_speakers(model: VQVAE, jobs: Sequence[SpeechJob]) -> None:
    """Resolve every job's speaker before any work; an error names the speaker (and the file, for mixed jobs)."""
    mixed = len({j.speaker for j in jobs}) > 1
    for speaker in dict.fromkeys(j.speaker for j in jobs):
        try:
            model.speaker_ids(speaker, 1)
        except SpeakerError as e:
            source = next(j.source for j in jobs if j.speaker == speaker)
            raise SpeakerError(f"{source}: {e}" if mixed else str(e)) from None


def write_pieces(
    pieces: Iterable[tuple[int, Tensor, bool]], outputs: Sequence[Path], sample_rate: int, overwrite: bool
) -> Iterator[int]:
    """Write each utterance's pieces to its output as they come (``WavWriter``, atomic); yield its index
    once its file is complete. On an error every file still open is removed; finished ones stay.

    Args:
        pieces: ``(index, (n,) samples, last)`` as ``inference.iter_decode_pieces`` yields them.
        outputs: the file of each index.
    """
    open_files: dict[int, WavWriter] = {}
    try:
        for i, piece, last in pieces:
            if i not in open_files:
                open_files[i] = WavWriter(outputs[i], sample_rate, overwrite=overwrite).__enter__()
            open_files[i].write(piece)
            if last:
                open_files.pop(i).__exit__(None, None, None)
                yield i
    except BaseException as e:
        for writer in open_files.values():
            writer.__exit__(type(e), e, e.__traceback__)
        raise


def generate_speech(
    model: VQVAE,
    jobs: Sequence[SpeechJob],
    *,
    force: bool = False,
    batch_size: int = 8,
    chunk_seconds: float = CHUNK_SECONDS,
    chunk_frames: int = 250,
    temperature: float = 1.0,
    seed: int | None = 0,
    envelope: float = 0.0,
) -> list[Path]:
    """Convert (or reconstruct) every job's source to its speaker, writing 16-bit WAVs at the model rate.

    ``envelope``: strength of the mel decoder's envelope post-filter (``inference.iter_decode_pieces``).

    Returns:
        The outputs written, in job order.
    """
    sources = [j.source for j in jobs]
    speakers = [j.speaker for j in jobs]
    check_speakers(model, jobs)
    check_envelope(model, envelope)
    n_samples = [
        input_samples(s, model.sample_rate, model.hop_length) // model.hop_length * model.hop_length for s in sources
    ]
    claim_outputs([j.output for j in jobs], force)
    ids = [str(i) for i in range(len(jobs))]
    generator = None
    if seed is not None:
        generator = torch.Generator(next(model.parameters()).device).manual_seed(seed)
    written: dict[int, Path] = {}
    keep_freed_memory()  # each pass reuses the last one's memory (allocator.py)
    with lock_outputs([j.output for j in jobs]):
        claim_outputs([j.output for j in jobs], force)  # again, now that no other job can write there
        codes = [t.codes for t in iter_tokens(model, sources, ids, chunk_seconds=chunk_seconds)]
        bar = RealTimeBar(sum(n_samples), model.sample_rate, "generate")
        try:
            pieces = iter_decode_pieces(
                model,
                codes,
                speakers,
                batch_size=batch_size,
                chunk_frames=chunk_frames,
                temperature=temperature,
                generator=generator,
                progress=bar,
                envelope=envelope,
            )
            for i in write_pieces(pieces, [j.output for j in jobs], model.sample_rate, force):
                written[i] = jobs[i].output
        finally:
            rtf = bar.close()
    log.info("%d files, %.1f s of audio, real-time factor %.3g", len(jobs), sum(n_samples) / model.sample_rate, rtf)
    return [written[i] for i in range(len(jobs))]


def encode_files(
    model: VQVAE,
    out_dir: str | Path,
    files: Sequence[str | Path] = (),
    manifest: str | Path | None = None,
    *,
    formats: Sequence[str] = ("units",),
    dedup: bool = False,
    vectors: str = "quantized",
    zerospeech_meta: dict | None = None,
    force: bool = False,
    chunk_seconds: float = CHUNK_SECONDS,
    batch_seconds: float = BATCH_SECONDS,
) -> Path:
    """Write the tokens of audio files, folders (recursive) or a manifest's rows in the chosen formats.

    Inputs and ids as ``encode_inputs.encode_inputs`` makes them (a folder's files keep their relative
    paths). All files are staged and moved into ``out_dir`` at the end (``tokens.TokenWriter``): a run
    that fails (an unreadable or NaN file found late, an interrupt) leaves ``out_dir`` as it was.

    Args:
        vectors: ``quantized`` or ``continuous``, for the ``vectors`` and ``zerospeech`` formats.
        zerospeech_meta: meta.yaml fields of the ``zerospeech`` format (author, affiliation, ...).
    Returns:
        The metadata file ``tokens.json``.
    """
    sources, ids = encode_inputs(files, manifest)
    if vectors not in ("quantized", "continuous"):
        raise UsageError(f"--vectors must be quantized or continuous, got {vectors!r}")
    formats = check_formats(formats)
    for s in sources:
        input_samples(s, model.sample_rate, model.hop_length)  # unreadable or short files fail before any work
    outputs = output_paths(out_dir, ids, formats, dedup)
    claim_outputs(outputs, force)
    latents = vectors if any(f in VECTOR_FORMATS for f in formats) else None
    metadata = model_metadata(model) | {"vectors": latents}
    start, audio = time.perf_counter(), 0
    keep_freed_memory()  # each encoder pass reuses the last one's memory (allocator.py)
    K = model.quantizer.codebook_size
    with folder_lock(out_dir), TokenWriter(out_dir, formats, dedup, K, zerospeech=zerospeech_meta) as writer:
        claim_outputs(outputs, force)  # again, now that no other job can write there
        tokens = iter_tokens(
            model, sources, ids, latents=latents, chunk_seconds=chunk_seconds, batch_seconds=batch_seconds
        )
        for t in tqdm(tokens, total=len(ids), unit="file", desc="encode", disable=None):
            writer.add(t)
            audio += t.codes.numel() * model.hop_length
        path = writer.close(metadata)
    seconds = audio / model.sample_rate
    log.info("%d files, %.1f s of audio, %.0fx real time", len(ids), seconds, seconds / (time.perf_counter() - start))
    return path


def decode_units(
    model: VQVAE,
    units: str | Path,
    speaker: str,
    out_dir: str | Path,
    *,
    durations: str | Path | None = None,
    force: bool = False,
    **options,
) -> list[Path]:
    """Speech from a units file (plain frames, or de-duplicated with durations) with one speaker.

    Writes ``out_dir/<id>.wav`` per utterance; ``options`` as in ``generate_speech``.
    """
    rows = read_tokens(units, durations)
    check_code_rows(rows, model.quantizer.codebook_size, units)
    for uid, _ in rows:
        check_id(uid)
    meta = read_metadata(Path(units) if Path(units).is_dir() else Path(units).parent)
    checkpoint = (meta or {}).get("checkpoint") or {}
    if model.checkpoint is not None and checkpoint.get("sha256"):
        if checkpoint["sha256"] != file_sha256(model.checkpoint):
            log.warning("%s: units come from another checkpoint (%s)", units, checkpoint.get("path"))
    model.speaker_ids(speaker, 1)
    outputs = [Path(out_dir) / f"{uid}.wav" for uid, _ in rows]
    claim_outputs(outputs, force)
    check_envelope(model, options.get("envelope", 0.0))
    seed = options.pop("seed", 0)
    generator = None if seed is None else torch.Generator(next(model.parameters()).device).manual_seed(seed)
    keep_freed_memory()  # each chunk reuses the last one's memory (allocator.py)
    with folder_lock(out_dir):
        claim_outputs(outputs, force)  # again, now that no other job can write there
        bar = RealTimeBar(sum(c.numel() for _, c in rows) * model.hop_length, model.sample_rate, "generate")
        try:
            codes = [c for _, c in rows]
            pieces = iter_decode_pieces(model, codes, speaker, generator=generator, progress=bar, **options)
            for _ in write_pieces(pieces, outputs, model.sample_rate, force):
                pass
        finally:
            bar.close()
    return outputs
