"""The exception hierarchy: every error the library raises derives from `SnapshotError`.

Errors that describe bad input also derive from `ValueError`, so hosts that already catch
`ValueError` at their boundaries keep working. Each error carries the facts it names as
attributes (portfolio, date, ticker, field), so a host can act on them without parsing text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datetime as dt
    from uuid import UUID


def _where(portfolio_id: UUID | None, day: dt.date | None) -> str:
    parts = []
    if portfolio_id is not None:
        parts.append(f"portfolio {portfolio_id}")
    if day is not None:
        parts.append(f"on {day.isoformat()}")
    return " ".join(parts)


class SnapshotError(Exception):
    """Base class of every error raised by portfolio-snapshots."""


class TransientError(SnapshotError):
    """A temporary failure (network blip, lock timeout, overloaded provider) worth retrying.

    Adapters raise it, or a subclass, for faults that may succeed on a later attempt. The
    default `RetryPolicy` retries it, `ConnectionError` and `TimeoutError`, and nothing else.
    """


class InvalidInputError(SnapshotError, ValueError):
    """Base class of the errors that describe bad input. Never retried."""


class PortfolioNotFoundError(SnapshotError, LookupError):
    """The portfolio repository does not know the requested portfolio.

    Attributes:
        portfolio_id: The id that was looked up.
    """

    def __init__(self, portfolio_id: UUID) -> None:
        """Build the error for `portfolio_id`."""
        super().__init__(f"portfolio {portfolio_id} not found")
        self.portfolio_id = portfolio_id


class InvalidPortfolioError(InvalidInputError):
    """A portfolio cannot be valued as it stands.

    For example a negative or non-finite quantity, non-finite cash, or a field of the wrong
    type (a float where a Decimal belongs).

    Attributes:
        portfolio_id: The portfolio at fault.
        snapshot_date: The date being valued, when known.
        field: The offending field (``"quantity"``, ``"cash_balance"``, ...).
        ticker: The ticker concerned, when the fault is in a position.
        value: The offending value.
    """

    def __init__(
        self,
        reason: str,
        *,
        portfolio_id: UUID | None = None,
        snapshot_date: dt.date | None = None,
        field: str | None = None,
        ticker: str | None = None,
        value: object = None,
    ) -> None:
        """Build the error; the message names every fact that is given."""
        where = _where(portfolio_id, snapshot_date)
        what = f"ticker {ticker!r} " if ticker is not None else ""
        field_part = f"{field}={value!r}: " if field is not None else ""
        super().__init__(f"{where}: {what}{field_part}{reason}".lstrip(": ").strip())
        self.portfolio_id = portfolio_id
        self.snapshot_date = snapshot_date
        self.field = field
        self.ticker = ticker
        self.value = value


class InvalidPriceError(InvalidPortfolioError):
    """A price quote is unusable: zero, negative or non-finite.

    A subclass of `InvalidPortfolioError` because the portfolio holding the ticker cannot be
    valued; `ticker` and `value` name the quote.
    """


class MissingPriceError(SnapshotError, LookupError):
    """A held ticker has no usable price for the date: the portfolio is not valued at all.

    A missing price is never valued at zero.

    Attributes:
        portfolio_id: The portfolio holding the ticker.
        snapshot_date: The date being valued.
        ticker: The ticker without a price.
    """

    def __init__(
        self,
        *,
        portfolio_id: UUID | None,
        snapshot_date: dt.date,
        ticker: str,
        detail: str = "no price on or before that date",
    ) -> None:
        """Build the error for one ticker of one portfolio-day."""
        where = _where(portfolio_id, snapshot_date)
        super().__init__(f"{where}: ticker {ticker!r}: {detail}".lstrip(": "))
        self.portfolio_id = portfolio_id
        self.snapshot_date = snapshot_date
        self.ticker = ticker


class CurrencyMismatchError(InvalidInputError):
    """A price is quoted in a currency other than the portfolio's and no conversion is possible.

    Attributes:
        portfolio_id: The portfolio being valued.
        snapshot_date: The date being valued.
        ticker: The ticker whose quote is in another currency.
        expected: The portfolio's currency.
        actual: The quote's currency.
    """

    def __init__(
        self,
        *,
        portfolio_id: UUID | None,
        snapshot_date: dt.date,
        ticker: str,
        expected: str,
        actual: str,
    ) -> None:
        """Build the error for one quote."""
        where = _where(portfolio_id, snapshot_date)
        super().__init__(
            f"{where}: ticker {ticker!r} is priced in {actual}, portfolio currency is {expected}"
        )
        self.portfolio_id = portfolio_id
        self.snapshot_date = snapshot_date
        self.ticker = ticker
        self.expected = expected
        self.actual = actual


class InvalidDateRangeError(InvalidInputError):
    """A date range is unusable: its start is after its end, or it reaches into the future.

    Attributes:
        start: The first date asked for.
        end: The last date asked for.
    """

    def __init__(self, reason: str, *, start: dt.date, end: dt.date) -> None:
        """Build the error for the range ``start..end``."""
        super().__init__(f"invalid date range {start.isoformat()}..{end.isoformat()}: {reason}")
        self.start = start
        self.end = end


class RunKeyConflictError(InvalidInputError):
    """A run key was reused with different parameters.

    Attributes:
        key: The run key.
    """

    def __init__(self, key: str) -> None:
        """Build the error for `key`."""
        super().__init__(
            f"run key {key!r} was already used with different parameters; "
            "pick another key or repeat the original parameters"
        )
        self.key = key


class LeaseLostError(SnapshotError):
    """The run's lease expired or was taken over by another holder; the run stops.

    Attributes:
        key: The run key.
    """

    def __init__(self, key: str, detail: str = "the lease was lost") -> None:
        """Build the error for `key`."""
        super().__init__(f"run {key!r}: {detail}")
        self.key = key
