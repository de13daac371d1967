"""Small helpers shared by the registry tests."""

from __future__ import annotations

from typing import Any

from schemas import AzureOpenAISettings, CerebrasSettings, GroqSettings, OpenAISettings, ProviderSettings

MESSAGES: Any = [{"role": "user", "content": "hello"}]
API_VERSION = "2024-10-21"


def settings_for(provider: str, url: str, key: str = "sk-test", **extra: Any) -> ProviderSettings:
    """Settings of ``provider`` pointing at the fake server at ``url``."""
    if provider == "openai":
        return OpenAISettings(api_key=key, base_url=f"{url}/v1", **extra)
    if provider == "azure_openai":
        return AzureOpenAISettings(
            api_key=key, azure_endpoint=url, azure_deployment="dep", api_version=API_VERSION, **extra
        )
    if provider == "groq":
        return GroqSettings(api_key=key, base_url=url, **extra)
    if provider == "cerebras":
        return CerebrasSettings(api_key=key, base_url=url, **extra)
    raise ValueError(provider)


PROVIDERS = ["openai", "azure_openai", "groq", "cerebras"]


def chat(client: Any) -> str:
    """One chat completion; returns the reply text."""
    reply = client.chat.completions.create(model="dep", messages=MESSAGES)
    return str(reply.choices[0].message.content)


async def achat(client: Any) -> str:
    """One async chat completion; returns the reply text."""
    reply = await client.chat.completions.create(model="dep", messages=MESSAGES)
    return str(reply.choices[0].message.content)
