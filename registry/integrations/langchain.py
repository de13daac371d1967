"""LangChain chat models on registry clients: the client arguments, sync and async, in one call.

LangChain's ``ChatOpenAI`` and ``AzureChatOpenAI`` hold four client objects. Given only some of
them, they build the rest themselves: given ``client=`` / ``root_client=`` alone, a model makes
its own ``AsyncOpenAI`` (its own connection pool, its key from ``OPENAI_API_KEY``, its URL from
the environment) for ``ainvoke`` and ``astream``. `langchain_kwargs` gives all of them from one
configuration, so both sides share the registry's clients and pools.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry._registry import Registry
    from schemas import ProviderSettings


def langchain_kwargs(what: ProviderSettings | str, *, registry: Registry | None = None) -> dict[str, Any]:
    """Return the client keyword arguments of a LangChain chat model, from registry clients.

    >>> model = ChatOpenAI(model="gpt-4o", **langchain_kwargs(OpenAISettings(api_key_env="TEAM_KEY")))
    >>> model = AzureChatOpenAI(**langchain_kwargs("azure-prod"))            # a profile name
    >>> model = ChatGroq(model="llama-3.3-70b-versatile", **langchain_kwargs(GroqSettings()))

    OpenAI and Azure OpenAI settings give the four arguments of ``ChatOpenAI`` and
    ``AzureChatOpenAI``: ``root_client`` and ``root_async_client`` (the registry's sync and
    async clients) and ``client`` / ``async_client`` (their ``chat.completions``). Groq settings
    give the two of ``ChatGroq``: ``client`` and ``async_client``. The clients come from
    ``registry`` (the process-wide default registry when None); the async one works on every
    event loop, so the model can be built at import time and used from any ``asyncio.run()``.

    The model then takes its key, URL, timeout, retries and headers from the clients, not from
    its own arguments (``api_key=``, ``base_url=``, ``max_retries=`` are ignored by LangChain
    once clients are given): put them in the settings.

    Raises TypeError for Cerebras settings: LangChain's ``ChatCerebras`` is built on the openai
    SDK, so give it ``OpenAISettings(base_url="https://api.cerebras.ai/v1", ...)`` instead.
    """
    if registry is None:
        from registry._default import default_registry

        registry = default_registry()
    settings = registry._profile(what) if isinstance(what, str) else what
    provider = settings.provider
    if provider == "cerebras":
        raise TypeError(
            "langchain_kwargs: LangChain's ChatCerebras is built on the openai SDK, not the Cerebras SDK; "
            "describe the endpoint with OpenAISettings(base_url='https://api.cerebras.ai/v1', "
            "api_key_env='CEREBRAS_API_KEY') and pass those settings instead"
        )
    client = registry.get_client(what)
    async_client = registry.get_async_client(what)
    arguments: dict[str, Any] = {
        "client": client.chat.completions,
        "async_client": async_client.chat.completions,
    }
    if provider != "groq":  # ChatGroq has no root clients; ChatOpenAI and AzureChatOpenAI use them
        arguments["root_client"] = client
        arguments["root_async_client"] = async_client
    return arguments
