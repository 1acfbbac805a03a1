"""The night: enter night mode (local-only, enforced), pick runnable tasks, check each out in its own
worktree and run its flow node by node, each node one step commit with its trace note.

May import: errors, store, schema, tools, runtime, agents, queue, review.
"""
