import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_there_are_examples() -> None:
    """The examples folder is not empty, so the parametrized test below runs something."""
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_and_says_how(path: Path) -> None:
    """Every example starts with a 'To run:' docstring and exits 0 when run as documented."""
    assert "To run:" in path.read_text(encoding="utf-8").split('"""')[1]
    result = subprocess.run(  # noqa: S603 - our own example, run with this interpreter
        [sys.executable, str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_quickstart_prints_a_table_of_snapshots() -> None:
    """The quick start stores the daily run and the backfill and prints them."""
    result = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "daily run: 3 of 3 portfolios stored" in result.stdout
    assert "backfill: 6 days stored, 1 already there" in result.stdout
    rows = [line for line in result.stdout.splitlines() if re.match(r"^\w{5} +\d{4}-", line)]
    assert len(rows) == 9


def _python_blocks(markdown: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown.read_text(encoding="utf-8"), re.DOTALL)


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_python_code_in_the_docs_runs(doc: Path) -> None:
    """Every ```python block of the README and docs executes without error."""
    for block in _python_blocks(doc):
        namespace: dict[str, object] = {"__name__": f"doc_{doc.stem}"}
        exec(compile(block, str(doc), "exec"), namespace)  # noqa: S102 - our own docs
