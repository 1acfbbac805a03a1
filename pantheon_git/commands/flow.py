"""`git pantheon flow check [NAME…]`: validate flows (agents, inputs, cycles, conditions)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["check"], help="what to do")
    parser.add_argument("names", nargs="*", metavar="NAME", help="flows to check (default: all)")


def run(args: argparse.Namespace) -> int:
    from pantheon_git.agents.registry import agent_names, check_models
    from pantheon_git.schema.flow import load_flow, topological_order
    from pantheon_git.store.git import open_repo, work_tree

    root = work_tree(open_repo())
    names = args.names or sorted(path.stem for path in (root / ".pantheon" / "flows").glob("*.toml"))
    if not names:
        print("no flows in .pantheon/flows (run `git pantheon init`)")
        return 2
    known = agent_names(root)
    for name in names:
        flow = load_flow(root, name, known)
        check_models(root, {node.agent for node in flow.nodes}, f".pantheon/flows/{name}.toml")
        order = " -> ".join(node.id for node in topological_order(flow))
        print(f"{name}: ok ({order})")
    return 0
