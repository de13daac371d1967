"""Errors the registry raises. Each says what to do; none holds a secret."""

from __future__ import annotations

from schemas import SettingsError


class RegistryError(RuntimeError):
    """Base class of the registry's own errors."""


class RegistryClosedError(RegistryError):
    """The registry was closed; it hands out no more clients."""


class UnsupportedEventLoopError(RegistryError):
    """An async client was used (or asked for) outside asyncio: trio and others are not supported."""


NoRunningLoopError = UnsupportedEventLoopError
"""Kept so ``except NoRunningLoopError`` keeps working: async clients no longer need a running
loop to be handed out, so this is now only the error for a non-asyncio event loop."""


class UnknownProfileError(SettingsError, KeyError):
    """A profile name that the loaded settings do not define."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class MissingCredentialsError(SettingsError):
    """A client was asked for, but its settings hold no api_key."""

    def __str__(self) -> str:
        return str(self.args[0])
