"""Attacks of issue 22, class 5: terminal escapes in data never reach the terminal.

Another machine publishes, with plain git, a spec whose title writes the clipboard (OSC 52), sets the
window title and clears the screen; a spec file whose very name carries an escape; and a vote whose
voter's name turns on "concealed" text, which would hide the row's own "unverified (ignored)" mark. The
victim syncs, then lists, shows, reports and runs the night with the real CLI: no output of any verb may
carry a control character, and each string is shown with its escapes spelled out instead.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from pantheon_git.ops.progress import Progress, describe
from pantheon_git.store.git import open_repo
from pantheon_git.store.layout import TASKS_REF, VOTES_NOTES
from pantheon_git.store.logview import LOG_TRAILER, log_votes, step_log
from pantheon_git.store.runs import Step, commit_step, start_run_branch
from pantheon_git.store.votes import Vote
from tests.conftest import git, pantheon
from tests.test_attack_untrusted_data import (
    attacker_clone,
    git_in,
    hash_object,
    mktree,
    pantheon_repo,
    plumbing_commit,
    push,
    queue,
    signed_run,
)

CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4K\x07"  # OSC 52: put `rm -rf ~` on the clipboard
WINDOW_TITLE = "\x1b]0;you have been pwned\x07"
CLEAR = "\x1b[2J\x1b[H"
CONCEAL = "\x1b[8m"  # everything after it on the line is invisible
# Any C0 control but newline, DEL, C1 (0x80-0x9f, CSI as one byte 0x9b), and bidi overrides.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def toml_escaped(text: str) -> str:
    """`text` as a TOML basic string's body (what the attacker writes with any text editor)."""
    return "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or c in '"\\' else c for c in text)


def test_escapes_from_a_remote_are_shown_escaped_by_list_show_report_night_and_errors(tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    victim = pantheon_repo(tmp_path / "victim", bare)
    queue(victim, "good")
    _test, head = signed_run(victim, "good", gate=True)
    assert pantheon(victim, "sync").returncode == 0

    other = attacker_clone(tmp_path, bare)
    title = f"fix typo{CLIPBOARD}{WINDOW_TITLE}{CLEAR}\u202eexe.txt"
    # Its check fails printing escapes: the output reaches the step's trace, error and log line.
    check = f"printf '{CLEAR}\\033]0;check\\007'; exit 3"
    spec = (
        f'id = "evil"\ntitle = "{toml_escaped(title)}"\n'
        f'acceptance = ["{toml_escaped(check)}"]\nflow = "checks"\n'
    )
    badly_named = f"e{WINDOW_TITLE}.toml"
    tasks = git(other, "rev-parse", TASKS_REF).strip()
    listing = [
        *git(other, "ls-tree", tasks).splitlines(),
        f"100644 blob {hash_object(other, spec.encode())}\tevil.toml",
        f"100644 blob {hash_object(other, b'title = 1')}\t{badly_named}",
    ]
    git(other, "update-ref", TASKS_REF, plumbing_commit(other, mktree(other, listing), tasks, "queue"))
    line = (
        json.dumps({"id": "z", "kind": "vote", "voter": f"alice: approve{CONCEAL}", "verdict": "approve"})
        + "\n"
    )
    git_in(other, "notes", "--ref", "pantheon/votes", "append", "-F", "-", str(head), stdin=line.encode())
    push(other, TASKS_REF, VOTES_NOTES)
    synced = pantheon(victim, "sync")
    assert synced.returncode == 0, synced.stderr

    outputs = {}
    for args in (
        ["list"],
        ["show", "evil"],
        ["report"],
        ["show", "e"],
        ["night"],
        ["gate", "good"],
        ["report", "--since", "1d"],
    ):
        result = pantheon(victim, *args)
        outputs[" ".join(args)] = result
        assert not RAW_CONTROL.search(result.stdout), (args, result.stdout)
        assert not RAW_CONTROL.search(result.stderr), (args, result.stderr)
    escaped_title = (
        "fix typo\\x1b]52;c;cm0gLXJmIH4K\\x07\\x1b]0;you have been pwned\\x07\\x1b[2J\\x1b[H\\u202eexe.txt"
    )
    assert escaped_title in outputs["list"].stdout
    assert f"evil       queued       0  checks     {escaped_title}" in outputs["list"].stdout
    assert "e\\x1b]0;you have been pwned\\x07.toml" in outputs["list"].stderr  # the broken spec's line
    # `show` prints the spec as TOML, which writes control characters as its own escapes.
    assert 'title = "fix typo\\u001b]52;c;cm0gLXJmIH4K\\u0007\\u001b]0;' in outputs["show evil"].stdout
    # The voter's name cannot hide its row's mark: it is shown escaped, the mark right after it.
    assert "alice: approve\\x1b[8m: approve (unverified (ignored): unsigned)" in outputs["report"].stdout
    assert f"| evil: {escaped_title} | queued |" in outputs["report"].stdout
    # An error line quoting data (an ambiguous prefix lists the ids it matches).
    assert outputs["show e"].returncode == 2
    assert "ambiguous, matches e\\x1b]0;you have been pwned\\x07, evil" in outputs["show e"].stderr
    # The night's progress: the broken spec's failure line and the task's own line, both escaped.
    night = outputs["night"].stdout
    assert "task e\\x1b]0;you have been pwned\\x07 failed: refs/pantheon/tasks:e\\x1b]0;" in night
    assert f"task evil attempt 1: {escaped_title}" in night
    # The morning's report, with the failed run of `evil` whose check printed escapes in its red bin.
    assert "- **evil** failed at" in outputs["report --since 1d"].stdout
    # `git log` of the runs, with the log notes under each step (as `init` configures it): the step
    # subjects, Pantheon-Log and Pantheon-Error trailers and the votes logged later carry no escape.
    for branch in ("pantheon/evil/1", "pantheon/good/1"):
        logged = git(victim, "log", "--notes=pantheon/log", branch)
        assert not RAW_CONTROL.search(logged), (branch, logged)


def test_git_log_of_a_run_shows_what_a_model_and_a_voter_wrote_escaped(tmp_path: Path) -> None:
    """What the night writes into a step commit (the model's summary, an error naming the path it asked
    for, reviewers' reasons in the log line) and the votes logged under it later: `git log` prints them
    as they are, so they are written escaped."""
    victim = pantheon_repo(tmp_path / "victim", tmp_path / "remote.git")
    queue(victim, "good")
    repo = open_repo(victim)
    ref = start_run_branch(repo, "good", 1, repo.head.target)
    review = Vote(voter=f"reviewer:{CONCEAL}", verdict="reject", reasons=[f"looks bad{CLIPBOARD}"])
    extra = {
        "Pantheon-Attempt": "1",
        "Pantheon-Error": f"view: no such file: a{WINDOW_TITLE}.py",
        LOG_TRAILER: step_log({"agent": "implementer", "ok": False}, [review]),
    }
    commit = commit_step(repo, ref, Step("good", "implement", "implementer", "-", f"fix{CLEAR}\u202e", extra))
    log_votes(repo, commit, [Vote(voter=f"mallory{CONCEAL}", verdict="approve", reasons=[f"ok{CLEAR}"])])

    logged = git(victim, "log", "--notes=pantheon/log", "pantheon/good/1")
    assert not RAW_CONTROL.search(logged), logged
    assert "implement: fix\\x1b[2J\\x1b[H\\u202e" in logged
    assert "Pantheon-Error: view: no such file: a\\x1b]0;you have been pwned\\x07.py" in logged
    assert "reviewer:\\x1b[8m reject: looks bad\\x1b]52;c;" in logged
    assert "votes: mallory\\x1b[8m approve (ok\\x1b[2J\\x1b[H)" in logged


def test_every_progress_line_escapes_every_field() -> None:
    bad = f"x{CLIPBOARD}{CLEAR}\r\n\x9b2J"
    events = [
        {"event": "task", "task": bad, "attempt": 1, "title": bad, "resume": True},
        {"event": "node", "node": bad, "agent": bad, "job": bad},
        {"event": "step", "node": bad, "ok": False, "seconds": 1.0, "commit": bad, "job": bad},
        {"event": "done", "task": bad, "outcome": bad, "detail": bad, "branch": bad},
        {"event": "night", "claims": bad},
        {"event": "failed", "task": bad, "reason": bad},
        {"event": "skipped", "task": bad, "reason": bad},
        {"event": bad, "path": bad},
    ]
    for event in events:
        line = describe(event, 61.0)
        assert not RAW_CONTROL.search(line) and "\n" not in line, line
        assert "\\x1b]52;c;" in line or "\\u001b]52;c;" in line, line
    # On a terminal the only escape written is the progress line's own "erase line" before a rewrite.
    stream = io.StringIO()
    stream.isatty = lambda: True  # type: ignore[method-assign]
    progress = Progress(stream)
    for event in events:
        progress(event)
    assert not RAW_CONTROL.search(stream.getvalue().replace("\r\x1b[K", "").replace("\n", ""))


def test_shown_spells_out_control_characters_and_keeps_text() -> None:
    from pantheon_git.errors import shown  # the helper this class added (here, so the attacks run before)

    assert shown("plain title, café, 日本") == "plain title, café, 日本"
    assert shown(CLIPBOARD) == "\\x1b]52;c;cm0gLXJmIH4K\\x07"
    assert shown("a\tb\r\nc\x9b2J\x7f") == "a\\tb\\r\\nc\\x9b2J\\x7f"
    assert shown("\u202eexe.txt\u2066") == "\\u202eexe.txt\\u2066"
    assert shown(3) == "3" and shown(None) == "None"
