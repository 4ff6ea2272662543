import ast
import re
import signal
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


def _run_example(name: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own example, run with this interpreter
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=tmp_path,
    )


def test_the_fastapi_example_guards_triggers_and_reads(tmp_path: Path) -> None:
    """The example app refuses anonymous and reader triggers, runs an admin's, serves reads."""
    out = _run_example("fastapi_app.py", tmp_path).stdout
    assert "anonymous trigger: 401" in out
    assert "reader trigger: 403" in out
    assert re.search(r"admin trigger: 202 daily:\d{4}-\d{2}-\d{2}", out)
    assert "daily run: succeeded 2 portfolios stored" in out
    assert re.search(r"reader sees: 200 total \d+\.\d{2} on ", out)
    assert "unknown portfolio: 404" in out


def _code_lines(source: str, start_marker: str, end_marker: str) -> list[str]:
    """Lines of code from `start_marker` to `end_marker`: no blanks, comments or docstrings."""
    tree = ast.parse(source)
    docstrings = {
        line
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and ast.get_docstring(node)
        for line in range(node.body[0].lineno, (node.body[0].end_lineno or 0) + 1)
    }
    lines = source.splitlines()
    first = next(i for i, line in enumerate(lines, 1) if line.startswith(start_marker))
    last = next(i for i, line in enumerate(lines, 1) if line.startswith(end_marker))
    return [
        line
        for number, line in enumerate(lines, 1)
        if first < number < last
        and line.strip()
        and not line.strip().startswith("#")
        and number not in docstrings
    ]


def test_the_fastapi_example_host_glue_stays_under_60_lines() -> None:
    """The glue a host writes (one line per import, no adapters or demo) is under 60 lines."""
    source = (ROOT / "examples" / "fastapi_app.py").read_text(encoding="utf-8")
    glue = _code_lines(source, "# --- host glue", "# --- without a server")
    imports = [n for n in ast.parse(source).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert len(glue) > 20  # the markers enclose the glue itself
    assert len(glue) + len(imports) < 60


def test_the_standalone_scheduler_example_catches_up_then_finds_the_days_done(
    tmp_path: Path,
) -> None:
    """First start runs the missed days and the missed fire; a restart finds them succeeded."""
    first = _run_example("apscheduler_standalone.py", tmp_path).stdout
    assert len(re.findall(r"daily:\S+: completed, 2 stored, 0 failed", first)) == 7
    assert re.search(r"next run: \d{4}-\d{2}-\d{2} 00:00:00\+00:00", first)
    again = _run_example("apscheduler_standalone.py", tmp_path).stdout
    assert "completed" not in again
    assert "already_succeeded" in again


def test_the_standalone_scheduler_example_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """With --forever it keeps scheduling until SIGTERM, then shuts down and exits 0."""
    process = subprocess.Popen(  # noqa: S603 - our own example, run with this interpreter
        [sys.executable, str(ROOT / "examples" / "apscheduler_standalone.py"), "--forever"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # ends at the "next run" line, or at exit if it failed
            if line.startswith("next run:"):
                break
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("page", ["scheduling.md", "http-api.md", "observability.md"])
def test_each_integration_page_shows_the_full_wiring_in_under_30_lines(page: str) -> None:
    """The first python block of each integration's page is its whole wiring, under 30 lines."""
    wiring = _python_blocks(ROOT / "docs" / page)[0]
    assert "integrations." in wiring
    assert len(wiring.splitlines()) < 30
