"""Typed, frozen settings for LLM SDK clients, their canonical form and ``config_hash``.

>>> from schemas import OpenAISettings
>>> OpenAISettings(api_key="sk-...", timeout=30).config_hash  # 64 hex digits

This package holds data only and imports no provider SDK. ``load_settings`` (and the
pydantic-settings machinery behind it) is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schemas._base import ProviderSettings, TimeoutParts
from schemas._canonical import FORM_VERSION, fingerprint, fingerprint_key_id
from schemas._errors import SettingsError
from schemas.azure_openai import AzureOpenAISettings
from schemas.cerebras import CerebrasSettings
from schemas.groq import GroqSettings
from schemas.openai import OpenAISettings

if TYPE_CHECKING:
    from schemas._loader import IndexSettings, RegistrySettings, load_settings

__all__ = [
    "FORM_VERSION",
    "AzureOpenAISettings",
    "CerebrasSettings",
    "GroqSettings",
    "IndexSettings",
    "OpenAISettings",
    "ProviderSettings",
    "RegistrySettings",
    "SettingsError",
    "TimeoutParts",
    "fingerprint",
    "fingerprint_key_id",
    "load_settings",
]

_LAZY = {"IndexSettings", "RegistrySettings", "load_settings"}


def __getattr__(name: str) -> Any:
    # pydantic-settings costs ~260 ms to import; only code that loads a file pays for it.
    if name in _LAZY:
        from schemas import _loader

        return getattr(_loader, name)
    raise AttributeError(f"module 'schemas' has no attribute {name!r}")
