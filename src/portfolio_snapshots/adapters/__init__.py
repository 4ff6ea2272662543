"""Adapters for the ports.

The in-memory ones (`memory`) and `PerTickerMarketData` (`per_ticker`) are also exported from
`portfolio_snapshots`. Adapters that need an optional extra live in their own modules and are
imported only by hosts that installed it.
"""
