"""Text from plugins and file paths made safe to show: no terminal control sequences, no Markdown/HTML markup.

Model, attack and dataset names come from third-party plugins, and paths from the user: a name such as
``"\\x1b[31m..."`` would recolour (or, with cursor movement and ``\\r``, rewrite) the terminal, and
``"<img src=x onerror=...>"`` would be live HTML in a Markdown leaderboard pasted into a web page.
"""

from __future__ import annotations

import re

#: ANSI escape sequences: CSI (``ESC [ ... final``), OSC (``ESC ] ... BEL`` or ``ESC \\``), other two-character
#: escapes; and their single-character C1 forms (CSI = U+009B, OSC = U+009D).
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[@-Z\\-_]"
)
#: What is left of the C0 and C1 control characters (and DEL) after the sequences are gone.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile(r"[\n\t]")


def terminal_text(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` without ANSI escape sequences and control characters (``\\r``, ``\\b``, BEL, C1 ...).

    Args:
        keep_newlines: keep ``\\n`` and ``\\t`` (a multi-line message); else they become spaces (a table cell).
    """
    out = _CONTROLS.sub("", _ESCAPES.sub("", str(text)))
    return out if keep_newlines else _LINE_BREAKS.sub(" ", out)


def markdown_text(text: object) -> str:
    """``text`` as one inert Markdown table cell: controls stripped, HTML (``& < >``) as entities, backticks
    and pipes backslash-escaped, line breaks as spaces."""
    out = terminal_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return out.replace("\\", "\\\\").replace("`", "\\`").replace("|", "\\|")


__all__ = ["markdown_text", "terminal_text"]
