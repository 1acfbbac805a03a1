"""Learning from the nights (no torch here): mine trace notes into datasets, evaluate adapters on
held-out tasks with the night's own executors, promote only a better one. `finetune.py` is the one way
into the trainer package, with the one set of LoRA settings.

May import: everything below it (errors, store, schema, tools, runtime, agents, review, queue, night).
"""
