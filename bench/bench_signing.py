"""What signing costs per step: the same step (commit + trace note + vote) unsigned and signed with the
runner's SSH key (one `ssh-keygen -Y sign` per signed commit: the step commit and the votes notes
commit), and what verifying a run's votes and steps costs the first time and once remembered.
Run: .venv/bin/python bench/bench_signing.py [--steps N]
"""

from __future__ import annotations

import argparse
import subprocess

from common import report, scratch_repo, timed

from pantheon_git.ops.configure import setup_signing
from pantheon_git.store import signing
from pantheon_git.store.git import open_repo
from pantheon_git.store.runs import Step, commit_step, start_run_branch, unverified_steps
from pantheon_git.store.signing import allowed_signers
from pantheon_git.store.traces import write_trace
from pantheon_git.store.votes import Vote, append_votes, read_votes


def step(repo, ref: str, i: int, key: str | None) -> object:  # type: ignore[no-untyped-def]
    commit = commit_step(
        repo, ref, Step("bench", f"s{i}", "implementer", "m", f"step {i}"), changes={"o": b"%d" % i}
    )
    write_trace(repo, commit, {"summary": f"step {i}"})
    append_votes(repo, commit, [Vote(voter="tests", verdict="approve")], key=key)
    return commit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    root = scratch_repo()
    setup_signing(open_repo(root), root)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "allow the runner"], cwd=root, check=True)
    repo = open_repo(root)
    key = signing.signing_key(repo)
    assert key is not None

    plain_ref = start_run_branch(repo, "bench", 1, repo.head.target)
    signed_ref = start_run_branch(repo, "bench", 2, repo.head.target)
    real_signing_key = signing.signing_key
    signing.signing_key = lambda _repo: None  # type: ignore[assignment]
    import pantheon_git.store.runs as runs

    runs.signing_key = signing.signing_key  # type: ignore[attr-defined]
    counter = iter(range(10**9))
    plain = timed(lambda: step(repo, plain_ref, next(counter), None), args.steps)
    signing.signing_key = real_signing_key
    runs.signing_key = real_signing_key  # type: ignore[attr-defined]
    heads = []
    signed = timed(lambda: heads.append(step(repo, signed_ref, next(counter), key)), args.steps)
    plain_ms = report("unsigned step (commit + trace note + vote)", plain)
    signed_ms = report("signed step (2 ssh-keygen -Y sign)", signed)
    print(f"signing adds {signed_ms - plain_ms:.2f} ms per step (median)\n")

    signers = allowed_signers(repo)
    first = timed(
        lambda: (unverified_steps(repo, signed_ref, signers), [read_votes(repo, h) for h in heads]), 1
    )
    again = timed(
        lambda: (unverified_steps(repo, signed_ref, signers), [read_votes(repo, h) for h in heads]), 5
    )
    report(f"verify a {args.steps}-step run's steps + votes, first time", first)
    report(f"verify a {args.steps}-step run's steps + votes, remembered", again)

    def from_disk() -> None:
        signing._VERIFIED.clear()  # a new command: only the git dir's cache is left
        signing._LOADED.clear()
        unverified_steps(repo, signed_ref, signers)
        for h in heads:
            read_votes(repo, h)

    report(f"verify a {args.steps}-step run's steps + votes, new process (disk cache)", timed(from_disk, 5))


if __name__ == "__main__":
    main()
