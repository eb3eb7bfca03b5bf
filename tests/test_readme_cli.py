"""The README's command reference and the CLI agree: every command is listed, every listed command and option exists.

The reference is written for people (several commands to a line, `a | b` for siblings), so it is parsed rather than
generated; this test is what keeps it true when a command or option changes.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from orchestrator.cli import cli

README = Path(__file__).resolve().parent.parent / "README.md"


def _reference_lines() -> list[str]:
    text = README.read_text(encoding="utf-8")
    block = text.split("## Commands", 1)[1].split("```", 2)[1]
    lines = [line for line in block.splitlines() if line.strip()]
    # The usage part of a line ends where two or more spaces start the description; continuation lines are prose.
    return [re.split(r"\s{2,}", line.strip())[0] for line in lines if not line.startswith(" " * 20)]


def _leaves(group: click.Group, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found = set()
    for name, command in group.commands.items():
        found |= _leaves(command, prefix + (name,)) if isinstance(command, click.Group) else {prefix + (name,)}
    return found


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group) and name in command.commands, f"README lists unknown command {path}"
        command = command.commands[name]
    return command


def _options(command: click.Command) -> set[str]:
    return {option for param in command.params for option in getattr(param, "opts", [])}


def _parse(lines: list[str]) -> dict[tuple[str, ...], set[str]]:
    """{command path: the --options the README shows with it}."""
    listed: dict[tuple[str, ...], set[str]] = {}
    for line in lines:
        path: tuple[str, ...] = ()
        for segment in line.split(" | "):
            words = segment.replace("[", " ").replace("]", " ").split()
            if words and not words[0].startswith("-") and words[0] in cli.commands:
                path = ()  # a new top-level command
            group: click.Command = _command(path[:-1]) if path else cli
            if words and not words[0].startswith("-") and isinstance(group, click.Group) \
                    and words[0] in group.commands and path:
                path = path[:-1]  # a sibling of the previous command: `dataset list | show SNAPSHOT`
            command: click.Command = _command(path)
            for word in words:
                if word.startswith("-"):
                    continue
                if isinstance(command, click.Group) and word in command.commands:
                    path += (word,)
                    command = command.commands[word]
                elif not path and word == "orchestrator":
                    continue
                else:
                    break
            options = {w.split("=")[0] for w in re.findall(r"--[a-z][a-z0-9-]*", segment)}
            listed.setdefault(path, set()).update(options)
    return listed


def problems(lines: list[str], *, every_command: bool = True) -> list[str]:
    """What is wrong with a command reference: unknown commands, unknown options, commands left out."""
    listed = _parse(lines)
    leaves = _leaves(cli)
    found = [f"not a command: orchestrator {' '.join(path)}" for path in sorted(set(listed) - leaves - {()})]
    for path in sorted(set(listed) & leaves):
        found += [f"`orchestrator {' '.join(path)}` has no option {option}"
                  for option in sorted(listed[path] - _options(_command(path)))]
    found += [f"global option {option} does not exist" for option in sorted(listed.get((), set()) - _options(cli))]
    if every_command:
        found += [f"missing from the reference: orchestrator {' '.join(path)}" for path in sorted(leaves - set(listed))]
    return found


def test_every_command_is_in_the_readme_and_every_listed_one_exists():
    assert problems(_reference_lines()) == []


def test_the_check_catches_wrong_options_commands_and_omissions():
    assert problems(["runs show RUN_ID [--jsn]", "runs shw RUN_ID", "orchestrator [--databse URL]"],
                    every_command=False) == [
        "not a command: orchestrator runs", "`orchestrator runs show` has no option --jsn",
        "global option --databse does not exist"]
    assert set(_parse(["dataset list | show SNAPSHOT | example DEST"])) == {
        ("dataset", "list"), ("dataset", "show"), ("dataset", "example")}
    assert "missing from the reference: orchestrator worker" in problems(_reference_lines()[:3])
