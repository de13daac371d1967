"""Fields that OpenAI and Azure OpenAI share: their SDK clients are one family."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from schemas._base import ProviderSettings
from schemas._checks import plain_text, websocket_url


class OpenAIFamilySettings(ProviderSettings):
    """The base of `OpenAISettings` and `AzureOpenAISettings`: the fields their SDK clients share.

    Organization, project, websocket URL, admin key, webhook secret.
    """

    env_fallbacks: ClassVar[Mapping[str, str]] = {
        "admin_api_key": "OPENAI_ADMIN_KEY",
        "organization": "OPENAI_ORG_ID",
        "project": "OPENAI_PROJECT_ID",
        "webhook_secret": "OPENAI_WEBHOOK_SECRET",
    }

    organization: str | None = Field(None, description="Sent as OpenAI-Organization; else OPENAI_ORG_ID.")
    project: str | None = Field(None, description="Sent as OpenAI-Project; else OPENAI_PROJECT_ID.")
    websocket_base_url: str | None = Field(None, description="Base URL of the Realtime API's websocket.")
    admin_api_key: SecretStr | None = Field(None, description="Key for the admin API; else OPENAI_ADMIN_KEY.")
    webhook_secret: SecretStr | None = Field(
        None, description="Secret that verifies webhook signatures; else OPENAI_WEBHOOK_SECRET."
    )

    @field_validator("organization", "project")
    @classmethod
    def _check_ids(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else plain_text(value, str(info.field_name))

    @field_validator("websocket_base_url")
    @classmethod
    def _check_websocket_url(cls, value: str | None) -> str | None:
        return None if value is None else websocket_url(value)
