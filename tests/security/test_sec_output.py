"""What tasks, files and folder names hold is printed as written: no rich markup parsed from it,
no terminal escape sequence passed to the terminal."""

from __future__ import annotations

import textwrap

import pytest

from hsm_snake.cli.display import markup_safe, printable

# A script whose last stderr line holds rich markup and terminal escape sequences (clear the screen,
# retitle the window, an OSC 8 link, a cursor move), then fails.
NOISY_SCRIPT = textwrap.dedent(
    r"""
    import sys
    sys.stderr.write("\x1b[2J\x1b]0;owned title\x07\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\\n")
    sys.stderr.write("ValueError: bad [/dim] value [bold red]x[/] \x1b[1A\x1b[31mred\x1b[0m\n")
    sys.exit(1)
    """
)


@pytest.fixture
def noisy(project):
    (project.root / "noisy.py").write_text(NOISY_SCRIPT)
    project.write_project({"paths": {"train_script": "noisy.py"}})
    project.write_sweep({"grid": {"x": [1]}})
    return project


def assert_shown_as_written(output: str) -> None:
    assert "\x1b" not in output and "\x07" not in output and "\x9b" not in output
    assert "bad [/dim] value [bold red]x[/]" in output


def test_run_prints_a_failed_tasks_stderr_markup_as_written_and_strips_escapes(noisy):
    result = noisy.cli("run", "sweep.yaml", "--sweep-id", "s", expect=1)
    assert_shown_as_written(result.output)


@pytest.mark.parametrize("command", ["errors", "missing", "status"])
def test_monitor_commands_print_stderr_as_written_without_escapes(noisy, command):
    noisy.cli("run", "sweep.yaml", "--sweep-id", "s", expect=1)
    args = [command, "s"] + (["--tasks"] if command == "status" else [])
    result = noisy.cli(*args, expect=None)
    assert result.exit_code in (0, 1), result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    if command == "errors":
        assert_shown_as_written(result.output)


@pytest.mark.parametrize("folder", ["proj [/dim] x", "proj [bold]y[/bold]", "proj\x1b[2Jz"])
def test_a_project_folder_whose_name_holds_markup_or_escapes_is_printed_as_written(
    project, tmp_path, monkeypatch, folder
):
    root = tmp_path / folder  # '[/dim]' in a path: a folder 'proj [' holding a folder 'dim] x'
    root.mkdir(parents=True)
    (root / "echo.py").write_text((project.root / "echo.py").read_text())
    (root / "hsm.yaml").write_text((project.root / "hsm.yaml").read_text())
    (root / "sweep.yaml").write_text("grid:\n  x: [1]\n")
    monkeypatch.chdir(root)
    result = project.cli("run", "sweep.yaml", "--sweep-id", "s")
    assert printable(str(root / "sweeps" / "outputs" / "s")) in result.output.replace("\n", "")
    assert "\x1b" not in result.output


def test_printable_strips_every_kind_of_terminal_control():
    text = "a\x1b[31mb\x1b]0;t\x07c\x1b]8;;u\x1b\\d\x9b2Je\x07f\x08g\rh\ti\nj\x1bPk"
    assert printable(text) == "abcdefgh\ti\njk"
    assert markup_safe("[/dim]") == "\\[/dim]"
