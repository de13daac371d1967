"""Errors the registry raises. Each says what to do; none holds a secret."""

from __future__ import annotations

from schemas import SettingsError


class RegistryError(RuntimeError):
    """Base class of the registry's own errors."""


class RegistryClosedError(RegistryError):
    """The registry was closed; it hands out no more clients."""


class NoRunningLoopError(RegistryError):
    """``get_async_client`` was called outside a running event loop."""


class UnknownProfileError(SettingsError, KeyError):
    """A profile name that the loaded settings do not define."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class MissingCredentialsError(SettingsError):
    """A client was asked for, but its settings hold no api_key."""

    def __str__(self) -> str:
        return str(self.args[0])
