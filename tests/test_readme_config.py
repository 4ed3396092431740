"""Every YAML block the README shows for the config (strategy, combo, risk, journal, on_stop) loads as written."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ibframe.config import load_config

README = Path(__file__).resolve().parents[1] / "README.md"
STRATEGY = ("strategy:\n  class: strategies.ma_cross:MovingAverageCross\n  name: scalper\n"      # the README's example
            "  instruments: {AAPL: {secType: STK, symbol: AAPL}}\n")
CONFIG_KEYS = ("strategy", "risk", "journal", "on_stop", "instruments", "connection", "pacing")


def blocks() -> list[str]:
    found = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)
    return [b for b in found if b.lstrip().split(":", 1)[0].strip() in CONFIG_KEYS]


def test_the_readme_shows_the_config_sections():
    heads = {b.lstrip().split(":", 1)[0].strip() for b in blocks()}
    assert {"strategy", "risk", "journal", "on_stop", "instruments", "connection", "pacing"} <= heads


@pytest.mark.parametrize("block", blocks(), ids=lambda b: b.lstrip().split("\n", 1)[0][:40])
def test_readme_yaml_block_loads(block, tmp_path):
    text = block.replace("{...}", "{}")                    # the overview block elides sub-sections
    raw = yaml.safe_load(text)
    if "instruments" in raw:                               # a fragment of a strategy section
        text = "strategy:\n  class: strategies.ma_cross:MovingAverageCross\n" + \
               "\n".join("  " + line for line in text.splitlines()) + "\n"
    elif "strategy" not in raw:
        text = STRATEGY + text
    path = tmp_path / "readme.yaml"
    path.write_text(text)
    load_config(path)
