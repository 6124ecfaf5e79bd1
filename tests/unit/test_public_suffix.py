"""The hostname's public-suffix check: the list parsed without punycode answers as the whole list does."""

from __future__ import annotations

from typing import Any

import pytest
from publicsuffixlist import PSLFILE, PublicSuffixList

from mcpgate.errors import InventoryError
from mcpgate.model import load_stack
from mcpgate.model.addresses import _is_public_suffix


def _ascii_rules() -> list[str]:
    rules = []
    with open(PSLFILE, encoding="utf-8") as f:
        for line in f:
            rule = line.split(" ")[0].strip().lower()
            if rule and not rule.startswith("//") and rule.isascii():
                rules.append(rule.lstrip("!").removeprefix("*."))
    return rules


def test_every_ascii_name_of_the_list_gets_the_whole_lists_answer() -> None:
    whole = PublicSuffixList()  # with every internationalised rule punycoded
    rules = _ascii_rules()
    assert len(rules) > 5000  # the packaged list, not an empty file
    names = [n for rule in rules for n in (rule, f"gw.{rule}", f"mcp.gw.{rule}")]
    differ = [n for n in names if _is_public_suffix(n) != (whole.is_public(n) or whole.privatesuffix(n) is None)]
    assert differ == []


@pytest.mark.parametrize(
    ("name", "public"),
    [
        ("xn--55qx5d.cn", True),  # 公司.cn, a rule written in Unicode
        ("gw.xn--55qx5d.cn", False),
        ("xn--fiqs8s", True),  # 中国, a top-level domain
        ("ts.net", True),
        ("example-tailnet.ts.net", False),
        ("gateway.lan", False),
    ],
)
def test_punycoded_names_meet_the_lists_unicode_rules(name: str, public: bool) -> None:
    assert _is_public_suffix(name) is public


def test_a_punycoded_public_suffix_is_refused_as_a_hostname(stack_data: dict[str, Any]) -> None:
    stack_data["tailscale"] = {"enabled": False}
    stack_data["hostname"] = "xn--55qx5d.cn"
    with pytest.raises(InventoryError, match="public suffix"):
        load_stack("gateway.lan", stack_data)
    stack_data["hostname"] = "gw.xn--55qx5d.cn"
    assert load_stack("gateway.lan", stack_data).hostname == "gw.xn--55qx5d.cn"
