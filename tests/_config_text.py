"""Config text of the meter map rules that tests and benchmarks start gateways with."""

from __future__ import annotations

import textwrap


def meter_rules(cid: int, *, dicts: bool = True) -> str:
    """``[[map]]`` tables: ``meters/{mid}/{moid}`` Lists and, with ``dicts``, ``meters/{mid}``
    Dicts of client id ``cid``, as ``struct:<d`` series, to follow a config's other tables."""
    text = f"""\
        [[map]]
        pattern = "meters/{{mid:int}}/{{moid:int}}"
        cid = {cid}
        mid = "{{mid}}"
        moid = "{{moid}}"
        codec = "struct:<d"
        """
    if dicts:
        text += f"""
        [[map]]
        kind = "dict"
        pattern = "meters/{{mid:int}}"
        cid = {cid}
        mid = "{{mid}}"
        codec = "struct:<d"
        """
    return textwrap.dedent(text)
