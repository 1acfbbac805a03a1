"""`git pantheon init agent NAME`: a new agent file in .pantheon/agents/ from templates/agents/."""

from __future__ import annotations

import re
from pathlib import Path

from pantheon_git.errors import PantheonError
from pantheon_git.ops.templates import templates_dir


def scaffold_agent(root: Path, name: str) -> Path:
    if not re.fullmatch(r"[a-z][a-z0-9_-]{1,39}", name):
        raise PantheonError(
            f"agent {name!r}: use 2-40 characters of a-z, 0-9, '-' and '_', starting with a letter"
        )
    target = root / ".pantheon" / "agents" / f"{name.replace('-', '_')}.py"
    if target.exists():
        raise PantheonError(f"{target.relative_to(root)}: already exists")
    template = (templates_dir() / "agents" / "agent.py.tmpl").read_text()
    class_name = "".join(part.capitalize() for part in re.split(r"[-_]", name)) + "Output"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(template.replace("{{name}}", name).replace("{{Output}}", class_name))
    return target
