"""`init`'s two jobs: scaffold .pantheon/ from templates/, and configure git to show and sync pantheon data.

Both only add what is missing, so running them again changes nothing and never overwrites a user's edit.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pygit2

from pantheon_git.ops.templates import templates_dir
from pantheon_git.store.git import run_git
from pantheon_git.store.layout import LOG_NOTES, TRACES_NOTES, VOTES_NOTES, notes_name

# What `init` copies from templates/ into .pantheon/ (spec.toml stays a template for `queue`).
SCAFFOLD = ("config.toml", "models.toml", "flows/default.toml", "agents/README.md")


@dataclass(frozen=True)
class ConfigValue:
    """One value of a (possibly multi-valued) git config key that pantheon needs set."""

    key: str
    value: str
    multi: bool = True


def scaffold(root: Path) -> list[Path]:
    """Copy missing template files into `root`/.pantheon; returns the files created."""
    created = []
    source = templates_dir()
    for relative in SCAFFOLD:
        target = root / ".pantheon" / relative
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, target)
        created.append(target)
    return created


def create_notes_refs(repo: pygit2.Repository) -> list[str]:
    """Give the displayed notes refs an empty first commit, so `git log` does not warn they are missing."""
    from pantheon_git.store.git import set_ref, signature

    created = []
    for ref in (LOG_NOTES,):
        if repo.references.get(ref) is None:
            sig = signature(repo)
            empty = repo.TreeBuilder().write()
            commit = repo.create_commit(None, sig, sig, "pantheon: notes start here\n", empty, [])
            if set_ref(repo, ref, commit, None, "pantheon: init"):
                created.append(ref)
    return created


def default_remote(repo: pygit2.Repository) -> str | None:
    """origin if it exists, else the only remote, else None."""
    names = [remote.name for remote in repo.remotes]
    if "origin" in names:
        return "origin"
    return names[0] if len(names) == 1 else None


def wanted_config(remote: str | None, *, has_push_refspecs: bool) -> list[ConfigValue]:
    """The git config pantheon needs (pure): notes display and merge, and refspecs on `remote`."""
    # `git log` shows the short step summaries (votes included), never the JSON traces: a six-step run
    # stays on one screen. Tools read refs/notes/pantheon/traces directly.
    wanted = [ConfigValue("notes.displayRef", LOG_NOTES)]
    # `git log --pretty=pantheon`: one line per commit plus its log lines, for a screen-sized report.
    wanted.append(ConfigValue("pretty.pantheon", PRETTY_PANTHEON, multi=False))
    wanted.append(ConfigValue(f"notes.{notes_name(VOTES_NOTES)}.mergeStrategy", "cat_sort_uniq", multi=False))
    if remote is None:
        return wanted
    fetch = f"remote.{remote}.fetch"
    push = f"remote.{remote}.push"
    # Remote pantheon refs land in a namespace of their own, so a forced update there never touches
    # local data; notes are fetched without '+' (a forced notes fetch throws local notes away).
    wanted.append(ConfigValue(fetch, f"+refs/pantheon/*:refs/pantheon-remotes/{remote}/*"))
    wanted.append(ConfigValue(fetch, f"refs/notes/pantheon/*:refs/notes/remotes/{remote}/pantheon/*"))
    if not has_push_refspecs:
        # Once remote.<name>.push is set, a plain `git push` pushes only those refspecs: keep pushing
        # the current branch as before.
        wanted.append(ConfigValue(push, "HEAD"))
    wanted.append(ConfigValue(push, "refs/pantheon/*:refs/pantheon/*"))
    wanted.append(ConfigValue(push, "refs/heads/pantheon/*:refs/heads/pantheon/*"))
    wanted.append(ConfigValue(push, "refs/notes/pantheon/*:refs/notes/pantheon/*"))
    return wanted


PRETTY_PANTHEON = "format:%C(auto)%h%d %s%n%N"

# What earlier versions set and `init` now takes back: the JSON traces made `git log` unreadable.
RETIRED = (ConfigValue("notes.displayRef", TRACES_NOTES), ConfigValue("notes.displayRef", VOTES_NOTES))


def _current(root: Path, key: str) -> list[str]:
    proc = run_git(["config", "--local", "--get-all", key], root, check=False)
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def configure(repo: pygit2.Repository, root: Path, remote: str | None) -> list[str]:
    """Add the missing config values; returns `key = value` for each one added."""
    has_push = remote is not None and bool(_current(root, f"remote.{remote}.push"))
    added = []
    for item in RETIRED:
        if item.value in _current(root, item.key):
            run_git(["config", "--local", "--fixed-value", "--unset-all", item.key, item.value], root)
            added.append(f"{item.key} -= {item.value}")
    for item in wanted_config(remote, has_push_refspecs=has_push):
        present = _current(root, item.key)
        if item.value in present:
            continue
        if item.multi:
            run_git(["config", "--local", "--add", item.key, item.value], root)
        else:
            run_git(["config", "--local", item.key, item.value], root)
        added.append(f"{item.key} = {item.value}")
    return added
