"""The command line's own texts: every help wraps its paragraphs at the terminal's width (no line break of
the source shows), and `bench --version` says the version."""

from __future__ import annotations

import inspect

import pytest
from typer.testing import CliRunner

from bench import __version__
from syncbench.cli import app

COMMANDS = {c.name or c.callback.__name__: c.callback for c in app.registered_commands if c.callback}


def test_every_command_is_checked() -> None:
    assert set(COMMANDS) == {"run", "report", "compare", "simulate", "replay"}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_paragraphs_are_one_line_each_on_a_wide_terminal(name: str) -> None:
    doc = inspect.getdoc(COMMANDS[name]) or ""
    result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    for paragraph in doc.split("\n\n"):
        text = " ".join(paragraph.replace("`", "").split())
        # Each paragraph is shorter than 400 columns: one line, exactly as written, or a break showed up.
        assert any(text in line for line in lines), f"{name}: {text[:60]}… is broken over lines"


@pytest.mark.parametrize("width", [60, 100])
def test_help_wraps_at_the_terminals_width(width: int) -> None:
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": str(width)})
    widths = [len(line.rstrip()) for line in result.stdout.splitlines()]
    assert max(widths) <= width and max(widths) >= width - 10


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"syncbench {__version__}"
