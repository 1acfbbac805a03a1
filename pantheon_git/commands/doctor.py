"""`git pantheon doctor`: one line per thing a night needs, each ok or what to do; exit 0 only if a night
can pass (warnings allowed), 1 otherwise. `init` ends by running it."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-models",
        action="store_true",
        help="skip loading the models (the check that takes seconds: a child process decodes a few tokens)",
    )


def report(*, models: bool = True) -> bool:
    """Print every finding; whether a night can pass."""
    from pantheon_git.ops.doctor import diagnose, night_can_pass
    from pantheon_git.store.git import open_repo, work_tree

    repo = open_repo()
    findings = diagnose(repo, work_tree(repo), models=models)
    for finding in findings:
        print(finding.line())
    failing = sum(1 for finding in findings if finding.health == "FAIL")
    if failing:
        print(f"a night cannot pass yet: {failing} thing{'s' if failing > 1 else ''} to fix (FAIL above)")
    else:
        print("a night can pass")
    return night_can_pass(findings)


def run(args: argparse.Namespace) -> int:
    return 0 if report(models=not args.no_models) else 1
