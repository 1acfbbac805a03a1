"""pantheon-trainer: LoRA adapters from pantheon-git traces, on the runner's own GGUF base."""

import os

# Set before anything imports transformers or huggingface_hub (both read it once, at import): the
# trainer works on local files only and must never reach a hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
