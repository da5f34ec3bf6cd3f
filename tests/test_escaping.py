"""Names from plugins and paths reach a terminal without control characters and Markdown without live markup."""

import io
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from advbench.cli.app import app
from advbench.escape import markdown_text, terminal_text
from advbench.plugins import make_host, set_host
from tests.fixtures.hostile import models as hostile_models
from tests.fixtures.hostile.models import ANSI_NAME, HTML_NAME

CONTROLS = [chr(c) for c in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]]


@pytest.fixture
def run_dir(tmp_path):
    """A finished run of the two hostile-named models (sound linear classifiers)."""
    set_host(make_host(autoload=False, extra=[("hostile_models", hostile_models)]))
    result = CliRunner().invoke(app, ["run", "--models", f"{HTML_NAME},{ANSI_NAME}", "--attacks", "fgsm", "--eps", "0.1",
                                      "--n-samples", "4", "--device", "cpu", "--out", str(tmp_path), "--quiet",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    assert {r["model"] for r in json.loads(result.stdout)} == {HTML_NAME, ANSI_NAME}  # data keeps the names exactly
    return tmp_path


def _no_controls(text: str) -> None:
    assert not [c for c in text if c in CONTROLS], repr(text)


def test_markdown_board_has_no_live_html_and_keeps_its_columns(run_dir):
    md = CliRunner().invoke(app, ["leaderboard", str(run_dir), "--format", "md"]).stdout
    _no_controls(md)
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "evilred\\|\\`x\\`\\|" in md  # pipes and backticks escaped, the escapes and \r gone
    rows = md.strip().splitlines()
    cells = [len(row.replace("\\|", "").split("|")) for row in rows]
    assert len(set(cells)) == 1, rows  # no name adds a column to the pipe table


def test_markdown_long_views_are_escaped_too(run_dir):
    md = CliRunner().invoke(app, ["leaderboard", str(run_dir), "--format", "md", "--view", "transfer"]).stdout
    _no_controls(md)
    assert "<img" not in md and "&lt;img" in md


@pytest.mark.parametrize("command", [["leaderboard", "{run}"], ["list", "models"], ["leaderboard", "{run}", "--view", "transfer"]])
def test_terminal_output_has_no_control_characters(run_dir, command):
    result = CliRunner().invoke(app, [c.replace("{run}", str(run_dir)) for c in command])
    assert result.exit_code == 0, result.output
    _no_controls(result.stdout + result.stderr)
    assert "evilred" in result.stdout.replace("\n", "")


def test_progress_and_failure_lines_have_no_control_characters(tmp_path):
    set_host(make_host(autoload=False, extra=[("hostile_models", hostile_models)]))
    # a hostile name's progress lines and a refused model's failure line
    result = CliRunner().invoke(app, ["run", "--models", f"{ANSI_NAME},broken.nan", "--attacks", "fgsm", "--eps",
                                      "0.1", "--n-samples", "4", "--device", "cpu", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    _no_controls(result.stdout + result.stderr)
    assert "evilred" in result.stderr


def test_an_error_line_naming_a_hostile_name_has_no_control_characters(tmp_path):
    result = CliRunner().invoke(app, ["run", "--models", "nope\x1b[2J\rx", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 1
    _no_controls(result.stderr)


def test_csv_drops_control_characters_and_parses_back(run_dir):
    csv = CliRunner().invoke(app, ["leaderboard", str(run_dir), "--format", "csv"]).stdout
    _no_controls(csv.replace("\n", ""))
    assert set(pd.read_csv(io.StringIO(csv))["model"]) == {HTML_NAME, terminal_text(ANSI_NAME)}


@pytest.mark.parametrize("text,terminal,markdown", [
    ("\x1b[31mred\x1b[0m", "red", "red"),
    ("a\x1b]0;title\x07b", "ab", "ab"),  # an OSC sequence (sets the window title)
    ("a\x9b2Jb\rc\x08", "abc", "abc"),  # C1 CSI, carriage return, backspace
    ("line\nbreak\ttab", "line break tab", "line break tab"),
    ("<b>&</b>", "<b>&</b>", "&lt;b&gt;&amp;&lt;/b&gt;"),
    ("`code`|pipe\\", "`code`|pipe\\", "\\`code\\`\\|pipe\\\\"),
    ("cnn.mnist5k_std", "cnn.mnist5k_std", "cnn.mnist5k_std"),
])
def test_escapers(text, terminal, markdown):
    assert terminal_text(text) == terminal and markdown_text(text) == markdown


def test_terminal_text_can_keep_line_breaks():
    assert terminal_text("a\x1b[1m\nb", keep_newlines=True) == "a\nb"
