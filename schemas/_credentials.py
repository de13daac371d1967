"""Telling text that looks like a credential from text that does not.

Used wherever clientreg might echo or store something a user typed: a value that looks like a
key is fingerprinted in the canonical form and never quoted in a message, whatever field or
header it was put in. It is a heuristic with a bias: a false alarm costs a hidden value, a
miss costs a leaked key.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache
from itertools import pairwise

# Prefixes providers give their keys, with enough of a body after them that a word such as
# "sk-team" is not taken for one. Matched anywhere in the text, at a word start.
_KEY_PATTERNS = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"sk-[A-Za-z0-9_\-]{8,}"  # OpenAI (sk-, sk-proj-, sk-svcacct-), Anthropic (sk-ant-), DeepSeek, ...
    r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{8,}"  # Stripe secret and restricted keys
    r"|gsk_[A-Za-z0-9]{8,}"  # Groq
    r"|csk-[A-Za-z0-9]{8,}"  # Cerebras
    r"|xai-[A-Za-z0-9]{8,}"  # xAI
    r"|AIza[0-9A-Za-z_\-]{20,}"  # Google API keys
    r"|gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{16,}"  # GitHub tokens
    r"|glpat-[A-Za-z0-9_\-]{16,}"  # GitLab
    r"|xox[abposr]-[A-Za-z0-9\-]{8,}"  # Slack
    r"|hf_[A-Za-z0-9]{16,}"  # Hugging Face
    r"|r8_[A-Za-z0-9]{16,}"  # Replicate
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key ids
    r"|eyJ[A-Za-z0-9_\-]{2,}\.[A-Za-z0-9_\-]{2,}\.[A-Za-z0-9_\-]*"  # a JWT: base64url JSON header, payload, signature
    r")"
)
# An HTTP credential with its scheme ("Bearer <token>", "Basic <base64>"), and PEM key blocks.
_SCHEMES = re.compile(r"(?i)(?<![A-Za-z0-9])(?:bearer|basic|digest|token)\s+[^\s,]{8,}|PRIVATE KEY-----")
# Candidates for "a long random string": runs of the characters keys and tokens are made of.
_RUNS = re.compile(r"[A-Za-z0-9+/=_\-]{20,}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_MIN_RUN = 20


def looks_like_credential(text: str) -> bool:
    """Return True when ``text`` holds something that looks like a key, token or password.

    Recognised: providers' key prefixes (``sk-``, ``sk-proj-``, ``gsk_``, ``csk-``, ``xai-``,
    ``AIza``, ``ghp_``, ``xoxb-``, ``AKIA``, ...), JWTs, ``Bearer``/``Basic`` credentials,
    PEM private keys, and long high-entropy strings (20+ characters of mixed letters and
    digits changing class often, as random keys do and names do not). UUIDs in their usual
    8-4-4-4-12 form are taken for identifiers (request and tenant ids), not credentials.
    """
    if len(text) < 8:
        return False
    return _looks_like_credential(text) if len(text) <= 4096 else _scan(text)


@lru_cache(maxsize=2048)  # the same header values and names are checked over and over
def _looks_like_credential(text: str) -> bool:
    return _scan(text)


def _scan(text: str) -> bool:
    if _KEY_PATTERNS.search(text) or _SCHEMES.search(text):
        return True
    return any(_is_random(run) for run in _RUNS.findall(text))


def _is_random(run: str) -> bool:
    if _UUID.fullmatch(run):
        return False
    letters_and_digits = [c for c in run if c.isalnum()]
    if len(letters_and_digits) < _MIN_RUN:
        return False
    classes = {_class(c) for c in letters_and_digits}
    if len(classes) < 2:  # all lower case, all digits: words and numbers, not keys
        return False
    # Random text changes between lower case, upper case and digits about every other
    # character; identifiers ("TEAM_B_OPENAI_KEY_2024", "myServiceAccountName") rarely do.
    # A capital followed by lower case is the start of a word, not a change.
    changes = sum(1 for a, b in pairwise(run) if _changes_class(a, b))
    if changes < 0.25 * (len(letters_and_digits) - 1):
        return False
    counts = Counter(run)
    entropy = -sum(n / len(run) * math.log2(n / len(run)) for n in counts.values())
    return entropy >= 3.0


def _changes_class(a: str, b: str) -> bool:
    if not (a.isalnum() and b.isalnum()):
        return False
    first, second = _class(a), _class(b)
    return first != second and not (first == 2 and second == 1)


def _class(c: str) -> int:
    return 0 if c.isdigit() else 1 if c.islower() else 2
