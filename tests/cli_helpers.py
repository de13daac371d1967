"""Running the real ``clientreg`` console script, and seeding index files through KeyIndex."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.index import ConfigUse, KeyIndex
from schemas import OpenAISettings

CLIENTREG = Path(sys.executable).with_name("clientreg")
REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "settings.example.toml"
HOUR = 3600.0
DAY = 86400.0


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def clientreg(*args: str | os.PathLike[str], cwd: Path, env: dict[str, str] | None = None) -> Result:
    """Run the console script with the test's (already scrubbed) environment plus ``env``."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(
        [str(CLIENTREG), *map(str, args)], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


def _hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class Seeded:
    """What `seed_index` wrote: the hashes by name, and the times used."""

    path: Path
    hashes: dict[str, str]
    now: float


def seed_index(path: Path, now: float) -> Seeded:
    """Write five configs with known times, profiles, uses; two of them share a 4-digit prefix.

    old      openai  first/last seen 40 days ago, profile "legacy", 3 uses
    fast     openai  2 days ago -> 1 hour ago, profile "fast", 10 uses (timeout 30)
    slow     openai  1 day ago -> 10 minutes ago, profile "fast" then (drift) -> same, 4 uses (timeout 60)
    twin_a   groq    5 hours ago, no profile (hash starts "abcd")
    twin_b   groq    4 hours ago, profile "batch" (hash starts "abcd")
    """
    fast = OpenAISettings(api_key="sk-seed-fast-key-000000", timeout=30).canonical_dict()
    slow = OpenAISettings(api_key="sk-seed-slow-key-111111", timeout=60, max_retries=5).canonical_dict()
    old = OpenAISettings(api_key="sk-seed-old-key-222222", base_url="https://old.example/v1").canonical_dict()
    groq = {**fast, "provider": "groq"}
    hashes = {
        "old": _hash(old),
        "fast": _hash(fast),
        "slow": _hash(slow),
        "twin_a": "abcd0" + "1" * 59,
        "twin_b": "abcd9" + "2" * 59,
    }
    uses = [
        ConfigUse(hashes["old"], "openai", old, "legacy", now - 40 * DAY, uses=3, kind="built"),
        ConfigUse(hashes["fast"], "openai", fast, "fast", now - 2 * DAY, uses=4, kind="built"),
        ConfigUse(hashes["slow"], "openai", slow, "fast", now - 1 * DAY, uses=4, kind="built"),
        ConfigUse(hashes["fast"], "openai", fast, "fast", now - HOUR, uses=6, kind="built"),
        ConfigUse(hashes["twin_a"], "groq", groq, None, now - 5 * HOUR, uses=1, kind="built"),
        ConfigUse(hashes["twin_b"], "groq", {**groq, "max_retries": 9}, "batch", now - 4 * HOUR, uses=2, kind="built"),
    ]
    with KeyIndex(path) as index:
        for use in uses:  # one batch each: drift is detected against what was written before
            index.apply([use])
        index.apply([ConfigUse(hashes["slow"], "openai", slow, "fast", now - 600, uses=0)])
    return Seeded(path, hashes, now)
