"""`git pantheon queue`: validate specs (files, stdin or flags) and commit them to refs/pantheon/tasks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pantheon_git.errors import PantheonError

if TYPE_CHECKING:
    import pygit2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", metavar="FILE", help="spec TOML files; '-' reads one from stdin")
    parser.add_argument("--title", help="queue a spec given by flags instead of a file")
    parser.add_argument("--acceptance", action="append", metavar="CMD", help="a check (repeatable)")
    parser.add_argument("--scope", help="free text for the agents")
    parser.add_argument("--flow", help="flow name (default: default)")
    parser.add_argument("--base", help="branch or commit to start from (default: the current branch)")
    parser.add_argument("--priority", type=int, help="higher runs first (default 0)")
    parser.add_argument("--label", action="append", dest="labels", metavar="LABEL", help="a tag (repeatable)")
    parser.add_argument("--id", dest="task_id", help="choose the id instead of generating one")


def _flag_spec(args: argparse.Namespace) -> dict[str, object]:
    given = {
        "id": args.task_id,
        "title": args.title,
        "acceptance": args.acceptance or [],
        "scope": args.scope,
        "flow": args.flow,
        "base": args.base,
        "priority": args.priority,
        "labels": args.labels,
    }
    return {key: value for key, value in given.items() if value is not None}


def run(args: argparse.Namespace) -> int:
    from pantheon_git.queue.tasks import enqueue
    from pantheon_git.schema.spec import parse_spec, stamp, validate_spec
    from pantheon_git.store.git import open_repo, signature

    flags_used = any(
        value is not None
        for value in (
            args.title,
            args.acceptance,
            args.scope,
            args.flow,
            args.base,
            args.priority,
            args.labels,
        )
    )
    if args.files and flags_used:
        raise PantheonError("give spec files or --title/--acceptance flags, not both")
    if not args.files and not flags_used:
        raise PantheonError("nothing to queue: give spec files, '-' for stdin, or --title and --acceptance")

    specs = []
    if args.files:
        for name in args.files:
            if name == "-":
                text, source = sys.stdin.read(), "<stdin>"
            else:
                path = Path(name)
                try:
                    text = path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    raise PantheonError(
                        f"{name}: cannot read: {getattr(exc, 'strerror', None) or exc}"
                    ) from None
                source = name
            specs.append((parse_spec(text, source), source))
    else:
        specs.append((validate_spec(_flag_spec(args), "command line"), "command line"))

    repo = open_repo()
    default_base = _current_branch(repo)
    sig = signature(repo)
    author = f"{sig.name} <{sig.email}>"
    stamped = []
    for spec, source in specs:
        if spec.base is not None:
            _check_base(repo, spec.base, source)
        elif default_base is None:
            raise PantheonError(f"{source}: base: HEAD has no commit yet; commit something or set base")
        _check_flow(repo, spec.flow, source)
        stamped.append(stamp(spec, author=author, base=default_base or ""))
    enqueue(repo, stamped)
    for spec in stamped:
        print(f"queued {spec.id}  {spec.title}")
    return 0


def _current_branch(repo: pygit2.Repository) -> str | None:
    if repo.head_is_unborn:
        return None
    if repo.head_is_detached:
        return str(repo.head.target)
    return repo.head.shorthand


def _check_base(repo: pygit2.Repository, base: str, source: str) -> None:
    import pygit2

    try:
        repo.revparse_single(base).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):
        raise PantheonError(
            f"{source}: base: '{base}' is not a branch or commit in this repository"
        ) from None


def _check_flow(repo: pygit2.Repository, flow: str, source: str) -> None:
    """The spec's flow must exist and be valid here (once .pantheon/flows exists, i.e. after init).

    Before init only the default flow is accepted (init creates it); any other name is unknown.
    """
    if repo.workdir is None or not (Path(repo.workdir) / ".pantheon" / "flows").is_dir():
        if flow != "default":
            raise PantheonError(
                f"{source}: flow: unknown flow '{flow}' (no .pantheon/flows yet: run `git pantheon init`)"
            )
        return
    from pantheon_git.agents.registry import agent_names, check_models
    from pantheon_git.schema.flow import flow_path, load_flow

    root = Path(repo.workdir)
    if not flow_path(root, flow).is_file():
        known = ", ".join(sorted(path.stem for path in flow_path(root, flow).parent.glob("*.toml"))) or "none"
        raise PantheonError(f"{source}: flow: no .pantheon/flows/{flow}.toml (known: {known})")
    loaded = load_flow(root, flow, agent_names(root))
    check_models(root, {node.agent for node in loaded.nodes}, f".pantheon/flows/{flow}.toml")
