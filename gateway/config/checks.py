"""Checks that span sections of the configuration (run on whichever parts are valid)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.errors import ConfigIssue

if TYPE_CHECKING:
    from gateway.config.schema import AuthConfig, GenericConfig, MapRule, ServerConfig


def cross_check(
    server: ServerConfig | None,
    auth: AuthConfig | None,
    generic: GenericConfig | None,
    rules: dict[int, MapRule],
) -> list[ConfigIssue]:
    """Checks that span sections, run on whichever sections are valid on their own."""
    issues: list[ConfigIssue] = []
    if auth is not None and server is not None and not auth.enabled and not server.is_loopback:
        issues.append(
            ConfigIssue(
                "auth.enabled",
                f"auth is off but server.host = {server.host!r} is not a loopback address",
                'set [auth] enabled = true with tokens, or bind host = "127.0.0.1"',
            )
        )
    if auth is not None:
        issues.extend(_auth_issues(auth))
    for i, rule in sorted(rules.items()):
        if generic is not None and rule.cid == generic.cid:
            issues.append(
                ConfigIssue(
                    f"map[{i}].cid",
                    f"cid {rule.cid} is reserved for unmapped keys (generic.cid)",
                    "pick another cid for the rule or move generic.cid",
                )
            )
        for j, other in sorted(rules.items()):
            if j >= i or other.kind != rule.kind or other.cid != rule.cid:
                continue
            (a_mid, a_moid), (b_mid, b_moid) = rule.owned_ranges(), other.owned_ranges()
            if _overlap(a_mid, b_mid) and _overlap(a_moid, b_moid):
                issues.append(
                    ConfigIssue(
                        f"map[{i}]",
                        f"{rule.kind} rule {rule.pattern!r} can name the same series as "
                        f"map[{j}] {other.pattern!r} (cid {rule.cid}), so a record would "
                        "belong to two keys",
                        "give the rules disjoint fixed mid/moid values or different cids",
                    )
                )
    return issues


def _auth_issues(auth: AuthConfig) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    if auth.enabled and not auth.tokens:
        issues.append(
            ConfigIssue(
                "auth.tokens",
                "auth is enabled but no token is configured",
                "add an [[auth.tokens]] table with name, env, access and keys",
            )
        )
    names = [t.name for t in auth.tokens]
    for i, t in enumerate(auth.tokens):
        if names.index(t.name) != i:
            issues.append(
                ConfigIssue(
                    f"auth.tokens[{i}].name",
                    f"token name {t.name!r} repeats",
                    "give every token its own name",
                )
            )
        if auth.enabled and t.secret() is None:
            issues.append(
                ConfigIssue(
                    f"auth.tokens[{i}].env",
                    f"environment variable {t.env} is not set; the gateway will refuse to start",
                    f"export {t.env}=<secret> before `gateway run`",
                    severity="warning",
                )
            )
    return issues


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]
