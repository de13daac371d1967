"""Keep credentials in URL queries out of the HTTP libraries' and SDKs' log lines.

httpx and httpx2 log every request at INFO (``HTTP Request: POST https://...?sig=... "HTTP/1.1
200 OK"``), and the SDKs log URLs at DEBUG, so a credential passed in ``default_query`` (an
Azure SAS ``sig``, a ``key`` parameter) would reach any application that shows INFO logs.
The first client built installs a filter on those loggers that replaces query values with
their fingerprint by the rule the canonical form uses: every value is fingerprinted unless its
name is known to be public (``api-version``, ...) and the value does not look like a
credential. Names a profile declares public (``public_query``) are still fingerprinted here:
the filter sees a URL, not the settings it came from. It runs only for records that are
emitted, so it costs nothing while those loggers are quiet.
"""

from __future__ import annotations

import logging
import os
import threading
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from schemas._canonical import public_value

LOGGERS = ("httpx", "httpx2", "openai._base_client", "groq._base_client", "cerebras.cloud.sdk._base_client")
"""The loggers that write request URLs."""

_installed = False
_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class QueryCredentialFilter(logging.Filter):
    """Rewrites URL arguments of a log record so that no query value holding a credential shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record's URL arguments in place; never drops a record."""
        args = record.args
        if isinstance(args, tuple) and args:
            redacted = tuple(_redacted_url(arg) for arg in args)
            if any(new is not old for new, old in zip(redacted, args, strict=True)):
                record.args = redacted
        return True


def _redacted_url(value: object) -> object:
    # httpx.URL / httpx2.URL, or a URL already rendered as text.
    if type(value).__name__ != "URL" and not isinstance(value, str):
        return value
    text = str(value)
    if "?" not in text or "://" not in text:
        return value
    try:
        parts = urlsplit(text)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return value
    if not query:
        return value
    redacted = [(name, public_value(name, v)) for name, v in query]
    if redacted == query:
        return value
    return urlunsplit(parts._replace(query=urlencode(redacted, safe=":")))


def hide_query_credentials() -> None:
    """Install `QueryCredentialFilter` on the loggers in `LOGGERS` (once per process)."""
    global _installed
    if _installed:
        return
    with _lock:
        if not _installed:
            shared = QueryCredentialFilter()
            for name in LOGGERS:
                # First: a filter added earlier (LiteLLM adds one to "httpx" on import) may fold the
                # URL into the message text, where this one no longer sees it.
                logging.getLogger(name).filters.insert(0, shared)
            _installed = True
