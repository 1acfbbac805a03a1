"""The morning: the gate's decision from votes, the report, merging passing run branches, and the
pre-push guard of protected branches.

May import: errors, store, schema, queue.
"""
