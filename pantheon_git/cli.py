"""`git pantheon VERB …`: parse the verb, import only that verb's module, print errors as one line.

Each verb lives in pantheon_git/commands/<verb>.py with `add_arguments(parser)` and `run(args) -> int`.
Only the chosen verb's module is imported, so `git pantheon --help` and quick verbs start fast and
never load the model stack.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from pantheon_git import __version__
from pantheon_git.errors import PantheonError

# verb -> (module under pantheon_git.commands, one-line help). Order is the order `--help` lists them.
VERBS: dict[str, tuple[str, str]] = {
    "init": ("init", "set up .pantheon/ and git config in this repository (or scaffold an agent)"),
    "queue": ("queue", "validate specs and add them to the queue (refs/pantheon/tasks)"),
    "list": ("list", "list queued tasks with their derived status"),
    "show": ("show", "show one task: its spec, status and runs"),
    "cancel": ("cancel", "cancel a queued task"),
    "plan": ("plan", "let a model draft a spec from a sentence (day mode; you check it before queueing)"),
    "night": (
        "night",
        "run the queue in night mode: local models only, every step a commit (cron runs this)",
    ),
    "run": ("run", "run the named tasks now, in night mode"),
    "flow": ("flow", "validate flows: `git pantheon flow check [NAME…]`"),
    "report": ("report", "the morning report: status, gate, votes, acceptance, tokens, the red bin"),
    "vote": ("vote", "vote approve, reject or abstain on a task's newest run"),
    "gate": ("gate", "re-evaluate a task's gate over all its votes"),
    "merge": ("merge", "merge passing run branches into their base"),
    "train": ("train", "mine notes into datasets; train, export and promote LoRA adapters"),
    "sync": ("sync", "fetch, merge and push tasks, claims, run branches and notes with a remote"),
    "check": ("check", "validate spec, flow, models and config files (the pre-commit hook)"),
    "hooks": ("hooks", "install or uninstall the pre-push guard of protected branches (or run it)"),
    "schedule": ("schedule", "install, show or remove the nightly cron line (or systemd timer)"),
    "replay": ("replay", "re-run a recorded step from its trace and check the tool results still match"),
}


def build_parser(verb: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="git pantheon",
        description="A local-only AI night shift whose database, audit trail and sync protocol is git.",
    )
    parser.add_argument("--version", action="version", version=f"pantheon-git {__version__}")
    parser.add_argument("-C", dest="directory", metavar="PATH", help="run as if started in PATH")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (module, help_text) in VERBS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == verb:
            importlib.import_module(f"pantheon_git.commands.{module}").add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # pydantic scans every installed package's entry points for plugins on its first model (tens of
    # milliseconds on each start); the CLI uses none.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    args_list = list(sys.argv[1:] if argv is None else argv)
    verb = next((arg for arg in args_list if arg in VERBS), None)
    parser = build_parser(verb)
    args = parser.parse_args(args_list)
    if args.verb is None:
        parser.print_help()
        return 2
    if args.directory:
        os.chdir(args.directory)
    module = importlib.import_module(f"pantheon_git.commands.{VERBS[args.verb][0]}")
    try:
        return int(module.run(args) or 0)
    except PantheonError as exc:
        print(f"git pantheon {args.verb}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (`| head`) went away: not an error of ours; keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    raise SystemExit(main())
