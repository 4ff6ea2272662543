import copy
import dataclasses
import datetime as dt
import pickle
import uuid
from decimal import Decimal

import pytest

from portfolio_snapshots import PortfolioSnapshot, PositionValuation

DAY = dt.date(2026, 11, 27)
A = PositionValuation(
    "A", Decimal(2), Decimal("1.5"), DAY, Decimal("3.00"), "USD", None, stale=False
)
B = PositionValuation(
    "B", Decimal(1), Decimal(4), DAY, Decimal("4.40"), "EUR", Decimal("1.1"), stale=True
)


def snapshot(**changes: object) -> PortfolioSnapshot:
    base = PortfolioSnapshot(
        uuid.UUID(int=1), DAY, "USD", Decimal(1), Decimal("7.40"), Decimal("8.40"), (A, B)
    )
    return base.replace(**changes)


def test_positions_read_back_as_position_valuations() -> None:
    """Positions given to the constructor come back equal, in order, with every field."""
    snap = snapshot()
    assert snap.positions == (A, B)
    assert all(type(p) is PositionValuation for p in snap.positions)
    assert snap.position("B") == B
    assert snap.position("C") is None
    assert snap.flat_positions == (*A[:8], *B[:8])
    assert snap.position_books == ()  # no position has books: nothing is carried for them


def test_position_books_are_kept_apart_and_read_back_on_each_position() -> None:
    """A position's books live in `position_books`; its unrealized gain is derived on reading."""
    held = A._replace(cost_basis=Decimal(2), unrealized_gain=A.market_value - 2)
    snap = snapshot(positions=(held, B))
    assert snap.positions == (held, B)
    assert snap.position_books == (Decimal(2), None, None, None, None, None)
    assert snap.position("A") == held
    assert snap.flat_positions == (*A[:8], *B[:8])


def test_snapshots_compare_and_hash_by_value() -> None:
    """Two snapshots with the same fields are equal and hash alike; any field tells them apart."""
    assert snapshot() == snapshot()
    assert hash(snapshot()) == hash(snapshot())
    assert snapshot() != snapshot(stale=True)
    assert snapshot() != snapshot(positions=(A,))
    assert snapshot() != "not a snapshot"


def test_snapshots_are_immutable() -> None:
    """Assigning or deleting a field raises FrozenInstanceError, like a frozen dataclass."""
    snap = snapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.total_value = Decimal(0)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del snap.currency  # pyright: ignore[reportAttributeAccessIssue] - the point


def test_replace_and_copy_keep_everything_else() -> None:
    """replace() changes only the named fields; unknown names are refused."""
    changed = snapshot(total_value=Decimal(9))
    assert changed.total_value == Decimal(9)
    assert changed.positions == (A, B)
    assert copy.copy(changed) == changed
    with pytest.raises(TypeError, match="no field 'nope'"):
        snapshot(nope=1)


def test_snapshots_pickle_and_print() -> None:
    """A snapshot survives pickling; its repr shows the positions, not the flat tuple."""
    snap = snapshot()
    assert pickle.loads(pickle.dumps(snap)) == snap  # noqa: S301 - our own data
    assert "positions=(PositionValuation(ticker='A'" in repr(snap)
    assert "flat_positions" not in repr(snap)


def test_malformed_positions_are_refused() -> None:
    """Positions that are not PositionValuation-shaped cannot build a snapshot."""
    bad: list[object] = [("A", 1)]
    with pytest.raises(ValueError, match="PositionValuation"):
        PortfolioSnapshot(uuid.UUID(int=1), DAY, "USD", Decimal(0), Decimal(0), Decimal(0), bad)  # type: ignore[arg-type]
