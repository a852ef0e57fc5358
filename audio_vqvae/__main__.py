"""``python -m audio_vqvae`` is the ``audio-vqvae`` command."""

from .cli import main

raise SystemExit(main())
