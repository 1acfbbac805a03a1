"""`git pantheon night --jobs N`: several attempts in flight, each in its own worktree with its task's
claim and lock; the same steps, notes and statuses as one job; best-of-N attempts of one task at once;
exactly-once steps when the night is killed mid-way and run again. Model-free (conftest.CHECKS_FLOW)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pantheon_git.errors import PantheonError
from pantheon_git.night.executors import config_is_local
from pantheon_git.night.setup import served_models
from pantheon_git.schema.models import parse_models
from pantheon_git.store.git import backoff
from tests.conftest import CHECKS_FLOW, enable_signing, git, pantheon


def _setup(repo: Path) -> None:
    assert pantheon(repo, "init").returncode == 0
    (repo / ".pantheon" / "flows" / "quick.toml").write_text(CHECKS_FLOW)
    config = repo / ".pantheon" / "config.toml"
    # Model-free: nothing changes the files, so no check can go from failing to passing.
    text = config.read_text().replace("min_approvals = 2", "min_approvals = 0")
    text = text.replace("require_fixed_check = true", "require_fixed_check = false")
    config.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pantheon with a model-free flow")


def _queue(repo: Path, task_id: str, check: str, samples: int | None = None, attempts: int = 2) -> None:
    spec = f'id = "{task_id}"\ntitle = "{task_id}"\nflow = "quick"\nacceptance = ["{check}"]\n'
    spec += f"[limits]\nmax_attempts = {attempts}\n" + (f"samples = {samples}\n" if samples else "")
    queued = pantheon(repo, "queue", "-", input=spec)
    assert queued.returncode == 0, queued.stderr


def _steps(repo: Path, branch: str) -> list[str]:
    """The nodes of the branch's steps, oldest first (the folded Pantheon-Step line starts with it)."""
    lines = git(
        repo, "log", "--reverse", "--format=%(trailers:key=Pantheon-Step,valueonly)", f"main..{branch}"
    )
    return [line.split()[0] for line in lines.splitlines() if line.strip()]


def _notes(repo: Path, branch: str) -> list[tuple[str, list[str], str, list[str]]]:
    """Per step: (step, trace note keys, the trace's summary, the verdicts voted on it)."""
    rows = []
    for rev in git(repo, "rev-list", "--reverse", f"main..{branch}").split():
        trace = json.loads(git(repo, "notes", "--ref", "pantheon/traces", "show", rev))
        votes = git(repo, "notes", "--ref", "pantheon/votes", "show", rev, check=False)
        verdicts = sorted(json.loads(line)["verdict"] for line in votes.splitlines() if line.strip())
        assert git(repo, "log", "-1", "--format=%(trailers:key=Pantheon-Log,valueonly)", rev).strip()
        summary = str(trace["summary"]).split(" (")[0]
        rows.append((trace["node"], sorted(trace), summary, verdicts))
    return rows


def _branches(repo: Path) -> list[str]:
    return sorted(git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/pantheon/").split())


def _statuses(repo: Path) -> dict[str, str]:
    return {row["id"]: row["status"] for row in json.loads(pantheon(repo, "list", "--json").stdout)}


def test_jobs_run_every_task_with_the_notes_of_one_job(tmp_path: Path, repo_dir: Path) -> None:
    checks = {"ta": "sleep 0.3", "tb": "sleep 0.3; false", "tc": "sleep 0.3", "td": "true", "te": "false"}
    one = repo_dir
    many = tmp_path / "many"  # a second repository made as conftest's repo_dir, with its own key
    many.mkdir()
    git(many, "init", "-q", "-b", "main")
    (many / "README.md").write_text("sample\n")
    enable_signing(many)
    git(many, "add", "README.md", ".pantheon/allowed_signers")
    git(many, "commit", "-q", "-m", "initial")
    for repo in (one, many):
        _setup(repo)
        for task_id, check in checks.items():
            _queue(repo, task_id, check)
    single = pantheon(one, "night")
    multi = pantheon(many, "night", "--jobs", "3", "--json")
    # tb and te are rejected by the gate: completed runs, failed tasks (the night itself went well).
    assert single.returncode == multi.returncode == 0, multi.stdout + multi.stderr
    expected = {"ta": "passed", "tb": "failed", "tc": "passed", "td": "passed", "te": "failed"}
    assert _statuses(one) == _statuses(many) == expected
    assert _branches(one) == _branches(many) == [f"pantheon/{task_id}/1" for task_id in sorted(checks)]
    for task_id in checks:
        branch = f"pantheon/{task_id}/1"
        assert _steps(many, branch) == ["baseline", "test", "gate"]
        assert _notes(many, branch) == _notes(one, branch), task_id
    events = [json.loads(line) for line in multi.stdout.splitlines()]  # whole lines: never interleaved
    # Three tasks were in flight at once: a fourth started only after one of the first three was done.
    starts = [event["task"] for event in events if event["event"] == "task"]
    first_done = next(index for index, event in enumerate(events) if event["event"] == "done")
    assert len([e for e in events[:first_done] if e["event"] == "task"]) == 3, starts
    assert all(event["job"] == f"{event['task']}#1" for event in events if event["event"] == "step")
    assert "pantheon" not in git(many, "worktree", "list")


def test_best_of_n_attempts_run_at_once_and_none_start_after_a_pass(repo_dir: Path) -> None:
    _setup(repo_dir)
    _queue(repo_dir, "pass", "sleep 0.3", samples=4, attempts=4)
    _queue(repo_dir, "fail", "sleep 0.3; false", samples=4, attempts=4)
    night = pantheon(repo_dir, "night", "--jobs", "2", "--json")
    assert night.returncode == 0, night.stdout + night.stderr
    # Two attempts of `pass` ran together and both passed: the two left never started.
    # `fail` used all four, two at a time, each its own branch with every step once.
    fails = [f"pantheon/fail/{n}" for n in (1, 2, 3, 4)]
    assert _branches(repo_dir) == [*fails, "pantheon/pass/1", "pantheon/pass/2"]
    for branch in _branches(repo_dir):
        assert _steps(repo_dir, branch) == ["baseline", "test", "gate"], branch
    assert _statuses(repo_dir) == {"pass": "passed", "fail": "failed"}
    events = [json.loads(line) for line in night.stdout.splitlines()]
    order = [
        (event["event"], event["task"], event["attempt"])
        for event in events
        if event["event"] in ("task", "done")
    ]
    assert order[:2] == [("task", "pass", 1), ("task", "pass", 2)], order


def test_a_bad_jobs_value_is_refused_before_anything_runs(repo_dir: Path) -> None:
    _setup(repo_dir)
    _queue(repo_dir, "ta", "true")
    refused = pantheon(repo_dir, "night", "--jobs", "0")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].endswith("--jobs: 0: must be at least 1")
    assert _branches(repo_dir) == [] and _statuses(repo_dir) == {"ta": "queued"}


TASKS = [f"k{n:02d}" for n in range(8)]
KILLS = 12


def test_random_sigkills_with_jobs_run_every_step_exactly_once(repo_dir: Path) -> None:
    _setup(repo_dir)
    for task_id in TASKS:
        _queue(repo_dir, task_id, "sleep 0.05")
    # Best-of-3 that never passes: three attempts of one task in flight at once, killed mid-way too.
    _queue(repo_dir, "many", "sleep 0.05; false", samples=3, attempts=3)
    rng = random.Random(14)
    moments = [round(rng.uniform(0.2, 1.2), 3) for _ in range(KILLS)]
    print("kill moments:", moments)
    for moment in moments:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pantheon_git", "night", "--jobs", "3"],
            cwd=repo_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(moment)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # A git command a killed night had started (worktree add, a push) outlives it by milliseconds; the
    # next night starts after it, as a real one would, not inside it.
    time.sleep(0.5)
    final = pantheon(repo_dir, "night", "--jobs", "3")
    assert final.returncode == 0, final.stdout + final.stderr
    assert _statuses(repo_dir) == {**dict.fromkeys(TASKS, "passed"), "many": "failed"}, final.stdout
    expected = [f"pantheon/{task_id}/1" for task_id in TASKS] + [f"pantheon/many/{n}" for n in (1, 2, 3)]
    assert _branches(repo_dir) == sorted(expected)  # one attempt each; the best-of-3 task three
    for branch in expected:
        assert _steps(repo_dir, branch) == ["baseline", "test", "gate"], branch  # each step once
        for rev in git(repo_dir, "rev-list", f"main..{branch}").split():
            trace = json.loads(git(repo_dir, "notes", "--ref", "pantheon/traces", "show", rev))
            assert trace["task"] == branch.split("/")[1]
    assert "pantheon" not in git(repo_dir, "worktree", "list")
    assert not list((repo_dir / ".git").rglob("*.lock")) or all(
        path.parent.name == "locks" for path in (repo_dir / ".git").rglob("*.lock")
    )


def test_an_attempt_that_passed_beside_a_newer_failing_one_decides_the_task(repo_dir: Path) -> None:
    _setup(repo_dir)
    # Attempt 1 passes at once; attempt 2, running beside it, fails later: the newest run failed.
    check = "case $PWD in *-1) true;; *) sleep 1; false;; esac"
    _queue(repo_dir, "mix", check, samples=2, attempts=2)
    night = pantheon(repo_dir, "night", "--jobs", "2", "--json")
    assert night.returncode == 0, night.stdout + night.stderr
    assert _branches(repo_dir) == ["pantheon/mix/1", "pantheon/mix/2"]
    assert _statuses(repo_dir) == {"mix": "passed"}
    merged = pantheon(repo_dir, "merge", "mix")
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert git(repo_dir, "rev-parse", "main") == git(repo_dir, "rev-parse", "pantheon/mix/1")


def test_a_writer_waiting_out_a_stale_lock_keeps_backing_off() -> None:
    # Jobs killed mid-write leave a notes ref locked for STALE_LOCK_SECONDS; the writers of the next night
    # retry about a thousand times meanwhile, and the 1024th retry's backoff must still be a number.
    backoff(1025)


def test_models_toml_names_the_batched_engine_and_jobs_serve_every_local_model_with_it() -> None:
    models = parse_models(
        '[models.a]\nbundled = "gemma3-270m"\n'
        '[models.b]\nengine = "batched"\nbundled = "gemma3-270m"\nparallel = 2\nn_gpu_layers = -1\n'
        '[models.c]\nengine = "openai-compatible"\nurl = "http://127.0.0.1:8080"\n',
        "models.toml",
    )
    assert config_is_local(models["b"]) and models["b"].n_gpu_layers == -1
    one = served_models(models, 1)
    assert (one["a"].engine, one["b"].engine, one["b"].parallel) == ("llama.cpp", "batched", 2)
    three = served_models(models, 3)
    assert (three["a"].engine, three["a"].parallel) == ("batched", 4)  # idle slots keep prompts cached
    assert three["b"].parallel == 2 and three["c"] == models["c"]
    assert served_models(models, 8)["a"].parallel == 8
    with pytest.raises(PantheonError, match=r"^models\.toml:3: models\.x\.parallel: input should be"):
        parse_models('[models.x]\nbundled = "gemma3-270m"\nparallel = 0\n', "models.toml")
    with pytest.raises(PantheonError, match="needs exactly one of `path` or `bundled`"):
        parse_models('[models.x]\nengine = "batched"\n', "models.toml")


def test_max_tasks_still_bounds_a_night_with_jobs(repo_dir: Path) -> None:
    _setup(repo_dir)
    config = repo_dir / ".pantheon" / "config.toml"
    config.write_text(config.read_text().replace("max_tasks = 20", "max_tasks = 2"))
    git(repo_dir, "commit", "-qam", "two tasks a night")
    for task_id in ("ta", "tb", "tc", "td"):
        _queue(repo_dir, task_id, "sleep 0.2")
    night = pantheon(repo_dir, "night", "--jobs", "3")
    assert night.returncode == 0, night.stdout + night.stderr
    assert _statuses(repo_dir) == {"ta": "passed", "tb": "passed", "tc": "queued", "td": "queued"}
