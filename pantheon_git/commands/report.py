"""`git pantheon report [--since 24h] [--format md|json]`: the morning report (also saved as markdown)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", default=None, help="only tasks touched within this span, e.g. 24h, 7d")
    parser.add_argument("--format", choices=["md", "json"], default="md")


def run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from pantheon_git.review.report import (
        build_report,
        parse_since,
        render_json,
        render_markdown,
        training_outcomes,
    )
    from pantheon_git.store.git import open_repo
    from pantheon_git.store.locks import pantheon_dir

    since = parse_since(args.since) if args.since else None
    repo = open_repo()
    reports = build_report(repo, since)
    now = datetime.now(UTC)
    title = f"pantheon-git report, {now:%Y-%m-%d %H:%M} UTC"
    markdown = render_markdown(reports, title, training_outcomes(repo))
    folder = pantheon_dir(repo.path) / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{now:%Y-%m-%d}.md").write_text(markdown)
    print(
        render_json(reports) if args.format == "json" else markdown, end="" if args.format == "md" else "\n"
    )
    return 0
