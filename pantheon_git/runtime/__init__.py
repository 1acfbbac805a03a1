"""Models: the embedded GGUF, llama.cpp with schema-constrained decoding, OpenAI-compatible local
servers, the adapter a runtime serves, and a runtime that replays recorded completions.

May import: errors, store, schema.
"""
