import importlib
import inspect
import pkgutil
import re
import types
from pathlib import Path

import pytest

import portfolio_snapshots

#: Every public module of the package (no part of its dotted path starts with an underscore),
#: found by walking the package, so a new public module cannot be forgotten here. The
#: SQLAlchemy adapter and the integrations need their extras; the dev environment has them.
PUBLIC_MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(portfolio_snapshots.__path__, "portfolio_snapshots.")
    if not any(part.startswith("_") for part in info.name.split("."))
)


def _module(name: str) -> types.ModuleType:
    return importlib.import_module(name)


def _public_members(module: types.ModuleType) -> set[str]:
    """Names a module offers: not private, not a submodule, not imported as a typing helper."""
    return {
        name
        for name, value in vars(module).items()
        if (
            not name.startswith("_")
            and not isinstance(value, types.ModuleType)
            and name != "annotations"
            and name in getattr(module, "__all__", ())
        )
        or (
            not name.startswith("_")
            and not isinstance(value, types.ModuleType)
            and name != "annotations"
            and getattr(value, "__module__", None) == module.__name__
        )
    }


def test_the_public_modules_are_found() -> None:
    """The walk finds the top level's submodules, so the checks below run on each of them."""
    assert {
        "portfolio_snapshots.errors",
        "portfolio_snapshots.events",
        "portfolio_snapshots.history",
        "portfolio_snapshots.adapters.memory",
        "portfolio_snapshots.adapters.sqlite",
        "portfolio_snapshots.testing",
    } <= set(PUBLIC_MODULES)


@pytest.mark.parametrize("name", ["portfolio_snapshots", *PUBLIC_MODULES])
def test_all_is_sorted_and_lists_every_public_member(name: str) -> None:
    """Each public module's __all__ is sorted, has no duplicates, and names what it defines."""
    module = _module(name)
    exported = list(getattr(module, "__all__", []))
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n)), name
    assert len(exported) == len(set(exported)), name
    assert _public_members(module) <= set(exported), name
    for member in exported:
        assert hasattr(module, member), f"{name}.{member}"


@pytest.mark.parametrize("name", ["portfolio_snapshots", *PUBLIC_MODULES])
def test_every_public_class_and_function_reports_its_public_home(name: str) -> None:
    """A class or function in a public __all__ has a public module that exports it as __module__."""
    module = _module(name)
    for member in getattr(module, "__all__", []):
        obj = getattr(module, member)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            home = obj.__module__
            assert not any(part.startswith("_") for part in home.split(".")), f"{member}: {home}"
            assert member in _module(home).__all__, f"{member}: {home}"


def test_no_public_name_is_reachable_only_through_a_private_path() -> None:
    """Every public class and function defined in a private module is exported by a public one."""
    exported = {
        id(getattr(_module(name), member))
        for name in ["portfolio_snapshots", *PUBLIC_MODULES]
        for member in getattr(_module(name), "__all__", [])
    }
    private = sorted(
        info.name
        for info in pkgutil.walk_packages(portfolio_snapshots.__path__, "portfolio_snapshots.")
        if any(part.startswith("_") for part in info.name.split("."))
    )
    assert private
    for name in private:
        module = _module(name)
        for member, obj in vars(module).items():
            if member.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if obj.__module__ != name or not obj.__doc__:
                continue  # imported from elsewhere, or an undocumented private helper
            if inspect.isclass(obj) and issubclass(obj, BaseException):
                assert id(obj) in exported, f"{name}.{member} is an error no public module exports"


def test_the_top_level_is_the_core() -> None:
    """The top level keeps about thirty names: the core a host needs first."""
    assert 25 <= len(portfolio_snapshots.__all__) <= 42


def test_every_public_name_has_a_docstring() -> None:
    """Each exported class and function of every public module documents itself."""
    checked = 0
    for name in ["portfolio_snapshots", *PUBLIC_MODULES]:
        module = _module(name)
        for member in getattr(module, "__all__", []):
            obj = getattr(module, member)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__doc__, f"{name}.{member}"
                checked += 1
    assert checked > 90


def test_version_is_read_from_the_distribution() -> None:
    """__version__ is available and matches the installed metadata."""
    from importlib.metadata import version

    assert portfolio_snapshots.__version__ == version("portfolio-snapshots")


def _documented_names() -> set[str]:
    """Classes and functions the docs and the README name in backticks."""
    root = Path(__file__).resolve().parents[1]
    texts = [p.read_text() for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))]]
    # a class as `Name` or `Name.attr`; a function as `name(...)` (a bare `name` is often a field)
    pattern = r"`([A-Z]\w*)[(`.]|`([a-z_]\w*)\("
    found = {m.group(1) or m.group(2) for text in texts for m in re.finditer(pattern, text)}
    return found - {"params_hash"}  # a column name in docs/storage.md, not a function


def test_every_name_the_docs_mention_is_importable_from_a_public_module() -> None:
    """A class or function the docs name has a public home, not only its private module's path.

    A published name reports its public module, so what is left with a private ``__module__``
    is what no public module exports.
    """
    exported = {
        member
        for name in ["portfolio_snapshots", *PUBLIC_MODULES]
        for member in getattr(_module(name), "__all__", [])
    }
    private_definitions = {
        member
        for info in pkgutil.walk_packages(portfolio_snapshots.__path__, "portfolio_snapshots.")
        if any(part.startswith("_") for part in info.name.split("."))
        for member, obj in vars(_module(info.name)).items()
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == info.name
    }
    documented = _documented_names()
    assert {"SnapshotJob", "value_portfolio"} <= documented  # the scan finds names at all
    assert sorted((documented & private_definitions) - exported) == []
