"""Mine trace and vote notes into a per-agent chat dataset, recorded as a commit on
refs/pantheon/datasets/<agent>.

Rows are `{"messages": [...]}` in chat form (TRL's SFTTrainer loads them unchanged): the prompt header
as the user turn, each tool call exactly as the model produced it as an assistant turn, each tool result
as a tool turn. A code completion at a stub (agents/stubs.py) was prompted with the file itself, not the
header, so it is a row of its own in prompt-completion form (`{"prompt": file up to the stub's head,
"completion": the body}`, TRL's other standard form): an adapter learns a body from exactly the prompt
the runner completes it from. A record whose every turn was such a completion gives no chat row.
Steps of runs that passed the gate (or were merged) are training rows; steps of failed
runs go to negatives.jsonl. Rows are deduplicated. The split is fixed by a hash of the task id (a
training half and a held-out half): a held-out task's steps go to holdout.jsonl only, never to train or
negatives, and its morning fixes are never turned into demonstrations, so training never sees a held-out
task's prompt, solution or trace. The manifest writes the rule, the held-out task ids (a cancelled one is
judged on no more, its steps still held out), every source commit and a content hash. `recorded` reads
a dataset back: every reader of those files goes through it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pygit2

from pantheon_git.errors import PantheonError, warn_skipped
from pantheon_git.queue.status import Status, run_outcome
from pantheon_git.queue.tasks import cancelled_ids, load_specs, queue_tree
from pantheon_git.store.git import append_commit, build_tree, lookup, parse_oid, ref_commit
from pantheon_git.store.layout import DATASETS_PREFIX, PAYLOADS_NOTES, TRACES_NOTES
from pantheon_git.store.notes import iter_notes, json_object, note_data
from pantheon_git.store.runs import parse_trailers, run_heads
from pantheon_git.store.votes import read_votes

HOLDOUT_PERCENT = 50  # halves: one to learn from, one that only ever measures
SPLIT_RULE = (
    f"int(sha256(task id as UTF-8).hexdigest(), 16) % 100 < {HOLDOUT_PERCENT}: held out; else: training"
)


def holdout(task_id: str) -> bool:
    """Deterministic split by task: the same task is always on the same side, on every machine."""
    return int(hashlib.sha256(task_id.encode()).hexdigest(), 16) % 100 < HOLDOUT_PERCENT


def messages_of(agent_trace: dict[str, Any]) -> list[dict[str, str]]:
    """A loop's record as chat messages: the calls verbatim, the results as tool turns."""
    messages = [{"role": "user", "content": agent_trace["prompt"]}]
    for turn in agent_trace.get("turns", []):
        messages.append({"role": "assistant", "content": turn["completion"]})
        if "result" in turn:
            messages.append({"role": "tool", "content": turn["result"]})
    return messages


def rows_of(agent_trace: dict[str, Any]) -> list[dict[str, Any]]:
    """A loop's record as training rows: one completion row per code completion at a stub, and the chat
    row when the model also made calls from the header."""
    turns = agent_trace.get("turns", [])
    rows: list[dict[str, Any]] = [
        {"prompt": turn["stub"]["prompt"], "completion": turn["stub"]["body"]}
        for turn in turns
        if isinstance(turn.get("stub"), dict) and "body" in turn["stub"]
    ]
    if any(not isinstance(turn.get("stub"), dict) for turn in turns):
        rows.append({"messages": messages_of(agent_trace)})
    return rows


@dataclass(slots=True)
class Dataset:
    agent: str
    train: list[dict[str, Any]] = field(default_factory=list)
    holdout: list[dict[str, Any]] = field(default_factory=list)
    negatives: list[dict[str, Any]] = field(default_factory=list)
    sources: list[pygit2.Oid] = field(default_factory=list)  # the step and fix commits of the rows
    holdout_tasks: list[str] = field(default_factory=list)
    fixes: int = 0  # rows of train that are morning fixes (demonstrations), not the night's own attempts
    skipped_fixes: list[str] = field(default_factory=list)  # "<commit>: <why>" of fixes not used

    def add_holdout_task(self, task: str) -> None:
        if task not in self.holdout_tasks:
            self.holdout_tasks.append(task)


def mine(repo: pygit2.Repository, agent: str) -> Dataset:
    """Every step of `agent` in the traces, sorted into train, holdout and negatives (deduplicated)."""
    outcomes: dict[str, Status] = {}
    for task_id, attempts in run_heads(repo).items():
        for attempt, head in attempts.items():
            commit = lookup(repo, head, pygit2.Commit)
            outcomes[f"{task_id}/{attempt}"] = run_outcome(
                parse_trailers(commit.message), read_votes(repo, head)
            )
    payloads = dict(iter_notes(repo, PAYLOADS_NOTES))
    data = Dataset(agent)
    tree = queue_tree(repo)
    # A cancelled task is one a person took back (a wrong spec, a duplicate): no adapter is judged on it.
    # Its steps still stay out of training when it is on the held-out side: the split never moves.
    cancelled = cancelled_ids(tree, repo)
    for spec in load_specs(repo, tree):
        if spec.id is not None and holdout(spec.id) and spec.id not in cancelled:
            data.add_holdout_task(spec.id)  # evaluated on, whether or not the night ever passed it
    seen: set[str] = set()
    for commit_id, blob_id in sorted(iter_notes(repo, TRACES_NOTES)):
        note = json_object(note_data(repo, blob_id, TRACES_NOTES), f"{TRACES_NOTES}:{commit_id}")
        if note is None or note.get("agent") != agent or not isinstance(note.get("agent_trace"), dict):
            continue
        reference = note["agent_trace"]
        payload = parse_oid(str(reference.get("$blob", "")))  # JSON keeps ids as hex
        if payload is None or payload not in payloads:
            continue
        record = json_object(note_data(repo, payload, PAYLOADS_NOTES), f"{PAYLOADS_NOTES} {payload}")
        if record is None or not record.get("turns"):
            continue
        task = str(note.get("task", ""))
        outcome = outcomes.get(f"{task}/{note.get('attempt')}")
        passed = outcome in (Status.PASSED, Status.MERGED) and bool(note.get("ok"))
        if holdout(task) and task not in cancelled:
            data.add_holdout_task(task)
        try:
            rows = rows_of(record)
        except (KeyError, TypeError, AttributeError) as bad:  # a record of another shape: no rows
            warn_skipped(f"{PAYLOADS_NOTES} {payload}", f"not a loop record ({type(bad).__name__}: {bad})")
            continue
        for row in rows:
            key = hashlib.sha256(json.dumps(row, sort_keys=True).encode()).hexdigest()
            if key in seen:
                continue
            seen.add(key)
            meta = {"task": task, "commit": str(commit_id), "ok": bool(note.get("ok")), "source": "attempt"}
            row["meta"] = meta
            if holdout(task):
                # Held out: whatever its outcome, nothing of it may reach training (negatives included).
                if passed:
                    data.holdout.append(row)
                    data.sources.append(commit_id)
                continue
            if passed:
                data.train.append(row)
            elif outcome == Status.FAILED or not note.get("ok"):
                data.negatives.append(row)
            else:
                continue  # still running: neither good nor bad yet
            data.sources.append(commit_id)
    return data


def add_demonstrations(data: Dataset, shown: list[Any]) -> None:
    """Verified morning fixes join the training rows (fixes.py has left held-out tasks out already)."""
    for item in shown:
        if item.row is None:
            data.skipped_fixes.append(f"{str(item.fix.commit)[:12]} ({item.fix.task}): {item.problem}")
            continue
        if holdout(item.fix.task):  # never, whoever called: the split is the one rule
            continue
        data.train.append(item.row)
        data.fixes += 1
        data.sources.append(item.fix.commit)


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows).encode()


def record(repo: pygit2.Repository, data: Dataset) -> tuple[pygit2.Oid | None, dict[str, Any]]:
    """Commit the dataset to refs/pantheon/datasets/<agent> (nothing if identical to the last one)."""
    files = {
        "train.jsonl": _jsonl(data.train),
        "holdout.jsonl": _jsonl(data.holdout),
        "negatives.jsonl": _jsonl(data.negatives),
    }
    content = hashlib.sha256(b"".join(files[name] for name in sorted(files))).hexdigest()
    counts = {
        "train": len(data.train),
        "holdout": len(data.holdout),
        "negatives": len(data.negatives),
        "fixes": data.fixes,
    }
    manifest: dict[str, Any] = {
        "agent": data.agent,
        "content_sha256": content,
        "counts": counts,
        "holdout_tasks": sorted(data.holdout_tasks),
        "split": SPLIT_RULE,
        "skipped_fixes": sorted(data.skipped_fixes),
        "sources": sorted({str(source) for source in data.sources}),
        "format": "chat messages (user: prompt header, assistant: tool call as produced, tool: result); "
        "prompt-completion rows for code completions at stubs (prompt: the file up to the stub's head)",
    }
    ref = DATASETS_PREFIX + data.agent

    def build(tip: pygit2.Commit | None) -> tuple[pygit2.Oid, str] | None:
        if tip is not None and "manifest.json" in tip.tree:
            where = f"{ref}:manifest.json"
            previous = json_object(note_data(repo, tip.tree["manifest.json"].id, where), where) or {}
            if previous.get("content_sha256") == content:
                return None
        stamped = {**manifest, "built": datetime.now(UTC).isoformat(timespec="seconds")}
        tree = build_tree(repo, None, {**files, "manifest.json": json.dumps(stamped, indent=1).encode()})
        message = (
            f"dataset {data.agent}: {counts['train']} train, {counts['holdout']} holdout, "
            f"{counts['negatives']} negatives\n\nPantheon-Dataset-Sha256: {content}\n"
        )
        return tree, message

    return append_commit(repo, ref, build), manifest


FILES = ("train.jsonl", "holdout.jsonl", "negatives.jsonl", "manifest.json")


@dataclass(frozen=True, slots=True)
class Recorded:
    """A dataset as `record` left it on refs/pantheon/datasets/<agent>: its commit and its files."""

    ref: str
    commit: pygit2.Oid
    files: dict[str, bytes]

    def rows(self, name: str = "train.jsonl") -> list[dict[str, Any]]:
        """The rows of one of its JSONL files; a line that is no JSON object is refused, file:line named
        (the ref may come from another machine)."""
        rows = []
        for number, line in enumerate(self.files.get(name, b"").decode(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as bad:
                raise PantheonError(f"{self.ref}:{name}:{number}: not JSON ({bad})") from None
            if not isinstance(row, dict):
                raise PantheonError(f"{self.ref}:{name}:{number}: a JSON {type(row).__name__}, not an object")
            rows.append(row)
        return rows

    def manifest(self) -> dict[str, Any]:
        where = f"{self.ref}:manifest.json"
        manifest = json_object(self.files.get("manifest.json"), where)
        if manifest is None:
            raise PantheonError(
                f"{where}: missing or not a JSON object; mine again with `git pantheon train dataset`"
            )
        return manifest

    def write(self, out: Path) -> None:
        """Its files, as they are in git, into directory `out`."""
        out.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (out / name).write_bytes(data)


def recorded(repo: pygit2.Repository, agent: str) -> Recorded:
    """The last dataset recorded for `agent`, or a refusal saying how to mine one."""
    ref = DATASETS_PREFIX + agent
    tip = ref_commit(repo, ref)
    if tip is None:
        raise PantheonError(
            f"{ref}: no dataset yet; mine one with `git pantheon train dataset --agent {agent}`"
        )
    files = {}
    for name in FILES:
        if name not in tip.tree:
            continue
        blob = repo.get(tip.tree[name].id)
        if isinstance(blob, pygit2.Blob):
            files[name] = blob.data
        else:
            warn_skipped(f"{ref}:{name}", "not a file")
    return Recorded(ref, tip.id, files)
