"""The day side of the data flow: queue specs on refs/pantheon/tasks, derive each task's status, claim
tasks across machines, and sync all of it with a remote.

May import: errors, store, schema.
"""
