import inspect

import portfolio_snapshots


def test_all_lists_exactly_the_public_names_sorted() -> None:
    """__all__ names every public attribute of the package, once, in sorted order."""
    public = {
        name
        for name in dir(portfolio_snapshots)
        if not name.startswith("_")
        and name not in {"annotations", "adapters", "integrations", "testing"}
    }
    assert set(portfolio_snapshots.__all__) == public
    assert len(portfolio_snapshots.__all__) == len(set(portfolio_snapshots.__all__))
    assert portfolio_snapshots.__all__ == sorted(
        portfolio_snapshots.__all__, key=lambda n: (not n.isupper(), n)
    )


def test_every_public_name_has_a_docstring() -> None:
    """Each exported class and function documents itself (type aliases use #: comments)."""
    checked = 0
    for name in portfolio_snapshots.__all__:
        obj = getattr(portfolio_snapshots, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, name
            checked += 1
    assert checked > 30


def test_version_is_read_from_the_distribution() -> None:
    """__version__ is available and matches the installed metadata."""
    from importlib.metadata import version

    assert portfolio_snapshots.__version__ == version("portfolio-snapshots")
