"""Running the command line in the test's process: its exit status and error output."""

from __future__ import annotations

from audio_vqvae.cli import main


def run(capsys, *args) -> tuple[int, str]:
    """``audio-vqvae ARGS``: the exit status and stderr (stripped); output captured before is dropped."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err.strip()


def one_line_error(capsys, command: str, *args) -> str:
    """``audio-vqvae COMMAND ARGS`` must fail with exit status 2 and one line naming the command."""
    code, err = run(capsys, command, *args)
    assert code == 2 and err.count("\n") == 0 and err.startswith(f"audio-vqvae {command}: error: "), err
    return err
