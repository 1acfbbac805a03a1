"""`git pantheon plan "what you want"`: a model drafts a spec for you to check, edit and queue (day mode).

This is the one place a non-local runtime may be used (a day-time, interactive draft): the night never
runs it. The draft is held to the spec's own fields during decoding, validated, and printed as TOML;
nothing is queued unless you say so (`--queue`, confirmed at the prompt or with `--yes`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DRAFT_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 120},
        "scope": {"type": "string", "maxLength": 600},
        "acceptance": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 200},
            "minItems": 1,
            "maxItems": 4,
        },
    },
    "required": ["title", "scope", "acceptance"],
    "additionalProperties": False,
}

PROMPT = """### Role
You turn a request into a task spec for a small change to a git repository: a one-line title, a short
scope (what to change and where), and acceptance checks: shell commands that exit 0 once it is done.
### Example
Request: add a file hello.txt that says hello
Spec: {"title":"Create hello.txt containing hello","scope":"One new file, hello.txt, in the root.",\
"acceptance":["grep -q hello hello.txt"]}
### Now
Request: """


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("request", help="what you want done, in a sentence")
    parser.add_argument("--model", default="default", help="a model of .pantheon/models.toml (may be remote)")
    parser.add_argument("--out", help="write the draft here instead of printing it")
    parser.add_argument("--queue", action="store_true", help="queue the draft after showing it")
    parser.add_argument("--yes", action="store_true", help="with --queue: do not ask")


def run(args: argparse.Namespace) -> int:
    from pantheon_git.errors import PantheonError, shown
    from pantheon_git.runtime.llama import runtime_for
    from pantheon_git.schema.models import load_models
    from pantheon_git.schema.spec import validate_spec
    from pantheon_git.store.git import open_repo, work_tree

    repo = open_repo()
    root = work_tree(repo)
    models = load_models(root)
    if args.model not in models:
        raise PantheonError(
            f"--model {args.model}: not in .pantheon/models.toml (known: {', '.join(models)})"
        )
    runtime = runtime_for(args.model, models[args.model])
    where = "local" if runtime.is_local else "NOT local (allowed for a day-time draft only)"
    print(f"drafting with {runtime.identity.label()} ({where})", file=sys.stderr)
    request = " ".join(args.request.split())
    completion = runtime.complete(PROMPT + request + "\nSpec: ", schema=DRAFT_SCHEMA, max_tokens=256)
    try:
        draft = json.loads(completion.text)
    except json.JSONDecodeError:
        raise PantheonError("the model's draft was cut short; try again with a shorter request") from None
    spec = validate_spec(draft, "draft")
    text = spec.to_toml()
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}; edit it, then `git pantheon queue {args.out}`")
    else:
        # The model's draft, line by line: its line breaks kept, any other control character escaped.
        print("\n".join(shown(line) for line in text.split("\n")), end="")
    if not args.queue:
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise PantheonError("--queue without a terminal to confirm at: add --yes")
        if input("queue this spec? [y/N] ").strip().lower() not in ("y", "yes"):
            print("not queued")
            return 0
    from pantheon_git.commands.queue import queue_specs

    for queued in queue_specs([(spec, "draft")]):
        print(f"queued {queued.id}  {shown(queued.title)}")
    return 0
