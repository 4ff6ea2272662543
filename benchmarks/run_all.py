"""Run every benchmark and print one table: what, ratio, target, met.

To run:
    python benchmarks/run_all.py [--quick] [--only naive,memory]

Each benchmark runs as its own subprocess (its own interpreter, so one cannot warm or bloat
another) with its default sizes, or smaller ones with ``--quick`` (minutes instead of tens of
minutes; the ratios of a quick run are noisier, and the naive-job and scaling ratios depend on
the sizes). Every line a benchmark prints with ``(target ...)`` becomes a row. The PostgreSQL
benchmarks start a throwaway server unless ``PORTFOLIO_SNAPSHOTS_PG_DSN`` names one.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: name: (full arguments, quick arguments)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "daily_run": (["--cost-basis"], ["--portfolios", "20000", "--rounds", "2", "--cost-basis"]),
    "backfill": ([], ["--portfolios", "200", "--years", "2", "--rounds", "2"]),
    "storage": ([], ["--snapshots", "20000", "--rounds", "2", "--backends", "sqlite"]),
    "poisoned_run": ([], ["--portfolios", "20000", "--rounds", "2"]),
    "naive": ([], ["--portfolios", "400", "--tickers", "100"]),
    "memory": ([], ["--sizes", "20000,100000"]),
    "dask_scaling": ([], ["--portfolios", "10000", "--workers", "1,2"]),
    "set_based": ([], ["--portfolios", "10000"]),
}

LINE = re.compile(
    r"(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>x|MB)\b[^(]*\((?:target (?P<op><=|>=|<) "
    r"(?P<target>\d+(?:\.\d+)?)\s*(?:x|MB)|no target[^)]*)\)"
)
OPS = {"<=": lambda v, t: v <= t, ">=": lambda v, t: v >= t, "<": lambda v, t: v < t}


def rows_of(name: str, output: str) -> list[tuple[str, str, str, bool | None]]:
    """The (what, value, target, met) rows of one benchmark's output."""
    rows: list[tuple[str, str, str, bool | None]] = []
    section = ""
    for line in output.splitlines():
        if line and not line.startswith(" "):
            section = line.split(":")[0].strip()
        found = LINE.search(line)
        if found is None:
            continue
        label = " ".join(line[: found.start()].split(":")[0].split()[:3])
        if name == "storage":
            label = f"{section.split(',')[0]}, {label.split()[0]}"
        elif line.startswith(" "):  # a figure of the scenario titled above it
            label = f"{' '.join(section.split(',')[0].split()[:4])}: {label}"
        what = f"{name}: {label}"
        unit = found["unit"]
        space = " " if unit == "MB" else ""
        value = float(found["value"])
        if found["op"] is None:  # a figure without a target: shown, neither met nor missed
            rows.append((what, f"{value:g}{space}{unit}", "none", None))
            continue
        target = float(found["target"])
        rows.append(
            (
                what,
                f"{value:g}{space}{unit}",
                f"{found['op']} {target:g}{space}{unit}",
                OPS[found["op"]](value, target),
            )
        )
    return rows


def main() -> None:
    """Run the benchmarks chosen, then print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer rounds")
    parser.add_argument("--only", default=",".join(BENCHMARKS))
    args = parser.parse_args()
    table: list[tuple[str, str, str, str]] = []
    for name in args.only.split(","):
        full, quick = BENCHMARKS[name]
        command = [sys.executable, str(HERE / f"{name}.py"), *(quick if args.quick else full)]
        print(f"running {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        took = time.perf_counter() - start
        if done.returncode != 0:
            table.append(
                (f"{name}: FAILED ({done.stderr.strip().splitlines()[-1:]})", "-", "-", "no")
            )
            continue
        print(done.stdout, file=sys.stderr)
        table.extend(
            (what, value, target, "-" if met is None else "yes" if met else "no")
            for what, value, target, met in rows_of(name, done.stdout)
        )
        print(f"  ({took:.0f} s)", file=sys.stderr)
    widths = [
        max(len(r[i]) for r in [("what", "ratio", "target", "met"), *table]) for i in range(4)
    ]
    for row in [("what", "ratio", "target", "met"), tuple("-" * w for w in widths), *table]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
