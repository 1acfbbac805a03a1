"""SSH signatures on pantheon's commits: sign a commit buffer with `ssh-keygen`, verify one against the
allowed signers committed on the base branch.

The format is git's own (`gpg.format = ssh`): an armored SSHSIG over the commit buffer in namespace
"git", kept in the commit's `gpgsig` header, so plain `git verify-commit` / `git log --show-signature`
check what pantheon wrote. Who may sign is `.pantheon/allowed_signers` as committed on the base branch,
never as a run branch or a worktree has it: a branch pushed by anyone else cannot add its own signer.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import cast

import pygit2

from pantheon_git.errors import PantheonError
from pantheon_git.store.faults import Boundary, fault_point
from pantheon_git.store.git import common_dir, parse_oid
from pantheon_git.store.layout import RUN_BRANCH_PREFIX

ALLOWED_SIGNERS = ".pantheon/allowed_signers"
NAMESPACE = "git"
# Under the main git dir: never committed, never inside a worktree a tool can write.
KEYS_DIR = "pantheon/keys"
RUNNER_KEY_NAME = "runner"
SSH_KEYGEN_TIMEOUT_S = 30.0
# The principal `git pantheon init` gives a runner machine's key: what it signs is the
# night's record, never a person's approval.
RUNNER_PRINCIPAL_PREFIX = "pantheon-runner@"
SETUP_HINT = f"run `git pantheon init` and commit {ALLOWED_SIGNERS} on the base branch"
_KEY_TYPE_PREFIXES = ("ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-")


class SigningError(PantheonError):
    """ssh-keygen could not sign (missing key, locked agent): the message says which key and why."""


class Trust(StrEnum):
    """Why a signed object does or does not count."""

    VERIFIED = "verified"
    UNSIGNED = "unsigned"
    UNKNOWN_SIGNER = "unknown signer"
    BAD_SIGNATURE = "bad signature"


@dataclass(frozen=True, slots=True)
class AllowedSigners:
    """The allowed-signers file of a base branch, parsed: (key type, base64 key) -> principal."""

    text: str
    keys: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def __bool__(self) -> bool:
        return bool(self.keys)


def parse_allowed_signers(text: str) -> AllowedSigners:
    """Git's allowed-signers format: `principals [options] keytype base64-key [comment]` per line.

    Lines restricted to namespaces other than "git", and certificate authorities (no key to match a
    signature's key against here), are left out.
    """
    keys: dict[tuple[str, str], str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            tokens = shlex.split(line)
        except ValueError:
            continue
        index = next((i for i, t in enumerate(tokens) if i > 0 and t.startswith(_KEY_TYPE_PREFIXES)), None)
        if index is None or index + 1 >= len(tokens):
            continue
        options = ",".join(tokens[1:index]).lower()
        if "cert-authority" in options:
            continue
        if "namespaces=" in options and NAMESPACE not in options.split("namespaces=", 1)[1].split(","):
            continue
        principal = tokens[0].split(",")[0]
        keys.setdefault((tokens[index], tokens[index + 1]), principal)
    return AllowedSigners(text, keys)


def allowed_signers(repo: pygit2.Repository, base: str | None = None) -> AllowedSigners:
    """The allowed signers committed on branch `base` (if it exists; else main, else master, else the
    branch checked out in the main worktree); empty when there is no such file there."""
    tip = trusted_tip(repo, base)
    return allowed_signers_at(repo, tip) if tip is not None else AllowedSigners("")


def trusted_tip(repo: pygit2.Repository, base: str | None = None) -> pygit2.Oid | None:
    """The commit whose committed `.pantheon/` is trusted for a task on `base`: branch `base` if it
    exists, else main, else master, else the main worktree's branch; never a run branch."""

    # Run branches (refs/heads/pantheon/...) are written by runners and adopted from remotes: never a
    # source of trust, whatever base a (possibly synced) spec names or whatever is checked out.
    def trusted(name: str) -> bool:
        return name.startswith("refs/heads/") and not name.startswith(RUN_BRANCH_PREFIX)

    candidates = [f"refs/heads/{base}"] if base else []
    candidates += ["refs/heads/main", "refs/heads/master"]
    try:
        main = pygit2.Repository(str(common_dir(repo.path)))
        if not main.head_is_unborn and not main.head_is_detached:
            candidates.append(main.head.name)
    except (pygit2.GitError, KeyError, ValueError):
        pass
    for name in candidates:
        ref = repo.references.get(name) if trusted(name) else None
        if ref is not None:
            return ref.peel(pygit2.Commit).id
    return None


def allowed_signers_at(repo: pygit2.Repository, commit: pygit2.Oid) -> AllowedSigners:
    """The allowed signers as committed in `commit` (empty when it has none or is not here)."""
    try:
        found = repo.get(commit)
        tree = found.peel(pygit2.Tree) if found is not None else None
        entry = tree[ALLOWED_SIGNERS] if tree is not None else None
    except (KeyError, ValueError, pygit2.GitError):
        entry = None
    blob = repo.get(entry.id) if entry is not None else None
    if not isinstance(blob, pygit2.Blob):
        return AllowedSigners("")
    return parse_allowed_signers(blob.data.decode(errors="replace"))


def touches_allowed_signers(commit: pygit2.Commit) -> bool:
    """Whether `commit` changes .pantheon/allowed_signers against its first parent."""

    def entry_id(tree: pygit2.Tree) -> pygit2.Oid | None:
        try:
            return tree[ALLOWED_SIGNERS].id
        except KeyError:
            return None

    parent = commit.parents[0].tree if commit.parents else None
    return entry_id(commit.tree) != (entry_id(parent) if parent is not None else None)


def _config(repo: pygit2.Repository, key: str) -> str | None:
    try:
        value = repo.config[key]
    except (KeyError, pygit2.GitError):
        return None
    return str(value).strip() or None


def signing_key(repo: pygit2.Repository) -> str | None:
    """The key pantheon signs with: `pantheon.signingKey`, else `user.signingKey` when gpg.format=ssh.

    A path to a private key (or a public key whose private half is in ssh-agent), or a literal public
    key (`key::ssh-ed25519 …` or `ssh-ed25519 …`, signed through ssh-agent), as git accepts them.
    """
    key = _config(repo, "pantheon.signingKey")
    if key is None and (_config(repo, "gpg.format") or "").lower() == "ssh":
        key = _config(repo, "user.signingKey")
    return key


def person_key(repo: pygit2.Repository) -> str | None:
    """The key a person votes with: their `user.signingKey` when `gpg.format = ssh`, as git uses it."""
    if (_config(repo, "gpg.format") or "").lower() != "ssh":
        return None
    return _config(repo, "user.signingKey")


def sign_buffer(key: str, data: bytes) -> str:
    """An armored SSHSIG over `data` in namespace "git": one `ssh-keygen -Y sign` process."""
    literal = key.removeprefix("key::")
    with tempfile.TemporaryDirectory(prefix="pantheon-sign-") as scratch:
        if literal.startswith(_KEY_TYPE_PREFIXES):
            path = Path(scratch) / "key.pub"
            path.write_text(literal + "\n")
            key_file = str(path)
        else:
            key_file = os.path.expanduser(key)
            if not os.path.exists(key_file):
                raise SigningError(f"user.signingKey {key}: no such key file (run `git pantheon init`)")
        try:
            proc = subprocess.run(
                ["ssh-keygen", "-q", "-Y", "sign", "-n", NAMESPACE, "-f", key_file],
                input=data,
                capture_output=True,
                timeout=SSH_KEYGEN_TIMEOUT_S,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SigningError(
                f"ssh-keygen: could not sign with {key} ({exc}); install openssh-client"
            ) from None
    if proc.returncode != 0 or b"BEGIN SSH SIGNATURE" not in proc.stdout:
        last = (proc.stderr.decode(errors="replace").strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise SigningError(f"user.signingKey {key}: ssh-keygen could not sign: {last}")
    return proc.stdout.decode()


def create_commit(
    repo: pygit2.Repository,
    author: pygit2.Signature,
    committer: pygit2.Signature,
    message: str,
    tree: pygit2.Oid,
    parents: list[pygit2.Oid],
    key: str | None,
) -> pygit2.Oid:
    """A commit object (no ref moved), signed with `key` when one is given."""
    if key is None:
        return repo.create_commit(None, author, committer, message, tree, parents)
    ids: list[pygit2.Oid | str] = list(parents)
    # pygit2 types the commit's text as an Oid; it is the text of the commit, a str.
    buffer = cast(str, repo.create_commit_string(author, committer, message, tree, ids))
    signed = sign_buffer(key, buffer.encode())
    fault_point(Boundary.SIGNED, "commit")
    return repo.create_commit_with_signature(buffer, signed)


def signature_key(armored: str) -> tuple[str, str] | None:
    """(key type, base64 public key) named inside an armored SSHSIG, or None if it is not one."""
    lines = [line.strip() for line in armored.strip().splitlines()]
    if len(lines) < 3 or "BEGIN SSH SIGNATURE" not in lines[0] or "END SSH SIGNATURE" not in lines[-1]:
        return None
    try:
        blob = base64.b64decode("".join(lines[1:-1]), validate=True)
        if not blob.startswith(b"SSHSIG"):
            return None
        (length,) = struct.unpack(">I", blob[10:14])
        public = blob[14 : 14 + length]
        (type_length,) = struct.unpack(">I", public[:4])
        key_type = public[4 : 4 + type_length].decode()
    except (ValueError, struct.error, UnicodeDecodeError):
        return None
    return key_type, base64.b64encode(public).decode()


# (signers digest, commit id) -> (trust, principal): a commit's signature never changes.
_VERIFIED: dict[tuple[str, pygit2.Oid], tuple[Trust, str | None]] = {}
# Verified commits are also remembered on disk, per allowed-signers content, so each signature costs one
# ssh-keygen process once per repository rather than once per command. The file lives in the git dir:
# whoever can write it can already move refs, so it adds no one to what is trusted.
_LOADED: set[tuple[str, str]] = set()
VERIFIED_CACHE_DIR = "pantheon/verified"


def _cache_file(repo: pygit2.Repository, signers: AllowedSigners) -> Path:
    return common_dir(repo.path) / VERIFIED_CACHE_DIR / signers.digest[:32]


def _load_cache(repo: pygit2.Repository, signers: AllowedSigners) -> None:
    key = (str(common_dir(repo.path)), signers.digest)
    if key in _LOADED:
        return
    _LOADED.add(key)
    try:
        text = _cache_file(repo, signers).read_text()
    except OSError:
        return
    principals = set(signers.keys.values())
    for line in text.splitlines():
        hexid, _, principal = line.partition(" ")
        commit = parse_oid(hexid)
        if commit is not None and principal in principals:
            _VERIFIED[(signers.digest, commit)] = (Trust.VERIFIED, principal)


def _remember(repo: pygit2.Repository, signers: AllowedSigners, commit: pygit2.Oid, principal: str) -> None:
    path = _cache_file(repo, signers)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as cache:  # one short line per write: appends do not interleave
            cache.write(f"{commit} {principal}\n")
    except OSError:
        return  # a read-only git dir (inside a sandbox): verify again next time
    fault_point(Boundary.CACHED, "verified")


def verify_commit(
    repo: pygit2.Repository, commit: pygit2.Oid, signers: AllowedSigners
) -> tuple[Trust, str | None]:
    """Whether `commit` carries a valid signature by an allowed signer: (trust, principal or None).

    One `ssh-keygen -Y verify` process per signed commit by a known key, remembered per allowed-signers
    content (in memory and in the git dir).
    """
    if not signers:
        return _verify(repo, commit, signers) or (Trust.UNKNOWN_SIGNER, None)  # no process is started
    _load_cache(repo, signers)
    cache_key = (signers.digest, commit)
    known = _VERIFIED.get(cache_key)
    if known is not None:
        return known
    result = _verify(repo, commit, signers)
    if result is None:  # ssh-keygen did not run (fork failed, timed out): try once more, never remember
        time.sleep(UNCHECKED_RETRY_S)
        result = _verify(repo, commit, signers)
    if result is None:
        # Not remembered: a remembered failure would make a passed run read as failed for the rest of
        # the process, and a night would start a second attempt of a task that had passed.
        return Trust.BAD_SIGNATURE, None
    _VERIFIED[cache_key] = result
    if result[0] == Trust.VERIFIED and result[1] is not None:
        _remember(repo, signers, commit, result[1])
    return result


# How long to wait before verifying again when ssh-keygen could not run at all.
UNCHECKED_RETRY_S = 0.2


def _verify(
    repo: pygit2.Repository, commit: pygit2.Oid, signers: AllowedSigners
) -> tuple[Trust, str | None] | None:
    """(trust, principal), or None when ssh-keygen could not be run (nothing was decided)."""
    try:
        found = repo.get(commit)
        extracted = found.gpg_signature if isinstance(found, pygit2.Commit) else None
    except (pygit2.GitError, ValueError, KeyError):
        extracted = None
    if not extracted or not extracted[0]:
        return Trust.UNSIGNED, None
    armored, payload = extracted
    armored_text = armored.decode(errors="replace") if isinstance(armored, bytes) else str(armored)
    payload_bytes = payload if isinstance(payload, bytes) else str(payload).encode()
    key = signature_key(armored_text)
    principal = signers.keys.get(key) if key is not None else None
    if principal is None:
        return Trust.UNKNOWN_SIGNER, None
    with tempfile.TemporaryDirectory(prefix="pantheon-verify-") as scratch:
        signers_file = Path(scratch) / "allowed_signers"
        signers_file.write_text(signers.text)
        signature_file = Path(scratch) / "commit.sig"
        signature_file.write_text(armored_text)
        try:
            proc = subprocess.run(
                [
                    "ssh-keygen",
                    "-Y",
                    "verify",
                    "-f",
                    str(signers_file),
                    "-I",
                    principal,
                    "-n",
                    NAMESPACE,
                    "-s",
                    str(signature_file),
                ],
                input=payload_bytes,
                capture_output=True,
                timeout=SSH_KEYGEN_TIMEOUT_S,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
    if proc.returncode != 0:
        return Trust.BAD_SIGNATURE, None
    return Trust.VERIFIED, principal


def runner_key_path(repo: pygit2.Repository) -> Path:
    return common_dir(repo.path) / KEYS_DIR / RUNNER_KEY_NAME


def create_key(path: Path, comment: str) -> str:
    """A new ed25519 key pair at `path` (private, mode 600) and `path`.pub; returns the public key line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    try:
        proc = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            capture_output=True,
            timeout=SSH_KEYGEN_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SigningError(f"ssh-keygen: could not create a key ({exc}); install openssh-client") from None
    if proc.returncode != 0:
        raise SigningError(f"{path}: ssh-keygen could not create the key: {proc.stderr.decode().strip()}")
    os.chmod(path, 0o600)
    return Path(f"{path}.pub").read_text().strip()


def allowed_signers_line(principal: str, public_key: str) -> str:
    """One allowed-signers line for `public_key` ("type base64 [comment]"), valid for git signatures."""
    key_type, key_b64 = public_key.split()[:2]
    return f'{principal} namespaces="{NAMESPACE}" {key_type} {key_b64}'
