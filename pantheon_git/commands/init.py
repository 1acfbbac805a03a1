"""`git pantheon init`: scaffold .pantheon/ and configure git so plain git shows and syncs pantheon data."""

from __future__ import annotations

import argparse

from pantheon_git.errors import PantheonError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", nargs="?", choices=["agent"], help="scaffold something else instead")
    parser.add_argument("name", nargs="?", help="with `agent`: the new agent's name")
    parser.add_argument("--remote", help="remote to configure for sync (default: origin, or the only one)")
    parser.add_argument(
        "--signing-key",
        action="store_true",
        help="create the runner's SSH signing key (under the git dir) and add it to "
        ".pantheon/allowed_signers",
    )


def run(args: argparse.Namespace) -> int:
    from pantheon_git.ops.configure import (
        configure,
        create_notes_refs,
        default_remote,
        scaffold,
        setup_signing,
    )
    from pantheon_git.store.git import open_repo, work_tree

    repo = open_repo()
    root = work_tree(repo)
    if args.what == "agent":
        if not args.name:
            raise PantheonError("init agent: give the new agent's name, e.g. `git pantheon init agent fixer`")
        from pantheon_git.ops.scaffold import scaffold_agent

        path = scaffold_agent(root, args.name)
        print(f"created {path.relative_to(root)}")
        return 0
    remote = args.remote
    if remote is not None and remote not in [r.name for r in repo.remotes]:
        raise PantheonError(f"--remote {remote}: no such remote (see `git remote -v`)")
    remote = remote or default_remote(repo)
    created = scaffold(root)
    added = configure(repo, root, remote)
    notes = create_notes_refs(repo)
    signing = setup_signing(repo, root) if args.signing_key else []
    for path in created:
        print(f"created {path.relative_to(root)}")
    for line in added:
        print(f"git config {line}")
    for ref in notes:
        print(f"created {ref}")
    for line in signing:
        print(line)
    if remote is None:
        print("no remote to sync with yet: add one, then run `git pantheon init --remote NAME`")
    if not created and not added and not notes and not signing:
        print("already initialized: nothing changed")
    elif created or signing:
        print("next: commit .pantheon/, then queue work with `git pantheon queue --title … --acceptance CMD`")
    return 0
