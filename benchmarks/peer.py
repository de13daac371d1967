"""The real peer: Langroid's own ``client_cache.py``, loaded from its published wheel.

The wheel is fetched once with ``pip download langroid==VERSION --no-deps`` into a cache
directory (``$CLIENTREG_BENCH_CACHE``, else ``$XDG_CACHE_HOME/clientreg-benchmarks``, else
``~/.cache/clientreg-benchmarks``) and checked against a pinned SHA-256. The module is then
executed straight from the wheel, so the code compared is Langroid's, not a copy.

``client_cache.py`` imports openai, groq, cerebras and ``langroid.language_models.httpx_compat``
(which picks httpx or httpx2 by the installed openai's major version). That module is loaded
from the same wheel. The only stand-ins are the two parent packages, ``langroid`` and
``langroid.language_models``, given as empty packages: their real ``__init__`` imports the
whole framework and its dependencies, none of which the client cache uses. They are present
in ``sys.modules`` only while the two files execute.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VERSION = "0.69.16"
WHEEL = f"langroid-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "42a84ec25f454865a8e4fb4dd051040047d020299915d98e7b71b1544e756de2"
PACKAGE = "langroid.language_models"
FILES = ("httpx_compat", "client_cache")  # loaded in this order, from the wheel
NAME = f"Langroid {VERSION}"


class PeerUnavailable(Exception):
    """The wheel could not be fetched, verified or loaded; the message says why."""


@dataclass(frozen=True)
class Peer:
    """Langroid's client cache module, and where it was loaded from."""

    module: Any
    wheel: Path

    def clear(self) -> None:
        """Forget and close every client Langroid cached (between rounds; harness use only)."""
        cache = self.module._client_cache
        with self.module._client_cache_lock:
            clients = [client for client, _ in cache.values()]
            cache.clear()
        for client in clients:
            close = getattr(client, "close", None)
            if close is not None and not _is_coroutine_function(close):
                close()

    async def aclose_async(self) -> None:
        """Close the async clients Langroid cached (from inside their running loop; harness use only)."""
        with self.module._client_cache_lock:
            clients = [client for client, _ in self.module._client_cache.values()]
        for client in clients:
            close = getattr(client, "close", None)
            if close is not None and _is_coroutine_function(close):
                await close()


def _is_coroutine_function(function: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(function)


def cache_dir() -> Path:
    """Where the wheel is kept between runs."""
    explicit = os.environ.get("CLIENTREG_BENCH_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "clientreg-benchmarks"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wheel_path(*, fetch: bool) -> Path:
    """The verified wheel, downloaded first if ``fetch`` and it is not cached yet."""
    directory = cache_dir()
    path = directory / WHEEL
    if not path.exists():
        if not fetch:
            raise PeerUnavailable(f"{WHEEL} is not in {directory} and fetching is off (--no-fetch)")
        directory.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", f"langroid=={VERSION}", "--no-deps"]
        command += ["--only-binary=:all:", "--disable-pip-version-check", "-q", "-d", str(directory)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PeerUnavailable(f"pip download langroid=={VERSION} failed: {type(exc).__name__}") from None
        if done.returncode != 0 or not path.exists():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise PeerUnavailable(f"pip download langroid=={VERSION} failed: {last[:200]}")
    digest = _sha256(path)
    if digest != WHEEL_SHA256:
        raise PeerUnavailable(f"{path} has sha256 {digest[:16]}..., not the pinned {WHEEL_SHA256[:16]}...")
    return path


def load(*, fetch: bool = True) -> Peer:
    """Langroid's ``client_cache`` module, executed from the pinned wheel."""
    path = wheel_path(fetch=fetch)
    try:
        with zipfile.ZipFile(path) as wheel:
            sources = {name: wheel.read(f"{PACKAGE.replace('.', '/')}/{name}.py") for name in FILES}
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise PeerUnavailable(f"cannot read {PACKAGE} from {path}: {type(exc).__name__}") from None

    stand_ins = {"langroid": types.ModuleType("langroid"), PACKAGE: types.ModuleType(PACKAGE)}
    for package in stand_ins.values():
        package.__path__ = []  # a package with nothing on disk: only what is loaded below
    names = [*stand_ins, *(f"{PACKAGE}.{name}" for name in FILES)]
    saved = {name: sys.modules[name] for name in names if name in sys.modules}
    sys.modules.update(stand_ins)
    loaded: dict[str, types.ModuleType] = {}
    try:
        for name, source in sources.items():
            module = types.ModuleType(f"{PACKAGE}.{name}")
            module.__file__ = f"{path}/{PACKAGE.replace('.', '/')}/{name}.py"
            module.__package__ = PACKAGE
            sys.modules[module.__name__] = module
            exec(compile(source, module.__file__, "exec"), module.__dict__)
            loaded[name] = module
    except ImportError as exc:
        raise PeerUnavailable(f"Langroid's client_cache needs {exc.name or exc}: not installed") from None
    finally:
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
    return Peer(loaded["client_cache"], path)
