"""Serve one of the repository's models over the OpenAI-compatible completions API.

For a team whose runners share one model machine without llama-server or vLLM on it, and for the tests
and benches of model hosts (`[night] model_hosts`): the runners' `openai-compatible` runtime
(runtime/openai_compat.py) talks to it as to those servers. Prompts are decoded by the same in-process
runtime a night uses, with the grammar a request carries (`json_schema`, or a Lark `guided_grammar` as
vLLM reads it), so a served night writes what an in-process night writes. Requests are taken one at a
time (the in-process runtime holds one context), or with `--parallel N` decoded together in N sequence
slots of the batched engine (runtime/batched.py), as llama-server and vLLM batch concurrent requests.

    python -m pantheon_git.runtime.serve --host 10.0.0.5 --port 8000 [--model default] [--parallel 4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pantheon_git.errors import PantheonError
from pantheon_git.runtime.base import ContextOverflow, Runtime


def completion_reply(runtime: Runtime, served_name: str, body: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI-style reply to one /v1/completions request body (llama-server's `timings.prompt_n`
    carries the prompt tokens evaluated, the rest served from the cache)."""
    schema = body.get("json_schema") or body.get("guided_json") or body.get("guided_grammar")
    completion = runtime.complete(
        str(body["prompt"]),
        schema=schema,
        max_tokens=int(body.get("max_tokens", 256)),
        seed=int(body["seed"]) if "seed" in body else None,
        temperature=float(body.get("temperature", 0.0)),
    )
    return {
        "object": "text_completion",
        "model": served_name,
        "choices": [{"index": 0, "text": completion.text, "finish_reason": completion.finish_reason}],
        "usage": {
            "prompt_tokens": completion.tokens_in,
            "completion_tokens": completion.tokens_out,
            "total_tokens": completion.tokens_in + completion.tokens_out,
        },
        "timings": {"prompt_n": completion.tokens_evaluated},
    }


def make_server(
    host: str, port: int, runtime: Runtime, served_name: str, *, concurrent: bool = False
) -> ThreadingHTTPServer:
    """A server (not yet serving) that answers POST /v1/completions from `runtime`: one at a time, or
    all at once where the runtime is thread-safe (`concurrent`: the batched engine)."""
    one_at_a_time: threading.Lock | contextlib.nullcontext[None] = (
        contextlib.nullcontext() if concurrent else threading.Lock()
    )

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.rstrip("/") not in ("/v1/completions", "/completions"):
                self._reply(404, {"error": {"type": "not_found", "message": self.path}})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with one_at_a_time:
                    reply = completion_reply(runtime, served_name, body)
            except ContextOverflow as full:  # as llama-server refuses it: the client reads it back typed
                refusal: dict[str, Any] = {"type": "exceed_context_size_error", "message": str(full)}
                refusal |= {"n_prompt_tokens": full.prompt_tokens, "n_ctx": full.window}
                self._reply(400, {"error": refusal})
                return
            except (ValueError, KeyError, TypeError) as bad:
                self._reply(400, {"error": {"type": "invalid_request_error", "message": str(bad)}})
                return
            self._reply(200, reply)

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            print(f"{self.address_string()} {format % args}", file=sys.stderr, flush=True)

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default="default", help="a model of .pantheon/models.toml")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the repository whose models.toml")
    parser.add_argument("--served-name", help="the model id replies carry (default: --model)")
    parser.add_argument(
        "--parallel", type=int, default=1, help="requests decoded together (the batched engine's slots)"
    )
    args = parser.parse_args(argv)
    from pantheon_git.runtime.llama import runtime_for
    from pantheon_git.schema.models import load_models

    try:
        models = load_models(args.repo.resolve())
        if args.model not in models:
            raise PantheonError(f"--model: {args.model}: not in .pantheon/models.toml ({', '.join(models)})")
        config = models[args.model]
        if not config.in_process:
            raise PantheonError(f"--model: {args.model}: serves only an in-process (llama.cpp) model")
        if args.parallel > 1:
            config = config.model_copy(update={"engine": "batched", "parallel": args.parallel})
        runtime = runtime_for(args.model, config)
        runtime.complete("Hello", schema=None, max_tokens=1)  # loaded and warm before the port opens
    except PantheonError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    served_name = args.served_name or args.model
    server = make_server(args.host, args.port, runtime, served_name, concurrent=args.parallel > 1)
    print(f"serving {args.model} on http://{args.host}:{server.server_port}/v1", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
