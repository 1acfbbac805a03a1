"""The trainer's one error type: a refusal the CLI prints as one line."""

from __future__ import annotations

from pantheon_git.errors import PantheonError


class TrainerError(PantheonError):
    """A one-line refusal (no GPU for QLoRA, an empty dataset, an adapter llama.cpp cannot load, …); a
    PantheonError, so `git pantheon train` and the night report it as their own."""
