"""README keeps exactly two set-up commands at its top, and CI runs the second one's test command."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_opens_with_two_commands_and_ci_runs_the_test_command():
    text = (ROOT / "README.md").read_text().splitlines()
    assert text[0] == "```bash"
    end = text.index("```", 1)
    commands = text[1:end]
    assert len(commands) == 2
    assert "examples/insteval.py" in commands[0]
    install, test_command = commands[1].rsplit(" && ", 1)
    assert 'pip install -e ".[test]"' in install
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci
    assert 'pip install -e ".[test]"' in ci
