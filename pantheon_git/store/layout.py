"""Where pantheon-git keeps its data in git: every ref name is built here and nowhere else."""

from __future__ import annotations

import re

TASKS_REF = "refs/pantheon/tasks"
CLAIMS_PREFIX = "refs/pantheon/claims/"
RUN_BRANCH_PREFIX = "refs/heads/pantheon/"
DATASETS_PREFIX = "refs/pantheon/datasets/"
ADAPTERS_PREFIX = "refs/pantheon/adapters/"

TRACES_NOTES = "refs/notes/pantheon/traces"
VOTES_NOTES = "refs/notes/pantheon/votes"
# Large trace payloads (full prompts, logs): each blob is a note on itself, so it stays reachable
# (gc keeps it, push carries it) and two machines' copies merge without conflict.
PAYLOADS_NOTES = "refs/notes/pantheon/payloads"
# Evaluations of adapters on held-out tasks, one note per adapter commit.
EVALS_NOTES = "refs/notes/pantheon/evals"
# Votes cast after a step, a line each, that `git log` shows under it (notes.displayRef); the step's own
# report line is its commit's Pantheon-Log trailer, the JSON stays in traces.
LOG_NOTES = "refs/notes/pantheon/log"
NOTES_REFS = (TRACES_NOTES, VOTES_NOTES, PAYLOADS_NOTES, EVALS_NOTES, LOG_NOTES)

# Directory in the tasks tree holding one cancellation record per cancelled task.
CANCELLED_DIR = "cancelled"

TASK_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,39}$")
# Names under refs/pantheon/ and refs/heads/pantheon/ that a task id must not shadow.
RESERVED_IDS = frozenset({"tasks", "claims", "datasets", "adapters", "remotes", "cancelled"})


def claim_ref(task_id: str) -> str:
    return CLAIMS_PREFIX + task_id


def run_branch(task_id: str, attempt: int) -> str:
    """Full ref name of a run branch, e.g. refs/heads/pantheon/k3f9x2ab/1."""
    return f"{RUN_BRANCH_PREFIX}{task_id}/{attempt}"


def parse_run_branch(ref: str) -> tuple[str, int] | None:
    """(task id, attempt) of a run branch ref, or None if the ref is not one."""
    if not ref.startswith(RUN_BRANCH_PREFIX):
        return None
    rest = ref[len(RUN_BRANCH_PREFIX) :].split("/")
    if len(rest) != 2 or not rest[1].isdigit():
        return None
    return rest[0], int(rest[1])


def spec_path(task_id: str) -> str:
    """Path of a spec inside the tasks tree."""
    return f"{task_id}.toml"


def notes_name(notes_ref: str) -> str:
    """The name git uses for a notes ref in config keys and `--ref`: refs/notes/ stripped."""
    return notes_ref.removeprefix("refs/notes/")
