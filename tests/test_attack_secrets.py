"""Attacks: secrets planted where a night reads them must not reach the object store (issue 10, part 3).

Seven common formats (AWS key id + secret line, JSON "token", PEM private key, netrc, PGPASSWORD=,
GitHub PAT, DATABASE_URL) are planted in acceptance output, in a file an agent reads, in a spec's title
and scope, in files a step commits and in the runner's environment. After the night (or the writes), the
whole object store is dumped with `git cat-file --batch-all-objects --batch` and searched for every
secret value: a plain `git push` would publish any object found there.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest

from tests.conftest import CHECKS_FLOW, git, pantheon

AWS_KEY_ID = "AKIAZ7Q3XW5R9T2Y4U6I"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ8v3Nt5Rk"
JSON_TOKEN = "tk9f8e7d6c5b4a3928170Zyx"
PEM_LINES = (
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK",
)
NETRC_PASSWORD = "NetrcS3cretPassw0rd"
PG_PASSWORD = "PgS3cretPassw0rd77"
GITHUB_PAT = "ghp_R4nd0mT0k3nV4lu3F0rT3st1ngXyZ123456"
DB_PASSWORD = "DbS3cretPassw0rd55"

SECRET_TEXT = f"""\
[default]
aws_access_key_id = {AWS_KEY_ID}
aws_secret_access_key = {AWS_SECRET}
{{"token": "{JSON_TOKEN}"}}
-----BEGIN RSA PRIVATE KEY-----
{PEM_LINES[0]}
{PEM_LINES[1]}
-----END RSA PRIVATE KEY-----
machine api.example.com login bob password {NETRC_PASSWORD}
PGPASSWORD={PG_PASSWORD}
export GITHUB_TOKEN_FOR_CI={GITHUB_PAT}
DATABASE_URL=postgres://app:{DB_PASSWORD}@db.internal:5432/app
"""
FILE_SECRETS = [
    AWS_KEY_ID,
    AWS_SECRET,
    JSON_TOKEN,
    *PEM_LINES,
    NETRC_PASSWORD,
    PG_PASSWORD,
    GITHUB_PAT,
    DB_PASSWORD,
]

# The runner's own environment: credentials by name (and one by value: a URL with a password).
ENV_SECRETS = {
    "GITHUB_PAT": "ghp_EnvT0k3nN0tF0rG1tH1st0ryAbCdEf987654",
    "PGPASSWORD": "EnvPgPass-4431-zz",
    "KAGGLE_KEY": "kag9e8d7c6b5a4f3e2d1",
    "DATABASE_URL": "postgres://u:EnvDbPass-9921@h/db",
    "SSH_AUTH_SOCK": "/tmp/ssh-XYZsecretsock/agent.1234",
    "AWS_SECRET_ACCESS_KEY": "EnvAwsSecretKeyValue+0123456789abcdefABCD",
    "MY_SERVICE_DSN": "https://k3y:EnvDsnSecret-77@sentry.example.com/1",
}
ENV_VALUES = [
    "EnvPgPass-4431-zz",
    "kag9e8d7c6b5a4f3e2d1",
    "EnvDbPass-9921",
    "XYZsecretsock",
    "EnvDsnSecret-77",
]
ENV_VALUES += [ENV_SECRETS["GITHUB_PAT"], ENV_SECRETS["AWS_SECRET_ACCESS_KEY"]]


def object_store(repo_dir: Path) -> bytes:
    """Every object of the repository, decompressed, as `git cat-file --batch` prints them."""
    return subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"], cwd=repo_dir, capture_output=True, check=True
    ).stdout


def leaked(repo_dir: Path, secrets: list[str]) -> list[str]:
    objects = object_store(repo_dir)
    return [secret for secret in secrets if secret.encode() in objects]


def test_a_night_with_planted_secrets_writes_none_of_them(repo_dir: Path, tmp_path: Path) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    (repo_dir / ".pantheon" / "flows" / "checks.toml").write_text(CHECKS_FLOW)
    config = repo_dir / ".pantheon" / "config.toml"
    config.write_text(config.read_text().replace("min_approvals = 2", "min_approvals = 0"))
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "pantheon with a model-free flow")
    # A credentials file outside the repository that a check prints, and one holding an env value only.
    outside = tmp_path / "credentials"
    outside.write_text(SECRET_TEXT)
    # Under the main git dir: the sandbox shows it read-only (a private /tmp hides tmp_path's files).
    env_copy = repo_dir / ".git" / "env-copy.txt"
    env_copy.write_text(f"kaggle {ENV_SECRETS['KAGGLE_KEY']} and pg {ENV_SECRETS['PGPASSWORD']}\n")
    encoded = base64.b64encode(SECRET_TEXT.encode()).decode()
    spec = tmp_path / "spec.toml"
    spec.write_text(
        f'id = "leaky"\ntitle = "Rotate {GITHUB_PAT} and PGPASSWORD={PG_PASSWORD}"\nflow = "checks"\n'
        f"scope = '''\n{SECRET_TEXT}'''\n"
        + "acceptance = "
        + json.dumps(
            [
                f"echo {encoded} | base64 -d",  # acceptance output: the secrets, printed
                f"echo {encoded} | base64 -d > leaked-by-check.txt",  # and a file the step commits
                f"cat {outside} {env_copy}",
                'echo "$GITHUB_PAT $KAGGLE_KEY $DATABASE_URL"; env',
                f"echo {encoded} | base64 -d; exit 3",  # a failing check: error paths record output
            ]
        )
        + "\n"
    )
    queued = pantheon(repo_dir, "queue", str(spec))
    assert queued.returncode == 0, queued.stderr
    env = {**os.environ, **ENV_SECRETS}
    night = subprocess.run(
        [sys.executable, "-m", "pantheon_git", "night"], cwd=repo_dir, env=env, capture_output=True, text=True
    )
    assert "night done: 1 run" in night.stdout, night.stdout + night.stderr
    # The attack reached every write path: the check ran, its output and file were recorded.
    assert "leaked-by-check.txt" in git(repo_dir, "ls-tree", "-r", "--name-only", "pantheon/leaky/1")
    test_step = git(
        repo_dir, "log", "--format=%H", "--grep", "Pantheon-Step: test", "pantheon/leaky/1"
    ).split()
    votes = git(repo_dir, "notes", "--ref", "pantheon/votes", "show", test_step[0])
    assert "[REDACTED:" in votes and "api.example.com" in votes
    assert "kaggle [REDACTED:environment]" in votes  # found by value only: the runner's KAGGLE_KEY
    assert leaked(repo_dir, FILE_SECRETS + ENV_VALUES) == []


def test_agent_reads_and_writers_redact_through_the_real_trace_and_vote_writers(
    repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pantheon_git.agents.builtin import IMPLEMENTER
    from pantheon_git.agents.calls import CallFormat, render
    from pantheon_git.agents.loop import run_agent
    from pantheon_git.runtime.recorded import ReplayRuntime
    from pantheon_git.store.runs import Step, make_step_commit, publish_step, start_run_branch, worktree_tree
    from pantheon_git.store.traces import write_trace
    from pantheon_git.store.votes import Vote, append_votes
    from pantheon_git.tools.builtin import TOOLS, ToolContext

    monkeypatch.setenv("KAGGLE_KEY", ENV_SECRETS["KAGGLE_KEY"])  # a known secret: redacted by value
    (repo_dir / "creds.txt").write_text(SECRET_TEXT + f"kaggle: {ENV_SECRETS['KAGGLE_KEY']}\n")
    repo = pygit2.Repository(str(repo_dir))
    ref = start_run_branch(repo, "t1", 1, repo.head.target)
    # The model reads the credentials file, then writes what it "remembers" and finishes quoting it.
    # (in the implementer's own call format: code travels as code)
    calls = [
        ("view", {"path": "creds.txt"}, TOOLS["view"].args),
        ("create", {"path": "notes.md", "content": SECRET_TEXT}, TOOLS["create"].args),
        ("finish", {"summary": f"used {GITHUB_PAT} with PGPASSWORD={PG_PASSWORD}"}, IMPLEMENTER.output),
    ]
    completions = [render(name, args, model, CallFormat.CODE) for name, args, model in calls]
    run = run_agent(
        IMPLEMENTER,
        ReplayRuntime(completions),
        ToolContext(worktree=repo_dir),
        {"title": f"use {AWS_KEY_ID}", "scope": SECRET_TEXT, "acceptance": ["true"]},
        {"plan": {"plan": SECRET_TEXT}},
    )
    assert run.ok and SECRET_TEXT not in json.dumps(run.turns[0]["result"])
    summary = run.output["summary"]
    step = Step("t1", "implement", "implementer", "replay", summary, {"Pantheon-Error": SECRET_TEXT})
    commit, parent = make_step_commit(repo, ref, step, tree=worktree_tree(repo_dir))
    write_trace(
        repo,
        commit,
        {
            "summary": summary,
            "output": run.output,
            "log_tail": SECRET_TEXT * 3,
            "agent_trace": run.trace(IMPLEMENTER, ReplayRuntime([])),
        },
        detail_keys=("agent_trace",),
    )
    append_votes(
        repo,
        commit,
        [Vote(voter="acceptance", verdict="reject", reasons=[SECRET_TEXT], evidence={"log": SECRET_TEXT})],
    )
    publish_step(repo, ref, commit, parent)
    assert {"creds.txt", "notes.md"} <= set(
        git(repo_dir, "ls-tree", "-r", "--name-only", str(commit)).split()
    )
    assert leaked(repo_dir, [*FILE_SECRETS, ENV_SECRETS["KAGGLE_KEY"]]) == []
