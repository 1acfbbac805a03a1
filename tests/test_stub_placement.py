"""Placing the stub of a function a task asks for (issue 24's "add a function"): where it goes, its
signature from an acceptance check, and `__all__`; the stub path then finds it as any other stub."""

from __future__ import annotations

import ast

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
