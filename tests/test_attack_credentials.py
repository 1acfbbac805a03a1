"""Attacks: git's own credential forms, as CI checkouts leave them in `.git/config`, must not reach the
object store (issue 22, class 6).

A CI checkout leaves `http.<url>.extraheader = AUTHORIZATION: basic <base64 of x-access-token:TOKEN>`
in the repository's config, remotes carry tokens in their URLs, a credential helper may be an inline
script holding a password, and `~/.git-credentials` lines are `https://user:TOKEN@host`. A check prints
them (`cat .git/config`, `git config --list`, `git credential fill`); what it prints becomes a vote, a
trace and a file of the run branch, which `sync` publishes. The sandbox shows git's config without
them, and the redactor knows each form wherever else a check finds one.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pantheon_git.store.redact import redact
from pantheon_git.tools.sandbox import sandbox_available, sandbox_problem
from tests.conftest import CHECKS_FLOW, git, pantheon
from tests.test_attack_sandbox import night_worktree, run_checks

needs_sandbox = pytest.mark.skipif(
    not os.environ.get("CI") and not sandbox_available(),
    reason=f"no bubblewrap sandbox on this machine: {sandbox_problem()}",
)

# What actions/checkout leaves: the installation token, base64'd with its user into a basic header.
CI_TOKEN = "ghs_Q1w2E3r4T5y6U7i8O9p0AbCdEfGhIjKlMn"
CI_BASIC = base64.b64encode(f"x-access-token:{CI_TOKEN}".encode()).decode()
REMOTE_TOKEN = "ghp_R3m0teT0k3nInTheUrlAbCdEf0123456789"
GITLAB_TOKEN = "glpatQz8Yx7Wv6Ut5Sr4Qp"  # no provider prefix: only its place in the URL says token
URL_ONLY_TOKEN = "Zq8Wx7Ec6Rv5Tb4Yn3UmXy1K"  # `https://TOKEN@host`: no user, no colon
HELPER_PASSWORD = "HelperPw0rd-from-an-inline-helper"
SMTP_PASSWORD = "SmtpPw0rd-of-send-email"
INCLUDED_TOKEN = "IncludedT0kenFromAnIncludeFile77"
API_TOKEN = "7f3a9c1e5b2d8f4a6c0e9d8c"  # `Authorization: token …`, as GitHub's API takes it
STORE_PASSWORD = "St0reLinePassw0rd"  # a ~/.git-credentials line
CONFIG_SECRETS = [
    CI_TOKEN,
    CI_BASIC,
    REMOTE_TOKEN,
    GITLAB_TOKEN,
    URL_ONLY_TOKEN,
    HELPER_PASSWORD,
    SMTP_PASSWORD,
    INCLUDED_TOKEN,
]


def plant_ci_credentials(repo_dir: Path) -> None:
    """The repository's config as a CI checkout (and a careless person) leaves it."""
    git(repo_dir, "config", "http.https://github.com/.extraheader", f"AUTHORIZATION: basic {CI_BASIC}")
    git(repo_dir, "remote", "add", "origin", f"https://x-access-token:{REMOTE_TOKEN}@github.com/o/r.git")
    git(repo_dir, "remote", "add", "lab", f"https://oauth2:{GITLAB_TOKEN}@gitlab.com/o/r.git")
    git(repo_dir, "config", f"url.https://{URL_ONLY_TOKEN}@github.com/.insteadOf", "https://github.com/")
    git(repo_dir, "config", "credential.helper", f"!f() {{ echo password={HELPER_PASSWORD}; }}; f")
    git(repo_dir, "config", "sendemail.smtpPass", SMTP_PASSWORD)
    (repo_dir / ".git" / "tokens.inc").write_text(f"[github]\n\toauth = {INCLUDED_TOKEN}\n")
    git(repo_dir, "config", "include.path", "tokens.inc")


def leaks(text: str, secrets: list[str]) -> list[str]:
    return [secret for secret in secrets if secret in text]


GIT_FORMS = [
    (f"\textraheader = AUTHORIZATION: basic {CI_BASIC}", CI_BASIC),
    (f"http.https://github.com/.extraheader=AUTHORIZATION: basic {CI_BASIC}", CI_BASIC),
    (f"GIT_CONFIG_VALUE_0=Authorization: Basic {CI_BASIC}", CI_BASIC),
    (f"echo basic {CI_BASIC}", CI_BASIC),  # the header's value printed alone
    (f"> Authorization: token {API_TOKEN}", API_TOKEN),  # curl -v
    (f"\textraheader = PRIVATE-TOKEN: {GITLAB_TOKEN}", GITLAB_TOKEN),
    (f"url = https://x-access-token:{REMOTE_TOKEN}@github.com/o/r.git", REMOTE_TOKEN),
    (f"url = https://oauth2:{GITLAB_TOKEN}@gitlab.com/o/r.git", GITLAB_TOKEN),
    (f'[url "https://{URL_ONLY_TOKEN}@github.com/"]', URL_ONLY_TOKEN),
    (f"git clone https://{URL_ONLY_TOKEN}@example.com/r.git", URL_ONLY_TOKEN),
    (f"https://bob:{STORE_PASSWORD}@git.example.com", STORE_PASSWORD),  # ~/.git-credentials
    (f"protocol=https\nhost=github.com\nusername=bob\npassword={STORE_PASSWORD}\n", STORE_PASSWORD),
]


@pytest.mark.parametrize(("text", "secret"), GIT_FORMS, ids=[str(n) for n in range(len(GIT_FORMS))])
def test_the_redactor_knows_gits_credential_forms(text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned and "[REDACTED:" in cleaned
    # Nor does the token survive inside the basic value: nothing of it is left to decode.
    assert CI_TOKEN not in cleaned


def test_the_redactor_leaves_plain_git_text_alone() -> None:
    plain = (
        "basic functionality works\nurl = https://github.com/o/r.git\nssh://git@github.com/o/r.git\n"
        '[remote "origin"]\n\tfetch = +refs/heads/*:refs/remotes/origin/*\nAuthorization: none\n'
    )
    assert redact(plain) == plain


@needs_sandbox
def test_a_check_printing_git_config_sees_none_of_the_credentials_ci_leaves(repo_dir: Path) -> None:
    plant_ci_credentials(repo_dir)
    worktree = night_worktree(repo_dir)
    common = repo_dir / ".git"
    results = run_checks(
        worktree,
        [
            f"cat {common}/config {common}/config.worktree /etc/gitconfig 2>/dev/null; true",
            "git config --list --show-origin",
            "git config --get-all credential.helper; git config --get http.https://github.com/.extraheader; "
            "git config --get sendemail.smtppass; git config --get github.oauth; true",
            "git remote -v",
            # git itself still works in the sandbox on the config it is shown
            "git rev-parse HEAD && git status --short && git log --oneline -1",
        ],
    )
    assert [r["exit_code"] for r in results] == [0] * 5, results
    printed = "\n".join(str(r["log_tail"]) for r in results)
    assert leaks(printed, CONFIG_SECRETS) == []
    assert "remote.origin.fetch" in printed  # the rest of the config is there
    assert "https://github.com/o/r.git" in printed and "https://gitlab.com/o/r.git" in printed
    # The runner's own git (outside the sandbox) still has them: only what a command sees changed.
    assert REMOTE_TOKEN in git(repo_dir, "remote", "get-url", "origin")


def object_store(repo_dir: Path) -> bytes:
    return subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"], cwd=repo_dir, capture_output=True, check=True
    ).stdout


@needs_sandbox
def test_git_credentials_a_check_prints_never_reach_the_object_store(repo_dir: Path, tmp_path: Path) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    (repo_dir / ".pantheon" / "flows" / "checks.toml").write_text(CHECKS_FLOW)
    config = repo_dir / ".pantheon" / "config.toml"
    config.write_text(config.read_text().replace("min_approvals = 2", "min_approvals = 0"))
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "pantheon with a model-free flow")
    plant_ci_credentials(repo_dir)
    # Forms a check finds elsewhere (a log, a copied credentials store), printed and committed.
    forms = "\n".join(text for text, _ in GIT_FORMS) + "\n"
    encoded = base64.b64encode(forms.encode()).decode()
    common = repo_dir / ".git"
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'id = "gitcreds"\ntitle = "print git config"\nflow = "checks"\nacceptance = '
        + json.dumps(
            [
                f"cat {common}/config; git config --list",
                f"git config --list > config-dump.txt; echo {encoded} | base64 -d > forms.txt",
                f"echo {encoded} | base64 -d",
                f"echo {encoded} | base64 -d; cat {common}/config; exit 3",  # failing: error paths
            ]
        )
        + "\n"
    )
    assert pantheon(repo_dir, "queue", str(spec)).returncode == 0
    night = subprocess.run(
        [sys.executable, "-m", "pantheon_git", "night"], cwd=repo_dir, capture_output=True, text=True
    )
    assert "night done: 1 run" in night.stdout, night.stdout + night.stderr
    tree = git(repo_dir, "ls-tree", "-r", "--name-only", "pantheon/gitcreds/1")
    assert "config-dump.txt" in tree and "forms.txt" in tree  # the attack reached the run branch
    secrets = [*CONFIG_SECRETS, *(secret for _, secret in GIT_FORMS)]
    found = object_store(repo_dir)
    assert [secret for secret in secrets if secret.encode() in found] == []
