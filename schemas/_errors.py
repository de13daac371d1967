"""The one error type users catch for bad configuration."""

from __future__ import annotations


class SettingsError(ValueError):
    """Bad configuration: names the file, the profile and the field; never holds a secret.

    Attributes give the parts separately for programs: ``path``, ``profile``, ``field``.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        profile: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.profile = profile
        self.field = field
