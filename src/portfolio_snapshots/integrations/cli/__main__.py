"""``python -m portfolio_snapshots.integrations.cli``: the same as ``portfolio-snapshots``."""

from portfolio_snapshots.integrations.cli import main

if __name__ == "__main__":
    main()
