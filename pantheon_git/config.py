"""`.pantheon/config.toml`: the night's settings, the gate policy, the sync remote. One schema."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pantheon_git.errors import PantheonError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NightConfig(_Section):
    max_tasks: int = Field(default=20, ge=1)
    # A claim whose runner sent no heartbeat for this long may be taken over (`run --take-over`).
    claim_expiry_minutes: int = Field(default=120, ge=1)


class GatePolicy(_Section):
    require_acceptance: bool = True
    min_approvals: int = Field(default=2, ge=0)
    any_reject_blocks: bool = True


class SyncConfig(_Section):
    remote: str = "origin"


class HooksConfig(_Section):
    # Branches the pre-push hook guards; empty: the repository's main branch (origin/HEAD, main, master).
    protected: list[str] = Field(default_factory=list)


class Config(_Section):
    night: NightConfig = Field(default_factory=NightConfig)
    hooks: HooksConfig = Field(default_factory=HooksConfig)
    gate: GatePolicy = Field(default_factory=GatePolicy)
    sync: SyncConfig = Field(default_factory=SyncConfig)


def load_config(root: Path) -> Config:
    path = root / ".pantheon" / "config.toml"
    if not path.is_file():
        return Config()
    source = ".pantheon/config.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PantheonError(f"{source}: invalid TOML: {exc}") from None
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        reason = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
        raise PantheonError(f"{source}: {field}: {reason}") from None
