"""What a model may do to a worktree (read, write, search, run), confined to it, and the sandbox that
every command of a night runs in (acceptance checks, the model's `run`).

May import: errors, store (the runner's one open of worktree files, store/worktree.py).
"""
