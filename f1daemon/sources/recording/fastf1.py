"""The lines of a FastF1 live-client recording: one Python literal a line, read with
`ast.literal_eval` (never `eval`)."""

from __future__ import annotations

import ast
import re

from f1daemon.sources.recording.framing import frame_arguments, plain, topic_in
from f1daemon.sources.recording.lines import (
    BLANK,
    ENCODING,
    SHAPE,
    SYNTAX,
    Ignored,
    LineOutcome,
    LineRejected,
    Messages,
    Quarantined,
    describe_value,
    is_utf8,
    keepable,
)

_FASTF1_TOPIC = re.compile(r"\A\[\s*(['\"])(?P<topic>[^'\"]{1,64})\1\s*[,\]]")
_NEVER_CLOSED = re.compile(r"'(.)' was never closed")
_BRACKETS = {"[": "list", "{": "dict", "(": "tuple"}


def parse_fastf1_line(text: str, line: int) -> LineOutcome:
    """The outcome of one line of a FastF1 live-client recording."""
    stripped = text.strip()
    if not stripped:
        return Ignored(line, BLANK)
    try:
        if not is_utf8(text):
            raise LineRejected(ENCODING, "not UTF-8: the text holds unpaired surrogates")
        value = _literal(stripped)
        if not isinstance(value, list):
            raise LineRejected(
                SHAPE, f"expected a list [topic, data, utc], got {describe_value(value)}"
            )
        return Messages(line, (frame_arguments(value, "", from_json=False),))
    except LineRejected as reject:
        topic = reject.topic or topic_in(_FASTF1_TOPIC, stripped)
        return Quarantined(line, reject.rule, reject.reason, topic, keepable(text))


def _literal(text: str) -> object:
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as error:
        raise LineRejected(SYNTAX, _syntax_reason(error, text)) from None
    except (ValueError, MemoryError, RecursionError, OverflowError) as error:
        raise LineRejected(SYNTAX, f"not a Python literal: {plain(error)}") from None
    try:
        return ast.literal_eval(tree)
    except ValueError:
        raise LineRejected(SYNTAX, f"not a Python literal: {_non_literal(tree)}") from None
    except (TypeError, MemoryError, RecursionError, OverflowError) as error:
        raise LineRejected(SYNTAX, f"not a Python literal: {plain(error)}") from None


def _syntax_reason(error: SyntaxError, text: str) -> str:
    message = error.msg or "invalid syntax"
    if never_closed := _NEVER_CLOSED.fullmatch(message):
        return f"truncated: unterminated {_BRACKETS.get(never_closed[1], never_closed[1])}"
    if message.startswith(("unterminated string literal", "unterminated triple-quoted")):
        return "truncated: unterminated string"
    message = message.split(";")[0]  # Python's hints (octal prefixes …) do not apply here
    if error.offset and 0 < error.offset <= len(text):
        near = text[error.offset - 1 : error.offset + 15]
        return f"not a Python literal: {message} at column {error.offset}, near {near!r}"
    return f"not a Python literal: {message}"


_LITERAL_NODES = (ast.Expression, ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.Load)
_ARITHMETIC_NODES = (ast.UnaryOp, ast.BinOp, ast.UAdd, ast.USub, ast.Add, ast.Sub)


def _non_literal(tree: ast.Expression) -> str:
    """What in a parsed expression is not a literal (deterministic: no object ids)."""
    for node in ast.walk(tree):
        if isinstance(node, _LITERAL_NODES):
            continue
        if isinstance(node, _ARITHMETIC_NODES):
            continue  # signed numbers and complex literals; literal_eval judges them
        column = getattr(node, "col_offset", None)
        where = f" at column {column + 1}" if isinstance(column, int) else ""
        return f"a {type(node).__name__} expression{where}"
    return "arithmetic that is not a number literal"
