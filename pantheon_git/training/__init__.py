"""Learning from the nights (no torch here): mine trace notes into datasets, evaluate adapters on
held-out tasks with the night's own executors, promote only a better one.

May import: everything below it (errors, store, schema, tools, runtime, agents, review, queue, night).
"""
