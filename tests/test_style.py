import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BAD_CALL = re.compile(r"\bfloat\(|date\.today\(\)|datetime\.now\(\)|datetime\.utcnow\(\)")


def _test_functions() -> list[tuple[Path, ast.FunctionDef | ast.AsyncFunctionDef]]:
    return [
        (path, node)
        for path in sorted((ROOT / "tests").rglob("test_*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.name.startswith("test_")
    ]


def test_every_test_has_a_docstring() -> None:
    """Each test function says in a docstring which behaviour it checks."""
    missing = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
        for path, node in _test_functions()
        if not ast.get_docstring(node)
    ]
    assert _test_functions()
    assert missing == []


def test_no_float_or_local_clock_in_the_package() -> None:
    """The package source never calls float() or reads the local, naive clock."""
    offenders = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if BAD_CALL.search(code) and "float-ok" not in line:
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert offenders == []
