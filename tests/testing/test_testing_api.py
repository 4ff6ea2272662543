import inspect
import subprocess
import sys

import portfolio_snapshots.testing
from portfolio_snapshots.testing import strategies

# Run in a fresh interpreter where importing pytest or hypothesis fails, as for a host that
# installed neither.
WITHOUT_TEST_TOOLS = """
import sys
sys.modules["pytest"] = None
sys.modules["hypothesis"] = None
import portfolio_snapshots.testing as kit
print(len(kit.__all__))
try:
    import portfolio_snapshots.testing.strategies
except ImportError as error:
    print(error)
"""


def test_kit_imports_without_pytest_or_hypothesis() -> None:
    """The testing kit imports with neither pytest nor Hypothesis; only the strategies need it."""
    result = subprocess.run(  # noqa: S603 - this interpreter, our own code
        [sys.executable, "-c", WITHOUT_TEST_TOOLS],
        capture_output=True,
        text=True,
        check=True,
    )
    count, message = result.stdout.strip().splitlines()
    assert int(count) == len(portfolio_snapshots.testing.__all__)
    assert "needs Hypothesis: pip install hypothesis" in message


def test_all_lists_the_public_names_sorted() -> None:
    """`__all__` of the kit names each public attribute once, in sorted order."""
    names = portfolio_snapshots.testing.__all__
    public = {
        name
        for name in dir(portfolio_snapshots.testing)
        if not name.startswith("_") and name not in {"annotations", "strategies"}
    }
    assert set(names) == public
    assert len(names) == len(set(names))
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))


def test_every_public_name_is_documented() -> None:
    """Each public class, function and method of the kit and its strategies has a docstring."""
    undocumented = []
    for module in (portfolio_snapshots.testing, strategies):
        for name in module.__all__:
            obj = getattr(module, name)
            if not inspect.getdoc(obj):
                undocumented.append(name)
            if inspect.isclass(obj):
                undocumented.extend(
                    f"{name}.{attr}"
                    for attr, member in vars(obj).items()
                    if not attr.startswith("_") and callable(member) and not member.__doc__
                )
    assert undocumented == []


def test_strategies_all_is_sorted_and_complete() -> None:
    """The strategies module exports every public strategy and LEDGER_START, in sorted order."""
    public = {
        name
        for name, obj in vars(strategies).items()
        if not name.startswith("_")
        and inspect.isfunction(obj)
        and obj.__module__ == strategies.__name__
    }
    assert set(strategies.__all__) == public | {"LEDGER_START"}
    assert strategies.__all__ == sorted(strategies.__all__, key=lambda n: (not n.isupper(), n))
