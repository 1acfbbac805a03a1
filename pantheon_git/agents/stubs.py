"""Function stubs: a function whose body is only a docstring, `pass`, `...` or `raise NotImplementedError`.

A small base model completes code well when the prompt ends where the code goes (raw completion: the
file up to the signature and docstring, then the body), and poorly inside an agent transcript, where it
copies what it was shown (measured: the 270M model rewrote `raise NotImplementedError` again and again).
So when a file the task names holds a stub, the implementer's first move on it is a code completion at
the stub (see `agents/loop.py`): the model writes only the body, and the loop makes the edit call of it.
The prompt is exactly the file up to the stub's head, as raw completion's would be, so the interface
cannot cost the model a completion it gets right on its own; only a file too long for the context is
cut, from the top.

A repair round after failing checks is a code completion too (`repair_prompt`): the same file and head,
with the failing check's output and the body that failed as comments just above the function, all
within the model's context (never the agent header again).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# A function body is completed within raw completion's budget (HumanEval's protocol, bench_agent.py): the
# same greedy body as raw, and a body that rambles (seen: indented comments to 512 tokens, 10 s a round)
# ends sooner; a longer body is cut to its last whole line, as raw's is.
BODY_MAX_TOKENS = 300


@dataclass(frozen=True, slots=True)
class Stub:
    name: str
    whole: str  # the stub's lines as they are in the file (the edit's SEARCH)
    head: str  # its decorators, signature and docstring (where the REPLACE block starts)
    prefix: str  # the file up to the end of `head`: the prompt the body is completed from

    @property
    def before(self) -> str:
        """The file above the function (its decorators included in `head`)."""
        return self.prefix[: len(self.prefix) - len(self.head)]


def _is_placeholder(node: ast.stmt) -> bool:
    if isinstance(node, ast.Pass):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return node.value.value is Ellipsis or isinstance(node.value.value, str)
    if isinstance(node, ast.Raise) and node.exc is not None:
        target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        return isinstance(target, ast.Name) and target.id == "NotImplementedError"
    return False


def _is_head(node: ast.stmt) -> bool:
    """Statements that belong to a stub's head: its docstring, and imports written before it (HumanEval
    has `import math` above a docstring)."""
    value = node.value if isinstance(node, ast.Expr) else None
    is_string = isinstance(value, ast.Constant) and isinstance(value.value, str)
    return isinstance(node, ast.Import | ast.ImportFrom) or is_string


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> Stub | None:
    """The function as a Stub record: its head (decorators, signature, leading imports and docstring)
    and its whole text; None when it has no head to complete from."""
    leading = 0
    while leading < len(node.body) and _is_head(node.body[leading]):
        leading += 1
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    head_end = node.body[leading - 1].end_lineno if leading else node.body[0].lineno - 1
    end = node.end_lineno or head_end
    if head_end is None or end is None or head_end < node.lineno:
        return None
    whole = "".join(lines[first - 1 : end])
    head = "".join(lines[first - 1 : head_end])
    if not (whole.strip() and head.strip()):
        return None
    return Stub(node.name, whole, head, "".join(lines[:head_end]))


def _functions(text: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef] | None:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    return [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]


def find_stub(text: str) -> Stub | None:
    """The first function of `text` whose body does nothing yet, or None (also for unparsable text)."""
    found = find_stubs(text)
    return found[0] if found else None


def find_stubs(text: str) -> list[Stub]:
    """Every function of `text` whose body does nothing yet, in the order `ast.walk` meets them."""
    found = []
    lines = text.splitlines(keepends=True)
    for node in _functions(text) or []:
        leading = 0
        while leading < len(node.body) and _is_head(node.body[leading]):
            leading += 1
        head, rest = node.body[:leading], node.body[leading:]
        if not all(_is_placeholder(statement) for statement in rest):
            continue
        docstring = any(isinstance(statement, ast.Expr) for statement in head)
        if not rest and not docstring:
            continue  # only imports: that is a body
        stub = _function(node, lines)
        if stub is not None:
            found.append(stub)
    return found


def find_function(text: str, name: str) -> Stub | None:
    """The first function called `name` in `text`, as a Stub record (its `whole` is its current text)."""
    lines = text.splitlines(keepends=True)
    for node in _functions(text) or []:
        if node.name == name:
            return _function(node, lines)
    return None


def kept_body(completion: str) -> str:
    """The body a code completion at a stub leaves in the file: its last line is dropped when it is the
    STOP line (the next top-level statement) or was cut off at max_tokens. The same text is what a
    trace keeps as the completion's target, so training learns exactly what the edit applied."""
    lines = completion.splitlines(keepends=True)
    if lines and (not lines[-1].endswith("\n") or lines[-1][:1] not in " \t\n"):
        lines.pop()
    return "".join(lines).rstrip() + "\n"


def _commented(text: str) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in text.splitlines())


def _tail_lines(text: str, keep: int) -> str:
    lines = text.splitlines(keepends=True)
    return "".join(lines[-keep:]) if keep > 0 else ""


def fit_prompt(
    before: str,
    note: str,
    head: str,
    count: Callable[[str], int],
    limit: int,
    *,
    failure: str = "",
    code: str = "",
) -> str | None:
    """`before + note (+ code + failure as comments) + head` within `limit` tokens, or None when even the
    head alone does not fit. What gives way first: the failure output (its tail is kept), then the code
    above the function (cut from the top: the nearest code stays), then the code that failed, the rest of
    the output, and the note itself."""
    failure_lines = len(failure.splitlines())
    keep_before = len(before.splitlines())
    keep_code = True

    def build() -> str:
        comments = ""
        if note:
            comments = f"# {note}\n"
            if keep_code and code.strip():
                comments += "# It was:\n" + _commented(code)
            shown = _tail_lines(failure, failure_lines)
            if shown.strip():
                comments += "# Its check said:\n" + _commented(shown)
        return _tail_lines(before, keep_before) + comments + head

    while True:
        prompt = build()
        if count(prompt) <= limit:
            return prompt
        if failure_lines > 8:
            failure_lines //= 2
        elif keep_before > 0:
            keep_before //= 2
        elif keep_code and code.strip():
            keep_code = False
        elif failure_lines > 0:
            failure_lines = 0
        elif note:
            note = ""  # the head alone: a plain completion again
        else:
            return None


def repair_prompt(
    function: Stub,
    failures: Sequence[str],
    count: Callable[[str], int],
    limit: int,
) -> str | None:
    """The prompt of a repair round at `function` (its current, failing version): the file above it, a
    note with its current body and the tail of what its checks printed, then its head, within `limit`
    tokens; the model completes a new body exactly as at a stub."""
    body = function.whole[len(function.head) :]
    note = f"The code of `{function.name}` below failed its check; write it again so that it passes."
    failure = "\n".join(text.strip() for text in failures if text.strip())
    return fit_prompt(function.before, note, function.head, count, limit, failure=failure, code=body)
