"""Votes: append-only JSON lines in refs/notes/pantheon/votes on a run branch's head commit.

Each line starts with a unique, time-sortable id, so git's cat_sort_uniq notes merge keeps every vote
from every machine (no two lines are equal) and leaves them in time order.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any, Literal

import pygit2
from pydantic import BaseModel, ConfigDict, Field

from pantheon_git.store.layout import VOTES_NOTES
from pantheon_git.store.notes import append_note_lines, read_note
from pantheon_git.store.redact import redact_all

Verdict = Literal["approve", "reject", "abstain"]
# vote: a reviewer, a test run or a person; gate: the gate's decision; merge: the branch was merged.
VoteKind = Literal["vote", "gate", "merge"]


def new_vote_id(now: datetime | None = None) -> str:
    """A unique id whose sort order is time order: UTC timestamp to the microsecond, then random hex."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y%m%dT%H%M%S.%fZ") + "-" + os.urandom(4).hex()


class Vote(BaseModel):
    """One line of a votes note. Field order is the serialized order: `id` first keeps lines sortable."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=new_vote_id)
    kind: VoteKind = "vote"
    voter: str = Field(min_length=1)
    verdict: Verdict
    reasons: list[str] = Field(default_factory=list)
    evidence: dict[str, Any] = Field(default_factory=dict)

    def to_line(self) -> str:
        """The JSON line as stored: reasons and evidence (test output, model text) have secrets redacted."""
        return Vote.model_validate(redact_all(self.model_dump())).model_dump_json()


def append_votes(repo: pygit2.Repository, commit: str | pygit2.Oid, votes: list[Vote]) -> None:
    """Append votes to `commit`'s votes note (one notes commit, CAS-safe against other writers)."""
    names = ", ".join(f"{vote.voter}={vote.verdict}" for vote in votes)
    append_note_lines(
        repo, VOTES_NOTES, commit, [vote.to_line() for vote in votes], f"pantheon: vote {names}"
    )


def read_votes(repo: pygit2.Repository, commit: str | pygit2.Oid) -> list[Vote]:
    """The votes on `commit` in time order; lines that are not votes (hand edits) are skipped."""
    raw = read_note(repo, VOTES_NOTES, commit)
    return parse_votes(raw.decode() if raw else "")


def parse_votes(text: str) -> list[Vote]:
    votes = []
    for line in sorted(set(text.splitlines())):
        if not line.strip():
            continue
        try:
            votes.append(Vote.model_validate_json(line))
        except ValueError:
            continue
    return votes
