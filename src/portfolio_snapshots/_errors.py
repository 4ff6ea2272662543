"""The exception hierarchy, the one home of every error: `SnapshotError` and all below it.

Errors that describe bad input also derive from `ValueError`, so hosts that already catch
`ValueError` at their boundaries keep working. Each error carries the facts it names as
attributes (portfolio, date, ticker, field), so a host can act on them without parsing text.
This module imports nothing of the library; `portfolio_snapshots.errors` is its public face.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datetime as dt
    from decimal import Decimal
    from fractions import Fraction
    from uuid import UUID

    from portfolio_snapshots._report import SnapshotFailure


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
        ticker: The ticker whose quote is in another currency (None for cash held in it).
        expected: The portfolio's currency.
        actual: The quote's (or the cash's) currency.
    """

    def __init__(
        self,
        *,
        portfolio_id: UUID | None,
        snapshot_date: dt.date,
        ticker: str | None,
        expected: str,
        actual: str,
    ) -> None:
        """Build the error for one quote, or for cash held in another currency."""
        where = _where(portfolio_id, snapshot_date)
        what = (
            f"cash is held in {actual}"
            if ticker is None
            else (f"ticker {ticker!r} is priced in {actual}")
        )
        super().__init__(
            f"{where}: {what}, portfolio currency is {expected}, and no FX source is configured"
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


class RunAlreadyRunningError(SnapshotError):
    """Another holder is running the same run key right now; this call did nothing.

    Raised by the calls that must return a result (`SnapshotJob.snapshot_one`); the runs
    themselves return a report with status ``already_running`` instead. Try again once that
    run has finished: it will find the work done.

    Attributes:
        key: The run key.
    """

    def __init__(self, key: str) -> None:
        """Build the error for `key`."""
        super().__init__(f"run {key!r} is already running elsewhere; try again when it ends")
        self.key = key


class SnapshotFailedError(SnapshotError):
    """One portfolio-day could not be snapshotted: its `SnapshotFailure`, raised.

    Raised by `SnapshotJob.snapshot_one`. The original error was caught by the run (and
    retried when transient); this one carries its facts, and `kind` says what to do about it.

    Attributes:
        failure: The `SnapshotFailure` of the day.
        portfolio_id: The portfolio.
        snapshot_date: The date.
        error_type: The class name of the original error (``"MissingPriceError"``, ...).
        kind: ``invalid_input``, ``missing_data``, ``transient``, ``not_found`` or ``error``.
        attempts: Attempts made before giving up.
    """

    def __init__(self, failure: SnapshotFailure) -> None:
        """Build the error from the day's `failure`."""
        super().__init__(f"{failure.error_type}: {failure.message}")
        self.failure = failure
        self.portfolio_id = failure.portfolio_id
        self.snapshot_date = failure.snapshot_date
        self.error_type = failure.error_type
        self.kind = failure.kind
        self.attempts = failure.attempts


class InvalidTransactionError(InvalidPortfolioError):
    """A ledger transaction is unusable, so the portfolio's state cannot be rebuilt.

    A subclass of `InvalidPortfolioError`: the portfolio at fault cannot be valued on the
    transaction's date or any later one. `snapshot_date` (inherited) and `trade_date` both hold
    the transaction's date.

    Attributes:
        trade_date: The date of the offending transaction, when known.
        kind: The transaction's kind, when known (``"buy"``, ``"split"``, ...).
    """

    def __init__(
        self,
        reason: str,
        *,
        portfolio_id: UUID | None = None,
        trade_date: dt.date | None = None,
        kind: str | None = None,
        field: str | None = None,
        ticker: str | None = None,
        value: object = None,
    ) -> None:
        """Build the error; the message names the portfolio, date, kind, field and value."""
        suffix = f" ({kind} transaction)" if kind is not None else ""
        super().__init__(
            reason + suffix,
            portfolio_id=portfolio_id,
            snapshot_date=trade_date,
            field=field,
            ticker=ticker,
            value=value,
        )
        self.trade_date = trade_date
        self.kind = kind


class UnknownTransactionKindError(InvalidTransactionError):
    """Raw data names a transaction kind that `TransactionKind` does not have.

    `value` holds the raw kind as received.
    """


class FutureTransactionError(InvalidTransactionError):
    """A transaction is dated after "today" (UTC): the ledger records what has happened.

    Attributes:
        today: The UTC date the transaction was checked against.
    """

    def __init__(
        self,
        *,
        portfolio_id: UUID | None,
        trade_date: dt.date,
        kind: str | None,
        today: dt.date,
    ) -> None:
        """Build the error for a transaction dated `trade_date`, after `today`."""
        super().__init__(
            f"dated in the future (today is {today.isoformat()} UTC)",
            portfolio_id=portfolio_id,
            trade_date=trade_date,
            kind=kind,
            field="trade_date",
            value=trade_date,
        )
        self.today = today


class TransactionCurrencyError(InvalidTransactionError):
    """A transaction in another currency than the base lacks the rate it was booked at.

    The ledger keeps cash in every currency, but contributions and transfers are counted in
    the portfolio's base currency: a `DEPOSIT`, `WITHDRAWAL`, `TRANSFER_IN` or `TRANSFER_OUT`
    in another currency must carry ``fx_rate`` (see ``docs/analytics.md``). `field` is
    ``"fx_rate"``.

    Attributes:
        expected: The portfolio's base currency.
        actual: The transaction's currency.
    """

    def __init__(
        self,
        *,
        portfolio_id: UUID | None,
        trade_date: dt.date | None,
        kind: str | None,
        expected: str,
        actual: str,
    ) -> None:
        """Build the error for a transaction in `actual` in a portfolio kept in `expected`."""
        super().__init__(
            f"is required for a transaction in {actual} in a portfolio kept in {expected}: "
            f"the units of {expected} per {actual} it was booked at",
            portfolio_id=portfolio_id,
            trade_date=trade_date,
            kind=kind,
            field="fx_rate",
            value=None,
        )
        self.expected = expected
        self.actual = actual


class OversoldPositionError(InvalidTransactionError):
    """A day's sales of a ticker exceed the quantity held: the position is never clamped.

    `value` holds the quantity sold that day (units transferred out included; `kind` is
    ``"transfer_out"`` when the day only transferred units out).

    Attributes:
        sold: The quantity of the ticker sold (or transferred out) on `trade_date`, in all.
        available: The quantity that could be sold that day: the quantity held at the end of
            the day before (after that day's splits) plus the day's purchases.
    """

    def __init__(
        self,
        *,
        portfolio_id: UUID | None,
        trade_date: dt.date,
        ticker: str,
        sold: Decimal,
        available: Decimal,
        kind: str = "sell",
    ) -> None:
        """Build the error for the sales of `ticker` on `trade_date`."""
        super().__init__(
            f"sells more than held (available: {available})",
            portfolio_id=portfolio_id,
            trade_date=trade_date,
            kind=kind,
            field="quantity",
            ticker=ticker,
            value=sold,
        )
        self.sold = sold
        self.available = available


class ConflictingSplitError(InvalidTransactionError):
    """Two ledgers record different ratios for the same split (a ticker and an ex-date).

    Raised by `ledger_splits`, which gathers the SPLITs of several portfolios' ledgers into
    one list per ticker: a split is the market's event, so every ledger that records it must
    record the same ratio. `value` holds the second ratio found.

    Attributes:
        ratios: The two ratios found, as Fractions, in the order met.
    """

    def __init__(
        self,
        *,
        portfolio_id: UUID | None,
        trade_date: dt.date,
        ticker: str,
        ratios: tuple[Fraction, Fraction],
    ) -> None:
        """Build the error for the split of `ticker` on `trade_date`."""
        first, second = ratios
        super().__init__(
            f"another ledger records this split as {first} new units per old unit, "
            f"this one as {second}",
            portfolio_id=portfolio_id,
            trade_date=trade_date,
            kind="split",
            field="ratio",
            ticker=ticker,
            value=second,
        )
        self.ratios = ratios


class UnsortedLedgerError(InvalidTransactionError):
    """Transactions handed to an incremental replay are not in ascending date order.

    `value` holds the out-of-order date; `previous_date` the date seen before it.

    Attributes:
        previous_date: The date of the transaction that came before.
    """

    def __init__(
        self,
        *,
        portfolio_id: UUID | None,
        trade_date: dt.date,
        previous_date: dt.date,
    ) -> None:
        """Build the error for a transaction dated `trade_date` after one of `previous_date`."""
        super().__init__(
            f"transactions are not sorted by date: {trade_date.isoformat()} comes after "
            f"{previous_date.isoformat()}",
            portfolio_id=portfolio_id,
            trade_date=trade_date,
            field="trade_date",
            value=trade_date,
        )
        self.previous_date = previous_date


class InvalidFxRateError(InvalidInputError):
    """An exchange rate is unusable: zero, negative, non-finite, not a Decimal, or misdated.

    Attributes:
        base: The currency one unit of which the rate prices.
        quote: The currency the rate is expressed in.
        as_of: The date of the rate, or the date asked for when the rate is dated after it.
        value: The offending value.
    """

    def __init__(
        self, reason: str, *, base: str, quote: str, as_of: dt.date | None, value: object
    ) -> None:
        """Build the error for the pair ``base/quote``."""
        when = f" on {as_of.isoformat()}" if as_of is not None else ""
        super().__init__(f"FX rate {base}/{quote}{when}: rate={value!r}: {reason}")
        self.base = base
        self.quote = quote
        self.as_of = as_of
        self.value = value


class MissingFxRateError(SnapshotError, LookupError):
    """No rate, direct or inverse, converts `base` into `quote` on or before `as_of`.

    Attributes:
        base: The currency to convert from.
        quote: The currency to convert into.
        as_of: The date asked for.
        portfolio_id: The portfolio being valued, when known.
        ticker: The position needing the rate, when known.
    """

    def __init__(
        self,
        *,
        base: str,
        quote: str,
        as_of: dt.date,
        portfolio_id: UUID | None = None,
        ticker: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Build the error for the pair ``base/quote``, naming the position when known."""
        what = detail or f"no FX rate {base}/{quote} (nor {quote}/{base}) on or before"
        where = f"portfolio {portfolio_id}: " if portfolio_id is not None else ""
        held = f"ticker {ticker!r}: " if ticker is not None else ""
        super().__init__(f"{where}{held}{what} {as_of.isoformat()}")
        self.base = base
        self.quote = quote
        self.as_of = as_of
        self.portfolio_id = portfolio_id
        self.ticker = ticker


class InvalidSnapshotSeriesError(InvalidPortfolioError):
    """A series of snapshots cannot be used to compute returns.

    For example snapshots of different portfolios or currencies, dates out of order or
    repeated, or too few snapshots. `snapshot_date` names the first snapshot at fault.
    """


class MissingFlowDataError(InvalidSnapshotSeriesError):
    """A snapshot lacks ``net_contributions`` or ``external_flow``, so flows are unknown.

    Returns need the ledger: snapshots of a repository that does not know the transactions
    cannot tell a deposit from a gain. `field` names the missing attribute.
    """


class UndefinedReturnError(InvalidSnapshotSeriesError):
    """A return's denominator (the capital at work) is zero or negative.

    For example a portfolio that holds value at the end of a day after starting it with
    nothing and receiving nothing. `value` holds the denominator.
    """


class SchemaVersionError(SnapshotError):
    """The database was written by a newer version of portfolio-snapshots.

    The store refuses to use it and changes nothing in it: upgrade the library, or point the
    store at another database. Never retried.

    Attributes:
        found: The schema version recorded in the database.
        supported: The newest schema version this library knows.
    """

    def __init__(self, found: int, supported: int, *, where: str = "") -> None:
        """Build the error; `where` names the database (a path or a URL without password)."""
        place = f" {where}" if where else ""
        super().__init__(
            f"database{place} has schema version {found}, newer than version {supported} "
            "that this version of portfolio-snapshots knows; upgrade portfolio-snapshots "
            "(the database was left unchanged)"
        )
        self.found = found
        self.supported = supported


class DatabaseBusyError(TransientError):
    """The database is locked or busy (a lock timeout, a deadlock, a serialization failure).

    Transient: the job's `RetryPolicy` retries it.
    """


class DatabaseUnavailableError(TransientError):
    """The database cannot be reached, or the connection broke (refused, reset, shut down).

    Transient: the job's `RetryPolicy` retries it.
    """


class MalformedFileError(InvalidInputError):
    """A data file (a CSV of closes or FX rates) cannot be read as it stands.

    The message names the file, the line and the field, so the row can be found and fixed.

    Attributes:
        path: The file.
        line: The 1-based line number (1 is the header), or None for the file as a whole.
        field: The column at fault (``"date"``, ``"close"``, ...), or None.
        value: The offending text, or None.
    """

    def __init__(
        self,
        reason: str,
        *,
        path: str,
        line: int | None = None,
        field: str | None = None,
        value: object = None,
    ) -> None:
        """Build the error; the message names every fact that is given."""
        where = path if line is None else f"{path}, line {line}"
        field_part = f"{field}={value!r}: " if field is not None else ""
        super().__init__(f"{where}: {field_part}{reason}")
        self.path = path
        self.line = line
        self.field = field
        self.value = value


class DatabaseAccessError(SnapshotError):
    """The database refused the store, or is not there: asking again gives the same answer.

    Raised for a password or role the server refuses (SQLSTATE class 28), a database that does
    not exist (3D000) and, on SQLite, a file that cannot be opened or is not an SQLite
    database. Not transient: the job's `RetryPolicy` never retries it, since retrying a wrong
    password only delays the answer. The message names the database (a path, or a URL without
    its password) and what to check; it never holds a password.

    Attributes:
        database: The database, as the message names it.
        sqlstate: The SQLSTATE the server reported, or None (SQLite, or a driver that keeps
            it to itself).
    """

    def __init__(
        self, problem: str, *, database: str, check: str, sqlstate: str | None = None
    ) -> None:
        """Build the error: `problem` says what went wrong, `check` what the host should check."""
        code = f" [{sqlstate}]" if sqlstate else ""
        super().__init__(f"database {database}: {problem}{code}; check {check} (not retried)")
        self.database = database
        self.sqlstate = sqlstate
