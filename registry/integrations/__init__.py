"""Registry clients for agent frameworks: small helpers where a framework needs several objects.

Most frameworks take one SDK client, and the recipe is one line (see docs/integrations.md).
LangChain's chat models take four, built consistently here:

>>> from registry.integrations import langchain_kwargs
>>> model = ChatOpenAI(model="gpt-4o", **langchain_kwargs(settings))

One module per framework. None of them imports its framework, so importing this package
stays as light as ``import registry``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.integrations.langchain import langchain_kwargs

__all__ = ["langchain_kwargs"]

_EXPORTS = {"langchain_kwargs": "registry.integrations.langchain"}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'registry.integrations' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
