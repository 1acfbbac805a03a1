"""`init`'s two jobs: scaffold .pantheon/ from templates/, and configure git to show and sync pantheon data.

Both only add what is missing, so running them again changes nothing and never overwrites a user's edit.
"""

from __future__ import annotations

import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pygit2

from pantheon_git.ops.templates import templates_dir
from pantheon_git.queue.sync import push_refspecs
from pantheon_git.store.git import run_git
from pantheon_git.store.layout import LOG_NOTES, PAYLOADS_NOTES, TRACES_NOTES, VOTES_NOTES, notes_name

# What `init` copies from templates/ into .pantheon/ (spec.toml stays a template for `queue`).
SCAFFOLD = ("config.toml", "models.toml", "flows/default.toml", "agents/README.md")


@dataclass(frozen=True, slots=True)
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


# Pushed every notes ref, traces and payloads included; earlier versions of `init` set it.
OLD_NOTES_PUSH = "refs/notes/pantheon/*:refs/notes/pantheon/*"
# `git log --pretty=pantheon`: one line per commit plus its step's report line and later votes.
PRETTY_PANTHEON = "format:%C(auto)%h%d %s%n%(trailers:key=Pantheon-Log,valueonly)%N"


def wanted_config(
    remote: str | None, *, has_push_refspecs: bool, push_traces: bool = False
) -> list[ConfigValue]:
    """The git config pantheon needs (pure): notes display and merge, and refspecs on `remote`.

    A plain `git push` carries the queue, run branches, votes and evals; trace notes and payloads only
    with `push_traces` (`[sync] push_traces = true` or `init --push-traces`).
    """
    # `git log` shows the short step summaries (votes included), never the JSON traces: a six-step run
    # stays on one screen. Tools read refs/notes/pantheon/traces directly.
    wanted = [ConfigValue("notes.displayRef", LOG_NOTES)]
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
    for refspec in push_refspecs(push_traces)[1:]:  # the queue is in refs/pantheon/* already
        wanted.append(ConfigValue(push, refspec))
    return wanted


def unwanted_config(remote: str | None, *, push_traces: bool = False) -> list[ConfigValue]:
    """Values `init` removes: what earlier versions set and is now retired (JSON traces shown by
    `git log`), and push refspecs that would publish trace notes nobody asked to push."""
    unwanted = [ConfigValue("notes.displayRef", ref) for ref in (TRACES_NOTES, VOTES_NOTES)]
    if remote is None:
        return unwanted
    push = f"remote.{remote}.push"
    unwanted.append(ConfigValue(push, OLD_NOTES_PUSH))
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


RUNNER_PRINCIPAL = "pantheon-runner@{host}"


def setup_signing(repo: pygit2.Repository, root: Path) -> list[str]:
    """The runner's signing key: an ed25519 key under the git dir (created once, mode 600, never in a
    tree), configured for git's SSH signing, and its public key in .pantheon/allowed_signers.

    Returns what changed, one line each. The allowed signers count only once committed on main.
    """
    from pantheon_git.store.signing import (
        ALLOWED_SIGNERS,
        allowed_signers_line,
        create_key,
        parse_allowed_signers,
        runner_key_path,
    )

    changes = []
    key = runner_key_path(repo)
    principal = RUNNER_PRINCIPAL.format(host=socket.gethostname() or "localhost")
    if not key.exists():
        create_key(key, principal)
        changes.append(f"created {key} (the runner's signing key; keep it private)")
    public = Path(f"{key}.pub").read_text().strip()
    wanted = [
        ConfigValue("gpg.format", "ssh", multi=False),
        ConfigValue("user.signingKey", str(key), multi=False),
        ConfigValue("pantheon.signingKey", str(key), multi=False),
        ConfigValue("gpg.ssh.allowedSignersFile", str(root / ALLOWED_SIGNERS), multi=False),
    ]
    for item in wanted:
        if item.value not in _current(root, item.key):
            run_git(["config", "--local", item.key, item.value], root)
            changes.append(f"git config {item.key} = {item.value}")
    signers_file = root / ALLOWED_SIGNERS
    text = signers_file.read_text() if signers_file.exists() else ""
    key_type, key_b64 = public.split()[:2]
    if (key_type, key_b64) not in parse_allowed_signers(text).keys:
        signers_file.parent.mkdir(parents=True, exist_ok=True)
        prefix = text if not text or text.endswith("\n") else text + "\n"
        signers_file.write_text(prefix + allowed_signers_line(principal, public) + "\n")
        changes.append(f"added {principal} to {ALLOWED_SIGNERS} (commit it on main for it to count)")
    return changes
