"""The status page's history colours are legible: WCAG 2.2's 3:1 for graphics (1.4.11)."""

from __future__ import annotations

import re
from importlib import resources

import pytest

CSS = (resources.files("healthd.api") / "static" / "status.css").read_text()
VARIABLES = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})", CSS))


def _colour(selector: str) -> str:
    rule = re.search(re.escape(selector) + r"\s*\{([^}]*)\}", CSS)
    assert rule is not None, f"{selector} is not in status.css"
    value = re.search(r"background:\s*([^;]+);", rule.group(1))
    assert value is not None, f"{selector} sets no background"
    text = value.group(1).strip()
    if text.startswith("var(--"):
        return VARIABLES[text.removeprefix("var(--").removesuffix(")")]
    return text


def _luminance(hex_colour: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_contrast_formula_gives_wcags_extremes() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#777777") == pytest.approx(1.0)


@pytest.mark.parametrize("selector", [".day-up", ".day-mostly", ".day-down", ".day-none"])
def test_each_day_cell_stands_out_from_the_card_by_3_to_1(selector: str) -> None:
    assert contrast(_colour(selector), VARIABLES["paper"]) >= 3.0
