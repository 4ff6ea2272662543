import asyncio
import datetime as dt
import uuid
from decimal import Decimal

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    MarketData,
    Portfolio,
    PortfolioRepository,
    PriceQuote,
)

D1 = dt.date(2026, 1, 1)
PID = uuid.UUID(int=7)


async def collect(repo: InMemoryPortfolioRepository, as_of: dt.date) -> list[Portfolio]:
    return [p async for p in repo.iter_portfolios(as_of)]


def test_in_memory_adapters_satisfy_the_protocols() -> None:
    """The in-memory fakes are recognised as the ports they implement."""
    assert isinstance(InMemoryPortfolioRepository(), PortfolioRepository)
    assert isinstance(InMemoryMarketData(), MarketData)


def test_portfolio_versions_apply_from_their_date_on() -> None:
    """A state recorded `since` a date is in force from that date until the next version."""
    repo = InMemoryPortfolioRepository()
    first = Portfolio(PID, Decimal(1))
    second = Portfolio(PID, Decimal(2), {"A": Decimal(1)})
    repo.put(first, since=D1)
    repo.put(second, since=D1 + dt.timedelta(days=10))
    assert asyncio.run(repo.get_portfolio(PID, D1 - dt.timedelta(days=1))) is None
    assert asyncio.run(repo.get_portfolio(PID, D1)) == first
    assert asyncio.run(repo.get_portfolio(PID, D1 + dt.timedelta(days=9))) == first
    assert asyncio.run(repo.get_portfolio(PID, D1 + dt.timedelta(days=10))) == second
    assert asyncio.run(collect(repo, D1 - dt.timedelta(days=1))) == []
    assert asyncio.run(collect(repo, D1 + dt.timedelta(days=30))) == [second]


def test_unknown_portfolio_is_none_not_an_error() -> None:
    """get_portfolio answers None for an id it does not know."""
    assert asyncio.run(InMemoryPortfolioRepository().get_portfolio(PID, D1)) is None


def test_iter_portfolios_yields_each_portfolio_once() -> None:
    """Every portfolio appears exactly once, whatever its number of versions."""
    repo = InMemoryPortfolioRepository(Portfolio(uuid.UUID(int=i), Decimal(i)) for i in range(5))
    repo.put(Portfolio(uuid.UUID(int=1), Decimal(100)), since=D1)
    got = asyncio.run(collect(repo, D1))
    assert sorted(p.id.int for p in got) == [0, 1, 2, 3, 4]
    assert len(repo) == 5


def test_prices_are_the_latest_on_or_before_the_date() -> None:
    """Lookup is strictly on-or-before; later closes are never used; unknown tickers are absent."""
    market = InMemoryMarketData()
    market.add_price("A", D1, Decimal(10))
    market.add_price("A", D1 + dt.timedelta(days=5), Decimal(12))
    market.add(PriceQuote("A", Decimal(11), D1 + dt.timedelta(days=2)))
    got = asyncio.run(market.get_prices(["A", "B"], D1 + dt.timedelta(days=4)))
    assert got == {"A": PriceQuote("A", Decimal(11), D1 + dt.timedelta(days=2))}
    assert asyncio.run(market.get_prices(["A"], D1 - dt.timedelta(days=1))) == {}
    assert market.request_count == 2


def test_adding_a_quote_for_the_same_date_replaces_it() -> None:
    """A second close for the same ticker and date replaces the first."""
    market = InMemoryMarketData([PriceQuote("A", Decimal(1), D1)])
    market.add_price("A", D1, Decimal(2))
    assert asyncio.run(market.get_prices(["A"], D1))["A"].price == Decimal(2)
