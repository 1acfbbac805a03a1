"""The lint reviewer runs the repository's own offline pre-commit hooks (issue 26).

Each test is a real run: a temporary repository whose base commit holds a .pre-commit-config.yaml, the
real runner, the real acceptance checks and `checks` node, every hook in the sandbox. Only the
implementer is a fake that writes the planted change (what a model writes is not what these test).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pantheon_git.review.precommit import ConfigProblem, HookConfig, hook_command, hook_files, read_config
from pantheon_git.store.git import open_repo
from pantheon_git.store.votes import read_all_votes
from tests.conftest import git, oid_of
from tests.test_review_checks import (
    DONE,
    both,
    calc_repo,
    executors,
    gate_of,
    needs_sandbox,
    on_path,
    queue,
    run,
    votes_of,
    write,
)

__all__ = ["on_path"]  # a fixture, used by name

# A local system hook that fails on a FIXME (pre-commit runs no shell: the hook brings its own), a local
# hook pre-commit would install a Python environment for, and a hook of a remote repository.
NO_FIXME = """\
repos:
  - repo: local
    hooks:
      - id: no-fixme
        name: no FIXME left behind
        entry: sh -c '! grep -Hn FIXME "$@"' --
        language: system
        types: [python]
      - id: check-toml
        name: check toml
        entry: check-toml
        language: python
        additional_dependencies: [pre-commit-hooks==5.0.0]
        types: [toml]
  - repo: https://github.com/pre-commit/pre-commit-hooks
    rev: v5.0.0
    hooks:
      - id: trailing-whitespace
"""
NOT_RUN = [
    "check-toml: not run: needs an environment (language python)",
    "trailing-whitespace: not run: needs an environment (repo https://github.com/pre-commit/pre-commit-hooks)",
]
FIXME = DONE.replace("return a * b", "return a * b  # FIXME: big numbers")


def hooked_repo(repo_dir: Path, config: str = NO_FIXME, *, ruff: bool = False) -> None:
    calc_repo(repo_dir, ruff=ruff)
    (repo_dir / ".pre-commit-config.yaml").write_text(config)
    git(repo_dir, "add", ".pre-commit-config.yaml")
    git(repo_dir, "commit", "-q", "-m", "our hooks")


@needs_sandbox
def test_a_planted_fault_a_local_system_hook_catches_rejects(repo_dir: Path) -> None:
    hooked_repo(repo_dir)
    spec = queue(repo_dir, "t1")
    done = run(repo_dir, spec, executors(write("calc.py", FIXME)))
    assert votes_of(repo_dir, spec, "test")["acceptance"].verdict == "approve"  # mul is right
    lint = votes_of(repo_dir, spec)["lint"]
    assert lint.verdict == "reject", lint
    assert lint.reasons == [
        "pre-commit hook no-fixme fails on calc.py (exit 1): calc.py:3:    return a * b  # FIXME: big numbers"
    ]
    ran = lint.evidence["pre_commit"]["ran"]
    assert [(r["hook"], r["files"], r["exit_code"]) for r in ran] == [("no-fixme", ["calc.py"], 1)]
    assert lint.evidence["pre_commit"]["not_run"] == NOT_RUN
    assert not done.passed and "rejected by lint" in "; ".join(gate_of(repo_dir, spec).reasons)


@needs_sandbox
def test_a_clean_diff_passes_the_hooks_and_ruff_together(repo_dir: Path, on_path: None) -> None:
    hooked_repo(repo_dir, ruff=True)
    spec = queue(repo_dir, "t1")
    done = run(repo_dir, spec, executors(write("calc.py", DONE)))
    lint = votes_of(repo_dir, spec)["lint"]
    assert lint.verdict == "approve", lint
    assert lint.reasons == ["ruff check and format clean on calc.py; pre-commit hooks no-fixme pass"]
    assert lint.evidence["pre_commit"]["ran"][0]["exit_code"] == 0
    # The hooks that would need an environment are listed, not run.
    assert lint.evidence["pre_commit"]["not_run"] == NOT_RUN
    assert done.passed, done


@needs_sandbox
def test_without_ruff_the_hooks_alone_approve_and_remote_hooks_alone_abstain(repo_dir: Path) -> None:
    hooked_repo(repo_dir)
    spec = queue(repo_dir, "t1")
    run(repo_dir, spec, executors(write("calc.py", DONE)))
    lint = votes_of(repo_dir, spec)["lint"]
    assert (lint.verdict, lint.reasons) == ("approve", ["pre-commit hooks no-fixme pass on calc.py"])

    remote_only = NO_FIXME.replace(
        NO_FIXME[NO_FIXME.index("      - id: no-fixme") : NO_FIXME.index("      - id: check-toml")], ""
    )
    (repo_dir / ".pre-commit-config.yaml").write_text(remote_only)
    git(repo_dir, "commit", "-q", "-am", "only hooks that need an environment")
    later = queue(repo_dir, "t2")
    run(repo_dir, later, executors(write("calc.py", FIXME)))
    lint = votes_of(repo_dir, later)["lint"]
    assert lint.verdict == "abstain", lint
    assert lint.reasons == [
        "no ruff configured on the base commit: lint not checked; pre-commit: 2 hooks not run"
    ]
    assert lint.evidence["pre_commit"] == {"ran": [], "not_run": NOT_RUN}


@needs_sandbox
def test_the_hooks_are_the_base_commits_never_the_runs(repo_dir: Path) -> None:
    hooked_repo(repo_dir)
    # The run drops the hook that would catch its FIXME: rejected as a change to its own reviewer.
    spec = queue(repo_dir, "t1")
    dropped = NO_FIXME.replace("id: no-fixme", "id: no-fixme\n        exclude: calc")
    run(repo_dir, spec, executors(both(write("calc.py", FIXME), write(".pre-commit-config.yaml", dropped))))
    lint = votes_of(repo_dir, spec)["lint"]
    assert (lint.verdict, lint.reasons) == (
        "reject",
        ["changes the lint configuration: .pre-commit-config.yaml"],
    )
    # A run that adds hooks to a repository without any: none of them is run as its reviewer.
    git(repo_dir, "rm", "-q", ".pre-commit-config.yaml")
    git(repo_dir, "commit", "-q", "-m", "no hooks")
    planted = (
        "repos:\n  - repo: local\n    hooks:\n      - id: mark\n        entry: touch ran-as-reviewer\n"
        "        language: system\n        pass_filenames: false\n        always_run: true\n"
    )
    later = queue(repo_dir, "t2")
    run(repo_dir, later, executors(both(write("calc.py", DONE), write(".pre-commit-config.yaml", planted))))
    lint = votes_of(repo_dir, later)["lint"]
    assert lint.reasons == ["changes the lint configuration: .pre-commit-config.yaml"]
    assert "pre_commit" not in lint.evidence
    assert not list(repo_dir.parent.rglob("ran-as-reviewer"))


FIXER = """\
repos:
  - repo: local
    hooks:
      - id: strip-fixme
        entry: sed -i s/FIXME/fixed/
        language: system
        files: \\.py$
"""


@needs_sandbox
def test_a_hook_that_rewrites_a_file_fails_and_the_checks_step_changes_nothing(repo_dir: Path) -> None:
    hooked_repo(repo_dir, FIXER)
    spec = queue(repo_dir, "t1")
    run(repo_dir, spec, executors(write("calc.py", FIXME)))
    lint = votes_of(repo_dir, spec)["lint"]
    assert lint.verdict == "reject", lint
    assert lint.reasons == ["pre-commit hook strip-fixme changes calc.py (files were modified by this hook)"]
    # The checks step's commit holds the implementer's calc.py, not the hook's rewrite of it.
    step = git(repo_dir, "log", "--format=%H", "--grep", "^Pantheon-Step: checks ", f"pantheon/{spec.id}/1")
    assert git(repo_dir, "show", f"{step.split()[0]}:calc.py") == FIXME
    assert read_all_votes(open_repo(repo_dir), oid_of(repo_dir, step.split()[0]))


SCRIPTED = """\
repos:
  - repo: local
    hooks:
      - id: house-rules
        entry: tools/rules.sh
        language: script
        files: \\.py$
"""


@needs_sandbox
def test_a_script_hook_runs_the_base_script_and_a_run_may_not_rewrite_it(repo_dir: Path) -> None:
    (repo_dir / "tools").mkdir()
    script = repo_dir / "tools" / "rules.sh"
    script.write_text('#!/bin/sh\n! grep -Hn "print(" "$@"\n')
    script.chmod(0o755)
    git(repo_dir, "add", "tools/rules.sh")
    hooked_repo(repo_dir, SCRIPTED)
    spec = queue(repo_dir, "t1")
    run(repo_dir, spec, executors(write("calc.py", DONE.replace("    return", "    print(a)\n    return"))))
    lint = votes_of(repo_dir, spec)["lint"]
    assert lint.verdict == "reject" and lint.reasons[0].startswith(
        "pre-commit hook house-rules fails on calc.py (exit 1): calc.py:3:"
    ), lint
    # Rewriting the script its reviewer runs is a change to the reviewer: rejected, the script not run.
    later = queue(repo_dir, "t2")
    run(
        repo_dir,
        later,
        executors(both(write("calc.py", DONE), write("tools/rules.sh", "#!/bin/sh\nexit 0\n"))),
    )
    lint = votes_of(repo_dir, later)["lint"]
    assert lint.reasons == ["changes tools/rules.sh, which pre-commit hook house-rules runs"]
    assert "pre_commit" not in lint.evidence


# --- the pure part: which hooks run, on which files, as which command -------------------------------------


def test_files_exclude_types_and_pass_filenames_choose_as_pre_commit_does() -> None:
    config = read_config(
        "exclude: ^vendor/\n"
        "repos:\n  - repo: local\n    hooks:\n"
        "      - id: tests-only\n        entry: grep -L assert\n        language: system\n"
        "        files: ^tests/\n        exclude: conftest\n        args: [-H]\n"
        "      - id: whole\n        entry: make lint\n        language: system\n"
        "        pass_filenames: false\n        types_or: [toml, yaml]\n"
        "      - id: manual\n        entry: true\n        language: system\n        stages: [manual]\n"
        '      - id: odd\n        entry: "true"\n        language: system\n        types: [executable]\n'
        "      - id: no-tabs\n        entry: 'tabs found'\n        language: fail\n        files: '\\.md$'\n"
        "        types: [text]\n"
        "  - repo: meta\n    hooks:\n      - id: check-useless-excludes\n"
    )
    hooks = {hook.id: hook for hook in config.runnable}
    assert list(hooks) == ["tests-only", "whole", "no-tabs"]
    assert config.not_run == (
        "manual: not run: only at stage manual",
        "odd: not run: file type executable not told apart here",
        "check-useless-excludes: not run: a pre-commit meta hook",
    )
    changed = {
        "tests/test_calc.py": False,
        "tests/conftest.py": False,
        "calc.py": False,
        "vendor/tests/x.py": False,
        "pyproject.toml": False,
        "README.md": False,
        "logo.md": True,
    }
    assert hook_files(hooks["tests-only"], config, changed) == ["tests/test_calc.py"]
    assert hook_files(hooks["whole"], config, changed) == ["pyproject.toml"]
    assert hook_files(hooks["no-tabs"], config, changed) == ["README.md"]  # logo.md: binary
    assert (
        hook_command(hooks["tests-only"], ["tests/a b;rm -rf x.py"])
        == "grep -L assert -H 'tests/a b;rm -rf x.py'"
    )
    assert hook_command(hooks["whole"], ["pyproject.toml"]) == "make lint"


def test_a_config_that_is_no_hook_list_is_said_so_in_one_line() -> None:
    for text, why in (
        ("repos: [", "not YAML"),
        ("- just a list\n", "no `repos` list"),
        (
            "repos:\n  - repo: local\n    hooks:\n      - id: x\n        entry: y\n        language: system\n"
            "        files: '('\n",
            "hook x: files:",
        ),
        ("!!python/object/apply:os.system ['touch pwned']\n", "not YAML"),  # the safe loader refuses it
    ):
        with pytest.raises(ConfigProblem, match=why):
            read_config(text)
    assert not os.path.exists("pwned")
    assert read_config("repos: []\n") == HookConfig()
