"""Claims: which runner takes a task. refs/pantheon/claims/<id> is created once, locally or on a remote.

On a shared remote the claim is a create-only atomic push (`--force-with-lease=<ref>:` with an empty
expected value): the first runner's push wins and every other one is rejected, so each task runs once.
A claim is a small commit chain; each heartbeat appends a commit and pushes it with a lease on the
previous one, and an expired claim (no heartbeat for `expiry`) can be taken over explicitly, again with
a lease on exactly what was seen. Which remote (if any) is the caller's choice: the night passes only one
named in `[night] remotes`. A push git rejects because the ref is not what was expected means another
runner has the claim; any other failed push (unreachable remote, hook refusal, timeout) is raised as
ClaimPushFailed with git's own last line, never mistaken for "claimed by another runner".
"""

from __future__ import annotations

import enum
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pygit2

from pantheon_git.errors import PantheonError
from pantheon_git.store.git import clear_stale_lock, ref_commit, run_git, set_ref, signature
from pantheon_git.store.layout import claim_ref
from pantheon_git.store.locks import held_since, pantheon_dir
from pantheon_git.store.runs import commit_message, parse_trailers


@dataclass(frozen=True, slots=True)
class Claim:
    task_id: str
    owner: str
    heartbeat: datetime
    commit: pygit2.Oid

    def expired(self, expiry: timedelta, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) - self.heartbeat > expiry


def runner_id(repo: pygit2.Repository) -> str:
    """This clone's runner identity, `host:random`, made once and kept in the git dir.

    Per clone, not per process: a runner restarted after a crash in the same clone recognises its own
    claims and resumes them, while two clones on one machine stay distinct.
    """
    path = pantheon_dir(repo.path) / "runner-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        made = f"{socket.gethostname()}:{os.urandom(4).hex()}"
        tmp = path.with_suffix(f".{os.getpid()}")
        tmp.write_text(made + "\n")
        try:
            # Create-only: of two first nights running at once, the first id stays. Replacing it would
            # make the claims the other night already took look like another runner's.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return path.read_text().strip()


def _claim_commit(repo: pygit2.Repository, task_id: str, owner: str, parent: pygit2.Oid | None) -> pygit2.Oid:
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    message = (
        f"claim {task_id}\n\nPantheon-Claim-Owner: {owner}\nPantheon-Claim-Pid: {os.getpid()}\n"
        f"Pantheon-Claim-Heartbeat: {now}\n"
    )
    sig = signature(repo)
    empty = repo.TreeBuilder().write()
    return repo.create_commit(None, sig, sig, message, empty, [parent] if parent else [])


def read_claim(repo: pygit2.Repository, ref: str) -> Claim | None:
    commit = ref_commit(repo, ref)
    if commit is None:
        return None
    trailers = parse_trailers(commit_message(commit, ref) or "")
    try:  # a claim may come from another machine: an unreadable heartbeat reads as the oldest one
        when = datetime.fromisoformat(trailers.get("Pantheon-Claim-Heartbeat", "1970-01-01T00:00:00+00:00"))
    except ValueError:
        when = datetime.fromtimestamp(0, UTC)
    when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return Claim(ref.rsplit("/", 1)[-1], trailers.get("Pantheon-Claim-Owner", "?"), when, commit.id)


class PushOutcome(enum.Enum):
    PUSHED = "pushed"
    REJECTED = "rejected"  # the remote's ref is not what the lease expected: another runner moved it


# What receive-pack says when the ref changed under a push: the ref was claimed by someone else.
_REF_RACES = (
    "atomic transaction failed",
    "failed to update ref",
    "cannot lock ref",
    "incorrect old value",
    "stale info",
    "fetch first",
    "already exists",
)


class ClaimPushFailed(PantheonError):
    """A claim push failed for a reason other than another runner's claim (the message says which)."""


def _push_with_lease(root: Path, remote: str, ref: str, commit: pygit2.Oid, expected: str) -> PushOutcome:
    """Push `commit` to `ref` only if the remote's ref is `expected` ('' = must not exist).

    PUSHED or REJECTED (a lease that did not hold); ClaimPushFailed for anything else.
    """
    proc = run_git(
        [
            "push",
            "--quiet",
            "--atomic",
            "--porcelain",
            f"--force-with-lease={ref}:{expected}",
            "--end-of-options",
            remote,
            f"{commit}:{ref}",
        ],
        root,
        check=False,
    )
    if proc.returncode == 0:
        return PushOutcome.PUSHED
    # --porcelain: "!<TAB>src:dst<TAB>[rejected] (stale info)" when the lease failed here, and "[remote
    # rejected] (atomic transaction failed)" (or a lock failure) when another runner's push created the
    # ref between our check and our update; a hook's refusal or a transport error is a failure.
    for line in proc.stdout.splitlines():
        if line.startswith("!") and (
            "[rejected]" in line or ("[remote rejected]" in line and any(r in line for r in _REF_RACES))
        ):
            return PushOutcome.REJECTED
    raise ClaimPushFailed(f"claim {ref.rsplit('/', 1)[-1]}: push to {remote} failed: {proc.last_error_line}")


def _set_claim(
    repo: pygit2.Repository, task_id: str, new: pygit2.Oid, expected: pygit2.Oid | None, message: str
) -> bool:
    """CAS the local claim ref; a lock file left on it by a runner killed mid-write is cleared first.

    Only the holder of the task's flock writes its claim ref, so a lock made before this runner took
    that flock is provably stale; otherwise only the age bound clears it (`clear_stale_lock`).
    """
    ref = claim_ref(task_id)
    if set_ref(repo, ref, new, expected, message):
        return True
    return clear_stale_lock(repo, ref, made_before=held_since(repo.path, task_id)) and set_ref(
        repo, ref, new, expected, message
    )


def claim(repo: pygit2.Repository, root: Path, task_id: str, remote: str | None) -> Claim | None:
    """Take the task's claim: on `remote` when given (create-only push), else locally. None if taken.

    A claim this clone made before is resumed (the caller holds the task's flock, so the runner that
    made it is gone); another clone's claim is left alone until it expires and is taken over.
    """
    ref = claim_ref(task_id)
    if remote is not None:
        fetch_claim(root, remote, task_id)
    current = read_claim(repo, ref)
    if current is not None:
        if current.owner == runner_id(repo):
            return heartbeat(repo, root, current, remote)
        return None
    commit = _claim_commit(repo, task_id, runner_id(repo), None)
    if remote is None:
        return read_claim(repo, ref) if _set_claim(repo, task_id, commit, None, "pantheon: claim") else None
    if _push_with_lease(root, remote, ref, commit, "") is not PushOutcome.PUSHED:
        return None
    repo.references.create(ref, commit, force=True)  # mirror what the remote now holds
    return read_claim(repo, ref)


def heartbeat(repo: pygit2.Repository, root: Path, held: Claim, remote: str | None) -> Claim | None:
    """Renew a claim we hold; None if someone took it over meanwhile."""
    ref = claim_ref(held.task_id)
    commit = _claim_commit(repo, held.task_id, runner_id(repo), held.commit)
    if remote is not None:
        try:
            pushed = _push_with_lease(root, remote, ref, commit, str(held.commit))
        except ClaimPushFailed:
            # A heartbeat that could not reach the remote keeps the claim as it was (it expires on its
            # own if this lasts); only a rejected lease means another runner took the task over.
            return held
        if pushed is not PushOutcome.PUSHED:
            return None
    if not _set_claim(repo, held.task_id, commit, held.commit, "pantheon: heartbeat"):
        current = ref_commit(repo, ref)
        if remote is None or current is None:
            return None
        repo.references.create(ref, commit, force=True)
    return read_claim(repo, ref)


def take_over(repo: pygit2.Repository, root: Path, seen: Claim, remote: str | None) -> Claim | None:
    """Replace an expired claim, with a lease on exactly the claim that was seen expired."""
    ref = claim_ref(seen.task_id)
    commit = _claim_commit(repo, seen.task_id, runner_id(repo), seen.commit)
    if remote is not None:
        if _push_with_lease(root, remote, ref, commit, str(seen.commit)) is not PushOutcome.PUSHED:
            return None
        repo.references.create(ref, commit, force=True)
        return read_claim(repo, ref)
    taken = _set_claim(repo, seen.task_id, commit, seen.commit, "pantheon: take over")
    return read_claim(repo, ref) if taken else None


def fetch_claim(root: Path, remote: str, task_id: str) -> None:
    """Bring the remote's claim for a task into the local ref (for reading who holds it)."""
    ref = claim_ref(task_id)
    run_git(["fetch", "--quiet", "--end-of-options", remote, f"+{ref}:{ref}"], root, check=False)
