"""The nightly trainer (`git pantheon night --train`): after the queue, mine → LoRA → evaluate on the
held-out half → promote only when better beyond noise, so the next night serves the promoted adapter.

Everything stays local and in git: the dataset commit, the adapter chain, the eval note with the decision
rule and its figures. The outcome of each night's training (promoted, refused, failed or skipped, with
why) is a note on that night's dataset commit (refs/notes/pantheon/evals), which `report` shows. A
training that fails never touches the adapter ref: the previous adapter keeps serving.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pygit2

from pantheon_git.agents.registry import agents
from pantheon_git.errors import PantheonError
from pantheon_git.runtime.adapters import promoted_adapter
from pantheon_git.store.git import ref_commit
from pantheon_git.store.layout import DATASETS_PREFIX, EVALS_NOTES
from pantheon_git.store.notes import set_note
from pantheon_git.tools.sandbox import sandbox_available
from pantheon_git.training.dataset import Dataset, add_demonstrations, holdout, mine, record
from pantheon_git.training.finetune import DEFAULTS, LoraSettings, adapter_dir, train_adapter
from pantheon_git.training.fixes import demonstrations, find_fixes
from pantheon_git.training.promote import NIGHT_ALPHA, Evaluation, decide, evaluate, promote

DEFAULT_STEPS = DEFAULTS.steps  # `night --train-steps`' default: the one in LoraSettings


class TrainOutcome(enum.StrEnum):
    PROMOTED = "promoted"
    REFUSED = "refused"  # trained and evaluated, not better beyond noise: the previous adapter serves
    FAILED = "failed"  # training or evaluation broke: the previous adapter serves
    SKIPPED = "skipped"  # nothing to learn from or nothing to evaluate on


@dataclass(slots=True)
class NightTraining:
    agent: str
    outcome: TrainOutcome
    reason: str
    rows: int = 0
    fixes: int = 0
    holdout_tasks: int = 0
    training: dict[str, Any] = field(default_factory=dict)  # the trainer's figures (steps, seconds, loss)
    current_rate: float | None = None
    candidate_rate: float | None = None
    adapter_commit: pygit2.Oid | None = None
    dataset_commit: pygit2.Oid | None = None

    def line(self) -> str:
        return f"night training of {self.agent}: {self.outcome.value}: {self.reason}"


# rows, out dir, settings -> the trainer's summary; out/adapter.gguf is the adapter (finetune.train_adapter)
Trainer = Callable[[list[dict[str, Any]], Path, LoraSettings], dict[str, Any]]
Evaluator = Callable[[pygit2.Repository, Path, str, Path | None, list[str]], Evaluation]


def mine_with_fixes(repo: pygit2.Repository, root: Path, agent_name: str) -> Dataset:
    """The night's steps of the agent, plus verified morning fixes when it can write them (view/edit/
    create) and a sandbox exists to verify them in."""
    data = mine(repo, agent_name)
    agent = agents(root).get(agent_name)
    if agent is None or not {"view", "edit", "create"} <= set(agent.tools):
        return data
    if not sandbox_available():
        data.skipped_fixes.extend(
            f"{str(fix.commit)[:12]} ({fix.task}): no sandbox here to verify it in"
            for fix in find_fixes(repo)
        )
        return data
    add_demonstrations(data, demonstrations(repo, root, agent, holdout))
    return data


def _record_outcome(repo: pygit2.Repository, result: NightTraining) -> None:
    """The night's training outcome as a note on its dataset commit, for `report`."""
    if result.dataset_commit is None:
        return
    # Ids are hex in JSON (asdict cannot copy a pygit2.Oid); the keys keep their place in the record.
    ids = {"adapter_commit": result.adapter_commit, "dataset_commit": result.dataset_commit}
    body = {
        **asdict(replace(result, adapter_commit=None, dataset_commit=None)),
        **{key: str(value) if value is not None else None for key, value in ids.items()},
        "outcome": result.outcome.value,
        "at": datetime.now(UTC).isoformat(),
    }
    set_note(
        repo,
        EVALS_NOTES,
        result.dataset_commit,
        json.dumps(body).encode() + b"\n",
        f"pantheon: night training {result.agent}",
    )


def _evaluate_and_promote(
    repo: pygit2.Repository,
    root: Path,
    result: NightTraining,
    *,
    agent: str,
    adapter: Path,
    tasks: list[str],
    alpha: float,
    evaluator: Evaluator,
) -> None:
    """The candidate against the adapter in force on the held-out tasks; promoted only when better beyond
    noise. The outcome, rates and reason go into `result`."""
    current = evaluator(repo, root, agent, promoted_adapter(repo, agent), tasks)
    candidate = evaluator(repo, root, agent, adapter, tasks)
    result.current_rate, result.candidate_rate = current.rate, candidate.rate
    decision = decide(candidate, current, alpha)
    result.reason = decision.reason
    extra = {"training": {**result.training, "rows": result.rows, "fixes": result.fixes}}
    try:
        promoted = promote(repo, agent, adapter, candidate, current, alpha=alpha, extra=extra)
    except PantheonError as refused:
        result.outcome, result.reason = TrainOutcome.REFUSED, str(refused)
    else:
        result.outcome, result.adapter_commit = TrainOutcome.PROMOTED, promoted


def train_night(
    repo: pygit2.Repository,
    root: Path,
    agent: str = "implementer",
    *,
    settings: LoraSettings = DEFAULTS,
    steps: int | None = None,
    alpha: float = NIGHT_ALPHA,
    trainer: Trainer = train_adapter,
    evaluator: Evaluator = evaluate,
) -> NightTraining:
    """One night's collect → train → evaluate → promote for `agent`; never raises (the night goes on).

    `settings`: the LoRA's (`steps`, when given, replaces theirs: `night --train-steps`); `alpha`: the
    promotion's sign test, not the LoRA's."""
    result = NightTraining(agent, TrainOutcome.SKIPPED, "")
    try:
        if steps is not None:
            settings = replace(settings, steps=steps)
        data = mine_with_fixes(repo, root, agent)
        commit, manifest = record(repo, data)
        tip = ref_commit(repo, DATASETS_PREFIX + agent)
        result.dataset_commit = commit if commit is not None else (tip.id if tip is not None else None)
        result.rows, result.fixes = len(data.train), data.fixes
        tasks = list(manifest["holdout_tasks"])
        result.holdout_tasks = len(tasks)
        if not data.train:
            result.reason = "no passing attempt or verified morning fix to learn from"
        elif not tasks:
            result.reason = "no held-out task in the queue to evaluate on"
        else:
            out = adapter_dir(repo, agent, result.dataset_commit)
            started = time.perf_counter()
            result.training = trainer(data.train, out, settings)
            result.training.pop("losses", None)
            result.training.pop("gguf", None)
            result.training.setdefault("seconds", round(time.perf_counter() - started, 3))
            if result.training.get("validation_rows") and result.training.get("kept_step") == 0:
                # The untrained adapter changes nothing: evaluating it would only spend the night.
                result.outcome = TrainOutcome.REFUSED
                result.reason = (
                    f"no step lowered the loss on the {result.training['validation_rows']} validation rows "
                    "held out of training: nothing learned carries over; not evaluated"
                )
            else:
                _evaluate_and_promote(
                    repo,
                    root,
                    result,
                    agent=agent,
                    adapter=out / "adapter.gguf",
                    tasks=tasks,
                    alpha=alpha,
                    evaluator=evaluator,
                )
    except Exception as broken:  # whatever broke, the night ends and yesterday's adapter serves
        result.outcome = TrainOutcome.FAILED
        result.reason = f"{type(broken).__name__}: {broken}; the previous adapter keeps serving"
    try:
        _record_outcome(repo, result)
    except (PantheonError, OSError, ValueError) as unrecorded:
        result.reason += f" (outcome not recorded: {unrecorded})"
    return result
