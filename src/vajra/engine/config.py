"""The engine's configuration: `config/default.toml`, a user's file over it, and `--set` overrides.

Every table maps onto a frozen dataclass whose fields carry their units in their names
(`cancel_after_ns`, `speed`, ...), so a TOML key is the field it sets and nothing is converted
behind the reader's back. Every key is checked: an unknown key, a wrong type or a value the
dataclass refuses raises `ConfigError` naming the file, the table and the key, because the
person reading the error is editing a config file.

Precedence: the defaults in the dataclasses < `config/default.toml` (shipped, documented) < the
user's `--config FILE` < each `--set table.key=value` (a TOML value: `--set feed.speed=2`,
`--set 'feed.source="binance:/data/x.csv.gz"'`).
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vajra.modules.execution import ExecutionConfig
from vajra.modules.oracle import OracleConfig
from vajra.modules.sentinel import SentinelConfig
from vajra.modules.sonar import SonarConfig
from vajra.trading.nev import NevConfig

DEFAULT_PATH = Path(__file__).resolve().parents[3] / "config" / "default.toml"


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class EngineSection:
    #: "threads": one process, a pinned thread per module; "processes": feed, Oracle, Execution
    #: and the venue each in a process of its own over shared-memory rings (for comparison and
    #: for GIL interpreters), supervised by the process you started
    topology: str = "threads"
    duration_s: float = 0.0  # 0: until SIGINT/SIGTERM
    status_interval_s: float = 1.0  # the terminal status line; 0: none
    hlog_interval_s: float = 1.0  # one interval of every histogram into runs/<run>/latency.hlog
    run_dir: str = "runs"
    gc_threshold: int = 100_000  # allocations between collections once the heap is frozen
    #: an idle Execution loop re-runs the last decision without writing this often, so the
    #: next real one finds the caches and branch history warm (`Execution.warm`); 0: never
    warm_interval_ns: int = 250_000

    def __post_init__(self) -> None:
        if self.topology not in ("threads", "processes"):
            raise ValueError(f"topology {self.topology!r}: 'threads' or 'processes'")
        if self.duration_s < 0 or self.status_interval_s < 0 or self.hlog_interval_s <= 0:
            raise ValueError("duration_s, status_interval_s >= 0 and hlog_interval_s > 0")
        if self.gc_threshold < 1000:
            raise ValueError("gc_threshold must be >= 1000")
        if self.warm_interval_ns < 0:
            raise ValueError("warm_interval_ns must be >= 0 (0: no warming)")


@dataclass(frozen=True, slots=True)
class FeedSection:
    source: str = "synthetic"  # "synthetic", "binance:PATH" or "lobster:PATH"
    speed: float = 1.0  # x the recording's (or simulation's) pace; 0: as fast as possible
    seed: int = 7  # the synthetic market's seed
    warmup_s: float = 60.0  # market seconds replayed before trading (Sonar's windows fill)
    loop: bool = True  # a replay that ends starts again (synthetic never ends)

    def __post_init__(self) -> None:
        kind = self.source.partition(":")[0]
        if kind not in ("synthetic", "binance", "lobster"):
            raise ValueError(f"source {self.source!r}: use synthetic, binance:PATH or lobster:PATH")
        if self.speed < 0 or self.warmup_s < 0:
            raise ValueError("speed and warmup_s must be >= 0")


@dataclass(frozen=True, slots=True)
class VenueSection:
    kind: str = "sim"
    latency_median_ns: int = 1_500_000  # one way
    latency_sigma: float = 0.3
    latency_tail_prob: float = 0.01
    latency_tail_scale_ns: int = 3_000_000
    spike_every_s: float = 0.0  # a scheduled latency spike this often (0: only on demand)
    spike_first_s: float = 10.0  # the first one, after trading starts
    spike_duration_ms: float = 3000.0
    spike_extra_ms: float = 60.0  # one way: RTT >= 120 ms, past Sentinel's 100 ms at-once rule

    def __post_init__(self) -> None:
        if self.kind != "sim":
            raise ValueError(f"kind {self.kind!r}: the simulated NSE venue ('sim') is built")
        if self.spike_every_s < 0 or self.spike_duration_ms <= 0 or self.spike_extra_ms < 0:
            raise ValueError("spike_every_s >= 0, spike_duration_ms > 0, spike_extra_ms >= 0")


@dataclass(frozen=True, slots=True)
class BrokerSection:
    profile: str = "kite"
    limiter_margin_ns: int = 20_000_000  # every window lengthened: the venue counts arrivals
    otr_ceiling: int = 40
    trade_date: str = ""  # YYYY-MM-DD for the cost schedule; "": today
    #: replays of non-Indian markets (Binance, LOBSTER) have no NSE cost table: a flat fee per
    #: side, basis points of the order value (Binance USD-M maker: 2 bp)
    replay_fee_bps: float = 2.0

    def __post_init__(self) -> None:
        if self.limiter_margin_ns < 0 or self.otr_ceiling < 3 or self.replay_fee_bps < 0:
            raise ValueError("limiter_margin_ns >= 0, otr_ceiling >= 3, replay_fee_bps >= 0")
        if self.trade_date:
            import datetime

            try:
                datetime.date.fromisoformat(self.trade_date)
            except ValueError:
                raise ValueError(f"trade_date {self.trade_date!r} is not YYYY-MM-DD") from None


@dataclass(frozen=True, slots=True)
class Config:
    engine: EngineSection = field(default_factory=EngineSection)
    feed: FeedSection = field(default_factory=FeedSection)
    venue: VenueSection = field(default_factory=VenueSection)
    broker: BrokerSection = field(default_factory=BrokerSection)
    oracle: OracleConfig = field(default_factory=OracleConfig)
    sonar: SonarConfig = field(default_factory=SonarConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    risk: SentinelConfig = field(default_factory=SentinelConfig)
    cores: Mapping[str, Any] = field(default_factory=dict)  # vajra.runtime.coreplan's table

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the run summary and the monitor's effective-config view."""
        return dataclasses.asdict(self)


_SECTIONS: dict[str, type] = {
    "engine": EngineSection,
    "feed": FeedSection,
    "venue": VenueSection,
    "broker": BrokerSection,
    "oracle": OracleConfig,
    "sonar": SonarConfig,
    "execution": ExecutionConfig,
    "risk": SentinelConfig,
}


def load(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    defaults: str | Path | None = DEFAULT_PATH,
) -> Config:
    """Defaults, then the shipped file, then `path`, then `--set` overrides; see the module
    docstring. Raises ConfigError."""
    doc: dict[str, Any] = {}
    for p in (defaults, path):
        if p is None:
            continue
        _merge(doc, _read(Path(p)), str(p))
    for item in overrides or []:
        _merge(doc, _override(item), f"--set {item}")
    return build(doc, where=str(path or defaults or "config"))


def build(doc: Mapping[str, Any], where: str = "config") -> Config:
    unknown = sorted(set(doc) - set(_SECTIONS) - {"cores"})
    if unknown:
        raise ConfigError(
            f"{where}: unknown table(s) {unknown}; known: {sorted([*_SECTIONS, 'cores'])}"
        )
    kw: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        table = doc.get(name, {})
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: [{name}] must be a table")
        kw[name] = _section(cls, table, f"{where} [{name}]")
    cores = doc.get("cores", {})
    if not isinstance(cores, Mapping):
        raise ConfigError(f"{where}: [cores] must be a table")
    return Config(cores=dict(cores), **kw)


def _section(cls: type, table: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kw: dict[str, Any] = {}
    for key, value in table.items():
        if key not in names:
            raise ConfigError(f"{where} {key}: unknown key; known: {', '.join(sorted(names))}")
        t = hints[key]
        if dataclasses.is_dataclass(t):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where} {key}: must be a table")
            kw[key] = _section(t, value, f"{where}.{key}")  # type: ignore[arg-type]
            continue
        kw[key] = _typed(value, t, f"{where} {key}")
    try:
        return cls(**kw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


def _typed(value: Any, t: Any, where: str) -> Any:
    """Check a TOML value against a field's annotation (int, float, bool, str); an int is
    accepted for a float field, nothing else is coerced."""
    if isinstance(t, types.UnionType) or typing.get_origin(t) is not None:
        return value  # containers and unions: the dataclass checks them
    if t is bool:
        ok = isinstance(value, bool)
    elif t is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok:
            value = float(value)
    elif t is str:
        ok = isinstance(value, str)
    else:
        return value
    if not ok:
        raise ConfigError(f"{where}: expected {t.__name__}, got {value!r}")
    return value


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def _override(item: str) -> dict[str, Any]:
    key, eq, raw = item.partition("=")
    parts = key.strip().split(".")
    if not eq or len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set {item!r}: expected table.key=value (e.g. feed.speed=2)")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word: take it as a string (feed.source=synthetic)
    out: dict[str, Any] = {}
    node = out
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def _merge(into: dict[str, Any], new: Mapping[str, Any], where: str) -> None:
    for k, v in new.items():
        if isinstance(v, Mapping) and isinstance(into.get(k), dict):
            _merge(into[k], v, where)
        elif isinstance(v, Mapping):
            into[k] = {}
            _merge(into[k], v, where)
        else:
            into[k] = v


__all__ = ["DEFAULT_PATH", "Config", "ConfigError", "NevConfig", "build", "load"]
