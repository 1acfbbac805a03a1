"""Built-in tools: the only way an agent changes anything, each confined to the task's worktree."""
