"""Model reviewers' calibration: how often a reviewer (agent + model + adapter) approved good diffs and
approved bad ones, measured on labelled diffs and kept in the evals notes; the gate counts a model
reviewer's vote only when its balanced accuracy is above `[gate] min_reviewer_accuracy`.

A record is the note, in refs/notes/pantheon/evals, on a blob whose text names the reviewer
(`calibration_key`); the blob is written too, so the note has an object to hang on and travels with
`sync` like the other evals. The reviewer's executor copies the record into its vote's evidence when
it votes, so the gate (pure) and the report read it from the signed vote, never from a note that may
have changed since.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pygit2

from pantheon_git.store.layout import EVALS_NOTES
from pantheon_git.store.notes import json_object, read_note, set_note
from pantheon_git.store.votes import Vote

KIND = "reviewer-calibration"


def calibration_key(agent: str, model: str) -> bytes:
    """The text whose blob carries the reviewer's calibration note: `model` is the served label
    (name@sha256-prefix, `+adapter` when one serves), so another adapter is another reviewer."""
    return f"pantheon reviewer calibration\nagent {agent}\nmodel {model}\n".encode()


def balanced_accuracy(true_approval: float, false_approval: float) -> float:
    """The mean of the rates of approving good diffs and rejecting bad ones: 0.5 is chance (pure)."""
    return (true_approval + (1.0 - false_approval)) / 2.0


def record_calibration(
    repo: pygit2.Repository,
    agent: str,
    model: str,
    *,
    true_approval: float,
    false_approval: float,
    good: int,
    bad: int,
    source: str = "",
) -> dict[str, Any]:
    """Write a reviewer's measured rates (on `good` good and `bad` bad labelled diffs) as its evals note."""
    record = {
        "kind": KIND,
        "agent": agent,
        "model": model,
        "true_approval": round(true_approval, 4),
        "false_approval": round(false_approval, 4),
        "accuracy": round(balanced_accuracy(true_approval, false_approval), 4),
        "good": good,
        "bad": bad,
        "source": source,
    }
    target = repo.create_blob(calibration_key(agent, model))
    data = json.dumps(record, sort_keys=True).encode() + b"\n"
    set_note(repo, EVALS_NOTES, target, data, f"pantheon: calibration {agent} {model}")
    return record


def read_calibration(repo: pygit2.Repository, agent: str, model: str) -> dict[str, Any]:
    """The reviewer's calibration record, or {} when it was never measured (or the note is not one)."""
    target = pygit2.hash(calibration_key(agent, model))
    record = json_object(read_note(repo, EVALS_NOTES, target), f"{EVALS_NOTES}:{target}")
    if not record or record.get("kind") != KIND:
        return {}
    accuracy = record.get("accuracy")
    if isinstance(accuracy, bool) or not isinstance(accuracy, int | float) or not 0.0 <= accuracy <= 1.0:
        return {}
    return {
        key: record[key]
        for key in ("accuracy", "true_approval", "false_approval", "good", "bad")
        if key in record
    }


# --- what the gate and the report read from a vote (pure) -------------------------------------------


def is_model_vote(vote: Vote) -> bool:
    """A vote a model reviewer cast: its evidence names the model that served it."""
    return "model" in vote.evidence


def calibration_of(vote: Vote) -> float | None:
    """The balanced accuracy recorded in a model vote's evidence, None when it was uncalibrated."""
    record = vote.evidence.get("calibration")
    if not isinstance(record, Mapping):
        return None
    accuracy = record.get("accuracy")
    if isinstance(accuracy, bool) or not isinstance(accuracy, int | float) or not 0.0 <= accuracy <= 1.0:
        return None
    return float(accuracy)


def not_counted(vote: Vote, threshold: float) -> str | None:
    """Why a model reviewer's vote does not count at the gate (None: it counts). A threshold of 0 counts
    every model reviewer; people, the acceptance checks and the deterministic reviewers always count."""
    if threshold <= 0 or not is_model_vote(vote):
        return None
    accuracy = calibration_of(vote)
    if accuracy is None:
        return "uncalibrated"
    if accuracy <= threshold:
        return f"accuracy {accuracy:.2f}, not above {threshold:.2f}"
    return None


def shown_calibration(vote: Vote) -> str:
    """`calibrated 0.82` or `uncalibrated` for a model vote, "" for any other (the report's note)."""
    if not is_model_vote(vote):
        return ""
    accuracy = calibration_of(vote)
    return "uncalibrated" if accuracy is None else f"calibrated {accuracy:.2f}"
