"""Placing the stub of a function a task asks for (issue 24's "add a function"): where it goes, its
signature from an acceptance check, and `__all__`; the stub path then finds it as any other stub."""

from __future__ import annotations

import ast
from typing import Any

import pytest

from pantheon_git.agents.placement import (
    PlacementError,
    Wanted,
    add_to_all,
    defined_names,
    module_file,
    place_function,
    stubs_for_task,
    wanted_from_checks,
)
from pantheon_git.agents.stubs import find_stub

CALC = '''"""A calculator."""

__all__ = ["add", "div", "sub"]


def add(a, b):
    return a + b


def sub(a, b):
    return a - b


def div_floor(a, b):
    return a // b


def div(a, b):
    return a / b


def neg(a):
    return -a


if __name__ == "__main__":
    print(add(1, 2))
'''


def test_a_new_function_goes_after_its_most_related_one_and_into_all() -> None:
    placed = place_function(CALC, "div_exact", "(a, b)", "Divide a by b; refuse a remainder.")
    ast.parse(placed)
    # After the last of the functions that share a word of its name (div_floor, div), not after neg.
    assert placed.index("def div(") < placed.index("def div_exact") < placed.index("def neg")
    assert (
        "    return a / b\n\n\n"
        "def div_exact(a, b):\n"
        '    """Divide a by b; refuse a remainder."""\n'
        "    raise NotImplementedError\n\n\n"
        "def neg(a):\n"
    ) in placed
    assert '__all__ = ["add", "div", "div_exact", "sub"]' in placed  # sorted in, the list's own quotes
    stub = find_stub(placed)  # the stub path completes it like any stub the task came with
    assert stub is not None and stub.name == "div_exact" and stub.prefix.endswith('remainder."""\n')


def test_an_unrelated_function_goes_after_the_last_one_above_the_main_block() -> None:
    placed = place_function(CALC, "mul", "mul(x, y) -> int", "Multiply.\n\nBoth are ints.")
    assert placed.index("def neg(") < placed.index("def mul") < placed.index('if __name__ == "__main__":')
    assert 'def mul(x, y) -> int:\n    """Multiply.\n\n    Both are ints.\n    """\n    raise' in placed
    assert placed.endswith(
        '    raise NotImplementedError\n\n\nif __name__ == "__main__":\n    print(add(1, 2))\n'
    )
    related = place_function(CALC, "mul", "(a, b)", related=["add"])  # the task names add: after it
    assert related.index("def add") < related.index("def mul") < related.index("def sub")


def test_a_module_with_no_function_and_a_private_name() -> None:
    assert place_function("", "f", "()") == "def f():\n    raise NotImplementedError\n"
    placed = place_function('"""m"""\n\n__all__ = []\n', "_helper", "(x)")
    assert "__all__ = []" in placed and placed.endswith(
        "\n\n\ndef _helper(x):\n    raise NotImplementedError\n"
    )
    assert add_to_all("__all__ = []\n", "f") == '__all__ = ["f"]\n'


def test_all_keeps_its_shape() -> None:
    multi = "__all__ = [\n    'b',\n    'a'\n]\n"
    assert add_to_all(multi, "c") == "__all__ = [\n    'b',\n    'a',\n    'c',\n]\n"  # unsorted: at the end
    ordered = "__all__ = (\n    'a',\n    'c',\n)\n"
    assert add_to_all(ordered, "b") == "__all__ = (\n    'a',\n    'b',\n    'c',\n)\n"
    assert add_to_all("__all__ = ['b', 'c']\n", "a") == "__all__ = ['a', 'b', 'c']\n"
    assert add_to_all("__all__ = ['a']\n", "a") == "__all__ = ['a']\n"
    assert add_to_all("x = 1\n", "a") == "x = 1\n"  # no __all__: nothing to add to


SHAPES = '''class Shape:
  """A shape."""

  def area(self):
    return 0

  def perimeter(self):
    return 0


class Square(Shape):
  def __init__(self, side):
    self.side = side

  def area(self):
    return self.side ** 2
'''


def test_a_new_method_goes_into_its_class_indented_as_the_class_is() -> None:
    placed = place_function(
        SHAPES, "scaled_area", "(self, factor)", "The area scaled by factor.", cls="Square"
    )
    ast.parse(placed)
    assert placed.endswith(
        "  def area(self):\n    return self.side ** 2\n\n"
        "  def scaled_area(self, factor):\n"
        '    """The area scaled by factor."""\n'
        "    raise NotImplementedError\n"
    )
    again = place_function(SHAPES, "area_in_cm", "(self)", cls="Shape")  # after its related method
    assert again.index("def area(self)") < again.index("def area_in_cm") < again.index("def perimeter")
    assert (
        "    return 0\n\n  def area_in_cm(self):\n    raise NotImplementedError\n\n  def perimeter" in again
    )
    assert find_stub(placed) is not None and find_stub(placed).name == "scaled_area"  # type: ignore[union-attr]


def test_what_cannot_be_placed_says_why() -> None:
    with pytest.raises(PlacementError, match="add: already defined"):
        place_function(CALC, "add", "(a, b)")
    with pytest.raises(PlacementError, match="class Circle: not in the module"):
        place_function(SHAPES, "area", "(self)", cls="Circle")
    with pytest.raises(PlacementError, match="not a Python signature"):
        place_function(CALC, "mul", "(a, b")
    with pytest.raises(PlacementError, match="does not parse"):
        place_function("def broken(:\n", "mul", "(a, b)")


def test_the_signature_and_module_come_from_the_acceptance_checks() -> None:
    checks = [
        'python -c "from calc import mul; assert mul(3, 4) == 12; assert mul(x, 0, strict=True) == 0"',
        "python -m pytest -q tests/test_calc.py",  # no Python in it: nothing wanted from it
    ]
    defined = defined_names("calc", CALC)
    assert wanted_from_checks(checks, defined) == [Wanted("calc", "mul", "(x, b, strict=None)")]
    test_file = (
        "from shapes import Square, Shape\n"
        "from calc import add\n\n"
        "def test_scaled():\n"
        "    square = Square(2)\n"
        "    assert square.scaled_area(factor) == 8\n"
        "    assert Square(1).area() == 1\n"
        "    assert add(1, 2) == 3\n"
    )
    known = defined | defined_names("shapes", SHAPES)
    assert wanted_from_checks([test_file], known) == [
        Wanted("shapes", "scaled_area", "(self, factor)", "Square")
    ]
    fewer = 'python -c "from calc import mul; assert mul(2) == 2; assert mul(2, 3) == 6"'
    assert wanted_from_checks([fewer], defined) == [
        Wanted("calc", "mul", "(a, b=None)")
    ]  # left out: a default
    assert module_file("calc", ["README.md", "src/calc.py"]) == "src/calc.py"
    assert module_file("pkg.calc", ["pkg/calc/__init__.py"]) == "pkg/calc/__init__.py"
    assert module_file("nowhere", ["calc.py"]) is None
    # The inferred signature places as it is.
    placed = place_function(CALC, "mul", "(x, b, strict=None)", "Multiply x by b.")
    assert "def mul(x, b, strict=None):\n" in placed and '"mul"' in placed


def test_a_task_gets_its_stubs_placed_from_its_checks_or_its_signature() -> None:
    files = {
        "calc.py": CALC,
        "src/shapes.py": SHAPES,
        "tests/test_calc.py": "from calc import add, mul\n\n\ndef test_mul():\n    assert mul(3, 4) == 12\n",
    }
    task = {
        "title": "Add mul to calc.py",
        "scope": "Multiply a by b.\n\nUsed by the report.",
        "acceptance": ["python -m pytest -q tests/test_calc.py::test_mul"],
    }
    placed = stubs_for_task(task, files)
    assert list(placed) == ["calc.py"]
    assert 'def mul(a, b):\n    """Multiply a by b."""\n    raise NotImplementedError\n' in placed["calc.py"]
    assert '"mul"' in placed["calc.py"]
    signed = stubs_for_task(task | {"signature": "shapes.Square.scaled_area(self, factor) -> int"}, files)
    assert "  def scaled_area(self, factor) -> int:\n" in signed["src/shapes.py"]
    # Nothing missing, nothing placed; a signature outside the repository says so.
    assert stubs_for_task(task, files | placed) == {}
    with pytest.raises(PlacementError, match="module in the repository"):
        stubs_for_task(task | {"signature": "nowhere.f(x)"}, files)


# Every layout of `__all__` a library writes: the new name goes inside the brackets, in their layout
# (toolz's itertoolz.py: names share lines and the last one shares the closing bracket's).
ALL_LAYOUTS = [
    (  # toolz: wrapped, the last name on the bracket's line
        "__all__ = ('remove', 'accumulate', 'groupby',\n           'merge_sorted', 'random_sample')\n",
        "countby",
        "__all__ = ('remove', 'accumulate', 'groupby',\n"
        "           'merge_sorted', 'random_sample', 'countby')\n",
    ),
    (  # the same with a trailing comma
        "__all__ = ('remove', 'accumulate',\n           'merge_sorted', 'random_sample',)\n",
        "countby",
        "__all__ = ('remove', 'accumulate',\n           'merge_sorted', 'random_sample', 'countby',)\n",
    ),
    (  # wrapped and sorted: beside its neighbour, on the neighbour's line
        "__all__ = ['a', 'b',\n           'd', 'e']\n",
        "c",
        "__all__ = ['a', 'b', 'c',\n           'd', 'e']\n",
    ),
    (  # one name a line, the first on the opening bracket's line, the last on the closing one's
        "__all__ = ['a',\n           'b']\n",
        "c",
        "__all__ = ['a',\n           'b',\n           'c']\n",
    ),
    ("__all__ = ['b',\n           'c']\n", "a", "__all__ = ['a',\n           'b',\n           'c']\n"),
    (  # one name a line, the last on the closing bracket's line, without and with a trailing comma
        "__all__ = [\n    'a',\n    'b']\n",
        "c",
        "__all__ = [\n    'a',\n    'b',\n    'c']\n",
    ),
    ("__all__ = (\n    'a',\n    'b',)\n", "c", "__all__ = (\n    'a',\n    'b',\n    'c',)\n"),
    (  # the closing bracket on its own line, without a trailing comma, comments kept
        "__all__ = [\n    'a',  # one\n    'b'  # two\n]\n",
        "c",
        "__all__ = [\n    'a',  # one\n    'b',  # two\n    'c',\n]\n",
    ),
    ("__all__ = (\n    'a',\n)\n", "b", "__all__ = (\n    'a',\n    'b',\n)\n"),
    ("__all__ = [\n    'b',\n    'c',\n]\n", "a", "__all__ = [\n    'a',\n    'b',\n    'c',\n]\n"),
    # On one line: sorted in, at the end, a tuple of one stays a tuple.
    ('__all__ = ["a", "c"]\n', "b", '__all__ = ["a", "b", "c"]\n'),
    ("__all__ = ('z', 'a')\n", "m", "__all__ = ('z', 'a', 'm')\n"),
    ("__all__ = ('a',)\n", "b", "__all__ = ('a', 'b')\n"),
    ("__all__ = ('b',)\n", "a", "__all__ = ('a', 'b')\n"),
    ("__all__ = ['a',]\n", "b", "__all__ = ['a', 'b',]\n"),
    ("__all__ = 'a', 'b'\n", "c", "__all__ = 'a', 'b', 'c'\n"),
    ("__all__ = ()\n", "a", '__all__ = ("a",)\n'),
    ("__all__ = [\n]\n", "a", '__all__ = ["a"]\n'),
    ("__all__: list[str] = ['a', 'c']\n", "b", "__all__: list[str] = ['a', 'b', 'c']\n"),
    (
        "__all__ = [\r\n    'a',\r\n    'b'\r\n]\r\n",
        "c",
        "__all__ = [\r\n    'a',\r\n    'b',\r\n    'c',\r\n]\r\n",
    ),
    ("π = 3  # é\n__all__ = ['é', 'π']\n", "ö", "π = 3  # é\n__all__ = ['é', 'ö', 'π']\n"),
]


def _all_of(source: str) -> Any:
    for node in ast.parse(source).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == "__all__":
            return ast.literal_eval(node.value)  # type: ignore[attr-defined]
    raise AssertionError("no __all__")


@pytest.mark.parametrize(("source", "name", "expected"), ALL_LAYOUTS)
def test_a_name_goes_inside_all_in_every_layout(source: str, name: str, expected: str) -> None:
    placed = add_to_all(source, name)
    assert placed == expected
    exported, before = _all_of(placed), _all_of(source)
    assert name in exported and type(exported) is type(before) and len(exported) == len(before) + 1


def test_a_function_placed_in_toolz_is_exported() -> None:
    itertoolz = (
        "__all__ = ('remove', 'accumulate', 'groupby',\n"
        "           'merge_sorted', 'random_sample')\n\n\n"
        "def remove(predicate, seq):\n    return filter(lambda x: not predicate(x), seq)\n"
    )
    placed = place_function(itertoolz, "countby", "(key, seq)", "Count elements by key.")
    namespace: dict[str, Any] = {}
    exec(compile(placed, "itertoolz.py", "exec"), namespace)
    assert "countby" in namespace["__all__"] and callable(namespace["countby"])


# isodate's Duration with __add__ taken out: `__radd__ = __add__` reads it as the class body runs.
DURATION = '''class Duration:
    """A duration."""

    def __init__(self, days=0):
        self.days = days

    def __neg__(self):
        return Duration(-self.days)

    # the sum is commutative
    __radd__ = __add__

    def __sub__(self, other):
        return Duration(self.days - other.days)

    def __rsub__(self, other):
        return other - self.days
'''


def test_a_method_goes_above_a_statement_that_reads_it() -> None:
    placed = place_function(DURATION, "__add__", "(self, other)", "The sum.", cls="Duration")
    assert (
        "        return Duration(-self.days)\n\n"
        "    def __add__(self, other):\n"
        '        """The sum."""\n'
        "        raise NotImplementedError\n\n"
        "    # the sum is commutative\n"
        "    __radd__ = __add__\n" in placed
    )
    namespace: dict[str, Any] = {}
    exec(compile(placed, "duration.py", "exec"), namespace)  # before: NameError: __add__
    duration = namespace["Duration"]
    assert duration.__radd__ is duration.__add__


def test_a_function_goes_above_a_module_statement_that_reads_it() -> None:
    module = (
        "def add(a, b):\n    return a + b\n\n\n"
        "OPERATORS = {'+': add, '*': mul}\n\n\n"
        "@register(mul)\n"
        "def sub(a, b):\n    return a - b\n\n\n"
        "def twice(a):\n    return mul(a, 2)\n"
    )
    placed = place_function(module, "mul", "(a, b)")
    assert "    return a + b\n\n\ndef mul(a, b):\n    raise NotImplementedError\n\n\nOPERATORS" in placed
    namespace: dict[str, Any] = {"register": lambda function: lambda decorated: decorated}
    exec(compile(placed, "ops.py", "exec"), namespace)
    assert namespace["OPERATORS"]["*"] is namespace["mul"]
    # A decorator reads it; a function's body runs later and does not hold it up.
    decorated = module.replace("OPERATORS = {'+': add, '*': mul}\n\n\n", "")
    above = place_function(decorated, "mul", "(a, b)")
    assert above.index("def add") < above.index("def mul") < above.index("@register(mul)")
    called = decorated.replace("@register(mul)\n", "")
    assert place_function(called, "mul", "(a, b)").endswith(
        "    return mul(a, 2)\n\n\ndef mul(a, b):\n    raise NotImplementedError\n"
    )
