"""The night runner: claim a task, run its flow node by node in a worktree, a commit and note per step."""
