"""`git pantheon check FILE…`: validate specs, flows, models.toml and config.toml (the pre-commit hook)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE")


def check_file(path: Path, root: Path) -> None:
    """Raise PantheonError (one line naming the file) if `path` is not valid for what it is."""
    from pantheon_git.schema.document import read_text

    text = read_text(path, str(path))
    parts = path.resolve().parts
    name = str(path)
    if ".pantheon" in parts and "flows" in parts:
        from pantheon_git.agents.registry import agent_names
        from pantheon_git.schema.flow import parse_flow

        parse_flow(text, name, agent_names(root))
    elif path.name == "models.toml" and ".pantheon" in parts:
        from pantheon_git.schema.models import parse_models

        parse_models(text, name)
    elif path.name == "config.toml" and ".pantheon" in parts:
        from pantheon_git.schema.config import parse_config

        parse_config(text, name)
    else:
        from pantheon_git.agents.registry import agent_names
        from pantheon_git.schema.flow import check_flow_exists
        from pantheon_git.schema.spec import parse_spec

        spec = parse_spec(text, name)
        check_flow_exists(root, spec.flow, name, agent_names(root))


def run(args: argparse.Namespace) -> int:
    from pantheon_git.errors import PantheonError, shown
    from pantheon_git.store.git import open_repo, work_tree

    root = work_tree(open_repo())
    failed = 0
    for name in args.files:
        try:
            check_file(Path(name), root)
        except PantheonError as exc:
            print(f"git pantheon check: {shown(exc)}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0
