"""Notes written in-process read back with plain git, keep git's fan-out, and merge across clones."""

from __future__ import annotations

import json
from pathlib import Path

import pygit2

from pantheon_git.store.git import open_repo, parse_oid
from pantheon_git.store.layout import PAYLOADS_NOTES, TRACES_NOTES, VOTES_NOTES
from pantheon_git.store.notes import iter_notes, read_note, set_note
from pantheon_git.store.traces import INLINE_LIMIT, read_trace, write_trace
from pantheon_git.store.votes import Vote, append_votes, read_all_votes
from tests.conftest import git, pantheon


def new_commits(repo: pygit2.Repository, count: int) -> list[pygit2.Oid]:
    sig = repo.default_signature
    tree = repo.head.peel(pygit2.Commit).tree_id
    return [repo.create_commit(None, sig, sig, f"c{i}", tree, []) for i in range(count)]


def test_trace_note_is_plain_git_readable_with_fanout(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    head = repo.head.target
    stored = write_trace(repo, head, {"summary": "wrote hello.txt", "tokens": {"in": 10, "out": 3}})
    shown = git(repo_dir, "notes", "--ref", "pantheon/traces", "show", str(head))
    assert json.loads(shown) == stored
    assert "wrote hello.txt" in git(repo_dir, "log", "-1", "--notes=pantheon/traces")
    # 2/38 fan-out: the note sits at ab/cdef… in the notes tree.
    paths = git(repo_dir, "ls-tree", "-r", "--name-only", TRACES_NOTES).split()
    assert paths == [f"{str(head)[:2]}/{str(head)[2:]}"]


def test_large_payloads_become_reachable_blobs(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    head = repo.head.target
    prompt = "You are a careful engineer.\n" * 200
    stored = write_trace(repo, head, {"summary": "s", "turns": [{"prompt": prompt, "completion": "{}"}]})
    ref = stored["turns"][0]["prompt"]
    assert set(ref) == {"$blob", "bytes", "preview"} and ref["bytes"] == len(prompt.encode()) > INLINE_LIMIT
    assert len(git(repo_dir, "notes", "--ref", "pantheon/traces", "show", str(head))) < 1000
    # The payload is a note on itself, so it is reachable from a ref and survives gc.
    assert git(repo_dir, "cat-file", "-p", ref["$blob"]) == prompt
    assert read_note(repo, PAYLOADS_NOTES, pygit2.Oid(hex=ref["$blob"])) == prompt.encode()
    git(repo_dir, "gc", "-q", "--prune=now")
    assert read_trace(open_repo(repo_dir), head, expand=True)["turns"][0]["prompt"] == prompt


def test_reads_notes_git_wrote_and_git_reads_ours_mixed(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    commits = new_commits(repo, 3)
    git(repo_dir, "notes", "--ref", "pantheon/traces", "add", "-m", "from git", str(commits[0]))
    set_note(repo, TRACES_NOTES, commits[1], b"from pantheon\n", "t")
    set_note(repo, TRACES_NOTES, commits[0], b"replaced\n", "t")
    assert read_note(repo, TRACES_NOTES, commits[0]) == b"replaced\n"
    assert git(repo_dir, "notes", "--ref", "pantheon/traces", "show", str(commits[1])) == "from pantheon\n"
    git(repo_dir, "notes", "--ref", "pantheon/traces", "add", "-m", "git again", str(commits[2]))
    assert dict(iter_notes(repo, TRACES_NOTES)).keys() == set(commits)
    assert len(git(repo_dir, "notes", "--ref", "pantheon/traces", "list").splitlines()) == 3


def test_many_notes_keep_fanout_and_stay_readable(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    commits = new_commits(repo, 600)
    from pantheon_git.store.notes import replace_with, update_notes

    update_notes(
        repo, TRACES_NOTES, {c: replace_with(f"n{i}\n".encode()) for i, c in enumerate(commits)}, "bulk"
    )
    top = git(repo_dir, "ls-tree", TRACES_NOTES).splitlines()
    assert all(line.split()[1] == "tree" and len(line.split("\t")[1]) == 2 for line in top)
    assert git(repo_dir, "notes", "--ref", "pantheon/traces", "show", str(commits[599])) == "n599\n"
    assert len(dict(iter_notes(repo, TRACES_NOTES))) == 600


def test_votes_from_two_clones_merge_with_cat_sort_uniq(repo_dir: Path, tmp_path: Path) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    head = open_repo(repo_dir).head.target
    append_votes(open_repo(repo_dir), head, [Vote(voter="tests", verdict="approve")])
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(repo_dir), str(other))
    git(other, "fetch", "-q", "origin", "refs/notes/pantheon/votes:refs/notes/pantheon/votes")
    # Two identical-looking votes from two machines stay two votes: each line has its own id.
    append_votes(open_repo(other), head, [Vote(voter="reviewer", verdict="approve")])
    append_votes(open_repo(repo_dir), head, [Vote(voter="reviewer", verdict="approve")])
    git(repo_dir, "fetch", "-q", str(other), f"{VOTES_NOTES}:refs/notes/remotes/other/pantheon/votes")
    git(repo_dir, "notes", "--ref", "pantheon/votes", "merge", "refs/notes/remotes/other/pantheon/votes")
    # Transport, not trust: every line travels (the other clone signs with no allowed key).
    votes = read_all_votes(open_repo(repo_dir), head)
    assert [vote.voter for vote in votes].count("reviewer") == 2 and len(votes) == 3
    assert [vote.id for vote in votes] == sorted(vote.id for vote in votes)


def test_hex_from_outside_the_store_is_an_object_id_only_when_whole() -> None:
    full = "0123456789abcdef0123456789abcdef01234567"
    assert parse_oid(full) == pygit2.Oid(hex=full) and parse_oid(f" {full.upper()}\n") == pygit2.Oid(hex=full)
    # pygit2.Oid(hex="abc") is abc000…: a short id must not turn into another, valid-looking one.
    assert str(pygit2.Oid(hex="abc")).startswith("abc000")
    assert [parse_oid(text) for text in ("abc", full[:-1], "g" * 40, "", full + "0")] == [None] * 5
