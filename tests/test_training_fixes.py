"""Learning from the morning: a person's fix of a failed task becomes a verified demonstration, and the
fixed split keeps every held-out task out of training."""

from __future__ import annotations

import json
from pathlib import Path

from pantheon_git.agents.builtin import IMPLEMENTER
from pantheon_git.agents.calls import CallFormat, parse
from pantheon_git.queue.tasks import enqueue
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo
from pantheon_git.store.runs import Step, commit_step, start_run_branch
from pantheon_git.store.traces import write_trace
from pantheon_git.store.votes import Vote, append_votes
from pantheon_git.tools.builtin import TOOLS, ToolContext
from pantheon_git.training.dataset import holdout
from tests.conftest import git, pantheon

TRAIN_IDS = ["fix-0", "fix-2", "fix-3"]  # training side of the split (asserted below)
HELD_IDS = ["fix-1", "fix-5"]  # held-out side

CALC = (
    "".join(f"# line {n}\n" for n in range(30))
    + "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a + b\n"
)
FIXED = CALC.replace("return a - b", "return a + b").replace("return a + b\n", "return a + b\n", 1)
FIXED = FIXED[: FIXED.rindex("return a + b")] + "return a * b\n"
CHECK = "python3 -c 'import calc; assert calc.add(2, 3) == 5 and calc.mul(2, 3) == 6'"


def queue(repo_dir: Path, ids: list[str]) -> None:
    specs = [
        stamp(
            Spec(
                id=i, title=f"fix calc ({i})", scope="make add and mul right in calc.py", acceptance=[CHECK]
            ),
            author="a <a@b>",
            base="main",
        )
        for i in ids
    ]
    enqueue(open_repo(repo_dir), specs)


def failed_run(repo_dir: Path, task: str) -> str:
    """A run branch whose one step failed (it changed calc.py, wrongly), as the night leaves it."""
    repo = open_repo(repo_dir)
    ref = start_run_branch(repo, task, 1, repo.head.target)
    step = Step(task, "implement", "implementer", "m@0", "tried", {"Pantheon-Outcome": "failed"})
    commit = commit_step(repo, ref, step, changes={"calc.py": CALC.replace("a - b", "b - a").encode()})
    record = {
        "prompt": f"### Task\nTitle: fix calc ({task}) secret-prompt-{task}\n",
        "turns": [{"n": 1, "completion": f"view path=calc.py  # trace-of-{task}", "result": "..."}],
    }
    write_trace(
        repo,
        commit,
        {
            "summary": "tried",
            "task": task,
            "attempt": 1,
            "agent": "implementer",
            "ok": False,
            "agent_trace": record,
        },
        detail_keys=("agent_trace",),
    )
    return ref


def person_fixes_run_branch(repo_dir: Path, task: str, content: str) -> str:
    branch = f"pantheon/{task}/1"
    git(repo_dir, "checkout", "-q", branch)
    (repo_dir / "calc.py").write_text(content)
    git(repo_dir, "commit", "-q", "-am", f"morning fix of {task}")
    head = git(repo_dir, "rev-parse", "HEAD").strip()
    git(repo_dir, "checkout", "-q", "main")
    return head


def base(repo_dir: Path) -> None:
    (repo_dir / "calc.py").write_text(CALC)
    git(repo_dir, "add", "calc.py")
    git(repo_dir, "commit", "-q", "-m", "calc, wrong")


def replay_row(repo_dir: Path, row: dict, start: str, workdir: Path) -> list[str]:
    """Apply the row's assistant calls with the real tools to a checkout of `start`; the call names."""
    git(repo_dir, "worktree", "add", "-q", "--detach", str(workdir), start)
    models = {name: TOOLS[name].args for name in IMPLEMENTER.tools} | {"finish": IMPLEMENTER.output}
    names = []
    for message in row["messages"]:
        if message["role"] != "assistant":
            continue
        name, args = parse(message["content"], models, CallFormat(IMPLEMENTER.call_format))
        names.append(name)
        if name != "finish":
            TOOLS[name].function(args, ToolContext(worktree=workdir))
    return names


def test_split_sides() -> None:
    assert not any(holdout(i) for i in TRAIN_IDS) and all(holdout(i) for i in HELD_IDS)


def test_run_branch_fix_becomes_a_verified_demonstration(repo_dir: Path, tmp_path: Path) -> None:
    base(repo_dir)
    queue(repo_dir, ["fix-0"])
    failed_run(repo_dir, "fix-0")
    fix = person_fixes_run_branch(repo_dir, "fix-0", FIXED)
    made = pantheon(repo_dir, "train", "dataset", "--agent", "implementer", "--out", "ds")
    assert made.returncode == 0, made.stderr
    assert "(1 train rows from morning fixes)" in made.stdout, made.stdout
    rows = [json.loads(line) for line in (repo_dir / "ds" / "train.jsonl").read_text().splitlines()]
    [row] = [r for r in rows if r["meta"]["source"] == "fix:run-branch"]
    assert row["meta"]["commit"] == fix
    start = git(repo_dir, "rev-parse", "main").strip()
    assert row["meta"]["start"] == start  # from the task's base: the whole job, not only the repair
    # Replayed independently of the code that made it: it reproduces the fix's tree and passes acceptance.
    workdir = tmp_path / "replay"
    names = replay_row(repo_dir, row, start, workdir)
    assert names[0] == "view" and names[-1] == "finish" and names.count("edit") == 2  # two hunks
    assert (workdir / "calc.py").read_text() == FIXED
    git(workdir, "add", "-A")
    assert git(workdir, "write-tree").strip() == git(repo_dir, "rev-parse", f"{fix}^{{tree}}").strip()
    assert git(workdir, "status", "--porcelain") != ""  # sanity: the replay really changed the checkout
    import subprocess

    assert subprocess.run(["bash", "-c", CHECK], cwd=workdir).returncode == 0
    assert row["messages"][0]["role"] == "user" and "fix calc (fix-0)" in row["messages"][0]["content"]
    manifest = json.loads((repo_dir / "ds" / "manifest.json").read_text())
    assert manifest["counts"]["fixes"] == 1 and fix in manifest["sources"]


def test_trailer_fix_on_base_and_a_fix_that_fails_acceptance(repo_dir: Path) -> None:
    base(repo_dir)
    queue(repo_dir, ["fix-2", "fix-3"])
    (repo_dir / "calc.py").write_text(CALC.replace("return a - b", "return a + b"))  # mul still wrong
    git(repo_dir, "commit", "-q", "-am", "half a fix\n\nPantheon-Fixes: fix-3")
    (repo_dir / "calc.py").write_text(FIXED)
    (repo_dir / "NOTES.md").write_text("fixed by hand\n")
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "fix calc\n\nPantheon-Fixes: fix-2")
    made = pantheon(repo_dir, "train", "dataset", "--agent", "implementer", "--out", "ds")
    assert made.returncode == 0, made.stderr
    rows = [json.loads(line) for line in (repo_dir / "ds" / "train.jsonl").read_text().splitlines()]
    assert [r["meta"]["task"] for r in rows] == ["fix-2"]
    calls = [m["content"].split()[0] for m in rows[0]["messages"] if m["role"] == "assistant"]
    assert "create" in calls and calls[-1] == "finish"
    assert "fix left out:" in made.stdout and "(fix-3): replay: acceptance" in made.stdout


def test_no_held_out_task_reaches_training(repo_dir: Path) -> None:
    """Attack on the split: held-out tasks with failed runs (negatives), morning fixes on run branches
    and by trailer; none of their prompts, solutions or traces may appear in train or negatives."""
    base(repo_dir)
    queue(repo_dir, TRAIN_IDS[:1] + HELD_IDS)
    for task in TRAIN_IDS[:1] + HELD_IDS:
        failed_run(repo_dir, task)
    person_fixes_run_branch(repo_dir, HELD_IDS[0], FIXED)
    person_fixes_run_branch(repo_dir, TRAIN_IDS[0], FIXED)
    (repo_dir / "calc.py").write_text(FIXED)
    git(repo_dir, "commit", "-q", "-am", f"fix\n\nPantheon-Fixes: {HELD_IDS[1]}")
    # A passing held-out step goes to holdout.jsonl only.
    repo = open_repo(repo_dir)
    ref = start_run_branch(repo, HELD_IDS[1], 2, repo.head.target)
    commit = commit_step(repo, ref, Step(HELD_IDS[1], "implement", "implementer", "m@0", "ok"))
    write_trace(
        repo,
        commit,
        {
            "summary": "ok",
            "task": HELD_IDS[1],
            "attempt": 2,
            "agent": "implementer",
            "ok": True,
            "agent_trace": {
                "prompt": f"held {HELD_IDS[1]}",
                "turns": [{"n": 1, "completion": "finish summary=x"}],
            },
        },
        detail_keys=("agent_trace",),
    )
    append_votes(repo, commit, [Vote(kind="gate", voter="gate", verdict="approve")])
    made = pantheon(repo_dir, "train", "dataset", "--agent", "implementer", "--out", "ds")
    assert made.returncode == 0, made.stderr
    training = (repo_dir / "ds" / "train.jsonl").read_text() + (
        repo_dir / "ds" / "negatives.jsonl"
    ).read_text()
    for task in HELD_IDS:
        assert task not in training, f"held-out {task} leaked into training"
    assert TRAIN_IDS[0] in training  # the training side is there: the check above can see rows
    manifest = json.loads((repo_dir / "ds" / "manifest.json").read_text())
    assert manifest["holdout_tasks"] == sorted(HELD_IDS)
    assert "sha256" in manifest["split"] and "held out" in manifest["split"]
    assert HELD_IDS[1] in (repo_dir / "ds" / "holdout.jsonl").read_text()


STUB_FILE = (
    "import math\n\n\n"
    "def hypot(a, b):\n"
    '    """Length of the hypotenuse of a right triangle with legs a and b."""\n'
    "    raise NotImplementedError\n"
)
STUB_BODY = "    return math.sqrt(a * a + b * b)\n"
STUB_CHECK = "python3 -c 'import geo; assert geo.hypot(3, 4) == 5'"


def test_a_fix_that_fills_a_stub_is_a_code_completion_row(repo_dir: Path, tmp_path: Path) -> None:
    """The implementer's move at a stub is a code completion from the file itself; a morning fix of such
    a task is learned the same way: prompt = the file up to the head, completion = the fix's body."""
    (repo_dir / "geo.py").write_text(STUB_FILE)
    git(repo_dir, "add", "geo.py")
    git(repo_dir, "commit", "-q", "-m", "a stub")
    spec = Spec(id="fix-0", title="hypot", scope="implement hypot", acceptance=[STUB_CHECK], files=["geo.py"])
    enqueue(open_repo(repo_dir), [stamp(spec, author="a <a@b>", base="main")])
    start = git(repo_dir, "rev-parse", "HEAD").strip()
    fixed = STUB_FILE.replace("    raise NotImplementedError\n", STUB_BODY)
    (repo_dir / "geo.py").write_text(fixed)
    git(repo_dir, "commit", "-q", "-am", "hypot\n\nPantheon-Fixes: fix-0")
    made = pantheon(repo_dir, "train", "dataset", "--agent", "implementer", "--out", "ds")
    assert made.returncode == 0, made.stderr
    [row] = [json.loads(line) for line in (repo_dir / "ds" / "train.jsonl").read_text().splitlines()]
    assert "messages" not in row
    assert row["prompt"] == STUB_FILE.removesuffix("    raise NotImplementedError\n")
    assert row["completion"] == STUB_BODY
    assert row["meta"]["stub"] == {"path": "geo.py", "function": "hypot"} and row["meta"]["start"] == start
    # Replayed independently: the file from prompt + completion is the fix, and it passes acceptance.
    workdir = tmp_path / "replay"
    git(repo_dir, "worktree", "add", "-q", "--detach", str(workdir), start)
    (workdir / "geo.py").write_text(row["prompt"] + row["completion"])
    git(workdir, "add", "-A")
    assert git(workdir, "write-tree").strip() == git(repo_dir, "rev-parse", "HEAD^{tree}").strip()
    import subprocess

    assert subprocess.run(["bash", "-c", STUB_CHECK], cwd=workdir).returncode == 0


def test_a_stub_fix_that_fails_acceptance_is_left_out(repo_dir: Path) -> None:
    (repo_dir / "geo.py").write_text(STUB_FILE)
    git(repo_dir, "add", "geo.py")
    git(repo_dir, "commit", "-q", "-m", "a stub")
    spec = Spec(id="fix-0", title="hypot", scope="implement hypot", acceptance=[STUB_CHECK], files=["geo.py"])
    enqueue(open_repo(repo_dir), [stamp(spec, author="a <a@b>", base="main")])
    (repo_dir / "geo.py").write_text(
        STUB_FILE.replace("    raise NotImplementedError\n", "    return a + b\n")
    )
    git(repo_dir, "commit", "-q", "-am", "hypot, wrong\n\nPantheon-Fixes: fix-0")
    made = pantheon(repo_dir, "train", "dataset", "--agent", "implementer", "--out", "ds")
    assert made.returncode == 0, made.stderr
    assert (repo_dir / "ds" / "train.jsonl").read_text() == ""
    assert "(fix-0): replay: acceptance" in made.stdout


def test_cancelled_held_out_task_is_not_evaluated_on(repo_dir: Path) -> None:
    """A person cancels a held-out task (its spec was wrong): no adapter is judged on it any more, and its
    steps still never reach training (cancelling moves nothing across the split)."""
    base(repo_dir)
    queue(repo_dir, TRAIN_IDS[:1] + HELD_IDS)
    for task in TRAIN_IDS[:1] + HELD_IDS:
        failed_run(repo_dir, task)
    cancelled = pantheon(repo_dir, "cancel", HELD_IDS[1], "-m", "acceptance test was wrong")
    assert cancelled.returncode == 0, cancelled.stderr
    made = pantheon(repo_dir, "train", "dataset", "--agent", "implementer", "--out", "ds")
    assert made.returncode == 0, made.stderr
    manifest = json.loads((repo_dir / "ds" / "manifest.json").read_text())
    assert manifest["holdout_tasks"] == [HELD_IDS[0]]
    out = repo_dir / "ds"
    training = (out / "train.jsonl").read_text() + (out / "negatives.jsonl").read_text()
    assert f"trace-of-{TRAIN_IDS[0]}" in training  # the training side's failed step is a negative
    assert f"trace-of-{HELD_IDS[1]}" not in training
