"""The core never imports an integration's framework: typer, rich and matplotlib stay optional."""

from __future__ import annotations

import subprocess
import sys

# Imports every module of the package outside `integrations` (and the SQLAlchemy adapter,
# which has its own extra), found on disk so that no integration package gets imported.
CODE = """
import importlib, pathlib, sys
import portfolio_snapshots as ps
root = pathlib.Path(ps.__file__).parent
names = []
for path in sorted(root.rglob("*.py")):
    parts = path.relative_to(root.parent).with_suffix("").parts
    if "integrations" in parts or parts[-1] in ("sqlalchemy", "__main__"):
        continue
    names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
for name in names:
    importlib.import_module(name)
frameworks = ("typer", "rich", "matplotlib", "click")
print(len(names), [m for m in frameworks if m in sys.modules])
"""


def test_the_core_and_its_adapters_import_without_the_cli_or_plot_frameworks() -> None:
    """Every module outside the integrations imports without typer, rich or matplotlib."""
    result = subprocess.run(  # noqa: S603 - this interpreter, our own code
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=True, timeout=120
    )
    count, loaded = result.stdout.split(" ", 1)
    assert int(count) > 30
    assert loaded.strip() == "[]"
