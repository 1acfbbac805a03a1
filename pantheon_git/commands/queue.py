"""`git pantheon queue`: validate specs (files, stdin or flags) and commit them to refs/pantheon/tasks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pantheon_git.errors import PantheonError, shown

if TYPE_CHECKING:
    import pygit2

    from pantheon_git.schema.spec import Spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", metavar="FILE", help="spec TOML files; '-' reads one from stdin")
    parser.add_argument("--title", help="queue a spec given by flags instead of a file")
    parser.add_argument("--acceptance", action="append", metavar="CMD", help="a check (repeatable)")
    parser.add_argument("--scope", help="free text for the agents")
    parser.add_argument("--flow", help="flow name (default: default)")
    parser.add_argument("--base", help="branch or commit to start from (default: the current branch)")
    parser.add_argument("--priority", type=int, help="higher runs first (default 0)")
    parser.add_argument(
        "--file",
        action="append",
        dest="named_files",
        metavar="PATH",
        help="a file the task changes (repeatable)",
    )
    parser.add_argument(
        "--signature",
        metavar="DEF",
        help="the function the task adds, e.g. 'def mul(a: int, b: int) -> int': the night places its stub",
    )
    parser.add_argument("--label", action="append", dest="labels", metavar="LABEL", help="a tag (repeatable)")
    parser.add_argument("--id", dest="task_id", help="choose the id instead of generating one")


def run(args: argparse.Namespace) -> int:
    flags = {
        "id": args.task_id,
        "title": args.title,
        "acceptance": args.acceptance,
        "scope": args.scope,
        "flow": args.flow,
        "base": args.base,
        "priority": args.priority,
        "labels": args.labels,
        "files": args.named_files,
        "signature": args.signature,
    }
    given = {key: value for key, value in flags.items() if value is not None}
    if args.files and given:
        raise PantheonError("give spec files or --title/--acceptance flags, not both")
    if args.files:
        specs = read_specs(args.files)
    elif given:
        from pantheon_git.schema.spec import validate_spec

        specs = [(validate_spec({"acceptance": [], **given}, "command line"), "command line")]
    else:
        raise PantheonError("nothing to queue: give spec files, '-' for stdin, or --title and --acceptance")
    for spec in queue_specs(specs):
        print(f"queued {spec.id}  {shown(spec.title)}")
    return 0


def read_specs(names: list[str]) -> list[tuple[Spec, str]]:
    """Each named spec file ('-': stdin) parsed and validated, with the name it is reported under."""
    from pantheon_git.schema.document import read_text
    from pantheon_git.schema.spec import parse_spec

    specs = []
    for name in names:
        text, source = (sys.stdin.read(), "<stdin>") if name == "-" else (read_text(Path(name), name), name)
        specs.append((parse_spec(text, source), source))
    return specs


def queue_specs(specs: list[tuple[Spec, str]]) -> list[Spec]:
    """Check every spec against this repository (base, flow), stamp them, queue them all in one commit.

    Nothing is written unless every spec is good.
    """
    from pantheon_git.queue.tasks import enqueue
    from pantheon_git.schema.spec import stamp
    from pantheon_git.store.git import open_repo, signature

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
    return stamped


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
    from pantheon_git.schema.flow import check_flow_exists

    root = Path(repo.workdir)
    loaded = check_flow_exists(root, flow, source, agent_names(root))
    if loaded is not None:
        check_models(root, {node.agent for node in loaded.nodes}, f".pantheon/flows/{flow}.toml")
