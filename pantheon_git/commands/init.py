"""`git pantheon init`: scaffold .pantheon/ and configure git so plain git shows and syncs pantheon data."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pantheon_git.errors import PantheonError

if TYPE_CHECKING:
    import pygit2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what", nargs="?", choices=["agent", "flow"], help="scaffold an agent or a flow instead"
    )
    parser.add_argument("name", nargs="?", help="with `agent` or `flow`: the new one's name")
    parser.add_argument(
        "--from", dest="template", default="default", help="with `flow`: the template in templates/flows/"
    )
    parser.add_argument("--remote", help="remote to configure for sync (default: origin, or the only one)")
    parser.add_argument(
        "--push-traces",
        action="store_true",
        help="also push trace notes and payloads (prompts, tool output, logs); default: they stay local",
    )
    parser.add_argument(
        "--no-signing",
        action="store_true",
        help="do not create the runner's SSH signing key (by default init creates it under the git dir and "
        "adds it to .pantheon/allowed_signers: without one no vote counts and no gate passes)",
    )
    # What signing asked for before it was the default; still accepted so scripts keep working.
    parser.add_argument("--signing-key", action="store_true", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from pantheon_git.ops.configure import (
        configure,
        create_notes_refs,
        default_remote,
        enable_push_traces,
        scaffold,
        setup_signing,
    )
    from pantheon_git.schema.config import load_config
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
    if args.what == "flow":
        if not args.name:
            raise PantheonError("init flow: give the new flow's name, e.g. `git pantheon init flow nightly`")
        from pantheon_git.agents.registry import agent_names
        from pantheon_git.ops.scaffold import scaffold_flow
        from pantheon_git.schema.flow import load_flow

        path = scaffold_flow(root, args.name, args.template)
        load_flow(root, args.name, agent_names(root))  # the template must hold in this repository
        print(f"created {path.relative_to(root)}; check it with `git pantheon flow check {args.name}`")
        return 0
    remote = args.remote
    if remote is not None and remote not in [r.name for r in repo.remotes]:
        raise PantheonError(f"--remote {remote}: no such remote (see `git remote -v`)")
    remote = remote or default_remote(repo)
    load_config(root)  # a broken config.toml is refused before anything is written
    created = scaffold(root)
    if args.push_traces and enable_push_traces(root):
        print("set [sync] push_traces = true in .pantheon/config.toml")
    added = configure(repo, root, remote, push_traces=load_config(root).sync.push_traces)
    notes = create_notes_refs(repo)
    signing = [] if args.no_signing else setup_signing(repo, root)
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
    uncommitted = uncommitted_pantheon_files(repo)
    if uncommitted:
        # The gate trusts only what is committed on the base branch (allowed signers, config, flows).
        count = len(uncommitted)
        print(f"next: commit them: git add .pantheon && git commit -m 'pantheon: set up' ({count} files)")
    print("then queue work: git pantheon queue --title … --acceptance CMD. What a night needs:")
    from pantheon_git.commands.doctor import report

    report()
    return 0  # the doctor's lines say what is missing; init itself did its part


def uncommitted_pantheon_files(repo: pygit2.Repository) -> list[str]:
    """Paths under .pantheon/ that differ from HEAD (new or changed), as `git status` would list them."""
    import pygit2

    return sorted(
        path
        for path, flags in repo.status().items()
        if path.startswith(".pantheon/") and flags & ~pygit2.enums.FileStatus.IGNORED
    )
