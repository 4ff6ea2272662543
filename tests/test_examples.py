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
def test_example_runs_and_says_how(path: Path, tmp_path: Path) -> None:
    """Every example starts with a 'To run:' docstring and exits 0 when run as documented."""
    assert "To run:" in path.read_text(encoding="utf-8").split('"""')[1]
    result = subprocess.run(  # noqa: S603 - our own example, run with this interpreter
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,  # whatever an example writes lands here
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_quickstart_stores_into_sqlite_and_a_rerun_does_nothing(tmp_path: Path) -> None:
    """The quick start fills an SQLite file; run again, its run keys have already succeeded."""
    command = [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--db", "q.sqlite3"]
    first = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, timeout=120, check=True, cwd=tmp_path
    )
    assert ": completed, 3 of 3 portfolios stored" in first.stdout
    assert "backfill: completed, 6 days stored, 1 already there" in first.stdout
    rows = [line for line in first.stdout.splitlines() if re.match(r"^\w{5} +\d{4}-", line)]
    assert len(rows) == 9
    assert (tmp_path / "q.sqlite3").exists()
    again = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, timeout=120, check=True, cwd=tmp_path
    )
    assert ": already_succeeded, 3 of 3 portfolios stored" in again.stdout
    assert [line for line in again.stdout.splitlines() if re.match(r"^\w{5} +\d{4}-", line)] == rows


def _python_blocks(markdown: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown.read_text(encoding="utf-8"), re.DOTALL)


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_python_code_in_the_docs_runs(doc: Path) -> None:
    """Every ```python block of the README and docs executes without error."""
    for block in _python_blocks(doc):
        namespace: dict[str, object] = {"__name__": f"doc_{doc.stem}"}
        exec(compile(block, str(doc), "exec"), namespace)  # noqa: S102 - our own docs
