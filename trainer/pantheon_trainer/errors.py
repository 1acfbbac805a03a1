"""The trainer's one error type: a refusal the CLI prints as one line."""

from __future__ import annotations


class TrainerError(Exception):
    """A one-line refusal (no GPU for QLoRA, an empty dataset, an adapter llama.cpp cannot load, …)."""
