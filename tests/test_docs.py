"""The README documents every check, reason code, policy key and CLI command (datasette-style doc tests).

`python tests/test_docs.py --write` regenerates the README's generated tables from the code.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from verifier.appraise.catalog import CHECKS, REASONS
from verifier.appraise.policy import KEYS
from verifier.cli import COMMANDS, main

README = Path(__file__).resolve().parent.parent / "README.md"


def generated_tables() -> dict[str, str]:
    checks = ["| check | what it proves | default severity |", "|---|---|---|"]
    checks += [f"| `{c.id}` | {c.title} | {c.default_severity} |" for c in CHECKS]
    reasons = ["| reason code | meaning |", "|---|---|"] + [f"| `{k}` | {v} |" for k, v in REASONS.items()]
    policy = ["| key | type | default | meaning |", "|---|---|---|---|"]
    policy += [
        f"| `{k}` | {v.kind} | `{v.default!r}` | {v.doc} |" for k, v in KEYS.items() if not k.startswith("checks.")
    ]
    policy.append(
        "| `checks.<check id>` | severity | see the checks table | `required` (decides the verdict), `advisory` "
        "(reported only) or `off` (not run) |"
    )
    return {"checks": "\n".join(checks), "reasons": "\n".join(reasons), "policy": "\n".join(policy)}


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated: {name} -->\n)(.*?)(\n<!-- end: {name} -->)", re.S)


def rewrite(text: str) -> str:
    for name, table in generated_tables().items():
        text = _pattern(name).sub(lambda m, t=table: m.group(1) + t + m.group(3), text)
    return text


def test_readme_generated_tables_are_current() -> None:
    text = README.read_text()
    assert text == rewrite(text), "README tables are stale: run `python tests/test_docs.py --write`"


def test_readme_documents_every_check_reason_and_policy_key() -> None:
    text = README.read_text()
    missing = [c.id for c in CHECKS if f"`{c.id}`" not in text]
    missing += [r for r in REASONS if f"`{r}`" not in text]
    missing += [k for k in KEYS if not k.startswith("checks.") and f"`{k}`" not in text]
    assert not missing


def _commands() -> dict[str, click.Command]:
    """Every command of the lazy group, imported (``main.commands`` is empty: commands load on first use)."""
    ctx = click.Context(main)
    found = {name: main.get_command(ctx, name) for name in main.list_commands(ctx)}
    assert all(found.values()) and set(found) == set(COMMANDS)  # every lazily listed command loads
    return {name: cmd for name, cmd in found.items() if cmd is not None}


def test_readme_documents_every_cli_command() -> None:
    text = README.read_text()
    names = []
    for name, cmd in _commands().items():
        subs = getattr(cmd, "commands", None)
        names += [f"{name} {sub}" for sub in subs] if subs else [name]
    assert len(names) >= max(12, len(COMMANDS))
    assert [n for n in names if f"verifier {n}" not in text] == []


def test_every_cli_command_has_help_text() -> None:
    commands = _commands()
    assert commands and set(commands) == set(COMMANDS)
    for name, cmd in commands.items():
        assert cmd.help, name


if __name__ == "__main__" and "--write" in sys.argv:
    README.write_text(rewrite(README.read_text()))
