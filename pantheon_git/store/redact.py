"""Remove secrets from text before it enters git: the one `redact()` every write of text into git calls.

Trace notes, payload blobs, vote lines, step commit messages and dataset rows all pass through here,
because whatever reaches the object store is published by a plain `git push`. Three layers:
(1) the exact values of credential-like variables of the runner's environment (known secrets);
(2) formats the maintained ruleset misses or cuts short: PEM blocks spanning lines, netrc `password X`,
`PGPASSWORD=`, `scheme://user:pass@host`, `NAME_KEY = value` assignments, provider token shapes;
(3) the `detect-secrets` plugins (AWS, private keys, JWT, GitHub/GitLab/Slack/Stripe/… tokens, basic
auth, keywords, quoted high-entropy strings), used as a library on the text, no network, no verification.
Each secret becomes `[REDACTED:<type>]`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED"  # every marker starts with this: `[REDACTED:<type>]`

# Known secret values shorter than this are not replaced (a "1" or "true" would maim every text).
MIN_KNOWN_VALUE = 8


def marker(kind: str) -> str:
    return f"[REDACTED:{kind}]"


# --- which environment variables hold credentials ------------------------------------------------------

# Whole names that hold credentials or reach a credential store (an agent socket is a key, in effect).
SECRET_ENV_NAMES = frozenset(
    {
        "GITHUB_PAT",
        "PGPASSWORD",
        "PGPASSFILE",
        "MYSQL_PWD",
        "KAGGLE_KEY",
        "DATABASE_URL",
        "SSH_AUTH_SOCK",
        "SSH_AGENT_PID",
        "GPG_AGENT_INFO",
        "NETRC",
        "DOCKER_AUTH_CONFIG",
        "VAULT_ADDR",
        "NPM_CONFIG__AUTH",
    }
)
# A name made of `_`-separated words is a credential when one of its words is one of these
# (TOKENIZERS_PARALLELISM is not: its words are TOKENIZERS and PARALLELISM).
SECRET_ENV_WORDS = frozenset(
    {
        "PASSWORD",
        "PASSWD",
        "PASS",
        "PWD",
        "SECRET",
        "SECRETS",
        "TOKEN",
        "TOKENS",
        "PAT",
        "DSN",
        "KEY",
        "APIKEY",
        "CREDENTIAL",
        "CREDENTIALS",
        "CREDS",
        "AUTH",
        "COOKIE",
        "PASSPHRASE",
        "WEBHOOK",
    }
)
# Names that look like credentials by their words but are not (the working directory).
NOT_SECRET_ENV_NAMES = frozenset({"PWD", "OLDPWD"})
# Any value that is a URL carrying a password (DATABASE_URL, REDIS_URL, PIP_INDEX_URL, *_DSN…).
_URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@")


def is_secret_env(name: str, value: str = "") -> bool:
    """Whether environment variable `name` (with `value`) holds a credential, by name or by value."""
    upper = name.upper()
    if upper in NOT_SECRET_ENV_NAMES:
        return False
    if upper in SECRET_ENV_NAMES or SECRET_ENV_WORDS.intersection(upper.split("_")):
        return True
    return bool(_URL_WITH_PASSWORD.search(value))


_remembered: set[str] = set()


def remember_secrets(values: Iterable[str]) -> None:
    """Redact these exact values from now on (e.g. credentials scrubbed from the environment)."""
    _remembered.update(value for value in values if len(value) >= MIN_KNOWN_VALUE)


_env_seen: tuple[int, frozenset[str]] = (0, frozenset())


def known_secrets() -> list[str]:
    """Every value redacted verbatim: remembered ones and the current environment's, longest first."""
    global _env_seen
    items = tuple(os.environ.items())
    if hash(items) != _env_seen[0]:  # classify the environment again only when it changed
        current = {value for name, value in items if is_secret_env(name, value)}
        _env_seen = (hash(items), frozenset(value for value in current if len(value) >= MIN_KNOWN_VALUE))
    return sorted(_remembered | _env_seen[1], key=len, reverse=True)


# --- formats checked here (the ruleset misses them or cuts them short) ----------------------------------

_PEM = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----.*?(?:-----END \1-----|\Z)", re.DOTALL
)
# The tail of a block whose BEGIN line was cut off (a log tail keeps only the end).
_PEM_TAIL = re.compile(r"(?:[A-Za-z0-9+/=]{16,}\r?\n)+-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_NOT_YET = r"(?!\[REDACTED)"
# (pattern, type); the value to hide is the group named `v`, or the whole match when there is none.
_RULES: list[tuple[re.Pattern[str], str]] = [
    # scheme://user:password@host (DATABASE_URL, git remotes, pip indexes)
    (re.compile(r"(?<=://)(?P<v>[^/\s:@'\"\\]+:[^/\s@'\"\\]+)(?=@)"), "url-credentials"),
    # netrc: `machine h login u password p` on one line or `password p` on its own line
    (
        re.compile(
            r"(?i)\b(?:machine\s+\S+|default)(?:\s+(?:login|account)\s+\S+)*\s+(?:password|passwd)\s+"
            rf"{_NOT_YET}(?P<v>[^\s'\"\\]+)"
        ),
        "netrc",
    ),
    (re.compile(rf"(?im)^\s*(?:password|passwd)\s+{_NOT_YET}(?P<v>[^\s'\"\\]+)\s*$"), "netrc"),
    # NAME=value / NAME: value / "name": "value" where NAME says it is a credential
    (
        re.compile(
            r"(?i)(?:password|passwd|smtp_?pass|_pwd|secret|token|api_?key|"
            r"access_?key(?:_id)?|private_?key|secret_?key|_pat|_dsn|credentials?|passphrase|auth)"
            rf"['\"]?\s*[=:]\s*['\"]?{_NOT_YET}(?P<v>[^\s'\",;\\]{{6,}})"
        ),
        "assignment",
    ),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"), "json-web-token"),
    (re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}"), "api-key"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), "github-token"),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"), "github-token"),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), "gitlab-token"),
    (re.compile(r"\bhf_[A-Za-z0-9]{20,}"), "huggingface-token"),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), "slack-token"),
    (re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b"), "aws-access-key"),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), "google-api-key"),
    (re.compile(r"(?i)\bbearer\s+(?P<v>[A-Za-z0-9._~+/=-]{16,})"), "bearer-token"),
    # git's credential forms. A token as the whole user part of a URL (`https://ghp_…@github.com`,
    # `[url "https://TOKEN@host/"] insteadOf`): the user:password form is caught above.
    (re.compile(rf"(?<=://){_NOT_YET}(?P<v>[^/\s:@'\"\\\[\]]{{20,}})(?=@)"), "url-token"),
    # An HTTP authorization header, whatever its scheme (`AUTHORIZATION: basic …`, `Authorization: token
    # …`, `Proxy-Authorization: Bearer …`), as curl -v, a config dump or GIT_CONFIG_VALUE_n print it.
    (
        re.compile(
            r"(?i)\b(?:proxy-)?authorization\s*[:=]\s*(?:[A-Za-z][A-Za-z0-9-]*\s+)?"
            rf"{_NOT_YET}(?P<v>[A-Za-z0-9._~+/=:-]{{6,}})(?!\s*\[REDACTED)"
        ),
        "authorization-header",
    ),
    # git's `http.<url>.extraheader` (what CI checkouts leave in .git/config): any header it sends, such
    # as GitLab's `PRIVATE-TOKEN: …`, is a credential.
    (
        re.compile(
            r"(?i)\bextraheader\s*[=:]?\s*\"?[A-Za-z0-9-]+\s*:\s*(?:[A-Za-z][A-Za-z0-9-]*\s+)?"
            rf"{_NOT_YET}(?P<v>[^\s'\"\\]{{6,}})"
        ),
        "git-extraheader",
    ),
]
# `basic <base64 of user:password>` anywhere (an extraheader's value printed alone): only values that
# decode to `user:password` count, so `basic functionality` stays.
_BASIC = re.compile(rf"(?i)\bbasic\s+{_NOT_YET}(?P<v>[A-Za-z0-9+/]{{8,}}={{0,2}})")

_CANDIDATE = re.compile(
    r"(?i)[A-Za-z0-9+/=_-]{20,}|passw|pass\b|pwd|secre?t|token|key\b|api.?key|auth|cred|://|@"
)
# Lines for the plugins: escaped line breaks count too, so one long JSON line is not one candidate.
_LINE_BREAK = re.compile(r"\r?\n|\\n")
# detect-secrets plugins not used: hex strings are commit and blob ids here, public IPs are no secret.
_SKIPPED_PLUGINS = frozenset({"HexHighEntropyString", "IPPublicDetector"})


@functools.cache
def _plugins() -> tuple[tuple[Any, str], ...]:
    """The detect-secrets plugins, built once (importing them costs ~80 ms): (plugin, type slug)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    plugins: list[tuple[Any, str]] = []
    classes: dict[str, type[Any]] = get_mapping_from_secret_type_to_class()  # its TypeVar binds nothing
    for secret_type, cls in sorted(classes.items()):
        if cls.__name__ in _SKIPPED_PLUGINS:
            continue
        slug = re.sub(r"[^a-z0-9]+", "-", secret_type.lower()).strip("-")
        plugins.append((cls(), slug))
    return tuple(plugins)


def _plausible(plugin: Any, value: str) -> bool:
    """The checks detect-secrets makes after `analyze_string` (entropy limit, uuids, templates)."""
    from detect_secrets.filters import heuristic

    if len(value) < 6 or "REDACTED" in value:
        return False
    limit = getattr(plugin, "entropy_limit", None)
    if limit is not None and plugin.calculate_shannon_entropy(value) <= limit:
        return False
    return not (heuristic.is_potential_uuid(value) or heuristic.is_templated_secret(value))


def _unescape(text: str) -> str:
    """Text as it reads once JSON or TOML string escapes are undone (approximately: for finding only)."""
    return text.replace("\\n", "\n").replace('\\"', '"').replace("\\t", "\t").replace("\\\\", "\\")


def _is_basic_credential(value: str) -> bool:
    """Whether `value` is base64 of `user:password` (printable text with a colon), as HTTP basic sends."""
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    return ":" in decoded and decoded.isprintable()


def _found(view: str) -> dict[str, str]:
    """Every secret value in `view` -> its type: the rules' values, PEM body lines, the plugins' finds."""
    found: dict[str, str] = {}
    if "PRIVATE KEY" in view:
        for pattern in (_PEM, _PEM_TAIL):
            for match in pattern.finditer(view):
                for line in match.group(0).splitlines():
                    if not line.startswith("-----"):
                        found.setdefault(line.strip(), "private-key")
    for pattern, kind in _RULES:
        named = "v" in pattern.groupindex
        for match in pattern.finditer(view):
            found.setdefault(match.group("v") if named else match.group(0), kind)
    for match in _BASIC.finditer(view):
        if _is_basic_credential(match.group("v")):
            found.setdefault(match.group("v"), "basic-auth")
    # The plugins only see lines that could hold a secret: some of their patterns are slow (the keyword
    # plugin alone costs ~20 ms on a 13 KB trace), and a line with no long token, no credential word and
    # no URL cannot match any of them.
    candidates = "\n".join(line for line in _LINE_BREAK.split(view) if _CANDIDATE.search(line))
    for plugin, kind in _plugins() if candidates else ():
        for value in plugin.analyze_string(candidates):
            if _plausible(plugin, value):
                found.setdefault(value, kind)
    # An escape's backslash is no part of a value, and a quote would take the document's syntax with it.
    values = {value.strip("\\"): kind for value, kind in found.items()}
    return {
        value: kind
        for value, kind in values.items()
        if len(value) >= 6 and "REDACTED" not in value and '"' not in value
    }


def _prepare(text: str, known: list[str]) -> str:
    """Known values and whole PEM blocks out first: they need no search of the rest."""
    for value in known:
        for form in (value, json.dumps(value)[1:-1]):
            if form in text:
                text = text.replace(form, marker("environment"))
    if "PRIVATE KEY" in text:
        text = _PEM.sub(lambda match: marker("private-key"), text)
    return text


def _search(text: str) -> list[tuple[str, str]]:
    """(value, type) of every secret in `text` (and in its unescaped reading), longest value first."""
    found = _found(text)
    if "\\" in text:
        for value, kind in _found(_unescape(text)).items():
            found.setdefault(value, kind)
    return sorted(found.items(), key=lambda item: len(item[0]), reverse=True)


def _replace(text: str, found: list[tuple[str, str]]) -> str:
    for value, kind in found:
        if value in text:
            text = text.replace(value, marker(kind))
    return text


def redact(text: str) -> str:
    """`text` with every secret found replaced by `[REDACTED:<type>]`.

    Found values are replaced wherever they occur in the text. Text holding escapes (a JSON document, a
    TOML string) is also searched as it reads unescaped, so `\\"token\\": \\"…\\"` or a netrc line
    inside a JSON string is found too.
    """
    if len(text) < 6:
        return text
    text = _prepare(text, known_secrets())
    return _replace(text, _search(text))


def redact_all(value: Any) -> Any:
    """`redact` applied to every string (keys included) inside a JSON-like value.

    The strings are searched together, once, as lines of one text (a trace holds dozens of short
    strings; searching each alone would run every plugin dozens of times), then each is cleaned.
    """
    known = known_secrets()
    strings: dict[str, str] = {}

    def collect(item: Any) -> None:
        if isinstance(item, str):
            if len(item) >= 6 and item not in strings:
                strings[item] = _prepare(item, known)
        elif isinstance(item, Mapping):
            for key, inner in item.items():
                collect(key)
                collect(inner)
        elif isinstance(item, list | tuple):
            for inner in item:
                collect(inner)

    collect(value)
    found = _search("\n".join(strings.values())) if strings else []

    def rebuild(item: Any) -> Any:
        if isinstance(item, str):
            return _replace(strings[item], found) if item in strings else item
        if isinstance(item, Mapping):
            return {rebuild(key): rebuild(inner) for key, inner in item.items()}
        if isinstance(item, list | tuple):
            return [rebuild(inner) for inner in item]
        return item

    return rebuild(value)


def redact_bytes(data: bytes) -> bytes:
    """`redact` for file contents: UTF-8 text is redacted, anything else is left as it is."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    cleaned = redact(text)
    return data if cleaned == text else cleaned.encode("utf-8")
