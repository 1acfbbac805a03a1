"""store/redact.py: each secret format becomes `[REDACTED:<type>]`; ordinary text, ids and counts stay.

Also the runner's environment scrub by name and value (night/policy.py), whose values are then redacted
wherever they turn up.
"""

from __future__ import annotations

import json

import pytest

from pantheon_git.night.policy import scrub_env
from pantheon_git.store.redact import is_secret_env, redact, redact_all, redact_bytes, remember_secrets

FORMATS = [
    ("aws key id", "id: AKIAZ7Q3XW5R9T2Y4U6I here", "AKIAZ7Q3XW5R9T2Y4U6I"),
    ("aws secret line", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ8v3Nt5Rk", "wJalrXUtnFEMI"),
    ("json token", '{"token": "tk9f8e7d6c5b4a3928170Zyx"}', "tk9f8e7d6c5b4a3928170Zyx"),
    (
        "pem block",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE\n"
        "AAAAC3NzaC1lZDI1NTE5AAAAIG\n"
        "-----END OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE",
    ),
    (
        "pem tail without its BEGIN line",
        "3NzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAB\n-----END RSA PRIVATE KEY-----",
        "3NzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ",
    ),
    ("netrc", "machine api.example.com login bob password NetrcS3cret", "NetrcS3cret"),
    ("netrc own line", "machine h\n  login bob\n  password NetrcOwnLine9\n", "NetrcOwnLine9"),
    ("pgpassword", "PGPASSWORD=PgS3cretPassw0rd77 psql -h db", "PgS3cretPassw0rd77"),
    ("github pat", "token ghp_R4nd0mT0k3nV4lu3F0rT3st1ngXyZ123456", "ghp_R4nd0mT0k3nV4lu3F0rT3st1ngXyZ"),
    ("fine-grained pat", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv", "github_pat_11ABCDEFG"),
    ("database url", "DATABASE_URL=postgres://app:DbS3cretPassw0rd55@db/app", "DbS3cretPassw0rd55"),
    ("slack", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "AbCdEfGhIjKlMnOpQrStUvWx"),
    ("stripe", "sk_live_4eC39HqLyjWDarjtT1zdp7dcXyZ", "4eC39HqLyjWDarjtT1zdp7dc"),
    (
        "jwt",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "dozjgNryP4J3jVmNHl0w5N",
    ),
    ("bearer", "Authorization: Bearer abcdefghijklmnop1234567890", "abcdefghijklmnop1234567890"),
    ("high entropy quoted", 'key = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbA+/Xy"', "Zm9vYmFyYmF6cXV4"),
]


@pytest.mark.parametrize(("name", "text", "secret"), FORMATS, ids=[row[0] for row in FORMATS])
def test_each_format_is_redacted_with_its_type(name: str, text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned and "[REDACTED:" in cleaned, cleaned
    # The same secret inside a JSON document (escaped newlines and quotes) is found too.
    document = json.dumps({"log": text}, indent=1)
    assert secret not in redact(document)
    assert json.loads(redact(document))  # and the document stays valid JSON
    assert secret.encode() not in redact_bytes(document.encode())


def test_ordinary_text_ids_and_counts_are_kept() -> None:
    text = (
        "commit 0123456789abcdef0123456789abcdef01234567 tokens_in=512 max_tokens: 512\n"
        "git log --notes=pantheon/traces pantheon/t1/1\npassword is required\n"
        "https://git.example.com/x.git uuid 123e4567-e89b-12d3-a456-426614174000\n"
    )
    assert redact(text) == text
    assert redact_all({"n": 3, "ok": True, "list": ["plain"]}) == {"n": 3, "ok": True, "list": ["plain"]}
    assert redact_bytes(b"\xff\xfe binary") == b"\xff\xfe binary"


def test_known_values_are_redacted_wherever_they_appear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAGGLE_KEY", "kag9e8d7c6b5a4f3e2d1")  # no format gives it away: only its value
    remember_secrets(["rem3mbered-value-42"])
    cleaned = redact("kaggle kag9e8d7c6b5a4f3e2d1 then rem3mbered-value-42 and short")
    assert cleaned == "kaggle [REDACTED:environment] then [REDACTED:environment] and short"


@pytest.mark.parametrize(
    "name",
    [
        "GITHUB_PAT",
        "PGPASSWORD",
        "KAGGLE_KEY",
        "DATABASE_URL",
        "SSH_AUTH_SOCK",
        "GPG_AGENT_INFO",
        "DEPLOY_PAT",
        "SENTRY_DSN",
        "VAULT_TOKEN",
        "TWINE_PASSWORD",
        "MYSQL_PWD",
        "NPM_CONFIG__AUTH",
        "AWS_SECRET_ACCESS_KEY",
    ],
)
def test_runner_scrub_removes_credential_names(name: str) -> None:
    clean, removed = scrub_env({name: "value-of-it", "PATH": "/usr/bin", "HOME": "/home/me"})
    assert removed == [name] and clean == {"PATH": "/usr/bin", "HOME": "/home/me"}


def test_runner_scrub_keeps_look_alikes_and_removes_urls_with_passwords() -> None:
    env = {
        "PWD": "/work",
        "OLDPWD": "/",
        "TOKENIZERS_PARALLELISM": "false",
        "KEYTIMEOUT": "1",
        "PIP_INDEX_URL": "https://pypi.org/simple",
        "REDIS_URL": "redis://user:pa55word@cache:6379/0",
        "PIP_EXTRA_INDEX_URL": "https://u:tok3n@pkgs.example.com/simple",
    }
    clean, removed = scrub_env(env)
    assert removed == ["PIP_EXTRA_INDEX_URL", "REDIS_URL"]
    assert set(clean) == {"PWD", "OLDPWD", "TOKENIZERS_PARALLELISM", "KEYTIMEOUT", "PIP_INDEX_URL"}
    assert not is_secret_env("PIP_INDEX_URL", "https://pypi.org/simple")
