"""Many completions decoded together on one in-process llama.cpp context (continuous batching).

A small model decoding one sequence is memory-bound where compute is plentiful (a GPU): every token
streams all the weights once, and several sequences in one `llama_batch` share that stream. On a small
CPU the embedded model's output layer (262,144 vocabulary rows, most of its weights) is compute-bound and
every sequence needs its logits, so there the gain is smaller (measured in bench/bench_engine.py; a whole
night with --jobs in bench/bench_throughput.py). Either way one scheduler keeps the model busy for all
callers and evaluates shared prompts once. This engine holds `n_seq_max` sequence slots in one unified KV
cache. Callers (the threads of a night with `--jobs N`, or `complete_many`) hand requests to one
scheduler thread, the only thread that touches llama.cpp; at every step it admits waiting requests into
free slots, then decodes one token for every active sequence in a single `llama_decode`.

Prompt prefixes are evaluated once: a new request starts from the longest common token prefix it shares
with a slot's cached tokens (its own slot's previous prompt: an agent loop's turn N extends turn N-1;
or a running sequence: the role, tools and examples every task of an agent shares) or with another
request admitted in the same round (eight samples of one prompt evaluate it once). The prefix is copied
between sequences with `llama_memory_seq_cp`, which in a unified cache only tags the cells: no data moves.

Each sequence is sampled with its own seed and temperature (greedy at 0, as `LlamaRuntime`) and held to
its own constraint (a `Constraint` of runtime/constrained.py: a JSON schema or a Lark grammar), masking
that sequence's logits only. The agents' Runtime over this engine is runtime/batched_runtime.py.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from pantheon_git.errors import PantheonError
from pantheon_git.runtime.base import Completion, ContextOverflow, ModelIdentity
from pantheon_git.runtime.bundled import file_sha256, model_file
from pantheon_git.runtime.constrained import Constraint
from pantheon_git.runtime.in_process import common_prefix
from pantheon_git.schema.models import ModelConfig


class Finish(StrEnum):
    """Why a sequence ended (the `finish_reason` of its Completion)."""

    STOP = "stop"  # end-of-generation token, or the constraint is complete
    LENGTH = "length"  # max_tokens reached


@dataclass(slots=True)
class Request:
    """One completion to decode: a prompt, an optional constraint, a budget and how to sample."""

    prompt: str
    schema: dict[str, Any] | None = None
    grammar: str | None = None  # a Lark grammar for llguidance (exclusive with schema)
    max_tokens: int = 256
    seed: int = 0
    temperature: float = 0.0  # 0 = greedy, exactly as LlamaRuntime
    # Above 0, llama-cpp-python's defaults for create_completion (0 turns a filter off).
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05


@dataclass(slots=True)
class EngineStats:
    """Counters since the engine was made: how much work batching and prefix sharing saved."""

    requests: int = 0
    prompt_tokens: int = 0  # prompt tokens of all requests
    prompt_tokens_evaluated: int = 0  # of which actually run through the model
    generated_tokens: int = 0
    decode_calls: int = 0  # llama_decode calls (prompt chunks and steps)
    steps: int = 0  # generation steps (one token for every active sequence)
    sequences_per_step: int = 0  # summed over steps: the mean batch is this / steps

    @property
    def cache_share(self) -> float:
        """Share of prompt tokens served from the KV cache instead of evaluated."""
        if not self.prompt_tokens:
            return 0.0
        return 1.0 - self.prompt_tokens_evaluated / self.prompt_tokens

    @property
    def mean_batch(self) -> float:
        return self.sequences_per_step / self.steps if self.steps else 0.0


@dataclass(slots=True)
class _Job:
    """A request on its way through the engine (scheduler thread only, after submission)."""

    request: Request
    tokens: list[int]  # the prompt's tokens
    constraint: Constraint | None
    future: Future[Completion]
    submitted: float
    rng: np.random.Generator
    generated: list[int] = field(default_factory=list)
    evaluated: int = 0  # prompt tokens run through the model for this request
    slot: int = -1
    logits: np.ndarray | None = None  # of the last evaluated position
    finish: Finish | None = None


@dataclass(slots=True)
class _Slot:
    """One KV-cache sequence id: the tokens its cells hold, and the job using it (None when idle)."""

    seq: int
    cached: list[int] = field(default_factory=list)
    job: _Job | None = None
    last_used: float = 0.0


_BACKEND = threading.Lock()
_BACKEND_READY = False


class BatchedEngine:
    """One GGUF model, `n_seq_max` sequences decoded together (BatchedRuntime serves it to the agents)."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 8192,
        n_threads: int = 2,
        n_seq_max: int = 8,
        n_batch: int = 512,
        n_gpu_layers: int = 0,
        seed: int = 0,
        name: str = "default",
        sha256: str | None = None,
        adapter: str | Path | None = None,
        split_cache: bool = False,
    ) -> None:
        import llama_cpp
        from llama_cpp._logger import set_verbose  # llama.cpp's own log lines off, as Llama(verbose=False)
        from llama_cpp._utils import suppress_stdout_stderr

        global _BACKEND_READY
        path = Path(model_path)
        if not path.is_file():
            raise PantheonError(f"models.{name}.path: {path} does not exist")
        if not 1 <= n_seq_max <= llama_cpp.llama_max_parallel_sequences():
            raise PantheonError(
                f"n_seq_max: {n_seq_max} is outside 1..{llama_cpp.llama_max_parallel_sequences()}"
            )
        set_verbose(False)
        with _BACKEND:
            if not _BACKEND_READY:
                llama_cpp.llama_backend_init()
                _BACKEND_READY = True
        self._llama = llama_cpp
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = n_gpu_layers
        with suppress_stdout_stderr(disable=False):  # llama.cpp prints its load log past the logger
            self.model = llama_cpp.llama_model_load_from_file(str(path).encode("utf-8"), model_params)
        if not self.model:
            raise PantheonError(f"models.{name}.path: {path} is not a model llama.cpp can load")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = n_seq_max
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        # Unified: one cache shared by all sequences, a copied prefix is the same cells tagged with more
        # ids, but every token attends over every cell any sequence holds (masked), so attention grows with
        # all the cached prompts together. Split: a stream of n_ctx / n_seq_max cells per sequence; a token
        # attends over its own stream only, and a copied prefix is copied data.
        params.kv_unified = not split_cache
        # Sliding-window layers keep every cell, so a prefix stays reusable however long the prompt.
        params.swa_full = True
        params.no_perf = True
        with suppress_stdout_stderr(disable=False):
            self.ctx = llama_cpp.llama_init_from_model(self.model, params)
        if not self.ctx:
            llama_cpp.llama_model_free(self.model)
            raise PantheonError(f"n_ctx: llama.cpp could not make a context of {n_ctx} tokens")
        adapter_label = ""
        if adapter is not None:
            adapter_label = self._load_adapter(Path(adapter), name)
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.n_ctx = n_ctx
        self.split_cache = split_cache
        self.slot_ctx = n_ctx // n_seq_max if split_cache else n_ctx  # what one sequence can hold
        self.n_batch = n_batch
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        self.batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.identity = ModelIdentity(
            name=name,
            engine="llama.cpp",
            sha256=sha256 if sha256 is not None else file_sha256(path),
            adapter=adapter_label,
            seed=seed,
            extra={"n_gpu_layers": n_gpu_layers, "n_ctx": n_ctx, "batched": n_seq_max},
        )
        self.seed = seed
        self.stats = EngineStats()
        self._slots = [_Slot(seq) for seq in range(n_seq_max)]
        self._waiting: deque[_Job] = deque()
        self._lock = threading.Condition()
        self._closed = False
        self._clear_requests: list[threading.Event] = []
        self._thread = threading.Thread(target=self._run, name="pantheon-batched-engine", daemon=True)
        self._thread.start()

    def _load_adapter(self, path: Path, name: str) -> str:
        """Serve a LoRA adapter on every sequence of this context (one adapter per engine, as one per
        LlamaRuntime); its label for the Pantheon-Model trailer. Refused clearly, never dropped."""
        llama_cpp = self._llama
        problem = "does not exist" if not path.is_file() else ""
        lora = None
        if not problem:
            from llama_cpp._utils import suppress_stdout_stderr

            with suppress_stdout_stderr(disable=False):
                lora = llama_cpp.llama_adapter_lora_init(self.model, str(path).encode("utf-8"))
            if not lora:
                problem = "is not a LoRA adapter llama.cpp can load for this model"
        if not problem:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(lora)
            scales = (ctypes.c_float * 1)(1.0)
            if llama_cpp.llama_set_adapters_lora(self.ctx, adapters, 1, scales) != 0:
                problem = "llama.cpp could not apply it to the context"
        if problem:
            llama_cpp.llama_free(self.ctx)
            llama_cpp.llama_model_free(self.model)
            raise PantheonError(f"models.{name}.adapter: {path} {problem}")
        self._adapter = lora  # freed with the model
        return f"{path.name}@{file_sha256(path)[:12]}"

    @classmethod
    def from_config(
        cls, name: str, config: ModelConfig, n_seq_max: int = 8, n_ctx: int | None = None
    ) -> BatchedEngine:
        """The engine for a models.toml entry (the embedded model or a GGUF path, its adapter if any).
        The cache is shared by all sequences: by default each gets the entry's n_ctx, as LlamaRuntime."""
        path, sha = model_file(name, config)
        return cls(
            path,
            n_ctx=n_ctx if n_ctx is not None else config.n_ctx * n_seq_max,
            n_threads=config.n_threads or max(1, os.cpu_count() or 2),
            n_seq_max=n_seq_max,
            n_gpu_layers=config.n_gpu_layers,
            seed=config.seed,
            name=name,
            sha256=sha,
            adapter=config.adapter,
            split_cache=config.kv_cache == "split",
        )

    # The caller's side: any thread.

    def complete(
        self,
        prompt: str,
        *,
        schema: dict[str, Any] | str | None,
        max_tokens: int,
        seed: int | None = None,
        temperature: float = 0.0,
    ) -> Completion:
        """One completion, decoded together with whatever else is running (as Runtime.complete, with no
        window of its own but the slot's).
        Greedy by default, as LlamaRuntime; `seed` picks the sample when `temperature` > 0."""
        # The loop gives a Lark grammar as a string (the code call format), a JSON schema as a dict.
        request = Request(
            prompt,
            schema=None if isinstance(schema, str) else schema,
            grammar=schema if isinstance(schema, str) else None,
            max_tokens=max_tokens,
            seed=self.seed if seed is None else seed,
            temperature=temperature,
        )
        return self.submit([request])[0].result()

    def complete_many(self, requests: list[Request]) -> list[Completion]:
        """Completions of all requests, admitted together so shared prompt prefixes are evaluated once."""
        return [future.result() for future in self.submit(requests)]

    def submit(self, requests: list[Request]) -> list[Future[Completion]]:
        """Queue requests (all checked first: a bad one queues none) and return their futures."""
        jobs = [self._job(request) for request in requests]
        with self._lock:
            if self._closed:
                raise PantheonError("engine: closed")
            self._waiting.extend(jobs)
            self._lock.notify()
        return [job.future for job in jobs]

    def clear_cache(self) -> None:
        """Forget the prompts idle slots hold (waits until nothing runs): the next requests start cold."""
        done = threading.Event()
        with self._lock:
            self._clear_requests.append(done)
            self._lock.notify()
        done.wait()

    def tokenize(self, text: str) -> list[int]:
        """The prompt tokens exactly as llama-cpp-python's completion makes them (BOS, special tokens)."""
        raw = text.encode("utf-8")
        size = len(raw) + 16
        buffer = (self._llama.llama_token * size)()
        count = self._llama.llama_tokenize(self.vocab, raw, len(raw), buffer, size, self.add_bos, True)
        if count < 0:
            size = -count
            buffer = (self._llama.llama_token * size)()
            count = self._llama.llama_tokenize(self.vocab, raw, len(raw), buffer, size, self.add_bos, True)
        return list(buffer[:count])

    def detokenize(self, tokens: list[int]) -> str:
        buffer = ctypes.create_string_buffer(256)
        pieces = []
        for token in tokens:
            count = self._llama.llama_token_to_piece(self.vocab, token, buffer, 256, 0, False)
            pieces.append(buffer.raw[:count] if count > 0 else b"")
        return b"".join(pieces).decode("utf-8", errors="ignore")

    def close(self) -> None:
        """Stop the scheduler (running requests fail) and free the context and model."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._lock.notify()
        self._thread.join()
        self._llama.llama_batch_free(self.batch)
        self._llama.llama_free(self.ctx)
        self._llama.llama_model_free(self.model)

    def __enter__(self) -> BatchedEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _job(self, request: Request) -> _Job:
        if request.max_tokens < 1:
            raise PantheonError(f"max_tokens: {request.max_tokens} is not a positive number")
        if request.temperature < 0:
            raise PantheonError(f"temperature: {request.temperature} is negative")
        if not (0 < request.top_p <= 1 and 0 <= request.min_p < 1 and request.top_k >= 0):
            raise PantheonError(
                f"sampling: top_p {request.top_p} must be in (0, 1], min_p {request.min_p} in [0, 1), "
                f"top_k {request.top_k} at least 0"
            )
        tokens = self.tokenize(request.prompt)
        if not tokens:
            raise PantheonError("prompt: empty (no tokens to start from)")
        if len(tokens) + request.max_tokens > self.slot_ctx:
            raise ContextOverflow(len(tokens), self.slot_ctx, request.max_tokens)
        if request.schema is not None and request.grammar is not None:
            raise PantheonError("request: give a schema or a grammar, not both")
        held = request.schema if request.schema is not None else request.grammar
        constraint = Constraint(self, held, self.n_vocab) if held is not None else None
        return _Job(
            request=request,
            tokens=tokens,
            constraint=constraint,
            future=Future(),
            submitted=time.perf_counter(),
            rng=np.random.default_rng(request.seed),
        )

    # The scheduler's side: one thread, the only one calling llama.cpp.

    def _run(self) -> None:
        while True:
            with self._lock:
                while not (self._closed or self._waiting or self._active() or self._clear_requests):
                    self._lock.wait()
                if self._closed:
                    break
                if self._clear_requests and not self._active():
                    for slot in self._slots:
                        slot.cached = []
                    self._llama.llama_memory_clear(self.memory, True)
                    for done in self._clear_requests:
                        done.set()
                    self._clear_requests.clear()
                free = [slot for slot in self._slots if slot.job is None]
                admitted = self._admissible(len(free))
            try:
                if admitted:
                    self._admit(admitted, free)
                if self._active():
                    self._step()
            except Exception as error:  # every caller must hear of it, not hang
                self._fail_all(admitted, error)
        self._fail_all([], PantheonError("engine: closed while the request was running"))
        with self._lock:
            for job in self._waiting:
                job.future.set_exception(PantheonError("engine: closed before the request ran"))
            self._waiting.clear()
            for done in self._clear_requests:
                done.set()

    def _admissible(self, free: int) -> list[_Job]:
        """Waiting jobs, first come first served, as many as there are free slots and as fit in the cache
        at their full budget beside the running ones (one job alone always fits: checked at submission)."""
        running = [slot.job for slot in self._slots if slot.job is not None]
        reserved = sum(len(job.tokens) + job.request.max_tokens for job in running)
        admitted: list[_Job] = []
        while self._waiting and len(admitted) < free:
            job = self._waiting[0]
            need = len(job.tokens) + job.request.max_tokens
            if reserved and reserved + need > self.n_ctx and not self.split_cache:
                break  # (split: each sequence has its own stream, which fits it: checked at submission)
            reserved += need
            admitted.append(self._waiting.popleft())
        return admitted

    def _active(self) -> list[_Slot]:
        return [slot for slot in self._slots if slot.job is not None]

    def _fail_all(self, admitted: list[_Job], error: BaseException) -> None:
        """A llama.cpp failure: fail every job in flight and start again from an empty cache."""
        jobs = [slot.job for slot in self._slots if slot.job is not None]
        jobs += [job for job in admitted if job not in jobs]
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(error)
        for slot in self._slots:
            slot.job, slot.cached = None, []
        self._llama.llama_memory_clear(self.memory, True)

    def _admit(self, jobs: list[_Job], free: list[_Slot]) -> None:
        """Give each job a free slot, reuse every prefix already in the cache, evaluate the rest."""
        running = [slot for slot in self._slots if slot.job is not None]
        self._make_room(jobs, free)
        leaders: list[_Job] = []
        followers: list[tuple[_Job, _Job, int]] = []  # (job, leader, tokens copied from the leader)
        for job in jobs:
            # Its own slot: the idle slot whose cache shares most with this prompt (a loop's last turn).
            slot = max(free, key=lambda s: (common_prefix(s.cached, job.tokens), s.last_used))
            free.remove(slot)
            job.slot = slot.seq
            slot.job = job
            # Always evaluate at least the last prompt token: its logits pick the first new token.
            limit = len(job.tokens) - 1
            own = min(common_prefix(slot.cached, job.tokens), limit)
            source, best = slot, own
            for other in running:
                shared = min(common_prefix(other.cached, job.tokens), limit)
                if shared > best:
                    source, best = other, shared
            leader = max(leaders, key=lambda lead: common_prefix(lead.tokens, job.tokens), default=None)
            from_leader = min(common_prefix(leader.tokens, job.tokens), limit) if leader else 0
            self._llama.llama_memory_seq_rm(self.memory, slot.seq, own if source is slot else 0, -1)
            if source is not slot:
                self._copy_prefix(source.seq, slot.seq, best)
            if leader is not None and from_leader > best:
                followers.append((job, leader, from_leader))
                # Copied after the leader's prompt is in the cache; until then keep what we have.
                slot.cached = job.tokens[:best]
            else:
                leaders.append(job)
                slot.cached = job.tokens[:best]
        self._evaluate(leaders)
        for job, leader, shared in followers:
            slot = self._slots[job.slot]
            self._llama.llama_memory_seq_rm(self.memory, slot.seq, 0, -1)
            self._copy_prefix(leader.slot, slot.seq, shared)
            slot.cached = job.tokens[:shared]
        self._evaluate([job for job, _, _ in followers])
        for job in jobs:
            self.stats.requests += 1
            self.stats.prompt_tokens += len(job.tokens)

    def _copy_prefix(self, source: int, target: int, length: int) -> None:
        """The first `length` cached tokens of sequence `source` become `target`'s (its cache emptied).
        Across split streams llama.cpp copies only a whole sequence: copy it all, then cut the tail."""
        if not self.split_cache:
            self._llama.llama_memory_seq_cp(self.memory, source, target, 0, length)
            return
        self._llama.llama_memory_seq_cp(self.memory, source, target, -1, -1)
        self._llama.llama_memory_seq_rm(self.memory, target, length, -1)

    def _make_room(self, jobs: list[_Job], free: list[_Slot]) -> None:
        """Drop idle slots' caches (least recently used first) until every running and new sequence
        can grow to its full budget. Counted without sharing: an upper bound, so decoding never fails.

        The slot each new job will take (as `_admit` picks it) is counted at the job's budget, which its
        cached prefix is part of: dropping that cache would free nothing and cost the prompt again.
        With a split cache each sequence has its own stream: dropping another's frees nothing for it."""
        if self.split_cache:
            return
        taken: set[int] = set()
        candidates = list(free)
        for job in jobs:
            slot = max(candidates, key=lambda s: (common_prefix(s.cached, job.tokens), s.last_used))
            candidates.remove(slot)
            taken.add(slot.seq)

        def budget() -> int:
            total = sum(len(job.tokens) + job.request.max_tokens for job in jobs)
            for slot in self._slots:
                if slot.job is not None:
                    total += len(slot.job.tokens) + slot.job.request.max_tokens
                elif slot.seq not in taken:
                    total += len(slot.cached)
            return total

        for slot in sorted(candidates, key=lambda s: s.last_used):
            if budget() <= self.n_ctx:
                return
            self._llama.llama_memory_seq_rm(self.memory, slot.seq, 0, -1)
            slot.cached = []

    def _evaluate(self, jobs: list[_Job]) -> None:
        """Run the uncached prompt tokens of all jobs through the model, in batches of n_batch tokens;
        keep the logits of each prompt's last token, which is decoded after the rest, one row per job.

        As in runtime/llama.py: llama.cpp's many-row and one-row kernels round differently, so a last
        token decoded inside a cold prompt's batch gives other logits than the same token decoded alone
        after a cached prefix. The same prompt's greedy answer then depended on whether it was cached
        (measured: HumanEval/42 cold "if l == []", wrong; cached "if len(l) == 0", raw completion's, right).
        A prompt sharing only part of its prefix with the cache still rounds as its batches' shapes do."""
        prefixes: list[tuple[int, int, int, _Job | None]] = []  # (token, position, seq, job wanting logits)
        lasts: list[tuple[int, int, int, _Job | None]] = []
        for job in jobs:
            slot = self._slots[job.slot]
            start = len(slot.cached)
            for position in range(start, len(job.tokens) - 1):
                prefixes.append((job.tokens[position], position, slot.seq, None))
            lasts.append((job.tokens[-1], len(job.tokens) - 1, slot.seq, job))
            job.evaluated = len(job.tokens) - start
            self.stats.prompt_tokens_evaluated += job.evaluated
            slot.cached = list(job.tokens)
        for entries in (prefixes, lasts):
            for begin in range(0, len(entries), self.n_batch):
                self._decode(entries[begin : begin + self.n_batch])

    def _decode(self, entries: list[tuple[int, int, int, _Job | None]]) -> None:
        batch = self.batch
        for index, (token, position, seq, wants) in enumerate(entries):
            batch.token[index] = token
            batch.pos[index] = position
            batch.n_seq_id[index] = 1
            batch.seq_id[index][0] = seq
            batch.logits[index] = wants is not None
        batch.n_tokens = len(entries)
        code = self._llama.llama_decode(self.ctx, batch)
        if code == 1:  # no room: the cache is restored as it was; free idle caches and try once more
            for slot in self._slots:
                if slot.job is None and slot.cached:
                    self._llama.llama_memory_seq_rm(self.memory, slot.seq, 0, -1)
                    slot.cached = []
            code = self._llama.llama_decode(self.ctx, batch)
        if code != 0:
            raise PantheonError(f"llama_decode failed with code {code} (n_ctx {self.n_ctx} too small?)")
        self.stats.decode_calls += 1
        for index, (_, _, _, wants) in enumerate(entries):
            if wants is not None:
                pointer = self._llama.llama_get_logits_ith(self.ctx, index)
                wants.logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).copy()

    def _step(self) -> None:
        """Sample one token for every active sequence, finish those that are done, decode the rest."""
        entries: list[tuple[int, int, int, _Job | None]] = []
        active = self._active()
        self.stats.steps += 1
        self.stats.sequences_per_step += len(active)
        for slot in active:
            job = slot.job
            assert job is not None and job.logits is not None
            token = self._sample(job)
            if token is None or self._llama.llama_vocab_is_eog(self.vocab, token):
                self._finish(slot, Finish.STOP)
                continue
            job.generated.append(token)
            self.stats.generated_tokens += 1
            if job.constraint is not None:
                job.constraint.consume(token)
            if len(job.generated) >= job.request.max_tokens:
                self._finish(slot, Finish.LENGTH)
                continue
            entries.append((token, len(slot.cached), slot.seq, job))
            slot.cached.append(token)
        if entries:
            self._decode(entries)

    def _sample(self, job: _Job) -> int | None:
        """The next token of one sequence: its mask, then greedy or its own seeded sample."""
        logits = job.logits
        assert logits is not None
        constraint = job.constraint
        if constraint is not None and not constraint.compute():
            return None  # the constraint is complete: stop, as the schema processor's forced EOS
        temperature = job.request.temperature
        if temperature <= 0:
            best = int(np.argmax(logits))
            if constraint is None or constraint.allows(best):
                return best  # the model's own choice is allowed: masking would not change the argmax
            constraint.apply(logits)
            return int(np.argmax(logits))
        if constraint is not None:
            constraint.apply(logits)
        # llama-cpp-python's sampler chain, computed only over the few tokens that can survive it:
        # min_p keeps tokens whose probability is at least min_p of the best's (a logit threshold), then
        # top_k, then top_p on the untempered probabilities, then the temperature and the seeded draw.
        request = job.request
        top = float(logits.max())
        floor = top + math.log(request.min_p) if request.min_p > 0 else top - 20.0 * max(1.0, temperature)
        candidates = np.flatnonzero(logits >= floor)
        values = logits[candidates].astype(np.float64)
        order = np.argsort(-values, kind="stable")
        if request.top_k > 0:
            order = order[: request.top_k]
        candidates, values = candidates[order], values[order]
        if request.top_p < 1.0:
            probabilities = np.exp(values - top)
            cumulative = np.cumsum(probabilities) / probabilities.sum()
            keep = int(np.searchsorted(cumulative, request.top_p)) + 1
            candidates, values = candidates[:keep], values[:keep]
        weights = np.exp((values - top) / temperature)
        cumulative = np.cumsum(weights)
        pick = int(np.searchsorted(cumulative, job.rng.random() * cumulative[-1], side="right"))
        return int(candidates[min(pick, len(candidates) - 1)])

    def _finish(self, slot: _Slot, reason: Finish) -> None:
        job = slot.job
        assert job is not None
        slot.job = None
        slot.last_used = time.perf_counter()
        job.finish = reason
        job.logits = None
        job.future.set_result(
            Completion(
                text=self.detokenize(job.generated),
                tokens_in=len(job.tokens),
                tokens_out=len(job.generated),
                tokens_evaluated=job.evaluated,
                seconds=time.perf_counter() - job.submitted,
                finish_reason=reason.value,
            )
        )
