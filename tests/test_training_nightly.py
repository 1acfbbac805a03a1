"""The nightly trainer: after the queue, mine → train → evaluate on held-out → promote only when better
beyond noise; a failed or refused training keeps the previous adapter serving and says why in the report.

The LoRA itself and the model runs of the evaluation are replaced here by stand-ins (they are what
trainer/tests and the bench measure); what is tested is the night's decision and its record in git."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pantheon_git.queue.tasks import enqueue
from pantheon_git.runtime.adapters import route_adapter
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo
from pantheon_git.training.dataset import holdout
from pantheon_git.training.finetune import LoraSettings
from pantheon_git.training.nightly import TrainOutcome, train_night
from pantheon_git.training.promote import Evaluation, promote
from tests.conftest import git, pantheon
from tests.test_training_dataset import agent_step

HELD = [f"h{n}" for n in range(40) if holdout(f"h{n}")][:8]
LEARN = [f"g{n}" for n in range(20) if not holdout(f"g{n}")][:3]


def night_repo(repo_dir: Path) -> None:
    for task in LEARN:
        agent_step(repo_dir, task, "implementer", f"create path={task}.txt", "approve")
    specs = [
        stamp(Spec(id=t, title=f"held {t}", acceptance=["true"]), author="a <a@b>", base="main") for t in HELD
    ]
    enqueue(open_repo(repo_dir), specs)


def fake_trainer(rows: list[dict[str, Any]], out: Path, settings: LoraSettings) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "adapter.gguf").write_bytes(b"GGUF trained on " + str(len(rows)).encode())
    return {"steps": settings.steps, "seconds": 1.0, "seconds_per_step_per_1k_tokens": 0.5, "losses": [1.0]}


def evaluator(passes: dict[str | None, int]) -> Any:
    """Passes the first N held-out tasks, N by adapter (None: the base model; "new": the candidate)."""

    def evaluate(repo: Any, root: Path, agent: str, adapter: Path | None, tasks: list[str]) -> Evaluation:
        key = None if adapter is None else ("new" if "adapters/implementer/" in str(adapter) else "old")
        return Evaluation(str(key), tasks, passed=tasks[: passes[key]])

    return evaluate


def test_night_train_promotes_only_beyond_noise_and_the_next_night_serves_it(repo_dir: Path) -> None:
    night_repo(repo_dir)
    repo = open_repo(repo_dir)
    # One held-out task more than the base: a coin flip could do that; refused, nothing served.
    refused = train_night(
        repo, repo_dir, steps=3, trainer=fake_trainer, evaluator=evaluator({None: 2, "new": 3})
    )
    assert refused.outcome is TrainOutcome.REFUSED, refused.reason
    assert "sign test p = 0.500" in refused.reason and refused.rows == len(LEARN)
    assert route_adapter(repo, "implementer") is None
    report = pantheon(repo_dir, "report")
    assert "## Nightly training" in report.stdout and "implementer**: refused" in report.stdout
    promoted = train_night(
        repo, repo_dir, steps=3, trainer=fake_trainer, evaluator=evaluator({None: 2, "new": 7})
    )
    assert promoted.outcome is TrainOutcome.PROMOTED, promoted.reason
    served = route_adapter(repo, "implementer")
    assert served is not None and served.path.read_bytes() == f"GGUF trained on {len(LEARN)}".encode()
    note = git(repo_dir, "notes", "--ref", "pantheon/evals", "show", "refs/pantheon/adapters/implementer")
    recorded = json.loads(note)
    assert recorded["decision"]["wins"] == 5 and recorded["training"]["rows"] == len(LEARN)
    assert sorted(recorded["candidate"]["tasks"]) == sorted(HELD)  # evaluated on the held-out half


def test_a_failed_training_keeps_the_previous_adapter_and_says_why(repo_dir: Path, tmp_path: Path) -> None:
    night_repo(repo_dir)
    repo = open_repo(repo_dir)
    old = tmp_path / "old.gguf"
    old.write_bytes(b"GGUF yesterday")
    promote(repo, "implementer", old, Evaluation("old", HELD, HELD[:3]), Evaluation("base", HELD, HELD[:1]))
    before = git(repo_dir, "rev-parse", "refs/pantheon/adapters/implementer")

    def broken(rows: list[dict[str, Any]], out: Path, settings: LoraSettings) -> dict[str, Any]:
        raise MemoryError("out of memory at step 2")

    result = train_night(repo, repo_dir, trainer=broken, evaluator=evaluator({None: 0, "old": 3, "new": 8}))
    assert result.outcome is TrainOutcome.FAILED
    assert "out of memory at step 2" in result.reason and "previous adapter keeps serving" in result.reason
    assert git(repo_dir, "rev-parse", "refs/pantheon/adapters/implementer") == before
    assert route_adapter(repo, "implementer").path.read_bytes() == b"GGUF yesterday"
    report = pantheon(repo_dir, "report")
    assert "implementer**: failed: MemoryError: out of memory at step 2" in report.stdout


def test_an_adapter_that_learned_nothing_for_unseen_tasks_is_refused_unevaluated(repo_dir: Path) -> None:
    night_repo(repo_dir)
    repo = open_repo(repo_dir)
    evaluated: list[Path | None] = []

    def no_step_helped(rows: list[dict[str, Any]], out: Path, settings: LoraSettings) -> dict[str, Any]:
        summary = fake_trainer(rows, out, settings)
        return {**summary, "validation_rows": 1, "validation_losses": [[0, 0.5], [3, 0.9]], "kept_step": 0}

    def counting(repo: Any, root: Path, agent: str, adapter: Path | None, tasks: list[str]) -> Evaluation:
        evaluated.append(adapter)
        return Evaluation("any", tasks, passed=tasks)

    result = train_night(repo, repo_dir, steps=3, trainer=no_step_helped, evaluator=counting)
    assert result.outcome is TrainOutcome.REFUSED and evaluated == []
    assert "no step lowered the loss on the 1 validation rows" in result.reason
    assert route_adapter(repo, "implementer") is None
    assert "implementer**: refused: no step lowered the loss" in pantheon(repo_dir, "report").stdout


def test_night_train_from_the_cli_and_the_schedule(repo_dir: Path) -> None:
    ran = pantheon(repo_dir, "night", "--train")
    assert ran.returncode == 0, ran.stderr
    assert "night training of implementer: skipped: no passing attempt or verified morning fix" in ran.stdout
    bad = pantheon(repo_dir, "night", "--train", "--train-steps", "0")
    assert bad.returncode == 2 and "--train-steps: 0: must be at least 1" in bad.stderr
    from pantheon_git.ops.schedule import cron_line, systemd_units

    assert "-m pantheon_git night --train >>" in cron_line(repo_dir, repo_dir / "logs", "02:00", train=True)
    assert "night --train" not in cron_line(repo_dir, repo_dir / "logs", "02:00")
    units = systemd_units(repo_dir, repo_dir / "logs", "02:00", train=True)
    assert any("night --train" in text for text in units.values())
