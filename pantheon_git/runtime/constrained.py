"""Grammar-constrained decoding for llama.cpp with llguidance: an invalid call cannot be generated.

A constraint is a JSON schema (a dict) or a Lark grammar in llguidance's dialect (a str), which holds a
plain-text turn (a call header, then code as plain lines) as strictly as JSON. `Constraint` is one
sequence's matcher and its allowed-token mask, the one implementation both runtimes decode under:
`SchemaProcessor` applies it as a llama-cpp-python logits processor (runtime/llama.py), the batched
engine per sequence (runtime/batched.py).

llama-cpp-python's own JSON-schema grammar masks the whole vocabulary (262,144 tokens for Gemma) on the
CPU at every step and runs about 4x slower than free decoding; llguidance computes the allowed-token
bitmask natively and fast. Building llguidance's tokenizer takes seconds, so it is made once per model.
"""

from __future__ import annotations

import json
import threading
import warnings
import weakref
from typing import Any, Protocol

import numpy as np

from pantheon_git.errors import PantheonError

# Per loaded model, dropped with it (an id could be reused by the next model loaded).
_TOKENIZERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_TOKENIZERS_LOCK = threading.Lock()  # racing callers of one model build its tokenizer once


class LoadedModel(Protocol):
    """What llguidance needs of a loaded model: llama.cpp's model pointer (a Llama, a BatchedEngine)."""

    @property
    def model(self) -> Any: ...


def llg_grammar(constraint: dict[str, Any] | str) -> str:
    """llguidance's grammar for a JSON schema (dict) or a Lark grammar (str)."""
    import llguidance

    if isinstance(constraint, str):
        return llguidance.LLMatcher.grammar_from_lark(constraint)
    return llguidance.LLMatcher.grammar_from_json_schema(
        json.dumps(constraint), defaults={"whitespace_flexible": False}
    )


def llg_tokenizer(loaded: LoadedModel) -> Any:
    """llguidance's view of a loaded model's vocabulary (cached per model)."""
    with _TOKENIZERS_LOCK:
        if loaded not in _TOKENIZERS:
            import llama_cpp
            import llguidance.llamacpp

            vocab = llama_cpp.llama_model_get_vocab(loaded.model)
            with warnings.catch_warnings():  # one deprecation warning per vocabulary entry otherwise
                warnings.simplefilter("ignore", DeprecationWarning)
                _TOKENIZERS[loaded] = llguidance.llamacpp.lltokenizer_from_vocab(vocab)
        return _TOKENIZERS[loaded]


class Constraint:
    """One sequence's llguidance matcher and the allowed-token mask it gives at each step."""

    def __init__(self, loaded: LoadedModel, constraint: dict[str, Any] | str, n_vocab: int) -> None:
        import llguidance

        self.matcher = llguidance.LLMatcher(llg_tokenizer(loaded), llg_grammar(constraint), log_level=0)
        if self.matcher.is_error():
            raise PantheonError(f"constraint: rejected by llguidance: {self.matcher.get_error()}")
        self.n_vocab = n_vocab
        self.mask = np.zeros((n_vocab + 31) // 32, dtype=np.int32)

    def compute(self) -> bool:
        """Compute the mask of the next token; False when the constraint is complete (only stopping is
        left)."""
        if self.matcher.is_stopped() or self.matcher.is_error():
            return False
        self.matcher.unsafe_compute_mask_ptr(self.mask.ctypes.data, self.mask.nbytes)
        return True

    def allows(self, token: int) -> bool:
        """One bit of the computed mask: cheaper than unpacking the whole vocabulary."""
        return bool((int(self.mask[token >> 5]) >> (token & 31)) & 1)

    def apply(self, logits: np.ndarray) -> None:
        """Set the logits of every token the computed mask forbids to -inf (the first n_vocab)."""
        bits = np.unpackbits(self.mask.view(np.uint8), bitorder="little")
        logits[: self.n_vocab][~bits[: self.n_vocab].astype(bool)] = -np.inf

    def consume(self, token: int) -> None:
        self.matcher.consume_token(token)


class SchemaProcessor:
    """A llama-cpp-python logits processor that allows only tokens keeping the output valid for a schema
    (a dict) or a Lark grammar (a str)."""

    def __init__(self, llama: Any, schema: dict[str, Any] | str) -> None:
        self.constraint = Constraint(llama, schema, llama.n_vocab())
        self.consumed: int | None = None  # input_ids beyond this were generated under our mask
        self.eos = llama.token_eos()

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.consumed is None:
            self.consumed = len(input_ids)  # the first call sees the prompt and nothing generated yet
        for token in input_ids[self.consumed :]:
            self.constraint.consume(int(token))
        self.consumed = len(input_ids)
        if self.constraint.compute():
            self.constraint.apply(scores)
        else:  # the constraint is complete (or broken): only end-of-generation is left
            eos = scores[self.eos]
            scores[: self.constraint.n_vocab] = -np.inf
            scores[self.eos] = eos
        return scores
