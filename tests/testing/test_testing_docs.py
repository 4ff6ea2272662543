import re
import subprocess
import sys
from pathlib import Path

import pytest

from portfolio_snapshots.testing import RunLockContract, SnapshotRepositoryContract

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"

# A derandomized Hypothesis profile, so the documented property test is the same every run.
CONFTEST = """
from hypothesis import settings

settings.register_profile("docs", derandomize=True, max_examples=25, deadline=None)
settings.load_profile("docs")
"""


def contract_tests(contract: type) -> int:
    return sum(1 for name in vars(contract) if name.startswith("test_"))


def test_the_tests_in_the_testing_guide_pass(tmp_path: Path) -> None:
    """Every ```python block of docs/testing.md runs under pytest and its tests all pass."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert blocks
    for i, block in enumerate(blocks):
        (tmp_path / f"test_doc_block_{i}.py").write_text(block, encoding="utf-8")
    (tmp_path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-W", "error", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    functions = sum(block.count("\ndef test_") for block in blocks)
    expected = (
        functions + contract_tests(SnapshotRepositoryContract) + contract_tests(RunLockContract)
    )
    match = re.search(r"(\d+) passed", result.stdout)
    assert match is not None, result.stdout
    assert int(match.group(1)) == expected, result.stdout


@pytest.mark.parametrize("name", ["FakeClock", "FakeSleep", "instant_retry", "Fault"])
def test_the_guide_mentions_the_kit(name: str) -> None:
    """The testing guide introduces each main part of the kit by name."""
    assert f"`{name}" in DOC.read_text(encoding="utf-8")
