"""`init`'s two jobs: scaffold .pantheon/ from templates/, and configure git to show and sync pantheon data.

Both only add what is missing, so running them again changes nothing and never overwrites a user's edit.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pygit2

from pantheon_git.ops.templates import templates_dir
from pantheon_git.queue.sync import push_refspecs
from pantheon_git.store.git import run_git
from pantheon_git.store.layout import PAYLOADS_NOTES, TRACES_NOTES, VOTES_NOTES, notes_name

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


def enable_push_traces(root: Path) -> bool:
    """Set `[sync] push_traces = true` in .pantheon/config.toml, keeping the rest; False if already set."""
    path = root / ".pantheon" / "config.toml"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if re.search(r"(?m)^push_traces\s*=\s*true\s*$", text):
        return False
    if re.search(r"(?m)^push_traces\s*=", text):
        text = re.sub(r"(?m)^push_traces\s*=.*$", "push_traces = true", text, count=1)
    elif re.search(r"(?m)^\[sync\]\s*$", text):
        text = re.sub(r"(?m)^\[sync\]\s*$", "[sync]\npush_traces = true", text, count=1)
    else:
        text += ("\n" if text and not text.endswith("\n") else "") + "\n[sync]\npush_traces = true\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def create_notes_refs(repo: pygit2.Repository) -> list[str]:
    """Give the displayed notes refs an empty first commit, so `git log` does not warn they are missing."""
    from pantheon_git.store.git import set_ref, signature

    created = []
    for ref in (TRACES_NOTES, VOTES_NOTES):
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


# Pushed every notes ref, traces and payloads included; earlier versions of `init` set it.
OLD_NOTES_PUSH = "refs/notes/pantheon/*:refs/notes/pantheon/*"


def wanted_config(
    remote: str | None, *, has_push_refspecs: bool, push_traces: bool = False
) -> list[ConfigValue]:
    """The git config pantheon needs (pure): notes display and merge, and refspecs on `remote`.

    A plain `git push` carries the queue, run branches, votes and evals; trace notes and payloads only
    with `push_traces` (`[sync] push_traces = true` or `init --push-traces`).
    """
    wanted = [ConfigValue("notes.displayRef", ref) for ref in (TRACES_NOTES, VOTES_NOTES)]
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
    for refspec in push_refspecs(push_traces)[1:]:  # the queue is in refs/pantheon/* already
        wanted.append(ConfigValue(push, refspec))
    return wanted


def unwanted_config(remote: str | None, *, push_traces: bool = False) -> list[ConfigValue]:
    """Values `init` removes: push refspecs that would publish trace notes nobody asked to push."""
    if remote is None:
        return []
    push = f"remote.{remote}.push"
    unwanted = [ConfigValue(push, OLD_NOTES_PUSH)]
    if not push_traces:
        unwanted += [ConfigValue(push, f"{ref}*:{ref}*") for ref in (TRACES_NOTES, PAYLOADS_NOTES)]
    return unwanted


def _current(root: Path, key: str) -> list[str]:
    proc = run_git(["config", "--local", "--get-all", key], root, check=False)
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def configure(
    repo: pygit2.Repository, root: Path, remote: str | None, *, push_traces: bool = False
) -> list[str]:
    """Add the missing config values and remove unwanted ones; returns `key = value` / `key -= value`."""
    has_push = remote is not None and bool(_current(root, f"remote.{remote}.push"))
    added = []
    for item in unwanted_config(remote, push_traces=push_traces):
        if item.value in _current(root, item.key):
            run_git(["config", "--local", "--fixed-value", "--unset-all", item.key, item.value], root)
            added.append(f"{item.key} -= {item.value}")
    for item in wanted_config(remote, has_push_refspecs=has_push, push_traces=push_traces):
        present = _current(root, item.key)
        if item.value in present:
            continue
        if item.multi:
            run_git(["config", "--local", "--add", item.key, item.value], root)
        else:
            run_git(["config", "--local", item.key, item.value], root)
        added.append(f"{item.key} = {item.value}")
    return added
