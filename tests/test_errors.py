"""User mistakes are one line and exit status 2; a bug keeps its traceback; --debug shows both."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from trained_tiny import write_tone

from audio_vqvae import errors
from audio_vqvae.checkpoint import save_checkpoint
from audio_vqvae.cli import build_parser, main
from audio_vqvae.config import ConfigError, experiment_config, to_dict
from audio_vqvae.errors import AudioVQVAEError
from audio_vqvae.models.vqvae import VQVAE

IMPOSSIBLE_KERNELS = "model.encoder.kernel_sizes=[1,1,1,1,1,1]"  # shorter than the strides (2 each)


@pytest.fixture
def untrained(tmp_path) -> Path:
    """A checkpoint of a fresh tiny model (no training): enough for the checks made before any work."""
    cfg = experiment_config("tiny")
    torch.manual_seed(0)
    state = {"config": to_dict(cfg), "model": VQVAE.from_config(cfg.model).state_dict(), "speakers": ["a", "b"]}
    return save_checkpoint(tmp_path / "c.pt", state)


def one_line_error(capsys, *args) -> str:
    """Run the CLI in this process; its error must be one line, no traceback, exit status 2."""
    capsys.readouterr()
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and err.startswith(f"audio-vqvae {args[0]}: error: "), err
    return err


def test_every_user_error_is_an_audio_vqvae_error_and_keeps_its_builtin_base():
    from audio_vqvae.checkpoint import CheckpointError
    from audio_vqvae.data.alignment import AlignmentError
    from audio_vqvae.data.audio import AudioError
    from audio_vqvae.data.manifest import ManifestError
    from audio_vqvae.fileio import FolderInUseError
    from audio_vqvae.inference.tokens import TokenFormatError
    from audio_vqvae.models.vqvae import SpeakerError
    from audio_vqvae.training import TrainingError

    for kind, builtin in [
        (ConfigError, ValueError),
        (ManifestError, ValueError),
        (AudioError, ValueError),
        (AlignmentError, ValueError),
        (TokenFormatError, ValueError),
        (SpeakerError, ValueError),
        (errors.UsageError, ValueError),
        (errors.CorpusError, ValueError),
        (errors.EvaluationError, ValueError),
        (errors.InputNotFoundError, FileNotFoundError),
        (errors.OutputExistsError, FileExistsError),
        (CheckpointError, RuntimeError),
        (TrainingError, RuntimeError),
        (FolderInUseError, RuntimeError),
    ]:
        assert issubclass(kind, AudioVQVAEError) and issubclass(kind, builtin), kind
    assert not issubclass(ValueError, AudioVQVAEError) and not issubclass(FileNotFoundError, AudioVQVAEError)


def test_missing_inputs_and_existing_outputs_are_package_errors(tmp_path):
    from audio_vqvae.data.audio import save_audio
    from audio_vqvae.inference.jobs import claim_outputs, read_pairs
    from audio_vqvae.inference.tokens import read_tokens

    with pytest.raises(errors.InputNotFoundError, match="pairs file not found"):
        read_pairs(tmp_path / "pairs.txt", tmp_path / "out")
    with pytest.raises(errors.InputNotFoundError, match="units file not found"):
        read_tokens(tmp_path / "units.txt")
    existing = write_tone(tmp_path / "x.wav", 0.01)
    with pytest.raises(errors.OutputExistsError, match="--force"):
        claim_outputs([existing], force=False)
    with pytest.raises(errors.OutputExistsError, match="overwrite=True"):
        save_audio(existing, torch.zeros(64), 16000)
    not_utf8 = tmp_path / "latin1.txt"
    not_utf8.write_bytes(b"x.wav\tb\nna\xefve.wav\tb\n")  # a UnicodeDecodeError (a ValueError) before
    with pytest.raises(errors.ManifestError, match=r"latin1\.txt:2: not UTF-8"):
        read_pairs(not_utf8, tmp_path / "out")


def test_user_mistakes_are_one_line_with_exit_status_2(untrained, tmp_path, capsys):
    err = one_line_error(
        capsys, "convert", "--ckpt", untrained, "--out", tmp_path / "o", "--pairs", tmp_path / "no.txt"
    )
    assert f"{tmp_path / 'no.txt'}: pairs file not found" in err
    source = write_tone(tmp_path / "in" / "x.wav", 0.05)
    taken = tmp_path / "o" / "x_to_a.wav"
    taken.parent.mkdir()
    taken.write_bytes(b"mine")
    err = one_line_error(capsys, "convert", "--ckpt", untrained, "--out", tmp_path / "o", "--speaker", "a", source)
    assert str(taken) in err and "--force" in err and taken.read_bytes() == b"mine"
    err = one_line_error(capsys, "convert", "--ckpt", untrained, "--out", tmp_path / "o", "--speaker", "a")
    assert "give audio files with --speaker, or --pairs FILE" in err
    folder = tmp_path / "o" / "x_to_b.wav"
    folder.mkdir()  # --force cannot put a file there: an IsADirectoryError with its traceback before
    err = one_line_error(
        capsys, "convert", "--ckpt", untrained, "--out", tmp_path / "o", "--speaker", "b", "--force", source
    )
    assert f"{folder}: is a folder" in err


def test_sizes_no_module_can_have_are_one_line_errors_naming_the_config_section(tmp_path, capsys):
    err = one_line_error(capsys, "info", "--preset", "tiny", "--set", IMPOSSIBLE_KERNELS)
    assert "config section 'model.encoder'" in err and "kernel_sizes" in err, err
    err = one_line_error(capsys, "info", "--preset", "tiny", "--set", "model.decoder.gate_channels=3")
    assert "config section 'model.decoder'" in err and "gate_channels" in err, err
    # train finds them before it reads the data folder (none here) or makes the experiment folder
    args = ["--data", tmp_path / "nowhere", "--out", tmp_path / "exp", "--preset", "tiny", "--set", IMPOSSIBLE_KERNELS]
    err = one_line_error(capsys, "train", *args)
    assert "config section 'model.encoder'" in err and not (tmp_path / "exp").exists(), err
    with pytest.raises(ConfigError, match="model.encoder"):  # the library raises it too, and it is a ValueError
        VQVAE.from_config(experiment_config("tiny", {"model": {"encoder": {"kernel_sizes": [1] * 6}}}).model)


def test_bad_sizes_and_lengths_of_options_are_refused_by_the_parser(tmp_path, capsys):
    command = ["convert", "--ckpt", "c.pt", "--out", str(tmp_path), "--speaker", "s", "x.wav"]
    for option, bad in [
        ("--batch-size", "0"),  # a ValueError deep in inference before
        ("--chunk-frames", "-3"),
        ("--chunk-seconds", "nan"),  # int(nan) raised in windows.py before
        ("--chunk-seconds", "0"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args([*command, option, bad])
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert exit_.value.code == 2 and option in err and repr(bad) in err, (option, err)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["encode", "--ckpt", "c.pt", "--out", str(tmp_path), "--batch-seconds", "-1"])
    args = build_parser().parse_args([*command, "--batch-size", "3", "--chunk-seconds", "0.5"])
    assert (args.batch_size, args.chunk_seconds) == (3, 0.5)


def test_bad_counts_and_crops_of_evaluate_are_refused_by_the_parser(capsys):
    conversion = ["evaluate", "conversion", "--ckpt", "c.pt", "--data", "d"]
    for command, option, bad in [
        (conversion, "--max-seconds", "0.01"),  # a ValueError inside metrics/ before
        (conversion, "--max-seconds", "inf"),
        (conversion, "--n-sources", "0"),
        (conversion, "--real-per-speaker", "-1"),
        (conversion, "--reconstructions", "-1"),
        (["evaluate", "units", "--ckpt", "c.pt", "--data", "d"], "--max-utterances", "0"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args([*command, option, bad])
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert exit_.value.code == 2 and option in err and repr(bad) in err, (option, err)
    args = build_parser().parse_args([*conversion, "--max-seconds", "0.1", "--reconstructions", "0"])
    assert (args.max_seconds, args.reconstructions) == (0.1, 0)


def test_a_bug_keeps_its_traceback(untrained, tmp_path, capsys, monkeypatch):
    import audio_vqvae.inference.jobs

    def broken(*args, **kwargs):
        raise ValueError("a bug, not the user's mistake")

    monkeypatch.setattr(audio_vqvae.inference.jobs, "read_pairs", broken)
    with pytest.raises(ValueError, match="a bug"):  # not swallowed into "error: ..." and exit status 2
        main(["convert", "--ckpt", str(untrained), "--out", str(tmp_path / "o"), "--pairs", str(tmp_path / "p.txt")])

    def missing(self):
        raise FileNotFoundError("/tmp/some/internal/file")

    monkeypatch.setattr(VQVAE, "describe", missing)
    with pytest.raises(FileNotFoundError, match="internal"):
        main(["info", "--preset", "tiny"])

    import audio_vqvae.data.synthetic

    monkeypatch.setattr(audio_vqvae.data.synthetic, "synthesize_corpus", broken)
    with pytest.raises(ValueError, match="a bug"):  # prepare's own one-line handler lets it through too
        main(["prepare", "synthetic", str(tmp_path / "corpus")])


def test_a_bug_shows_its_traceback_from_the_command_line():
    code = (
        "from audio_vqvae.models.vqvae import VQVAE\n"
        "from audio_vqvae.cli import main\n"
        "VQVAE.describe = lambda self: int('hop')\n"  # a ValueError from a bug: one line, exit status 2 before
        "raise SystemExit(main(['info', '--preset', 'tiny']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" in out.stderr and "ValueError: invalid literal" in out.stderr, out.stderr


@pytest.mark.parametrize("where", ["before", "after", "environment"])
def test_debug_shows_the_traceback_of_a_user_error(where, capsys, monkeypatch):
    monkeypatch.delenv(errors.DEBUG_VARIABLE, raising=False)
    args = ["info", "--preset", "tiny", "--set", IMPOSSIBLE_KERNELS]
    if where == "before":
        args = ["--debug", *args]
    elif where == "after":
        args = [*args, "--debug"]
    else:
        monkeypatch.setenv(errors.DEBUG_VARIABLE, "1")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "ValueError: encoder kernel_sizes" in err  # the module's error, shown as the cause
    assert err.strip().splitlines()[-1].startswith("audio-vqvae info: error: config section 'model.encoder'")


def test_debug_reaches_prepare_and_off_values_of_the_variable_keep_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(errors.DEBUG_VARIABLE, raising=False)
    for args in (["--debug", "prepare", "folder"], ["prepare", "folder", "--debug"]):
        assert main([*args, str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err
        assert "Traceback" in err and err.strip().splitlines()[-1].endswith("corpus folder or CSV not found"), err
    for off in ("", "0", "false", "off"):
        monkeypatch.setenv(errors.DEBUG_VARIABLE, off)
        assert not errors.debug_requested()
        one_line_error(capsys, "info", "--preset", "tiny", "--set", IMPOSSIBLE_KERNELS)
    monkeypatch.setenv(errors.DEBUG_VARIABLE, "yes")
    assert errors.debug_requested()


def test_help_names_the_debug_flag_and_variable(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--debug" in out and "AUDIO_VQVAE_DEBUG=1" in out and "exit status 2" in out
