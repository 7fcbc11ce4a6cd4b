"""One concept per module: no module over 400 lines and no function over 60 (the developers' guide).

A module that grows past these has started to hold a second concept; split it rather than raise the limit."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "trainwell"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def long_functions(source: str) -> list[tuple[str, int, int]]:
    """(name, first line, length in lines) of every function or method over the limit."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append((node.name, node.lineno, length))
    return found


def test_no_module_is_over_the_limit():
    over = [
        f"{p.relative_to(SRC)}: {n}" for p in SRC.rglob("*.py") if (n := p.read_text().count("\n")) > MAX_MODULE_LINES
    ]
    assert not over, f"modules over {MAX_MODULE_LINES} lines: {over}"


def test_no_function_is_over_the_limit():
    over = [
        f"{p.relative_to(SRC)}:{line} {name}: {n}"
        for p in SRC.rglob("*.py")
        for name, line, n in long_functions(p.read_text())
    ]
    assert not over, f"functions over {MAX_FUNCTION_LINES} lines: {over}"


def test_a_long_method_is_found():
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(f"class A:\n    def long(self):\n{body}\n") == [("long", 2, MAX_FUNCTION_LINES + 1)]
    assert long_functions("def short():\n    return 1\n") == []
