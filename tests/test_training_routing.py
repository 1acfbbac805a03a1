"""Specialists and the nightly gate: an adapter is refused unless better beyond noise, and the runner picks
per task the adapter whose recorded held-out score on the task's labels is best."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pantheon_git.errors import PantheonError
from pantheon_git.review.report import adapter_of
from pantheon_git.runtime.adapters import route_adapter
from pantheon_git.store.git import open_repo
from pantheon_git.store.layout import EVALS_NOTES
from pantheon_git.store.notes import read_note, set_note
from pantheon_git.training.promote import NIGHT_ALPHA, Evaluation, Verdict, decide, promote, rollback

TASKS = [f"t{n}" for n in range(10)]


def evaluation(name: str, passed: list[str], labels: dict[str, list[str]] | None = None) -> Evaluation:
    labels = labels or {}
    details = [{"task": t, "labels": labels.get(t, []), "passed": t in passed} for t in TASKS]
    return Evaluation(name, TASKS, passed=passed, details=details)


def adapter_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.gguf"
    path.write_bytes(f"GGUF {name}".encode())
    return path


def test_the_night_gate_refuses_a_worse_or_a_noise_level_adapter(repo_dir: Path, tmp_path: Path) -> None:
    repo = open_repo(repo_dir)
    current = evaluation("base", ["t0", "t1", "t2"])
    worse = evaluation("worse", ["t0"])
    assert decide(worse, current, NIGHT_ALPHA).verdict is Verdict.REFUSE
    with pytest.raises(PantheonError, match=r"not promoted: it passed 1/10 .* \(0 won, 2 lost\)"):
        promote(repo, "implementer", adapter_file(tmp_path, "w"), worse, current, alpha=NIGHT_ALPHA)
    # One more task passed is a higher rate, but a coin flip does that half the time: refused at night.
    lucky = evaluation("lucky", ["t0", "t1", "t2", "t3"])
    assert decide(lucky, current).verdict is Verdict.PROMOTE  # by rate alone it would pass
    refused = decide(lucky, current, NIGHT_ALPHA)
    assert refused.verdict is Verdict.REFUSE and refused.p_value == 0.5
    assert repo.references.get("refs/pantheon/adapters/implementer") is None
    better = evaluation("better", ["t0", "t1", "t2", "t3", "t4", "t5", "t6"])
    decision = decide(better, current, NIGHT_ALPHA)
    assert decision.verdict is Verdict.PROMOTE and decision.wins == 4 and decision.p_value == 1 / 16
    commit = promote(repo, "implementer", adapter_file(tmp_path, "b"), better, current, alpha=NIGHT_ALPHA)
    note = json.loads(read_note(repo, EVALS_NOTES, commit) or b"{}")
    assert note["decision"]["verdict"] == "promote" and "sign test" in note["decision"]["rule"]
    assert note["decision"]["p_value"] == 1 / 16 and note["decision"]["wins"] == 4


def test_routing_by_label_from_the_evals_in_git(repo_dir: Path, tmp_path: Path) -> None:
    repo = open_repo(repo_dir)
    labels = {t: ["tests"] for t in TASKS[:5]} | {t: ["docs"] for t in TASKS[5:]}
    base = evaluation("base", [])
    # The general adapter: 2/5 on the tests-labelled tasks, 5/5 on the docs ones.
    general = evaluation("general", ["t0", "t1", *TASKS[5:]], labels)
    promote(repo, "implementer", adapter_file(tmp_path, "general"), general, base)
    assert route_adapter(repo, "implementer", ["tests"]).ref == "implementer"  # the only one yet
    # A specialist evaluated on the same tasks: 4/5 on tests, 0/5 on docs.
    special = evaluation("special", ["t0", "t1", "t2", "t3"], labels)
    promote(repo, "implementer@tests", adapter_file(tmp_path, "special"), special, base)
    chosen = route_adapter(repo, "implementer", ["tests"])
    assert chosen is not None and chosen.ref == "implementer@tests" and chosen.score == 0.8
    assert chosen.path.read_bytes() == b"GGUF special"
    assert (
        route_adapter(repo, "implementer", ["docs"]).ref == "implementer"
    )  # a specialist only for its label
    assert route_adapter(repo, "implementer", []).ref == "implementer"
    assert route_adapter(repo, "planner", ["tests"]) is None  # nothing promoted: the base model
    # A better general adapter on the tests tasks takes them back.
    general2 = evaluation("general2", [*TASKS[:5], *TASKS[5:]], labels)
    promote(repo, "implementer", adapter_file(tmp_path, "general2"), general2, general)
    assert route_adapter(repo, "implementer", ["tests"]).ref == "implementer"
    # The specialist rolled back to the base model: it serves nothing, the general adapter serves.
    rollback(repo, "implementer@tests")
    assert route_adapter(repo, "implementer", ["tests"]).path.read_bytes() == b"GGUF general2"
    # The report names the adapter that served, from the step's Pantheon-Model trailer.
    name = chosen.path.name
    assert adapter_of(f"gemma3-270m@0123456789ab+{name}@fedcba987654") == "implementer@tests"
    assert adapter_of("gemma3-270m@0123456789ab") == ""


@pytest.mark.parametrize(
    "note",
    [b"not json", b"[1, 2]", b'{"candidate": "all of them"}', b'{"candidate": {"details": ["x", 3]}}'],
)
def test_an_eval_note_from_another_machine_of_another_shape_routes_the_adapter_unscored(
    repo_dir: Path, tmp_path: Path, note: bytes
) -> None:
    """Eval notes arrive by sync: whoever writes one may not crash the night's routing with it."""
    repo = open_repo(repo_dir)
    better = evaluation("better", ["t0", "t1", "t2", "t3", "t4", "t5", "t6"])
    commit = promote(repo, "implementer", adapter_file(tmp_path, "a"), better, evaluation("base", []))
    set_note(repo, EVALS_NOTES, commit, note, "eval from elsewhere")  # as a sync would deliver it
    routed = route_adapter(repo, "implementer", ["tests"])
    assert routed is not None and routed.ref == "implementer" and routed.score is None
