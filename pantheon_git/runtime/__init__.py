"""Models: the embedded GGUF, llama.cpp with schema-constrained decoding (one at a time, or batched for
`--jobs`), OpenAI-compatible local servers, the adapter a runtime serves, and a runtime that replays
recorded completions. `base.Runtime` is the contract every runtime implements whole; `llama.runtime_for`
hands out the pooled one a models.toml entry names.

May import: errors, store, schema.
"""
