"""Learning from the nights (no torch here): mine trace notes into datasets, evaluate adapters on
held-out tasks with the night's own executors, promote only a better one.

May import: everything below it (errors, store, schema, tools, runtime, agents, review, queue, night).
"""

# The share of a night's training tasks held out of the LoRA to choose the step to keep (the trainer's
# split_validation): the held-out half of the queue stays for the promotion gate, untouched.
VALIDATION_SHARE = 0.2
