"""The engine's configuration: the shipped defaults load, every key is checked, overrides win."""

from __future__ import annotations

from pathlib import Path

import pytest

from vajra.engine.config import DEFAULT_PATH, ConfigError, load


def test_the_shipped_defaults_load_and_name_the_demo_threshold() -> None:
    cfg = load()
    assert cfg.feed.source == "synthetic" and cfg.engine.topology == "threads"
    assert cfg.execution.cancel_after_ns == 200_000_000
    assert cfg.risk.rtt_lockdown_ns == 20_000_000
    assert cfg.execution.nev.threshold_paise < 0  # the demo, announced by every run
    assert "DEMO" in DEFAULT_PATH.read_text()


def test_overrides_win_and_are_typed() -> None:
    cfg = load(
        None,
        [
            "feed.speed=0",
            "feed.source=synthetic",
            "risk.max_position=500",
            "execution.nev.threshold_paise=0",
            'engine.run_dir="/tmp/x"',
        ],
    )
    assert cfg.feed.speed == 0.0 and isinstance(cfg.feed.speed, float)
    assert cfg.risk.max_position == 500 and cfg.execution.nev.threshold_paise == 0.0
    assert cfg.engine.run_dir == "/tmp/x"


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("risk.max_position=abc", ["[risk]", "max_position", "expected int"]),
        ("risk.max_positon=5", ["[risk]", "max_positon", "unknown key"]),
        ("feed.speed=true", ["[feed]", "speed", "expected float"]),
        ("feed.source=kafka", ["[feed]", "kafka"]),
        ("engine.topology=fork", ["[engine]", "fork", "processes"]),
        ("execution.ladder_orders=0", ["[execution]", "ladder_orders"]),
        ("nosuch.key=1", ["unknown table", "nosuch"]),
        ("speed=1", ["table.key=value"]),
    ],
)
def test_bad_settings_are_refused_naming_the_key(override: str, names: list[str]) -> None:
    with pytest.raises(ConfigError) as e:
        load(None, [override])
    for n in names:
        assert n in str(e.value), (n, str(e.value))


def test_a_user_file_over_the_defaults_and_its_errors(tmp_path: Path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text("[feed]\nspeed = 2\n[risk]\nmax_open_orders = 3\n")
    cfg = load(f)
    assert cfg.feed.speed == 2.0 and cfg.risk.max_open_orders == 3
    assert cfg.execution.ladder_orders == load().execution.ladder_orders  # the rest: defaults
    f.write_text("[feed\nspeed = 2\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(f)
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.toml")
