"""pantheon-trainer: LoRA adapters from pantheon-git traces, on the runner's own GGUF base."""
