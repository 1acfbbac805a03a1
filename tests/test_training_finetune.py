"""One LoRA path: `git pantheon train lora`, `night --train` and `python -m pantheon_trainer lora` resolve
one set of settings (`training/finetune.py`) and make the same call into the trainer; the datasets they
train on are read through `training/dataset.py`.

The trainer's own run is replaced by a recorder here (trainer/tests runs the real one); what is tested is
what each entry point asks it for."""

from __future__ import annotations

import argparse
import ast
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pygit2
import pytest

from pantheon_git.commands import train
from pantheon_git.errors import PantheonError
from pantheon_git.store.git import open_repo
from pantheon_git.training import finetune
from pantheon_git.training.finetune import DEFAULTS, LoraSettings, Method, Precision
from pantheon_git.training.nightly import DEFAULT_STEPS, TrainOutcome, train_night
from tests.conftest import REPO_ROOT, pantheon
from tests.test_training_nightly import LEARN, evaluator, night_repo


def core_settings(*argv: str) -> LoraSettings:
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    return finetune.from_arguments(parser.parse_args(["lora", "--agent", "implementer", *argv]))


def trainer_settings(*argv: str) -> LoraSettings:
    cli = pytest.importorskip("pantheon_trainer.cli")
    return finetune.from_arguments(cli._parser().parse_args(["lora", "--dataset", "d", "--out", "o", *argv]))


def test_the_one_set_of_defaults() -> None:
    assert LoraSettings() == DEFAULTS
    assert (DEFAULTS.method, DEFAULTS.precision) == (Method.LORA, Precision.AUTO)
    assert (DEFAULTS.rank, DEFAULTS.lora_alpha, DEFAULTS.steps, DEFAULTS.learning_rate) == (8, 16.0, 60, 2e-4)
    assert (DEFAULTS.validation_share, DEFAULTS.eval_every, DEFAULTS.seed) == (0.2, 10, 0)
    assert DEFAULTS.steps == DEFAULT_STEPS  # `night --train-steps`


def test_both_command_lines_resolve_the_same_settings() -> None:
    assert core_settings() == trainer_settings() == DEFAULTS
    argv = ["--precision", "bf16", "--validation-share", "0", "--steps", "7", "--lr", "1e-3", "--alpha", "4"]
    argv += ["--rank", "4", "--seed", "3", "--threads", "2", "--method", "lora"]
    wanted = LoraSettings(
        precision=Precision.BF16,
        validation_share=0.0,
        steps=7,
        learning_rate=1e-3,
        alpha=4.0,
        rank=4,
        seed=3,
        threads=2,
    )
    assert core_settings(*argv) == trainer_settings(*argv) == wanted


@pytest.mark.parametrize(
    ("changed", "line"),
    [
        ({"validation_share": 1.0}, "--validation-share 1.0: must be at least 0 and below 1"),
        ({"precision": "fp16"}, "--precision fp16: not one of fp32, bf16, auto"),
        ({"method": "dora"}, "--method dora: not one of lora, qlora"),
        ({"steps": 0}, "--steps 0: must be at least 1"),
        ({"rank": 0}, "--rank 0: must be at least 1"),
        ({"learning_rate": 0.0}, "--lr 0.0: must be above 0"),
        ({"threads": 0}, "--threads 0: must be at least 1"),
    ],
)
def test_settings_no_run_could_use_are_refused_in_one_line(changed: dict[str, Any], line: str) -> None:
    with pytest.raises(PantheonError) as refused:
        LoraSettings(**changed)
    assert str(refused.value) == line


def test_a_bad_setting_is_refused_before_anything_is_read(repo_dir: Path) -> None:
    refused = pantheon(repo_dir, "train", "lora", "--agent", "implementer", "--validation-share", "1")
    assert refused.returncode == 2
    assert refused.stderr == "git pantheon train: --validation-share 1.0: must be at least 0 and below 1\n"


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every call that reaches the trainer's run (pantheon_trainer.lora.train_adapter), recorded."""
    lora = pytest.importorskip("pantheon_trainer.lora")
    calls: list[dict[str, Any]] = []

    def run(
        dataset: Any, out_dir: Path, *, settings: LoraSettings, gguf: Path | None = None, **rest: Any
    ) -> Any:
        rows = lora.read_rows(dataset) if isinstance(dataset, Path) else list(dataset)
        calls.append({"rows": len(rows), "settings": settings, "out": out_dir, "gguf": gguf, **rest})
        if gguf is not None:
            gguf.parent.mkdir(parents=True, exist_ok=True)
            gguf.write_bytes(b"GGUF")
        return {
            "first_loss": 1.0,
            "last_loss": 0.5,
            "losses": [1.0],
            "gguf": {"path": str(gguf), "tensors": 0},
        }

    monkeypatch.setattr(lora, "train_adapter", run)
    return calls


def test_every_entry_point_makes_the_same_call_into_the_trainer(
    repo_dir: Path, tmp_path: Path, recorder: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    from pantheon_trainer.cli import main as trainer_main

    night_repo(repo_dir)
    repo = open_repo(repo_dir)
    night = train_night(repo, repo_dir, evaluator=evaluator({None: 2, "new": 3}))
    assert night.outcome is TrainOutcome.REFUSED, night.reason  # trained (by the recorder), evaluated
    train.dataset(repo, "implementer", out=tmp_path / "ds")
    train.lora(repo, "implementer", core_settings())
    assert (
        trainer_main(
            ["lora", "--dataset", str(tmp_path / "ds" / "train.jsonl"), "--out", str(tmp_path / "o")]
        )
        == 0
    )
    capsys.readouterr()
    assert [call["settings"] for call in recorder] == [DEFAULTS, DEFAULTS, DEFAULTS]
    assert [call["rows"] for call in recorder] == [len(LEARN)] * 3
    night_call, core_call, _ = recorder
    # The night and `git pantheon train lora` train on the same dataset commit into the same place.
    assert night_call["out"] == core_call["out"] and core_call["out"].name == "peft"
    assert core_call["gguf"] == core_call["out"].parent / "adapter.gguf"
    # `night --train-steps 3` changes the steps and nothing else.
    train_night(repo, repo_dir, steps=3, evaluator=evaluator({None: 2, "new": 3}))
    assert recorder[-1]["settings"] == replace(DEFAULTS, steps=3)


def test_train_lora_reads_its_rows_through_the_dataset_module(repo_dir: Path) -> None:
    """A dataset ref from another machine with a line that is no JSON is refused in one line naming the
    file and the line, the same as every reader of datasets (not a traceback from a private parser)."""
    repo = open_repo(repo_dir)
    good = json.dumps({"prompt": "def f():\n", "completion": "    return 1\n"})
    blobs = {"train.jsonl": f"{good}\n{{not json\n".encode(), "manifest.json": b"{}"}
    builder = repo.TreeBuilder()
    for name, data in blobs.items():
        builder.insert(name, repo.create_blob(data), pygit2.GIT_FILEMODE_BLOB)
    signature = pygit2.Signature("T", "t@x")
    repo.create_commit(
        "refs/pantheon/datasets/implementer", signature, signature, "dataset", builder.write(), []
    )
    refused = pantheon(repo_dir, "train", "lora", "--agent", "implementer", "--steps", "1")
    assert refused.returncode == 2
    assert refused.stderr.startswith(
        "git pantheon train: refs/pantheon/datasets/implementer:train.jsonl:2: not JSON"
    )
    assert refused.stderr.count("\n") == 1


def test_the_verb_has_no_dataset_parser_of_its_own() -> None:
    """commands/train.py leaves git objects and JSON to training/: no tree, blob or json access."""
    source = (REPO_ROOT / "pantheon_git" / "commands" / "train.py").read_text()
    tree = ast.parse(source)
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not {"tree", "peel", "references", "data", "loads"} & attributes
    assert "json" not in imported
