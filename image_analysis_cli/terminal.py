"""What the command prints about objects is text a stranger chose: S3 keys may hold any character.

A key with an escape sequence (``\\x1b]0;...``, ``\\x1b[2J``), a carriage return or a bidirectional override
could rewrite the operator's terminal or make one key look like another. Keys (and anything else that
comes from a bucket or the table) are printed through ``shown``, and JSON output through ``safe_json``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

# Besides the C0 and C1 control characters and DEL (category Cc): the characters that reorder or hide
# text (bidirectional controls, the Trojan Source set) and the Unicode line and paragraph separators.
_INVISIBLE = frozenset("\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _unsafe(char: str) -> bool:
    return char in _INVISIBLE or unicodedata.category(char) == "Cc"


def _escape(char: str) -> str:
    if char == "\\":
        return "\\\\"
    return char.encode("unicode_escape").decode("ascii")  # \n, \t, \x1b, \u202e


def shown(text: str) -> str:
    """``text`` as it may be printed: unchanged when it holds no control character, otherwise with every
    control character escaped (``\\n``, ``\\x1b``, ``\\u202e``) and backslashes doubled, so that the
    escaped form cannot be mistaken for a key that holds those characters literally."""
    if not any(_unsafe(c) for c in text):
        return text
    return "".join(_escape(c) if _unsafe(c) or c == "\\" else c for c in text)


# JSON escapes C0 characters itself; these it would print as they are (ensure_ascii=False keeps accents).
_JSON_UNSAFE = re.compile("[\x7f-\x9f" + "".join(sorted(_INVISIBLE)) + "]")


def safe_json(document: Any, **kwargs: Any) -> str:
    """``json.dumps`` with every control character written as a ``\\uXXXX`` escape: the same JSON value,
    safe on a terminal. (JSON's own syntax is ASCII: these characters can only be inside strings.)"""
    text = json.dumps(document, ensure_ascii=False, **kwargs)
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
