"""Learning from the morning: a person's fix of a task the night failed, turned into a demonstration.

A fix is either a commit a person added on top of a failed run branch (`pantheon/<id>/<attempt>`), or a
commit on the base branch whose message carries the trailer `Pantheon-Fixes: <task id>`. Its diff becomes
what the implementer would have had to write: for each changed file a `view` then `edit` calls
(SEARCH/REPLACE hunks) or a `create`, then `finish`, each call rendered in the agent's own call format
and each result the tool's real output. A demonstration is kept only once verified: replayed by the
real tools in a scratch worktree at the commit the fix starts from, it must give exactly the fix's tree,
and the task's acceptance checks must pass there in the sandbox. A fix that cannot be written with the
agent's tools (a deleted or binary file) or that does not verify is reported and left out.

A fix that only fills in a stub's body (agents/stubs.py) is the move the implementer makes there, a code
completion from the file itself: its demonstration is a prompt-completion row (the file up to the stub's
head, then the fix's body), verified the same way, by replaying the edit the loop would make of it.
"""

from __future__ import annotations

import difflib
import enum
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from pantheon_git.agents.calls import CallFormat, render
from pantheon_git.agents.loop import agent_header
from pantheon_git.agents.spec import AgentSpec
from pantheon_git.agents.stubs import Stub, find_stub, kept_body
from pantheon_git.errors import PantheonError
from pantheon_git.night.worktrees import scratch_worktree
from pantheon_git.queue.status import Status, run_outcome
from pantheon_git.queue.tasks import load_specs
from pantheon_git.schema.spec import Spec
from pantheon_git.store.git import lookup
from pantheon_git.store.redact import redact
from pantheon_git.store.runs import parse_trailers, run_heads
from pantheon_git.store.votes import read_votes
from pantheon_git.store.worktree import open_worktree, stage_all
from pantheon_git.tools.builtin import TOOLS, ToolContext
from pantheon_git.tools.paths import ToolError
from pantheon_git.tools.sandbox import configured_sandbox, require_sandbox

FIXES_TRAILER = "Pantheon-Fixes"
MAX_BASE_COMMITS = 1000  # how far back the base branch is searched for fix trailers
CHECK_TIMEOUT_S = 120


class FixSource(enum.StrEnum):
    RUN_BRANCH = "run-branch"  # a person's commit on top of a failed run branch
    TRAILER = "trailer"  # a base-branch commit with `Pantheon-Fixes: <task id>`


@dataclass(slots=True)
class Fix:
    task: str
    commit: pygit2.Oid  # the fix (its tree is what the demonstration must reproduce)
    start: pygit2.Oid  # the commit the demonstration starts from
    source: FixSource


@dataclass(slots=True)
class Demonstration:
    fix: Fix
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    row: dict[str, Any] | None = None  # the chat row, once verified
    problem: str | None = None  # why it was left out


def _is_step(commit: pygit2.Commit) -> bool:
    return "Pantheon-Step" in parse_trailers(commit.message)


def find_fixes(repo: pygit2.Repository, base_ref: str = "HEAD") -> list[Fix]:
    """Every fix in the repository: on failed run branches, then trailer commits on `base_ref`."""
    found: list[Fix] = []
    for task_id, attempts in sorted(run_heads(repo).items()):
        for _attempt, head in sorted(attempts.items()):
            last = lookup(repo, head, pygit2.Commit)
            if _is_step(last):
                continue  # the night's own head: nobody fixed this run
            people: list[pygit2.Commit] = []
            commit: pygit2.Commit | None = last
            while commit is not None and not _is_step(commit):
                people.append(commit)
                commit = commit.parents[0] if commit.parents else None
            if commit is None:
                continue  # no step at all: not a run branch the night made
            if run_outcome(parse_trailers(commit.message), read_votes(repo, commit.id)) != Status.FAILED:
                continue
            first_step = commit
            while first_step.parents and _is_step(first_step.parents[0]):
                first_step = first_step.parents[0]
            if not first_step.parents:
                continue
            # From the task's base: the demonstration does the whole job, not just the repair.
            found.append(Fix(task_id, head, first_step.parents[0].id, FixSource.RUN_BRANCH))
    try:
        tip = repo.revparse_single(base_ref).peel(pygit2.Commit)
    except (KeyError, ValueError):
        return found
    for count, commit in enumerate(repo.walk(tip.id, pygit2.enums.SortMode.TOPOLOGICAL)):
        if count >= MAX_BASE_COMMITS:
            break
        fixed = parse_trailers(commit.message).get(FIXES_TRAILER)
        if fixed and commit.parents:
            found.append(Fix(fixed, commit.id, commit.parents[0].id, FixSource.TRAILER))
    return found


def _hunks(old: str, new: str) -> Iterator[tuple[str, str]]:
    """SEARCH/REPLACE pairs turning `old` into `new`, bottom-up (so each SEARCH is still in the text
    when its turn comes), each widened by context lines until its SEARCH occurs exactly once."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    opcodes = [
        op for op in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes() if op[0] != "equal"
    ]
    current = a[:]
    for _, i1, i2, j1, j2 in reversed(opcodes):
        text = "".join(current)
        for context in range(0, len(current) + 1):
            low, high = max(0, i1 - context), min(len(current), i2 + context)
            search = "".join(current[low:high])
            if search.strip() and text.count(search) == 1:
                break
        else:
            raise ValueError("no unique SEARCH text for a hunk")
        replace = "".join(current[low:i1] + b[j1:j2] + current[i2:high])
        current[low:high] = current[low:i1] + b[j1:j2] + current[i2:high]
        yield search, replace


def plan_calls(
    repo: pygit2.Repository, fix: Fix, whole_files: bool = False
) -> list[tuple[str, dict[str, Any]]]:
    """The tool calls (name, args) that turn the start tree into the fix's tree; ValueError if the agent's
    tools cannot (a deleted, renamed-away or binary file)."""
    start, done = lookup(repo, fix.start, pygit2.Commit), lookup(repo, fix.commit, pygit2.Commit)
    diff = repo.diff(start, done)
    calls: list[tuple[str, dict[str, Any]]] = []
    for delta in diff.deltas:
        if delta.is_binary:
            raise ValueError(f"{delta.new_file.path}: binary; no tool writes binary files")
        status = delta.status_char()
        if status == "D":
            raise ValueError(f"{delta.old_file.path}: deleted; no tool of the agent deletes files")
        if status == "R":
            raise ValueError(f"{delta.old_file.path}: renamed; no tool of the agent renames files")
        path = delta.new_file.path
        new = lookup(repo, delta.new_file.id, pygit2.Blob).data.decode("utf-8")
        if status == "A":
            calls.append(("create", {"path": path, "content": new}))
            continue
        old = lookup(repo, delta.old_file.id, pygit2.Blob).data.decode("utf-8")
        calls.append(("view", {"path": path, "start": 1, "lines": 100}))
        if whole_files:
            calls.append(("edit", {"path": path, "search": old, "replace": new}))
        else:
            calls.extend(("edit", {"path": path, "search": s, "replace": r}) for s, r in _hunks(old, new))
    summary = done.message.strip().splitlines()[0][:600] if done.message.strip() else "fixed"
    calls.append(("finish", {"summary": summary}))
    return calls


def stub_fill(repo: pygit2.Repository, fix: Fix) -> tuple[str, Stub, str] | None:
    """(path, stub, body) when the fix's whole change is a body written into the first stub of one
    Python file (what the implementer's first move there completes), else None."""
    diff = repo.diff(lookup(repo, fix.start, pygit2.Commit), lookup(repo, fix.commit, pygit2.Commit))
    deltas = list(diff.deltas)
    if len(deltas) != 1 or deltas[0].status_char() != "M":
        return None
    delta = deltas[0]
    if delta.is_binary or not delta.new_file.path.endswith(".py"):
        return None
    try:
        old = lookup(repo, delta.old_file.id, pygit2.Blob).data.decode("utf-8")
        new = lookup(repo, delta.new_file.id, pygit2.Blob).data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    stub = find_stub(old)
    if stub is None or not old.startswith(stub.before + stub.whole):
        return None
    after = old[len(stub.before) + len(stub.whole) :]
    start = stub.before + stub.head
    if not (new.startswith(start) and new.endswith(after)) or len(new) < len(start) + len(after):
        return None
    body = new[len(start) : len(new) - len(after)]
    lines = body.splitlines(keepends=True)
    if not body.strip() or any(line.strip() and line[:1] not in " \t" for line in lines):
        return None  # not only an indented body: the function's head or its neighbours changed too
    return delta.new_file.path, stub, body


def task_of(spec: Spec) -> dict[str, Any]:
    """The task as the night's executors hand it to an agent."""
    return {"title": spec.title, "scope": spec.scope, "acceptance": spec.acceptance, "files": spec.files}


def _replay(
    repo: pygit2.Repository,
    root: Path,
    agent: AgentSpec,
    spec: Spec,
    fix: Fix,
    calls: list[tuple[str, dict[str, Any]]],
) -> dict[str, Any]:
    """Run the calls with the real tools at the fix's start; the chat row, or PantheonError why not."""
    call_format = CallFormat(agent.call_format)
    label = f"fix/{fix.task}/{str(fix.commit)[:12]}"
    with scratch_worktree(repo, root, fix.start, label) as workdir:
        sandbox = configured_sandbox(root)
        context = ToolContext(worktree=workdir, sandbox=sandbox)
        header = agent_header(agent, context, task_of(spec), {}, call_format=call_format)
        record: dict[str, Any] = {"prompt": header, "turns": []}
        for number, (name, args) in enumerate(calls, start=1):
            model = agent.output if name == "finish" else TOOLS[name].args
            turn: dict[str, Any] = {"n": number, "completion": render(name, args, model, call_format)}
            if name != "finish":
                try:
                    turn["result"] = redact(TOOLS[name].function(model.model_validate(args), context))
                except ToolError as refused:
                    raise PantheonError(f"replay: {name} {args.get('path')}: {refused}") from None
            record["turns"].append(turn)
        # `git add -A` + `write-tree` by libgit2: the git command line would run what the tree configures.
        tree = stage_all(open_worktree(workdir))
        wanted = lookup(repo, fix.commit, pygit2.Commit).tree_id
        if tree != wanted:
            raise PantheonError(f"replay: the tree is {str(tree)[:12]}, the fix's is {str(wanted)[:12]}")
        for command in spec.acceptance:
            check = sandbox(command, workdir, dict(os.environ), CHECK_TIMEOUT_S)
            if check.exit_code != 0:
                raise PantheonError(f"replay: acceptance `{command}` exits {check.exit_code}")
    return record


def demonstrate(repo: pygit2.Repository, root: Path, agent: AgentSpec, spec: Spec, fix: Fix) -> Demonstration:
    """The fix as a verified demonstration row (or the reason it is not one)."""
    from pantheon_git.training.dataset import messages_of

    require_sandbox()  # the acceptance checks run in it, or nothing is verified
    shown = Demonstration(fix)
    missing = {"view", "edit", "create"} - set(agent.tools)
    if missing:
        shown.problem = f"agent {agent.name} lacks the tools {', '.join(sorted(missing))}"
        return shown
    filled = stub_fill(repo, fix)
    if filled is not None:
        path, stub, written = filled
        body = kept_body(written)  # as the loop keeps a completed body: the edit it makes is replayed
        calls = [("edit", {"path": path, "search": stub.whole, "replace": stub.head + body})]
        try:
            _replay(repo, root, agent, spec, fix, calls)
        except PantheonError:
            pass  # the body does not reproduce the fix as an edit (trailing text, say): a chat row
        else:
            shown.calls = calls
            shown.row = {
                "prompt": stub.prefix,
                "completion": body,
                "meta": {
                    "task": fix.task,
                    "commit": str(fix.commit),
                    "start": str(fix.start),
                    "source": f"fix:{fix.source}",
                    "stub": {"path": path, "function": stub.name},
                },
            }
            return shown
    last_problem = ""
    # Hunk-wise edits first (what a model should learn to write); a hunk that leaves the file invalid
    # Python half-way is refused by edit, so the whole file in one edit is the fallback.
    for whole in (False, True):
        try:
            shown.calls = plan_calls(repo, fix, whole_files=whole)
            record = _replay(repo, root, agent, spec, fix, shown.calls)
        except (ValueError, UnicodeDecodeError) as unwritable:
            shown.problem = str(unwritable)
            return shown
        except PantheonError as failed:
            last_problem = str(failed)
            continue
        shown.row = {
            "messages": messages_of(record),
            "meta": {
                "task": fix.task,
                "commit": str(fix.commit),
                "start": str(fix.start),
                "source": f"fix:{fix.source}",
            },
        }
        shown.problem = None
        return shown
    shown.problem = last_problem
    return shown


def demonstrations(
    repo: pygit2.Repository, root: Path, agent: AgentSpec, held_out: Any
) -> list[Demonstration]:
    """Every fix of a queued task not held out (`held_out(task id)`), demonstrated and verified."""
    specs = {spec.id: spec for spec in load_specs(repo)}
    shown: list[Demonstration] = []
    for fix in find_fixes(repo):
        if held_out(fix.task):
            continue  # a held-out task's solution must never reach training
        spec = specs.get(fix.task)
        if spec is None:
            shown.append(Demonstration(fix, problem=f"task {fix.task}: not in the queue"))
            continue
        shown.append(demonstrate(repo, root, agent, spec, fix))
    return shown
