"""Votes: append-only JSON lines in refs/notes/pantheon/votes on a run branch's head commit; a vote counts
only when the notes commit that added its line is signed by an allowed signer.

Each line still starts with a unique id, so git's cat_sort_uniq notes merge keeps every vote from every
machine (no two lines are equal). The id is chosen by whoever writes the line, so it decides nothing:
a vote's authority and its order come from the notes commit that first added the line (its signature,
its signed commit time, its place in the notes history). Lines added by an unsigned or unknown commit
(`git notes append` by hand or by a tool, a merge made up by another machine) are shown, never counted.
A signed vote counts even if a later commit removed its line: votes are append-only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pygit2
from pydantic import BaseModel, ConfigDict, Field

from pantheon_git.errors import warn_skipped
from pantheon_git.store.git import ref_commit
from pantheon_git.store.layout import VOTES_NOTES
from pantheon_git.store.notes import append_note_lines, changed_notes, note_blob, note_data, read_note
from pantheon_git.store.redact import redact_all
from pantheon_git.store.signing import (
    AllowedSigners,
    Trust,
    allowed_signers,
    sign_buffer,
    signing_key,
    verify_commit,
)


class Verdict(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    ABSTAIN = "abstain"


class VoteKind(StrEnum):
    """vote: a reviewer, a test run or a person; gate: the gate's decision; merge: the branch was merged."""

    VOTE = "vote"
    GATE = "gate"
    MERGE = "merge"


def new_vote_id(now: datetime | None = None) -> str:
    """A unique id (UTC timestamp to the microsecond, then random hex): unique lines, readable notes."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y%m%dT%H%M%S.%fZ") + "-" + os.urandom(4).hex()


class Vote(BaseModel):
    """One line of a votes note. Field order is the serialized order: `id` first keeps lines sortable."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=new_vote_id)
    kind: VoteKind = VoteKind.VOTE
    voter: str = Field(min_length=1)
    verdict: Verdict
    reasons: list[str] = Field(default_factory=list)
    evidence: dict[str, Any] = Field(default_factory=dict)

    def to_line(self) -> str:
        """The JSON line as stored: reasons and evidence (test output, model text) have secrets redacted."""
        return Vote.model_validate(redact_all(self.model_dump())).model_dump_json()


@dataclass(slots=True)
class RecordedVote:
    """A vote line with what its notes commit says about it: who signed it, and where it sits in time."""

    vote: Vote
    trust: Trust
    signer: str | None  # the allowed signer's principal when trust is VERIFIED
    notes_commit: pygit2.Oid | None  # the notes commit that added the line (None: not found in the history)
    order: tuple[int, int]  # (signed commit time, position in the notes history): the vote's order

    @property
    def counts(self) -> bool:
        return self.trust == Trust.VERIFIED


def append_votes(
    repo: pygit2.Repository, commit: pygit2.Oid, votes: list[Vote], *, key: str | None = None
) -> pygit2.Oid | None:
    """Append votes to `commit`'s votes note as one notes commit (CAS-safe against other writers),
    signed with `key` or else the configured signing key; with no key at all it is written unsigned
    and will not count. Returns the notes commit."""
    names = ", ".join(f"{vote.voter}={vote.verdict}" for vote in votes)
    key = key or signing_key(repo)
    sign = (lambda buffer: sign_buffer(key, buffer.encode())) if key else None
    lines = [vote.to_line() for vote in votes]  # each redacted as structured values
    return append_note_lines(
        repo, VOTES_NOTES, commit, lines, f"pantheon: vote {names}", redacted=True, sign=sign
    )


def read_all_votes(repo: pygit2.Repository, commit: pygit2.Oid) -> list[Vote]:
    """Every vote line on `commit` as the note has it now, verified or not (for display and transport)."""
    raw = read_note(repo, VOTES_NOTES, commit)
    return parse_votes(raw.decode(errors="replace") if raw else "")


def parse_votes(text: str) -> list[Vote]:
    votes = []
    for line in dict.fromkeys(text.splitlines()):
        vote = _parse(line)
        if vote is not None:
            votes.append(vote)
    return votes


def _parse(line: str, where: str = VOTES_NOTES) -> Vote | None:
    if not line.strip():
        return None
    try:
        return Vote.model_validate_json(line)
    except ValueError as bad:  # hand edits, or another machine's lines, that are not votes
        warn_skipped(f"{where}: line {line[:60]!r}", f"not a vote ({' '.join(str(bad).split())[:100]})")
        return None


@dataclass(slots=True)
class _VotesIndex:
    """Who added which vote line, for the whole votes notes history, extended as new commits arrive."""

    tip: pygit2.Oid | None = None
    seen: int = 0
    # target -> line -> [(notes commit, commit time, position in the notes history)]
    origins: dict[pygit2.Oid, dict[str, list[tuple[pygit2.Oid, int, int]]]] = field(default_factory=dict)


_INDEXES: dict[str, _VotesIndex] = {}


def _lines(repo: pygit2.Repository, blob: pygit2.Oid | None) -> set[str]:
    data = note_data(repo, blob, VOTES_NOTES)  # a note that is no blob, or too large, holds no vote
    return {line for line in data.decode(errors="replace").splitlines() if line} if data else set()


def _index(repo: pygit2.Repository) -> _VotesIndex:
    """The origins of every vote line, reading only the notes commits added since the last call.

    Each notes commit is diffed against its parents once: the lines of a changed note that no parent's
    note has are the ones it added (a notes merge adds none; a hand-made merge may, unsigned).
    """
    tip = ref_commit(repo, VOTES_NOTES)
    index = _INDEXES.get(repo.path)
    if index is None or (
        index.tip is not None
        and (tip is None or (tip.id != index.tip and not repo.descendant_of(tip.id, index.tip)))
    ):
        index = _VotesIndex()  # the notes ref was rewound or replaced: start over
    _INDEXES[repo.path] = index
    if tip is None or tip.id == index.tip:
        return index
    walker = repo.walk(tip.id, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
    if index.tip is not None:
        walker.hide(index.tip)
    for commit in walker:
        position = index.seen
        index.seen += 1
        parents = commit.parents
        changed = changed_notes(repo, parents[0].tree if parents else None, commit.tree)
        for target, blob in changed:
            before: set[str] = set()
            for parent in parents:
                before |= _lines(repo, note_blob(repo, parent.tree, target))
            added = _lines(repo, blob) - before
            if added:
                lines = index.origins.setdefault(target, {})
                for line in added:
                    lines.setdefault(line, []).append((commit.id, commit.commit_time, position))
    index.tip = tip.id
    return index


def line_origins(repo: pygit2.Repository, target: pygit2.Oid) -> dict[str, list[tuple[pygit2.Oid, int, int]]]:
    """For each line ever in `target`'s votes note: the notes commits that added it (not in any parent),
    oldest first, as (commit id, commit time, position in a topological walk of the notes history)."""
    return _index(repo).origins.get(target, {})


def recorded_votes(
    repo: pygit2.Repository, commit: pygit2.Oid, signers: AllowedSigners
) -> list[RecordedVote]:
    """Every vote on `commit`, each with its trust under `signers`, in order: counted votes by their
    signed notes commit, then the rest. Includes signed votes whose line a later commit removed."""
    origins = line_origins(repo, commit)
    present = set((read_note(repo, VOTES_NOTES, commit) or b"").decode(errors="replace").splitlines())
    recorded: list[RecordedVote] = []
    for line, adders in origins.items():
        vote = _parse(line, f"{VOTES_NOTES}:{commit}")
        if vote is None:
            continue
        chosen: RecordedVote | None = None
        for notes_commit, when, position in adders:
            trust, principal = verify_commit(repo, notes_commit, signers)
            if trust == Trust.VERIFIED:
                chosen = RecordedVote(vote, trust, principal, notes_commit, (when, position))
                break
            if chosen is None:
                chosen = RecordedVote(vote, trust, None, notes_commit, (2**62, position))
        if chosen is not None and (chosen.counts or line in present):
            recorded.append(chosen)
    recorded.sort(key=lambda item: (not item.counts, item.order))
    return recorded


def read_votes(
    repo: pygit2.Repository,
    commit: pygit2.Oid,
    *,
    base: str | None = None,
    signers: AllowedSigners | None = None,
) -> list[Vote]:
    """The votes on `commit` that count (signed by an allowed signer of `base`), oldest first."""
    if signers is None:
        signers = allowed_signers(repo, base)
    return [item.vote for item in recorded_votes(repo, commit, signers) if item.counts]
