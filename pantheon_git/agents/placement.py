"""Placing a stub for a function a task asks for and the repository lacks ("add mul to calc.py").

The small model completes a stub's body well and writes a whole new function in an agent transcript
badly (issue 24: a first "add mul to calc.py" night changed no line). So the night can place the stub
itself and let the stub path (agents/stubs.py) complete it: the signature, a docstring from the task's
scope, `raise NotImplementedError`, in the right module, after the function most related to it by name
(or the module's last function, above an `if __name__ == "__main__":` block), with the blank lines PEP 8
asks for, and its name added to `__all__` when the module has one (sorted in if the list is sorted).
A method goes into its class, after its most related method, indented as the class is. Either goes
above the first statement of its module or class that reads its name as it runs (`__radd__ = __add__`,
a decorator, a call), so that the name exists by then.

The signature comes from the task when it gives one, or from its acceptance checks: `from mod import
name` says the module, and a call `name(3, b=4)` or `Class(...).name(3)` gives the parameters.

Everything here is a pure function of texts: the caller reads and writes the files.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pantheon_git.schema.spec import split_signature

PLACEHOLDER = "raise NotImplementedError"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class PlacementError(ValueError):
    """The stub cannot be placed (the module does not parse, the class is missing, the name exists)."""


@dataclass(frozen=True, slots=True)
class Wanted:
    """A function a task asks for: where it goes and how it is called."""

    module: str  # the dotted module of `from module import name` ("pkg.calc")
    name: str
    signature: str  # "(a, b)" or "(self, a, b=None)": what follows the name in its def line
    cls: str | None = None  # the class of a method


def _tokens(name: str) -> set[str]:
    return {part for part in name.lower().strip("_").split("_") if part}


def _relatedness(candidate: str, name: str, related: Sequence[str]) -> int:
    score = 2 * len(_tokens(candidate) & _tokens(name))
    return score + (3 if candidate in related else 0)


def normalize_signature(signature: str, name: str) -> str:
    """What follows the name in a def line: accepts `(a, b)`, `name(a, b) -> int` or `def name(a, b):`."""
    text = signature.strip().removeprefix("async ").removeprefix("def ").strip().removesuffix(":").strip()
    if text.startswith(name):
        text = text[len(name) :].strip()
    if not text.startswith("("):
        raise PlacementError(f"signature {signature!r}: expected `({name}'s parameters)`")
    try:
        ast.parse(f"def {name}{text}:\n    pass\n")
    except SyntaxError as error:
        raise PlacementError(f"signature {signature!r}: not a Python signature ({error.msg})") from None
    return text


def _docstring(docstring: str, indent: str) -> str:
    text = docstring.strip().replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if not text:
        return ""
    lines = text.splitlines()
    if len(lines) == 1:
        return f'{indent}"""{lines[0]}"""\n'
    body = "".join(f"{indent}{line}\n" if line.strip() else "\n" for line in lines[1:])
    return f'{indent}"""{lines[0]}\n{body}{indent}"""\n'


def stub_text(name: str, signature: str, docstring: str, indent: str = "", step: str = "    ") -> str:
    """The stub itself at `indent`: `def name(signature):`, its docstring, then the placeholder."""
    inner = indent + step
    head = f"{indent}def {name}{normalize_signature(signature, name)}:\n"
    return f"{head}{_docstring(docstring, inner)}{inner}{PLACEHOLDER}\n"


def _end_line(node: ast.stmt) -> int:
    return node.end_lineno or node.lineno


def _start_line(node: ast.stmt) -> int:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
    return node.lineno


def _is_main_guard(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "__name__" in ast.unparse(node.test)


def _insert(lines: list[str], at: int, block: str, blank: int) -> list[str]:
    """`lines` with `block` inserted before index `at`, `blank` blank lines on each side of it."""
    before, after = lines[:at], lines[at:]
    while before and not before[-1].strip():
        before.pop()
    while after and not after[0].strip():
        after.pop(0)
    if before and not before[-1].endswith("\n"):
        before[-1] += "\n"
    middle = (["\n"] * blank if before else []) + block.splitlines(keepends=True)
    return before + middle + (["\n"] * blank if after else []) + after


def place_function(
    source: str,
    name: str,
    signature: str,
    docstring: str = "",
    *,
    cls: str | None = None,
    related: Sequence[str] = (),
) -> str:
    """`source` with a stub of `name` placed in it (a method of `cls` when given); see the module's
    docstring for where. `related` names functions the task mentions (placed after the last of them)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise PlacementError(f"the module does not parse (line {error.lineno}: {error.msg})") from None
    lines = source.splitlines(keepends=True)
    if cls is None:
        body, indent, owner_line, blank = tree.body, "", "", 2
    else:
        owner = next((n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls), None)
        if owner is None:
            raise PlacementError(f"class {cls}: not in the module")
        body, blank = owner.body, 1
        indent, owner_line = _indent(lines[owner.body[0].lineno - 1]), _indent(lines[owner.lineno - 1])
    functions = [node for node in body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    if any(function.name == name for function in functions):
        raise PlacementError(f"{name}: already defined {'in ' + cls if cls else 'in the module'}")
    block = stub_text(name, signature, docstring, indent, _step(indent, lines, owner_line, functions))
    if functions:  # after the most related function, else after the last one
        best = max(functions, key=lambda f: (_relatedness(f.name, name, related), f.lineno))
        at = _end_line(best if _relatedness(best.name, name, related) else functions[-1])
    elif cls is not None:
        at = _end_line(body[-1])
    else:  # no function yet: at the end, above an `if __name__ == "__main__":` block
        guard = next((node for node in body if _is_main_guard(node)), None)
        at = _start_line(guard) - 1 if guard is not None else len(lines)
    user = next((node for node in body if _uses(node, name)), None)
    if user is not None and _start_line(user) <= at:  # `__radd__ = __add__` needs __add__ above it
        at = _start_line(user) - 1
        while at > 0 and lines[at - 1].strip().startswith("#"):  # the statement's comments stay with it
            at -= 1
    placed = "".join(_insert(lines, at, block, blank))
    return placed if cls is not None or name.startswith("_") else add_to_all(placed, name)


def _uses(node: ast.AST, name: str) -> bool:
    """Whether running `node` (a statement of a module or class body) reads `name`: an assignment
    (`__radd__ = __add__`), a call, a decorator, a default; not a function's body, which runs later."""
    if isinstance(node, ast.Name):
        return node.id == name and not isinstance(node.ctx, ast.Store)
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        parts: list[ast.AST] = [*node.decorator_list, node.args]
        return any(_uses(part, name) for part in parts + ([node.returns] if node.returns else []))
    if isinstance(node, ast.Lambda):
        return _uses(node.args, name)
    return any(_uses(child, name) for child in ast.iter_child_nodes(node))


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _step(
    indent: str, lines: list[str], owner: str, functions: list[ast.FunctionDef | ast.AsyncFunctionDef]
) -> str:
    """One level of indentation: a class's body past the class line, else a function's body past it."""
    if indent:
        return indent[len(owner) :] or "    "
    for function in functions:
        inner = _indent(lines[function.body[0].lineno - 1])
        if inner:
            return inner
    return "    "


_NEWLINE = re.compile(r"\r\n|\r|\n")


def _all_value(tree: ast.Module) -> ast.List | ast.Tuple | None:
    """The list or tuple the module's first top-level `__all__ = ...` (or `__all__: ... = ...`) binds."""
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(target, ast.Name) and target.id == "__all__" for target in targets):
            return value if isinstance(value, ast.List | ast.Tuple) else None
    return None


class _Text:
    """A source text and where ast's positions (line, column in UTF-8 bytes) fall in it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.starts = [0, *(match.end() for match in _NEWLINE.finditer(source))]
        newline = _NEWLINE.search(source)
        self.newline = newline.group() if newline else "\n"

    def start(self, node: ast.expr) -> int:
        return self._at(node.lineno, node.col_offset)

    def end(self, node: ast.expr) -> int:
        return self._at(node.end_lineno or node.lineno, node.end_col_offset or 0)

    def _at(self, line: int, column: int) -> int:
        start = self.starts[line - 1]
        return start + len(self.source[start:].encode()[:column].decode())

    def before(self, index: int) -> str:
        """What precedes `index` on its line."""
        return self.source[max(start for start in self.starts if start <= index) : index]

    def line_rest(self, index: int) -> tuple[str, int]:
        """What follows `index` on its line, and where the next line starts (len(source) if none)."""
        match = _NEWLINE.search(self.source, index)
        end, next_line = (match.start(), match.end()) if match else (len(self.source), len(self.source))
        return self.source[index:end], next_line

    def skip(self, index: int) -> int:
        """The first index from `index` that is neither whitespace nor in a comment."""
        while index < len(self.source) and (self.source[index].isspace() or self.source[index] == "#"):
            index += len(self.line_rest(index)[0]) if self.source[index] == "#" else 1
        return index


def add_to_all(source: str, name: str) -> str:
    """`source` with `name` in its top-level `__all__` list or tuple of strings (unchanged when it has
    none, or has the name already): sorted in if the names are sorted, else at the end; always inside
    its brackets, in the layout they have: beside its neighbour where names share a line
    (`__all__ = ('a', 'b',` / `'c', 'd')`), on a line of its own where each name has one."""
    target = _all_value(ast.parse(source))
    if target is None:
        return source
    items = target.elts
    if not all(isinstance(item, ast.Constant) and isinstance(item.value, str) for item in items):
        return source
    names = [item.value for item in items]  # type: ignore[attr-defined]
    if name in names:
        return source
    text = _Text(source)
    if not items:  # `__all__ = []` or `()`: the brackets hold nothing yet (a comment at most)
        opening, closing = text.start(target), text.end(target) - 1
        inside = source[opening + 1 : closing]
        entry = f'"{name}"' + ("," if isinstance(target, ast.Tuple) else "")
        return source[: opening + 1] + entry + (inside if inside.strip() else "") + source[closing:]
    first, last = text.start(items[0]), text.end(items[-1])
    entry = f"{source[first]}{name}{source[first]}" if source[first] in "'\"" else f'"{name}"'
    index = sum(existing < name for existing in names) if names == sorted(names) else len(names)
    one_line = target.lineno == target.end_lineno
    if isinstance(target, ast.Tuple) and len(items) == 1 and one_line:  # `('a',)`: two need no comma
        pair = [entry, source[first:last]] if index == 0 else [source[first:last], entry]
        return source[:first] + ", ".join(pair) + source[text.skip(last) + 1 :]
    edits: list[tuple[int, str]] = []  # (where, what to insert there)
    after = text.end(items[index - 1]) if index else first  # the end of the name it follows
    comma = text.skip(after)
    has_comma = index > 0 and source[comma : comma + 1] == ","
    rows = [row for item in items for row in range(item.lineno, (item.end_lineno or item.lineno) + 1)]
    bracketed = source[text.start(target)] in "[(" and source[text.end(target) - 1] in "])"
    if not bracketed or one_line or len(rows) != len(set(rows)):  # names share lines: beside its neighbour
        if not index:
            edits.append((first, f"{entry}, "))
        else:
            edits.append((comma + 1, f" {entry},") if has_comma else (after, f", {entry}"))
    else:  # each name on a line of its own: the new one too, indented as they are
        starting = [text.start(item) for item in items if not text.before(text.start(item)).strip()]
        indent = text.before(starting[0]) if starting else " " * len(text.before(first))
        if not index and starting[:1] == [first]:  # a line before the first name's
            edits.append((first - len(indent), f"{indent}{entry},{text.newline}"))
        elif not index:  # the first name follows the opening bracket: the new one takes its place
            edits.append((first, f"{entry},{text.newline}{indent}"))
        else:
            end = comma + 1 if has_comma else after
            rest, next_line = text.line_rest(end)
            if not rest.strip() or rest.strip().startswith("#"):  # a line after the neighbour's
                edits += [] if has_comma else [(after, ",")]
                edits.append((next_line, f"{indent}{entry},{text.newline}"))
            else:  # the closing bracket follows the neighbour on its line: it follows the name now
                comma_then, then_comma = ("", ",") if has_comma else (",", "")
                edits.append((end, f"{comma_then}{text.newline}{indent}{entry}{then_comma}"))
    for at, insert in sorted(edits, reverse=True):
        source = source[:at] + insert + source[at:]
    return source


def module_file(module: str, paths: Iterable[str]) -> str | None:
    """The repository file of a dotted module: `pkg/mod.py`, `pkg/mod/__init__.py`, or either under
    `src/` (None if there is none)."""
    base = module.replace(".", "/")
    existing = set(paths)
    for candidate in (f"{base}.py", f"{base}/__init__.py", f"src/{base}.py", f"src/{base}/__init__.py"):
        if candidate in existing:
            return candidate
    return None


def _parameters(calls: list[ast.Call], method: bool) -> str:
    """A signature that takes every one of `calls`: positional names from the arguments' own names
    where they are plain variables (else a, b, c...), keywords after them; a parameter some call leaves
    out gets `=None`."""
    most = max((len(call.args) for call in calls), default=0)
    fewest = min((len(call.args) for call in calls), default=0)
    names: list[str] = []
    for position in range(most):
        own = {
            arg.id
            for call in calls
            if position < len(call.args) and isinstance(arg := call.args[position], ast.Name)
        }
        choice = sorted(own)[0] if len(own) == 1 else "abcdefghijklmnopqrstuvwxyz"[position % 26]
        names.append(choice if choice not in names and choice != "self" else f"arg{position}")
    keywords: list[str] = []
    for call in calls:
        keywords += [k.arg for k in call.keywords if k.arg and k.arg not in keywords and k.arg not in names]
    parts = ["self"] if method else []
    parts += [n if position < fewest else f"{n}=None" for position, n in enumerate(names)]
    for keyword in keywords:
        every = all(any(k.arg == keyword for k in call.keywords) for call in calls)
        parts.append(keyword if every and not any("=" in p for p in parts) else f"{keyword}=None")
    return "(" + ", ".join(parts) + ")"


def _instances(tree: ast.AST, cls: str) -> set[str]:
    """Names bound to `cls(...)` in `tree` (`calc = Calculator()`)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            if isinstance(func, ast.Name) and func.id == cls:
                found |= {target.id for target in node.targets if isinstance(target, ast.Name)}
    return found


def _sources(check: str) -> list[ast.AST]:
    """The Python in an acceptance check: a test file's text, or the code of `python -c "..."`."""
    try:
        return [ast.parse(check)]
    except SyntaxError:
        pass
    found: list[ast.AST] = []
    for match in re.finditer(r"-c\s+(\"(?:[^\"\\]|\\.)*\"|'[^']*')", check):
        code = match.group(1)[1:-1].replace('\\"', '"')
        try:
            found.append(ast.parse(code.replace("; ", "\n").replace(";", "\n")))
        except SyntaxError:
            continue
    return found


def wanted_from_checks(checks: Iterable[str], defined: Iterable[str] = ()) -> list[Wanted]:
    """The functions (and methods) acceptance checks import or call that `defined` (dotted names
    `module.name` / `module.Class.name` the repository has) does not: each with its module and a
    signature inferred from its calls."""
    known = set(defined)
    wanted: dict[tuple[str, str | None, str], list[ast.Call]] = {}
    for check in checks:
        for tree in _sources(check):
            imported: dict[str, str] = {}  # local name -> module
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    for alias in node.names:
                        imported[alias.asname or alias.name] = node.module
            for local, module in imported.items():
                calls = [
                    n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                ]
                mine = [call for call in calls if isinstance(call.func, ast.Name) and call.func.id == local]
                if f"{module}.{local}" not in known and not local[:1].isupper():
                    wanted.setdefault((module, None, local), []).extend(mine)
                if local[:1].isupper():  # a class: its methods called on it or on an instance of it
                    owners = _instances(tree, local)
                    for node in ast.walk(tree):
                        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                            continue
                        on = node.func.value
                        is_instance = isinstance(on, ast.Name) and on.id in owners
                        made_here = (
                            isinstance(on, ast.Call) and isinstance(on.func, ast.Name) and on.func.id == local
                        )
                        method = node.func.attr
                        if (is_instance or made_here) and f"{module}.{local}.{method}" not in known:
                            wanted.setdefault((module, local, method), []).append(node)
    return [
        Wanted(module, name, _parameters(calls, method=cls is not None), cls)
        for (module, cls, name), calls in wanted.items()
    ]


def defined_names(module: str, source: str) -> set[str]:
    """The dotted names a module's source defines at its top level and in its top-level classes."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(f"{module}.{node.name}")
        if isinstance(node, ast.ClassDef):
            names |= {f"{module}.{node.name}.{item.name}" for item in node.body if hasattr(item, "name")}
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.Import | ast.ImportFrom):
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            names |= {f"{module}.{t.id}" for t in targets if isinstance(t, ast.Name)}
            if isinstance(node, ast.Import | ast.ImportFrom):
                names |= {f"{module}.{(a.asname or a.name).split('.')[0]}" for a in node.names}
    return names


def _docstring_of(task: Mapping[str, Any]) -> str:
    """A stub's docstring from its task: the scope's first paragraph, else the title, in lines of at
    most 72 characters (a linter's line length holds it, indented as a method's is)."""
    scope = str(task.get("scope") or "").strip()
    text = scope.split("\n\n")[0].strip() if scope else str(task.get("title", "")).strip()
    return textwrap.fill(" ".join(text.split()), width=72, break_long_words=False, break_on_hyphens=False)


def _dotted(path: str) -> str:
    """The dotted module of a repository file: `src/pkg/calc.py` -> `pkg.calc`."""
    return path.removeprefix("src/").removesuffix("/__init__.py").removesuffix(".py").replace("/", ".")


def _mentioned_modules(task: Mapping[str, Any], files: Mapping[str, str]) -> list[str]:
    """The repository's Python files a task names, in order: its `files`, then the paths and dotted
    modules its title, scope and acceptance checks mention (`calc.py`, `pkg.calc`, `from calc import`)."""
    found: dict[str, None] = {}
    for path in task.get("files", []):
        if str(path) in files:
            found.setdefault(str(path), None)
    texts = [str(task.get("title", "")), str(task.get("scope", "")), *map(str, task.get("acceptance", []))]
    for word in re.findall(r"[A-Za-z_][\w./-]*", " ".join(texts)):
        word = word.rstrip(".")
        path = word if word in files else module_file(word.removesuffix(".py"), files)
        if path is not None:
            found.setdefault(path, None)
    return list(found)


def _defines_class(source: str, cls: str) -> bool:
    """Whether `source` defines class `cls` at its top level (an import of it is no definition)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return any(isinstance(node, ast.ClassDef) and node.name == cls for node in tree.body)


def _from_signature(
    signature: str, files: Mapping[str, str], task: Mapping[str, Any], from_checks: Sequence[Wanted]
) -> Wanted:
    """A `signature` field as a Wanted: `calc.mul(a, b) -> int` and `shapes.Square.area(self)` name
    their module; `def mul(a, b)` goes where the acceptance checks import it from, else into the first
    module the task names; `Square.area(self)` into the module that defines Square."""
    try:
        parts, rest = split_signature(signature)
    except ValueError as error:
        raise PlacementError(f"signature {signature!r}: {error}") from None
    name, params = parts[-1], normalize_signature(rest, parts[-1])
    for cut in range(len(parts) - 1, 0, -1):  # a module named: `calc.mul`, `shapes.Square.area`
        module, inside = ".".join(parts[:cut]), parts[cut:]
        if module_file(module, files) is not None and len(inside) <= 2:
            return Wanted(module, name, params, inside[0] if len(inside) == 2 else None)
    if len(parts) > 2 or (len(parts) == 2 and not parts[0][:1].isupper()):
        raise PlacementError(
            f"signature {signature!r}: expected module.name(...) of a module in the repository"
        )
    cls = parts[0] if len(parts) == 2 else None
    mentioned = _mentioned_modules(task, files)
    if cls is not None:  # the module that defines the class, those the task names first
        ordered = mentioned + sorted(path for path in files if path not in mentioned)
        defines = [path for path in ordered if _defines_class(files[path], cls)]
        owner = defines[0] if defines else None
        if owner is None:
            raise PlacementError(f"signature {signature!r}: no class {cls} in the repository")
        return Wanted(_dotted(owner), name, params, cls)
    imported = [want.module for want in from_checks if want.name == name and want.cls is None]
    candidates = [path for path in (module_file(m, files) for m in imported) if path] + mentioned
    if not candidates:
        raise PlacementError(
            f"signature {signature!r}: no module to put {name} in: name its file (files) or write "
            f"module.{name}(...)"
        )
    return Wanted(_dotted(candidates[0]), name, params)


def stubs_for_task(task: Mapping[str, Any], files: Mapping[str, str]) -> dict[str, str]:
    """path -> new text: the stubs a task needs placed, for each function it asks for (its `signature`,
    or what its acceptance checks import and call, test files they name included) that the module
    lacks. `files` holds the repository's Python files (path -> text). Empty when nothing is missing."""
    checks = [str(check) for check in task.get("acceptance", [])]
    named = {word for check in checks for word in re.split(r"[\s:]+", check) if word in files}
    sources = checks + [files[path] for path in sorted(named)]
    modules = {
        path: path.removeprefix("src/").removesuffix("/__init__.py").removesuffix(".py") for path in files
    }
    defined = set()
    for path, text in files.items():
        defined |= defined_names(modules[path].replace("/", "."), text)
    wanted = wanted_from_checks(sources, defined)
    if task.get("signature"):
        wanted = [_from_signature(str(task["signature"]), files, task, wanted)]
    placed: dict[str, str] = {}
    for want in wanted:
        module = module_file(want.module, files)
        if module is None:
            continue  # a module the repository lacks: nothing to place the function in
        qualified = f"{want.module}.{want.cls + '.' if want.cls else ''}{want.name}"
        if qualified in defined:
            continue
        text = placed.get(module, files[module])
        placed[module] = place_function(text, want.name, want.signature, _docstring_of(task), cls=want.cls)
    return placed


def placed_functions(outputs: Mapping[str, Any]) -> list[dict[str, str]]:
    """{"path", "function"} of each stub a `place` step put in (night/place.py), from the step outputs
    recorded so far (step id -> output), each once: the files the agents are then shown, the functions
    a repair round completes again."""
    found: list[dict[str, str]] = []
    for output in outputs.values():
        placed = output.get("placed") if isinstance(output, Mapping) else None
        for item in placed if isinstance(placed, list) else []:
            if isinstance(item, Mapping) and isinstance(item.get("path"), str) and item.get("function"):
                entry = {"path": str(item["path"]), "function": str(item["function"])}
                if entry not in found:
                    found.append(entry)
    return found


def placed_files(outputs: Mapping[str, Any]) -> list[str]:
    """The files a `place` step put stubs in, each once, in order."""
    return list(dict.fromkeys(item["path"] for item in placed_functions(outputs)))
