"""Located problems: pydantic's errors as TOML paths with a line and a hint."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from gateway.errors import ConfigIssue

_HINTS: dict[str, str] = {
    "extra_forbidden": "remove it or fix its spelling; config/README.md lists every field",
    "missing": "add it; config/README.md describes it",
    "literal_error": "use one of the values listed",
    "int_parsing": "write a whole number",
    "int_type": "write a whole number without quotes or a decimal point, e.g. 5000",
    "float_parsing": "write a number",
    "float_type": "write a number without quotes, e.g. 0.5",
    "greater_than_equal": "raise the value",
    "less_than_equal": "lower the value",
    "bool_type": "write true or false, without quotes",
    "bool_parsing": "write true or false",
    "string_type": "write a quoted string",
    "list_type": 'write an array, e.g. ["a", "b"]',
    "dict_type": "write a table",
}


def _pydantic_issues(
    exc: ValidationError, locator: TomlLocator, prefix: tuple[Any, ...] = ()
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        loc = _dotted(_strip_union_tags([*prefix, *err["loc"]]))
        msg = str(err["msg"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        hint = _HINTS.get(err["type"], "config/README.md describes this field and its values")
        if " (hint: " in msg:
            msg, _, rest = msg.partition(" (hint: ")
            hint = rest.removesuffix(")")
        if (loc, msg) in seen:
            continue
        seen.add((loc, msg))
        issues.append(ConfigIssue(loc or "(top level)", msg, hint, locator.line_of(loc)))
    return issues


_UNION_TAGS = frozenset({"int", "str", "float", "bool"})


def _strip_union_tags(loc: Sequence[Any]) -> list[Any]:
    # pydantic inserts union members and validator wrappers into locations
    # ("int", "constrained-int", "function-after[...]"); users know only TOML paths.
    return [
        p
        for p in loc
        if not (
            isinstance(p, str) and (p in _UNION_TAGS or p.startswith(("function-", "constrained-")))
        )
    ]


def _dotted(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class TomlLocator:
    """Finds the line of a dotted TOML path (``map[1].codec``) in the file's text.

    A light scan of table headers and ``key =`` lines; good enough to point a user at
    the right line in hand-written files. Returns ``None`` when it cannot tell.
    """

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\]?\s*(?:#.*)?$")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\")\s*=")

    def __init__(self, text: str) -> None:
        self.lines: dict[str, int] = {}
        self._counts: dict[str, int] = {}
        table = ""
        for n, line in enumerate(text.splitlines(), start=1):
            h = self._HEADER.match(line)
            if h:
                parts = h.group(2).replace(" ", "").replace('"', "").split(".")
                if h.group(1) == "[[":
                    parent = self._resolve(parts[:-1])
                    base = f"{parent}.{parts[-1]}" if parent else parts[-1]
                    idx = self._counts.get(base, 0)
                    self._counts[base] = idx + 1
                    table = f"{base}[{idx}]"
                else:
                    table = self._resolve(parts)
                self.lines.setdefault(table, n)
                continue
            k = self._KEY.match(line)
            if k:
                key = k.group(1).strip('"')
                self.lines.setdefault(f"{table}.{key}" if table else key, n)

    def _resolve(self, parts: list[str]) -> str:
        # A table inside an array of tables ([map.fields] after [[map]]) belongs to the
        # array's latest element: map[2].fields.
        out = ""
        for part in parts:
            out = f"{out}.{part}" if out else part
            if out in self._counts:
                out = f"{out}[{self._counts[out] - 1}]"
        return out

    def line_of(self, location: str) -> int | None:
        """Line of ``location`` or of its nearest enclosing table; ``None`` if unknown."""
        loc = location
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            cut = max(loc.rfind("."), loc.rfind("["))
            if cut <= 0:
                break
            loc = loc[:cut]
        return None
