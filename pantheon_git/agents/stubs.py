"""Function stubs: a function whose body is only a docstring, `pass`, `...` or `raise NotImplementedError`.

A small base model completes code well when the prompt ends where the code goes (raw completion: the
file up to the signature and docstring, then the body), and poorly inside an agent transcript, where it
copies what it was shown (measured: the 270M model rewrote `raise NotImplementedError` again and again).
So when a file the task names holds a stub, the implementer's first move on it is a code completion at
the stub (see `agents/loop.py`): the model writes only the body, and the loop makes the edit call of it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Stub:
    name: str
    whole: str  # the stub's lines as they are in the file (the edit's SEARCH)
    head: str  # its decorators, signature and docstring (where the REPLACE block starts)
    prefix: str  # the file up to the end of `head`: the prompt the body is completed from


def _is_placeholder(node: ast.stmt) -> bool:
    if isinstance(node, ast.Pass):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return node.value.value is Ellipsis or isinstance(node.value.value, str)
    if isinstance(node, ast.Raise) and node.exc is not None:
        target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        return isinstance(target, ast.Name) and target.id == "NotImplementedError"
    return False


def find_stub(text: str) -> Stub | None:
    """The first function of `text` whose body does nothing yet, or None (also for unparsable text)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    lines = text.splitlines(keepends=True)
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if not all(_is_placeholder(statement) for statement in node.body):
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        docstring = ast.get_docstring(node, clean=False) is not None
        head_end = node.body[0].end_lineno if docstring else node.body[0].lineno - 1
        end = node.end_lineno or head_end
        if head_end is None or (head_end >= end and not docstring):
            continue
        whole = "".join(lines[first - 1 : end])
        head = "".join(lines[first - 1 : head_end])
        if whole.strip() and head.strip():
            return Stub(node.name, whole, head, "".join(lines[:head_end]))
    return None
