"""The CLI's argparse parser: the verbs and their one-line help, each verb's options loaded on demand.

`git pantheon VERB` loads only that verb's options (fast start); the manual page and the shell
completion load every verb's. cli.py parses with it; commands/manual.py and completion.py document it.
"""

from __future__ import annotations

import argparse
import importlib

from pantheon_git import __version__

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
    "train": ("train", "mine notes into datasets; train LoRA adapters, promote one or roll back"),
    "sync": ("sync", "fetch, merge and push tasks, claims, run branches and notes with a remote"),
    "check": ("check", "validate spec, flow, models and config files (the pre-commit hook)"),
    "hooks": ("hooks", "install or uninstall the pre-push guard of protected branches (or run it)"),
    "schedule": ("schedule", "install, show or remove the nightly cron line (or systemd timer)"),
    "replay": ("replay", "re-run a recorded step from its trace and check the tool results still match"),
    "doctor": ("doctor", "check what a night needs: sandbox, model, signing, tools, remotes, disk, schedule"),
    "completion": ("completion", "print the bash or zsh completion script for `git pantheon`"),
}


def build_parser(verb: str | None, *, every_verb: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="git pantheon",
        description="A local-only AI night shift whose database, audit trail and sync protocol is git.",
    )
    parser.add_argument("--version", action="version", version=f"pantheon-git {__version__}")
    parser.add_argument("-C", dest="directory", metavar="PATH", help="run as if started in PATH")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (module, help_text) in VERBS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == verb or every_verb:  # every verb: for man pages and shell completion only
            importlib.import_module(f"pantheon_git.commands.{module}").add_arguments(sub)
    return parser
