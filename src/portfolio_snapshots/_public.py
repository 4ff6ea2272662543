"""Give public names their public module, so reprs, tracebacks and generated docs show it."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


def publish(module: str, namespace: Mapping[str, object], names: Iterable[str]) -> None:
    """Set ``__module__`` of each class and function among `names` in `namespace` to `module`.

    Constants and type aliases have no ``__module__`` of their own and are left as they are.
    """
    for name in names:
        obj = namespace[name]
        if inspect.isclass(obj) or inspect.isfunction(obj):
            obj.__module__ = module
