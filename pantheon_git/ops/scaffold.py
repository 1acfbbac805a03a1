"""`git pantheon init agent|flow NAME`: a new agent or flow file in .pantheon/ from templates/."""

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


def flow_templates() -> list[str]:
    """The flow templates shipped in templates/flows/ (what `init flow NAME --from T` accepts)."""
    return sorted(path.stem for path in (templates_dir() / "flows").glob("*.toml"))


def scaffold_flow(root: Path, name: str, template: str = "default") -> Path:
    """Copy templates/flows/<template>.toml to .pantheon/flows/<name>.toml; never overwrite."""
    if not re.fullmatch(r"[a-z][a-z0-9_-]{1,39}", name):
        raise PantheonError(
            f"flow {name!r}: use 2-40 characters of a-z, 0-9, '-' and '_', starting with a letter"
        )
    if template not in flow_templates():
        raise PantheonError(
            f"--from {template}: no such flow template (known: {', '.join(flow_templates())})"
        )
    target = root / ".pantheon" / "flows" / f"{name}.toml"
    if target.exists():
        raise PantheonError(f"{target.relative_to(root)}: already exists")
    text = (templates_dir() / "flows" / f"{template}.toml").read_text()
    header = (
        f"# Flow {name}, made from the {template} template by `git pantheon init flow`. Specs pick it with\n"
    )
    header += f'# flow = "{name}"; check it with `git pantheon flow check {name}`.\n'
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(header + text)
    return target
