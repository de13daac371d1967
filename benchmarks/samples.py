"""Rewrite the README's audit-workflow sample from a real run of the commands it shows.

    python -m benchmarks.samples          # rewrite the block in README.md
    python -m benchmarks.samples --print  # print it instead

The commands run through the installed ``clientreg`` console script, from the repository root,
as on a fresh machine: an empty home directory (so an empty data directory and index), and no
API key or ``CLIENTREG_*`` variable in the environment. Long lines and long tables are cut at
``...``, and the temporary home is shown as ``~``. The sentence listing the commands that take
``--json`` is written from each command's own ``--help``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.report import replace_block

ROOT = Path(__file__).resolve().parent.parent
CONSOLE_SCRIPT = Path(sys.executable).with_name("clientreg")
BEGIN = "<!-- samples begin: written by `python -m benchmarks.samples`, do not edit by hand -->"
END = "<!-- samples end -->"
JSON_BEGIN = "<!-- json-commands begin -->"
JSON_END = "<!-- json-commands end -->"
WIDTH = 110
HASH = re.compile(r"\b[0-9a-f]{12}\b")


def _environment(home: str) -> dict[str, str]:
    """The caller's environment less every API key and clientreg variable, with an empty home."""
    keep = {}
    for name, value in os.environ.items():
        if name.startswith("CLIENTREG_") or name.endswith(("_API_KEY", "_AD_TOKEN", "_ADMIN_KEY", "_WEBHOOK_SECRET")):
            continue
        if name.startswith(("XDG_", "OPENAI_", "AZURE_OPENAI_", "GROQ_", "CEREBRAS_")):
            continue
        keep[name] = value
    keep["HOME"] = home
    return keep


def _run(command: str, env: dict[str, str], home: str) -> str:
    """The command's output (stderr, then stdout, as a terminal would show them), home shown as ``~``."""
    extra = {}
    words = command.split()
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        extra[name] = value
    words[0] = str(CONSOLE_SCRIPT)
    done = subprocess.run(words, cwd=ROOT, env={**env, **extra}, capture_output=True, text=True, timeout=120)
    return (done.stderr + done.stdout).replace(home, "~").rstrip("\n")


def _cut(text: str, head: int, tail: int = 0) -> str:
    """Lines cut at WIDTH; past ``head + tail`` lines, the first ``head``, ``...``, the last ``tail``."""
    lines = [line if len(line) <= WIDTH else line[: WIDTH - 3] + "..." for line in text.splitlines()]
    if len(lines) > head + tail:
        lines = [*lines[:head], "...", *(lines[-tail:] if tail else [])]
    return "\n".join(lines)


def render_sample() -> str:
    """The console block: each command as the README shows it, then its real (cut) output."""
    with tempfile.TemporaryDirectory(prefix="clientreg-sample-") as home:
        env = _environment(home)
        parts: list[str] = []

        def show(command: str, head: int, tail: int = 0) -> str:
            output = _run(command, env, home)
            parts.append(f"$ {command}\n{_cut(output, head, tail)}")
            return output

        show("clientreg check settings.example.toml", 13)
        first = show("clientreg warm settings.example.toml", 4, 2)
        second = show("CLIENTREG_PROFILES__LOCAL__TIMEOUT=60 clientreg warm settings.example.toml", 5, 2)
        show("clientreg history", 8)
        old, new = _built_hash(first), _built_hash(second)
        if old and new:
            show(f"clientreg show {old[:4]}", 11, 4)
            show(f"clientreg diff {old[:4]} {new[:4]}", 8)
        show("clientreg prune --older-than 30d --dry-run", 4)
    return "```console\n" + "\n\n".join(parts) + "\n```"


def _built_hash(warm_output: str) -> str | None:
    for line in warm_output.splitlines():
        if line.rstrip().endswith("built"):
            found = HASH.search(line)
            if found:
                return found.group(0)
    return None


def json_commands() -> list[str]:
    """The commands whose ``--help`` offers ``--json``, in the order ``clientreg --help`` lists them."""
    listing = subprocess.run([str(CONSOLE_SCRIPT), "--help"], capture_output=True, text=True, timeout=60).stdout
    block = re.search(r"\{([a-z,\-]+)\}", listing)
    names = block.group(1).split(",") if block else re.findall(r"^\s{4}([a-z][a-z\-]+)\s", listing, re.MULTILINE)
    found = []
    for name in names:
        text = subprocess.run([str(CONSOLE_SCRIPT), name, "--help"], capture_output=True, text=True, timeout=60)
        if "--json" in text.stdout:
            found.append(name)
    return found


def render_json_sentence() -> str:
    names = [f"`{name}`" for name in json_commands()]
    listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)
    return f"{JSON_BEGIN}{listed} take `--json`{JSON_END}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.samples", description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print the sample instead of rewriting README.md")
    args = parser.parse_args(argv)
    if not CONSOLE_SCRIPT.exists():
        parser.error(f"no clientreg console script next to {sys.executable}: pip install -e '.[dev]' first")
    sample = render_sample()
    sentence = render_json_sentence()
    if args.print:
        print(sample)
        print(sentence)
        return 0
    readme = ROOT / "README.md"
    text = replace_block(readme.read_text(), BEGIN, END, f"{BEGIN}\n{sample}\n{END}")
    text = replace_block(text, JSON_BEGIN, JSON_END, sentence)
    readme.write_text(text)
    print(f"sample written to {readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
