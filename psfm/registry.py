"""Name -> builder registries, so every model part is one config string away (timm's ``register_model`` idea).

Each registry holds builder callables. ``build(name, **kwargs)`` calls the builder; an unknown
name fails with the registered names and the closest match, so a config typo explains itself.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Builders of one kind of part (``kind`` appears in error messages: "teacher", "backbone", ...)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._builders: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(builder: Callable[..., T]) -> Callable[..., T]:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._builders[name] = builder
            return builder

        return decorator

    def names(self) -> list[str]:
        return sorted(self._builders)

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._builders:
            close = difflib.get_close_matches(name, self._builders, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise KeyError(f"unknown {self.kind} {name!r}{hint} (registered: {', '.join(self.names())})")
        return self._builders[name]

    def build(self, name: str, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)

    def __contains__(self, name: str) -> bool:
        return name in self._builders
