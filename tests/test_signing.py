"""Signed votes in the notes history: counted across a notes merge, kept when deleted by hand, ordered by
their signed notes commits; the allowed-signers parser; a bad signature."""

from __future__ import annotations

import socket
from pathlib import Path

import pygit2

from pantheon_git.review.gate import latest_per_voter
from pantheon_git.store.git import open_repo
from pantheon_git.store.signing import (
    Trust,
    allowed_signers,
    allowed_signers_line,
    create_key,
    parse_allowed_signers,
    verify_commit,
)
from pantheon_git.store.votes import Vote, append_votes, read_all_votes, read_votes, recorded_votes
from tests.conftest import git, oid_of


def test_signed_votes_from_two_machines_count_after_a_notes_merge(repo_dir: Path, tmp_path: Path) -> None:
    other_key = tmp_path / "keys" / "other"
    public = create_key(other_key, "other")
    with (repo_dir / ".pantheon" / "allowed_signers").open("a") as signers:
        signers.write(allowed_signers_line("runner@other", public) + "\n")
    git(repo_dir, "commit", "-q", "-am", "allow the other runner")
    head = oid_of(repo_dir)
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(repo_dir), str(other))
    append_votes(open_repo(repo_dir), head, [Vote(voter="reviewer-a", verdict="approve")])
    append_votes(open_repo(other), head, [Vote(voter="reviewer-b", verdict="approve")], key=str(other_key))
    append_votes(open_repo(other), head, [Vote(voter="reviewer-c", verdict="approve")])  # no key there
    git(repo_dir, "fetch", "-q", str(other), "refs/notes/pantheon/votes:refs/notes/remotes/o/pantheon/votes")
    git(
        repo_dir,
        "notes",
        "--ref",
        "pantheon/votes",
        "merge",
        "-s",
        "cat_sort_uniq",
        "refs/notes/remotes/o/pantheon/votes",
    )
    repo = open_repo(repo_dir)
    assert sorted(vote.voter for vote in read_all_votes(repo, head)) == [
        "reviewer-a",
        "reviewer-b",
        "reviewer-c",
    ]
    recorded = {item.vote.voter: item for item in recorded_votes(repo, head, allowed_signers(repo))}
    assert recorded["reviewer-b"].signer == "runner@other" and recorded["reviewer-b"].counts
    assert recorded["reviewer-a"].signer is not None and recorded["reviewer-a"].signer.startswith(
        "pantheon-runner@"
    )
    assert recorded["reviewer-c"].trust == Trust.UNSIGNED
    assert sorted(vote.voter for vote in read_votes(repo, head)) == ["reviewer-a", "reviewer-b"]


def test_a_signed_reject_deleted_by_hand_still_counts_and_order_ignores_ids(repo_dir: Path) -> None:
    head = oid_of(repo_dir)
    repo = open_repo(repo_dir)
    append_votes(repo, head, [Vote(voter="reviewer", verdict="approve", id="99991231T000000.000000Z-aaaa")])
    append_votes(repo, head, [Vote(voter="reviewer", verdict="reject", id="19700101T000000.000000Z-bbbb")])
    latest = latest_per_voter(read_votes(repo, head))
    assert latest["reviewer"].verdict == "reject"  # signed later, whatever its id says
    git(repo_dir, "notes", "--ref", "pantheon/votes", "add", "-f", "-m", "scrubbed", str(head))
    assert read_all_votes(open_repo(repo_dir), head) == []
    assert latest_per_voter(read_votes(open_repo(repo_dir), head))["reviewer"].verdict == "reject"


def test_a_tampered_signature_does_not_verify(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    head = oid_of(repo_dir)
    notes_commit = append_votes(repo, head, [Vote(voter="reviewer", verdict="approve")])
    assert notes_commit is not None
    signers = allowed_signers(repo)
    assert verify_commit(repo, notes_commit, signers)[0] == Trust.VERIFIED
    # The same signature on a different message: a copied signature proves nothing.
    signed = repo.get(notes_commit)
    signature, payload = signed.gpg_signature
    forged_buffer = payload.decode().replace("pantheon: vote", "pantheon: v0te")
    forged = repo.create_commit_with_signature(forged_buffer, signature.decode())
    assert verify_commit(repo, forged, signers)[0] == Trust.BAD_SIGNATURE
    assert isinstance(repo.get(forged), pygit2.Commit)


def test_allowed_signers_format() -> None:
    text = (
        "# people\n"
        'alice@example.com,alice@work namespaces="git" ssh-ed25519 AAAAalice comment here\n'
        'bob@example.com namespaces="file" ssh-ed25519 AAAAbob\n'
        "ca@example.com cert-authority ssh-ed25519 AAAAca\n"
        "carol@example.com ssh-ed25519 AAAAcarol\n"
        "broken line\n"
    )
    parsed = parse_allowed_signers(text)
    assert parsed.keys == {
        ("ssh-ed25519", "AAAAalice"): "alice@example.com",
        ("ssh-ed25519", "AAAAcarol"): "carol@example.com",
    }
    assert not parse_allowed_signers("# nobody\n")


def test_init_signing_key_creates_a_private_runner_key_and_allows_it(unsigned_repo_dir: Path) -> None:
    import stat

    from tests.conftest import pantheon

    repo_dir = unsigned_repo_dir
    first = pantheon(repo_dir, "init", "--signing-key")
    assert first.returncode == 0, first.stderr
    key = repo_dir / ".git" / "pantheon" / "keys" / "runner"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert git(repo_dir, "config", "--local", "gpg.format").strip() == "ssh"
    assert git(repo_dir, "config", "--local", "user.signingKey").strip() == str(key)
    public = (repo_dir / ".git" / "pantheon" / "keys" / "runner.pub").read_text().split()
    line = (repo_dir / ".pantheon" / "allowed_signers").read_text().strip()
    assert line.startswith("pantheon-runner@") and f"{public[0]} {public[1]}" in line
    assert "keys" not in git(repo_dir, "status", "--porcelain", "--untracked-files=all")
    again = pantheon(repo_dir, "init", "--signing-key")
    assert (
        "nothing changed" in again.stdout
        and (repo_dir / ".pantheon" / "allowed_signers").read_text().strip() == line
    )
    # Not yet committed on main: nothing verifies; once committed, the runner's commits do.
    repo = open_repo(repo_dir)
    head = oid_of(repo_dir)
    notes_commit = append_votes(repo, head, [Vote(voter="r", verdict="approve")])
    assert (
        notes_commit is not None
        and verify_commit(repo, notes_commit, allowed_signers(repo))[0] == Trust.UNKNOWN_SIGNER
    )
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "pantheon with signing")
    assert verify_commit(repo, notes_commit, allowed_signers(open_repo(repo_dir)))[0] == Trust.VERIFIED


def test_a_run_branch_is_never_the_source_of_allowed_signers(repo_dir: Path, tmp_path: Path) -> None:
    from pantheon_git.store.runs import Step, commit_step, start_run_branch

    intruder = create_key(tmp_path / "intruder", "intruder")
    repo = open_repo(repo_dir)
    ref = start_run_branch(repo, "t1", 1, repo.head.target)
    current = (repo_dir / ".pantheon" / "allowed_signers").read_bytes()
    planted = current + (allowed_signers_line("intruder", intruder) + "\n").encode()
    commit_step(repo, ref, Step("t1", "x", "x", "-", "x"), changes={".pantheon/allowed_signers": planted})
    git(repo_dir, "checkout", "-q", "pantheon/t1/1")  # even while a run branch is checked out
    git(repo_dir, "branch", "-q", "-m", "main", "trunk")  # and no main or master exists
    for base in ("pantheon/t1/1", "refs/heads/pantheon/t1/1", None):
        assert not allowed_signers(open_repo(repo_dir), base)
    principals = set(allowed_signers(open_repo(repo_dir), "trunk").keys.values())
    assert principals == {f"pantheon-runner@{socket.gethostname()}"}
