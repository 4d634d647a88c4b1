"""Binance feed: parser, book sync, clock offset and replay, checked against the real captures.

The captures live outside the repo (`../shared/data/binance`, see its README); tests that need
them skip, saying so, only when that folder is absent. The acceptance test rebuilds the USD-M
book from the capture and holds it against Binance's own best bid/offer stream.
"""

from __future__ import annotations

import gzip
import json
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vajra.market.book import L2Book, Violation
from vajra.market.events import (
    BookUpdate,
    Malformed,
    MarketEvent,
    Quote,
    Resynced,
    SequenceGap,
    Side,
    Trade,
)
from vajra.market.feeds.binance import (
    BinanceBookSync,
    BinanceMarket,
    BinanceParser,
    BinanceReplay,
    ClockOffsetEstimator,
    Reason,
    SyncEvent,
    SyncState,
    binance_spot_btcusdt,
    binance_usdm_btcusdt,
    split_capture_line,
)
from vajra.market.instruments import Instrument, format_scaled

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".." / "shared" / "data" / "binance"
USDM_FILE = DATA / "usdm_btcusdt_20240808.gz"
SPOT_FILE = DATA / "spot_btcusdt_20240808.gz"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(),
    reason=f"Binance captures not found: {DATA.resolve()} (../shared/data/binance) is absent",
)

USDM = binance_usdm_btcusdt()
SPOT = binance_spot_btcusdt()
TOKEN = USDM.token

# Literal lines (shortened from the captures; ids, times and formats as recorded).
DEPTH_USDM = (
    '1723161255030314667 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate",'
    '"E":1723161256299,"T":1723161256298,"s":"BTCUSDT","U":5123107832006,"u":5123107837557,'
    '"pu":5123107831937,"b":[["58710.20","0.014"],["61510.90","0.000"]],'
    '"a":[["61800.30","2.510"]]}}'
)
SNAPSHOT_USDM = (
    '1723161255319702566 {"lastUpdateId":5123107852948,"E":1723161256501,"T":1723161256493,'
    '"bids":[["61800.20","2.909"],["61800.10","0.696"]],"asks":[["61800.30","1.000"]]}'
)
TICKER_USDM = (
    '1723161255088169167 {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker",'
    '"u":5123107839020,"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510",'
    '"T":1723161256313,"E":1723161256313}}'
)
TRADE_TAKER_BUY = (
    '1723161255088176367 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,'
    '"T":1723161256322,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006",'
    '"X":"MARKET","m":false}}'
)
TRADE_TAKER_SELL = (
    '1723161254087896568 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,'
    '"s":"BTCUSDT","t":3735683259,"p":"61837.60","q":"0.020","T":1723161255342,"m":true,'
    '"M":true}}'
)
DEPTH_SPOT = (
    '1723161254036059768 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate",'
    '"E":1723161255308,"s":"BTCUSDT","U":50093239203,"u":50093239207,'
    '"b":[["55653.87000000","0.00000000"]],"a":[["61838.04000000","0.32332000"],'
    '["61862.51000000","244.56630400"]]}}'
)
TICKER_SPOT = (
    '1723161254087891268 {"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT",'
    '"b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}'
)
SNAPSHOT_SPOT = (
    '1723161254206652067 {"lastUpdateId":50093239218,"bids":[["61837.63000000","3.78826000"]],'
    '"asks":[["61837.64000000","1.60520000"]]}'
)
GOOD_LINES = (DEPTH_USDM, SNAPSHOT_USDM, TICKER_USDM, TRADE_TAKER_BUY, TRADE_TAKER_SELL)


def _read(path: Path, inst: Instrument) -> tuple[list[MarketEvent], BinanceParser]:
    parser = BinanceParser(inst)
    with gzip.open(path, "rb") as f:
        events = [parser.parse_line(line) for line in f]
    return events, parser


@pytest.fixture(scope="module")
def usdm() -> tuple[list[MarketEvent], BinanceParser]:
    if not DATA.is_dir():
        pytest.skip(f"Binance captures not found: {DATA.resolve()} is absent")
    return _read(USDM_FILE, USDM)


@pytest.fixture(scope="module")
def spot() -> tuple[list[MarketEvent], BinanceParser]:
    if not DATA.is_dir():
        pytest.skip(f"Binance captures not found: {DATA.resolve()} is absent")
    return _read(SPOT_FILE, SPOT)


# -- parser: literal lines --------------------------------------------------------------------


def test_depth_diff_futures() -> None:
    p = BinanceParser(USDM)
    ev = p.parse_line(DEPTH_USDM)
    assert ev == BookUpdate(
        token=TOKEN,
        recv_ns=1723161255030314667,
        exch_ns=1723161256299 * 1_000_000,  # E, not T (...298)
        # tick indexes (cents // tick 10), best first: the wire lists bids ascending
        bids=((615109, 0), (587102, 14)),
        asks=((618003, 2510),),
        snapshot=False,
        first_id=5123107832006,
        last_id=5123107837557,
        prev_id=5123107831937,
        rejects=0,
        ordered=True,  # sorted best first, one level per tick: the book may read through it
    )
    assert p.parse_line(DEPTH_USDM.encode()) == ev  # bytes and str alike
    assert p.parse(DEPTH_USDM.split(" ", 1)[1], 42).recv_ns == 42  # live frame: caller's clock
    assert p.parsed == 3 and sum(p.malformed.values()) == 0


def test_snapshot_ticker_and_trades() -> None:
    p = BinanceParser(USDM)
    snap = p.parse_line(SNAPSHOT_USDM)
    assert isinstance(snap, BookUpdate) and snap.snapshot
    assert snap.last_id == 5123107852948 and snap.prev_id == -1
    assert snap.bids == ((618002, 2909), (618001, 696)) and snap.asks == ((618003, 1000),)
    assert snap.rejects == 0
    assert snap.exch_ns == 1723161256501_000_000

    q = p.parse_line(TICKER_USDM)
    assert q == Quote(
        TOKEN,
        1723161255088169167,
        1723161256313_000_000,
        6180020,
        2507,
        6180030,
        2510,
        5123107839020,
    )

    buy = p.parse_line(TRADE_TAKER_BUY)  # m=false: the buyer took liquidity
    assert buy == Trade(
        TOKEN, 1723161255088176367, 1723161256322_000_000, 6180030, 6, Side.BID, 5266583935
    )
    sell = p.parse_line(TRADE_TAKER_SELL)  # m=true: the buyer was the maker, the seller crossed
    assert isinstance(sell, Trade) and sell.aggressor is Side.ASK and sell.qty == 20


def test_spot_lines() -> None:
    p = BinanceParser(SPOT)
    d = p.parse_line(DEPTH_SPOT)
    assert isinstance(d, BookUpdate) and d.prev_id == -1 and d.first_id == 50093239203
    # 8 wire decimals: the 6-decimal resting quantity is exact, not rounded to the order step;
    # spot's tick is one cent, so its tick indexes are the prices in cents
    assert SPOT.tick == 1 and d.rejects == 0
    assert d.asks == ((6183804, 32_332_000), (6186251, 24_456_630_400))
    q = p.parse_line(TICKER_SPOT)
    assert isinstance(q, Quote) and q.exch_ns == 0  # spot bookTicker carries no time
    assert (q.bid, q.ask, q.update_id) == (6183763, 6183764, 50093239212)
    s = p.parse_line(SNAPSHOT_SPOT)
    assert isinstance(s, BookUpdate) and s.snapshot and s.exch_ns == 0
    assert s.last_id == 50093239218


def _payload(line: str) -> dict[str, object]:
    out: dict[str, object] = json.loads(line.split(" ", 1)[1])
    return out


def _line(msg: object, ns: int = 1) -> str:
    return f"{ns} {json.dumps(msg)}"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("garbage", Reason.NO_RECV_TIME),
        ('{"stream":"btcusdt@trade"}', Reason.NO_RECV_TIME),
        ("12x4 {}", Reason.NO_RECV_TIME),
        ("1723 ", Reason.BAD_JSON),
        (DEPTH_USDM[:-7], Reason.BAD_JSON),  # truncated
        ("1723 [1, 2]", Reason.NOT_OBJECT),
        ('1723 {"E": 1}', Reason.UNKNOWN_STREAM),
        ('1723 {"stream":"btcusdt@aggTrade","data":{}}', Reason.UNKNOWN_STREAM),
        ('1723 {"stream":"btcusdt@depth20@100ms","data":{}}', Reason.UNKNOWN_STREAM),
        ('1723 {"stream":"ethusdt@trade","data":{}}', Reason.WRONG_SYMBOL),
        ('1723 {"stream":"btcusdt@trade"}', Reason.MISSING_FIELD),
        ('1723 {"stream":"btcusdt@trade","data":[]}', Reason.NOT_OBJECT),
        (DEPTH_USDM.replace('"58710.20"', '"58710.201"'), Reason.OFF_GRID),
        (DEPTH_USDM.replace('"0.014"', '"0.0145"'), Reason.OFF_GRID),
        (DEPTH_USDM.replace('"58710.20"', '"5871O.20"'), Reason.BAD_NUMBER),
        (DEPTH_USDM.replace('"58710.20"', '"٣"'), Reason.BAD_NUMBER),
        (DEPTH_USDM.replace('"0.014"', '"-0.014"'), Reason.NEGATIVE),
        (DEPTH_USDM.replace('"58710.20"', "58710.2"), Reason.BAD_FIELD_TYPE),  # a JSON number
        (DEPTH_USDM.replace('["58710.20","0.014"]', '["58710.20"]'), Reason.BAD_FIELD_TYPE),
        (DEPTH_USDM.replace('"U":5123107832006', '"U":"5123107832006"'), Reason.BAD_FIELD_TYPE),
        (DEPTH_USDM.replace('"U":5123107832006', '"U":5123107837558'), Reason.BAD_IDS),
        (DEPTH_USDM.replace('"E":1723161256299', '"E":true'), Reason.BAD_FIELD_TYPE),
        (TRADE_TAKER_BUY.replace('"m":false', '"m":0'), Reason.BAD_FIELD_TYPE),
        (TICKER_USDM.replace('"A":"2.510",', ""), Reason.MISSING_FIELD),
        (
            SNAPSHOT_USDM.replace('"lastUpdateId":5123107852948', '"lastUpdateId":-1'),
            Reason.BAD_IDS,
        ),
    ],
)
def test_malformed_is_counted_per_reason(line: str, reason: Reason) -> None:
    p = BinanceParser(USDM)
    ev = p.parse_line(line)
    assert isinstance(ev, Malformed) and ev.reason == reason, ev
    assert p.malformed[reason] == 1 and sum(p.malformed.values()) == 1
    framed = reason is not Reason.NO_RECV_TIME
    assert ev.size == len(line.split(" ", 1)[1] if framed else line)


def test_split_capture_line() -> None:
    assert split_capture_line(b"17 {}") == (17, b"{}")
    assert split_capture_line("17 {}") == (17, "{}")
    for bad in (b"{}", b" {}", b"+17 {}", b"1_7 {}", "١٧ {}", b"9" * 21 + b" {}"):
        assert split_capture_line(bad) is None


# -- parser: fuzzing --------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=4), kids, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_fuzz_arbitrary_input_never_raises(line: bytes | str) -> None:
    p = BinanceParser(USDM)
    ev = p.parse_line(line)
    assert isinstance(ev, BookUpdate | Trade | Quote | Malformed)
    assert p.parsed == 1


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(GOOD_LINES), st.data())
def test_fuzz_truncated_and_flipped_lines(line: str, data: st.DataObject) -> None:
    p = BinanceParser(USDM)
    raw = line.encode()
    cut = data.draw(st.integers(0, len(raw) - 1))
    assert isinstance(p.parse_line(raw[:cut]), Malformed)  # every strict prefix is unusable
    pos = data.draw(st.integers(0, len(raw) - 1))
    flipped = raw[:pos] + bytes([data.draw(st.integers(0, 255))]) + raw[pos + 1 :]
    assert isinstance(p.parse_line(flipped), BookUpdate | Trade | Quote | Malformed)
    assert p.parsed == 2


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(GOOD_LINES),
    st.sampled_from(["U", "u", "pu", "E", "b", "a", "B", "A", "p", "q", "m", "t", "data", "bids"]),
    _json,
)
def test_fuzz_field_values_never_raise(line: str, key: str, value: object) -> None:
    msg = _payload(line)
    target = msg["data"] if "data" in msg and key != "data" else msg
    assert isinstance(target, dict)
    target[key] = value
    p = BinanceParser(USDM)
    ev = p.parse_line(_line(msg))
    assert isinstance(ev, BookUpdate | Trade | Quote | Malformed)
    if isinstance(ev, BookUpdate):
        # only levels on the grid reach the update (ticks >= 1); the rest are reported
        for t, q in ev.bids + ev.asks:
            assert type(t) is int and type(q) is int and t > 0 and q >= 0
        assert ev.rejects & ~(Violation.BAD_PRICE | Violation.OFF_TICK) == 0


_on_grid = st.integers(0, 10**15 // USDM.tick).map(lambda t: t * USDM.tick)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_on_grid | st.integers(0, 10**15), st.integers(0, 10**12)), max_size=20))
def test_prices_and_quantities_are_exact(levels: list[tuple[int, int]]) -> None:
    """Integer units survive the trip through Binance's decimal strings bit for bit (a float
    detour would already fail at 2**53 / 100), down to the tick index of every level on the
    grid; a level priced zero or off the grid is dropped and its bit reported in `rejects`."""
    rows = [[format_scaled(px, 2), format_scaled(q, 3)] for px, q in levels]
    msg = _payload(DEPTH_USDM)
    data = msg["data"]
    assert isinstance(data, dict)
    data["b"] = rows
    ev = BinanceParser(USDM).parse_line(_line(msg))
    assert isinstance(ev, BookUpdate)
    tick = USDM.tick
    kept = tuple((px // tick, q) for px, q in levels if px > 0 and px % tick == 0)
    rejects = 0
    for px, _ in levels:
        if px <= 0:
            rejects |= Violation.BAD_PRICE
        elif px % tick:
            rejects |= Violation.OFF_TICK
    assert ev.rejects == rejects
    # the parser puts a side best first and never changes a level; with a tick repeated it
    # keeps the wire's order (or its reverse) and does not promise an ordered update
    unique = len({t for t, _ in kept}) == len(kept)
    if unique:
        assert ev.bids == tuple(sorted(kept, reverse=True))
    else:
        assert ev.bids in (kept, kept[::-1])
    assert ev.ordered == unique


def test_off_grid_level_is_dropped_reported_and_counted_by_the_book() -> None:
    """A price off the tick grid (61800.25 on USD-M's 0.1 grid) never reaches the book as a
    level: the parser drops it, sets OFF_TICK in `rejects`, and the book counts it as its own
    violation while applying the good levels of the same diff."""
    msg = _payload(DEPTH_USDM)
    data = msg["data"]
    assert isinstance(data, dict)
    data["b"] = [["61800.25", "1.000"], ["61800.20", "0.500"]]
    data["a"] = [["61800.30", "2.000"]]
    line = _line(msg)
    p = BinanceParser(USDM)
    ev = p.parse_line(line)
    assert isinstance(ev, BookUpdate) and not ev.snapshot
    assert ev.bids == ((618002, 500),) and ev.asks == ((618003, 2000),)
    assert ev.rejects == Violation.OFF_TICK
    assert p.parse_line(line) == ev  # the cached tick of the rejected price says the same
    assert sum(p.malformed.values()) == 0  # a valid message, not Malformed

    book = L2Book(USDM)
    flags = book.apply(ev)
    assert flags == Violation.OFF_TICK
    assert book.levels() == ([(618002, 500)], [(618003, 2000)])
    assert book.bid_at(0) == (618002, 500) and book.best_ask() == 618003
    assert book.counts[list(Violation).index(Violation.OFF_TICK)] == 1
    assert book.violations() == {**dict.fromkeys(book.violations(), 0), "OFF_TICK": 1}
    assert book.sane  # counted, not a persistent state: the good levels stand
    book.check_consistency()


# -- book sync: literal sequences -------------------------------------------------------------


def _diff(
    first: int,
    last: int,
    prev: int = -1,
    bids: Iterable[tuple[int, int]] = (),
    asks: Iterable[tuple[int, int]] = (),
    token: int = TOKEN,
) -> BookUpdate:
    """A diff as the parser emits it: levels are (tick, qty), tick indexes of the grid."""
    return BookUpdate(token, last, 0, tuple(bids), tuple(asks), False, first, last, prev)


def _snap(
    last: int, bids: Iterable[tuple[int, int]], asks: Iterable[tuple[int, int]], token: int = TOKEN
) -> BookUpdate:
    return BookUpdate(token, last, 0, tuple(bids), tuple(asks), True, 0, last, -1)


def _kinds(events: Iterable[SyncEvent]) -> list[str]:
    return [
        type(e).__name__ + ("*" if isinstance(e, BookUpdate) and e.snapshot else "") for e in events
    ]


def test_futures_sync_buffer_drop_bridge_live() -> None:
    book = L2Book(USDM)
    sync = BinanceBookSync(book, BinanceMarket.USDM)
    assert book.state & Violation.SEQUENCE_GAP and not book.sane  # gate closed before sync
    assert book.violations()["SEQUENCE_GAP"] == 0  # ...but not counted as a lost-data episode
    assert sync.receive(_diff(90, 95, 80, bids=[(100, 1)])) == ()
    assert sync.receive(_diff(96, 99, 95, bids=[(100, 2)])) == ()
    assert sync.receive(_diff(100, 104, 99, bids=[(101, 5)], asks=[(110, 0)])) == ()
    assert book.updates == 0
    out = sync.receive(_snap(102, bids=[(100, 7)], asks=[(110, 3), (111, 4)]))
    assert _kinds(out) == ["BookUpdate*", "BookUpdate", "Resynced"]
    resynced = out[2]
    assert isinstance(resynced, Resynced) and resynced.at_id == 102
    assert sync.state is SyncState.LIVE and sync.dropped == 2 and book.sane
    assert book.levels() == ([(101, 5), (100, 7)], [(111, 4)])
    assert sync.receive(_diff(107, 110, 104, asks=[(110, 9)])) != ()
    assert book.best_ask() == 110 and sync.last_id == book.last_id == 110


def test_futures_gap_then_stream_snapshot_resyncs() -> None:
    book = L2Book(USDM)
    sync = BinanceBookSync(book, BinanceMarket.USDM)
    sync.receive(_snap(100, [(100, 1)], [(110, 1)]))
    sync.receive(_diff(99, 101, 98, bids=[(100, 2)]))
    lost = _diff(102, 105, 101, bids=[(100, 0), (99, 5)])  # never delivered
    (gap,) = sync.receive(_diff(106, 108, lost.last_id, asks=[(109, 4)]))
    assert gap == SequenceGap(TOKEN, 108, expected=101, got=105, reason="pu != previous u")
    assert book.state & Violation.SEQUENCE_GAP and book.violations()["SEQUENCE_GAP"] == 1
    assert sync.state is SyncState.RESYNC and sync.gaps == 1
    assert sync.receive(_diff(109, 111, 108, bids=[(98, 1)])) == ()  # buffered, not applied
    assert book.best_ask() == 110 and book.last_id == 101
    out = sync.receive(_snap(108, [(99, 5)], [(109, 4), (110, 1)]))
    # the gap's own diff (106..108) bridges L=108; the buffered 109..111 follows it
    assert _kinds(out) == ["BookUpdate*", "BookUpdate", "Resynced", "BookUpdate"]
    assert book.sane and sync.synced and sync.last_id == 111
    assert book.levels() == ([(99, 5), (98, 1)], [(109, 4), (110, 1)])
    assert sync.receive(_snap(200, [], [])) == () and sync.snapshots_ignored == 1


def test_futures_snapshot_in_an_id_hole_bridges_by_pu() -> None:
    """USD-M ids are shared across streams: `L` may fall between two diffs. The next diff's
    `pu <= L < U` proves nothing changed in between, so it continues the snapshot."""
    sync = BinanceBookSync(L2Book(USDM), BinanceMarket.USDM)
    sync.receive(_snap(105, [(100, 1)], [(110, 1)]))
    assert _kinds(sync.receive(_diff(110, 112, 104))) == ["BookUpdate", "Resynced"]


def test_futures_snapshot_older_than_buffer_is_a_gap() -> None:
    book = L2Book(USDM)
    sync = BinanceBookSync(book, BinanceMarket.USDM)
    sync.receive(_diff(200, 210, 150))
    (_, gap) = sync.resync(_snap(100, [(100, 1)], [(110, 1)]))
    assert isinstance(gap, SequenceGap) and (gap.expected, gap.got) == (100, 150)
    assert sync.state is SyncState.RESYNC and not book.sane
    out = sync.resync(_snap(205, [(100, 1)], [(110, 1)]))  # the buffered diff bridges this
    assert _kinds(out) == ["BookUpdate*", "BookUpdate", "Resynced"] and book.sane


def test_spot_rules() -> None:
    book = L2Book(SPOT)
    sync = BinanceBookSync(book, BinanceMarket.SPOT)
    sync.receive(_diff(95, 100, token=SPOT.token))  # u == L: already in the snapshot
    sync.receive(_diff(101, 104, bids=[(100, 3)], token=SPOT.token))  # U == L + 1: bridges
    out = sync.receive(_snap(100, [(100, 1)], [(110, 1)], token=SPOT.token))
    assert _kinds(out) == ["BookUpdate*", "BookUpdate", "Resynced"] and sync.dropped == 1
    assert sync.receive(_diff(105, 106, token=SPOT.token)) != ()
    (gap,) = sync.receive(_diff(108, 109, token=SPOT.token))
    assert isinstance(gap, SequenceGap) and (gap.expected, gap.got) == (107, 108)
    assert gap.reason == "U != previous u + 1" and not book.sane

    def fresh() -> BinanceBookSync:
        s = BinanceBookSync(L2Book(SPOT), BinanceMarket.SPOT)
        s.receive(_snap(100, [(100, 1)], [(110, 1)], token=SPOT.token))
        return s

    assert _kinds(fresh().receive(_diff(99, 103, token=SPOT.token))) == ["BookUpdate", "Resynced"]
    assert _kinds(fresh().receive(_diff(95, 101, token=SPOT.token))) == ["BookUpdate", "Resynced"]
    (late,) = fresh().receive(_diff(102, 105, token=SPOT.token))  # id 101 was never seen
    assert isinstance(late, SequenceGap) and (late.expected, late.got) == (101, 102)


def test_sync_misuse_and_buffer_bound() -> None:
    sync = BinanceBookSync(L2Book(USDM), BinanceMarket.USDM, max_buffer=2)
    with pytest.raises(ValueError):
        sync.receive(_diff(1, 2, token=SPOT.token))
    with pytest.raises(ValueError):
        sync.resync(_diff(1, 2))
    for i in range(3):
        sync.receive(_diff(10 * i + 1, 10 * i + 10, 10 * i))
    assert sync.buffer_overflows == 1  # the diff bridging L=5 fell out of the buffer...
    out = sync.receive(_snap(5, [(100, 1)], [(110, 1)]))
    assert isinstance(out[-1], SequenceGap)  # ...and the sync says so instead of guessing


# -- the acceptance test: rebuilt USD-M book vs bookTicker ------------------------------------

BBO = tuple[int, int, int, int]


@dataclass
class States:
    """Every state the rebuilt book went through: the diff id range that produced it, its top
    of book in price units. A snapshot state covers exactly its `lastUpdateId`."""

    first: list[int] = field(default_factory=list)
    last: list[int] = field(default_factory=list)
    bbo: list[BBO] = field(default_factory=list)


def _bbo(book: L2Book) -> BBO:
    (bt, bq), (at, aq) = book.bid_at(0), book.ask_at(0)
    return bt * book.tick, bq, at * book.tick, aq


def _record(out: Iterable[SyncEvent], shadow: L2Book, states: States) -> None:
    """Replay the sync's reported updates onto a shadow book, one by one, so that states the
    sync passed through inside one call (the buffer flush at a snapshot) are seen too."""
    for ev in out:
        if isinstance(ev, BookUpdate):
            shadow.apply(ev)
            states.first.append(ev.last_id if ev.snapshot else ev.first_id)
            states.last.append(ev.last_id)
            states.bbo.append(_bbo(shadow))


def _rebuild(
    events: Iterable[MarketEvent], sync: BinanceBookSync, states: States
) -> tuple[list[Quote], list[SyncEvent]]:
    shadow = L2Book(sync.book.instrument)
    quotes: list[Quote] = []
    notes: list[SyncEvent] = []
    for ev in events:
        if isinstance(ev, Quote):
            quotes.append(ev)
        elif isinstance(ev, BookUpdate):
            out = sync.receive(ev)
            _record(out, shadow, states)
            notes += [e for e in out if not isinstance(e, BookUpdate)]
            if out and sync.synced:
                assert _bbo(shadow) == _bbo(sync.book)  # the reported updates are the book
    if sync.synced:
        assert shadow.levels() == sync.book.levels()
    return quotes, notes


@dataclass
class Agreement:
    exact: int = 0  # tickers whose id names a state our book held
    exact_agree: int = 0
    coalesced: int = 0  # tickers whose id falls inside a diff: the book never held that state
    coalesced_agree: int = 0
    per_state: int = 0  # our states vs the ticker stream's latest quote at or before them
    per_state_agree: int = 0
    outside: Counter[str] = field(default_factory=Counter)
    classes: Counter[str] = field(default_factory=Counter)  # explained disagreements
    unexplained: list[str] = field(default_factory=list)

    def report(self, name: str) -> str:
        return (
            f"{name}: exact-state tickers {self.exact_agree}/{self.exact} agree; "
            f"per-state check {self.per_state_agree}/{self.per_state}; coalesced tickers "
            f"{self.coalesced} ({self.coalesced_agree} agree with the diff's end state); "
            f"disagreements explained {dict(self.classes)}; unexplained "
            f"{len(self.unexplained)}; not comparable {dict(self.outside)}"
        )


def _agreement(states: States, quotes: list[Quote]) -> Agreement:
    """The matching rule. USD-M bookTicker and depth ids are one sequence. After the diff
    ending at `u_k` our book is Binance's book at id `u_k`, and stays so for every id before
    the next diff's `U_(k+1)` (the `pu` chain says no book change falls in between). A ticker
    with id `t`:

    - `u_k <= t < U_(k+1)`: exact state: the quotes must agree;
    - `U_(k+1) <= t < u_(k+1)`: coalesced: the depth stream folded every change in the range
      into one diff, so the book jumps from `u_k` to `u_(k+1)` and never holds the state at
      `t`. Held against the state at `u_(k+1)`, a disagreement is explained exactly when the
      ticker stream itself shows the top moving again inside the same diff (a later ticker
      with id in `(t, u_(k+1)]`); otherwise it is unexplained;
    - before the first state (pre-snapshot) or past the last diff: not comparable.

    Independently, every state is held against the latest ticker at or before it (bookTicker
    pushes every change of best price or quantity, so that ticker is the top at `u_k`); a
    disagreement there has no innocent explanation.
    """
    a = Agreement()
    quotes = sorted(quotes, key=lambda q: q.update_id)
    qids = [q.update_id for q in quotes]
    first, last, bbo = states.first, states.last, states.bbo
    for q in quotes:
        t = q.update_id
        seen = (q.bid, q.bid_qty, q.ask, q.ask_qty)
        k = bisect_right(last, t) - 1
        if k < 0:
            a.outside["before the snapshot"] += 1
            continue
        if t == last[k] or (k + 1 < len(last) and t < first[k + 1]):
            a.exact += 1
            if bbo[k] == seen:
                a.exact_agree += 1
            else:
                a.unexplained.append(f"exact state at {t}: ticker {seen} book {bbo[k]}")
            continue
        if k + 1 == len(last):
            a.outside["after the last diff"] += 1
            continue
        a.coalesced += 1
        if bbo[k + 1] == seen:
            a.coalesced_agree += 1
            continue
        j = bisect_right(qids, t)
        if j < len(qids) and qids[j] <= last[k + 1]:
            a.classes["coalesced: the top moved again inside the same diff"] += 1
        else:
            a.unexplained.append(f"coalesced at {t}, diff ends {last[k + 1]}: no later ticker")
    for k in range(len(last)):
        j = bisect_right(qids, last[k]) - 1
        if j < 0:
            continue
        a.per_state += 1
        q = quotes[j]
        if bbo[k] == (q.bid, q.bid_qty, q.ask, q.ask_qty):
            a.per_state_agree += 1
        else:
            a.unexplained.append(f"state at {last[k]} vs ticker {q.update_id}")
    return a


def _assert_agrees(a: Agreement, min_exact: int) -> None:
    assert a.exact >= min_exact, "too few exact matches to mean anything"
    assert a.exact_agree >= 0.999 * a.exact
    assert a.per_state_agree >= 0.999 * a.per_state
    assert sum(a.classes.values()) == a.coalesced - a.coalesced_agree - sum(
        1 for u in a.unexplained if u.startswith("coalesced")
    )
    assert not a.unexplained, a.unexplained[:10]  # the classification covers every one


@needs_data
def test_usdm_book_rebuild_agrees_with_book_ticker(
    usdm: tuple[list[MarketEvent], BinanceParser],
) -> None:
    events, parser = usdm
    assert len(events) == 93_954 and sum(parser.malformed.values()) == 0
    book = L2Book(USDM)
    sync = BinanceBookSync(book, BinanceMarket.USDM)
    states = States()
    quotes, notes = _rebuild(events, sync, states)
    assert len(quotes) == 66_089
    assert _kinds(notes) == ["Resynced"] and sync.gaps == 0 and sync.state is SyncState.LIVE
    assert book.sane and book.violations() == dict.fromkeys(book.violations(), 0)
    # the documented bridge held strictly (U <= L <= u), not only by the pu extension
    assert states.first[1] <= sync.snapshot_id <= states.last[1]
    assert sync.applied == 6_547 and sync.dropped == 4  # 6551 diffs, 4 before the snapshot
    a = _agreement(states, quotes)
    print("\n" + a.report("USD-M BTCUSDT"))
    _assert_agrees(a, min_exact=600)
    assert a.per_state >= 6_500


@needs_data
def test_dropped_diff_is_detected_marked_and_resynced(
    usdm: tuple[list[MarketEvent], BinanceParser],
) -> None:
    events, _ = usdm
    diffs = [i for i, e in enumerate(events) if isinstance(e, BookUpdate) and not e.snapshot]
    snap_at = next(i for i, e in enumerate(events) if isinstance(e, BookUpdate) and e.snapshot)
    after = [i for i in diffs if i > snap_at]
    drop = after[2000]
    dropped = events[drop]
    before = events[after[1999]]
    assert isinstance(dropped, BookUpdate) and isinstance(before, BookUpdate)

    ref = BinanceBookSync(L2Book(USDM), BinanceMarket.USDM)  # the same feed, nothing lost
    book = L2Book(USDM)
    sync = BinanceBookSync(book, BinanceMarket.USDM)
    ref_shadow, shadow = L2Book(USDM), L2Book(USDM)
    ref_states, states = States(), States()
    quotes: list[Quote] = []
    gap: SequenceGap | None = None
    diffs_since_gap = 0
    resynced: list[SyncEvent] = []
    post_start = -1
    for i, ev in enumerate(events):
        if isinstance(ev, Quote):
            quotes.append(ev)
        if not isinstance(ev, BookUpdate):
            continue
        _record(ref.receive(ev), ref_shadow, ref_states)
        if i == drop:
            continue
        out = sync.receive(ev)
        if gap is None and out and isinstance(out[0], SequenceGap):
            gap = out[0]
            assert book.state & Violation.SEQUENCE_GAP and not book.sane  # the gate closes
            assert book.violations()["SEQUENCE_GAP"] == 1
            frozen = (book.last_id, book.levels())
        elif gap is not None and not resynced:
            assert out == () and (book.last_id, book.levels()) == frozen  # buffered only
            diffs_since_gap += 1
            if diffs_since_gap == 20:
                bids, asks = ref.book.levels()  # (tick, qty), best first: a BookUpdate's own
                reference = BookUpdate(
                    TOKEN,
                    ev.recv_ns,
                    ref.book.last_exch_ns,
                    tuple(bids),
                    tuple(asks),
                    snapshot=True,
                    last_id=ref.book.last_id,
                )
                out = sync.resync(reference)
                resynced = [e for e in out if not isinstance(e, BookUpdate)]
                assert book.levels() == ref.book.levels()
                post_start = len(states.last)
        _record(out, shadow, states)

    assert gap is not None, "the dropped diff went unnoticed"
    assert (gap.expected, gap.got) == (before.last_id, dropped.last_id)
    assert gap.reason == "pu != previous u"
    assert len(resynced) == 1 and isinstance(resynced[0], Resynced)
    assert book.sane and sync.state is SyncState.LIVE and sync.gaps == 1 and sync.resyncs == 2
    assert book.levels() == ref.book.levels()  # clean to the end of the file
    # ...and from the resync on, the book agrees with bookTicker as the reference does
    post = States(states.first[post_start:], states.last[post_start:], states.bbo[post_start:])
    assert post.last[0] == resynced[0].at_id == reference.last_id
    a = _agreement(post, quotes)
    print("\nafter the injected resync: " + a.report("USD-M BTCUSDT"))
    _assert_agrees(a, min_exact=200)


@needs_data
def test_without_a_snapshot_a_replay_gap_stays_closed(
    usdm: tuple[list[MarketEvent], BinanceParser],
) -> None:
    events, _ = usdm
    book = L2Book(USDM)
    sync = BinanceBookSync(book, BinanceMarket.USDM)
    skipped = False
    for ev in events:
        if isinstance(ev, BookUpdate):
            if sync.synced and not skipped and sync.applied == 100:
                skipped = True
                continue
            sync.receive(ev)
    assert sync.state is SyncState.RESYNC and sync.gaps == 1 and sync.applied == 100
    assert book.state & Violation.SEQUENCE_GAP  # never healed from diffs alone


@needs_data
def test_spot_capture_syncs_under_the_spot_rule(
    spot: tuple[list[MarketEvent], BinanceParser],
) -> None:
    events, parser = spot
    assert len(events) == 41_249 and sum(parser.malformed.values()) == 0
    book = L2Book(SPOT)
    sync = BinanceBookSync(book, BinanceMarket.SPOT)
    states = States()
    quotes, notes = _rebuild(events, sync, states)
    assert _kinds(notes) == ["Resynced"] and sync.gaps == 0 and book.sane
    snap = sync.snapshot_id
    assert states.first[1] <= snap + 1 <= states.last[1]  # U <= L + 1 <= u
    assert sync.dropped == 2 and sync.applied == 3_449
    a = _agreement(states, quotes)
    print("\n" + a.report("spot BTCUSDT"))
    _assert_agrees(a, min_exact=500)

    # the futures rule cannot follow spot: spot diffs carry no pu
    futures_rule = BinanceBookSync(L2Book(SPOT), BinanceMarket.USDM)
    gaps = [
        e
        for ev in events
        if isinstance(ev, BookUpdate)
        for e in futures_rule.receive(ev)
        if isinstance(e, SequenceGap)
    ]
    assert gaps and gaps[0].got == -1


# -- clock offset -----------------------------------------------------------------------------


def _offsets(events: Iterable[MarketEvent]) -> tuple[ClockOffsetEstimator, list[bool]]:
    est = ClockOffsetEstimator()
    stable: list[bool] = []
    for ev in events:
        if isinstance(ev, BookUpdate | Trade | Quote):
            est.add(ev.recv_ns, ev.exch_ns)
            stable.append(est.stable)
    return est, stable


@needs_data
def test_clock_offset_on_the_captures(
    usdm: tuple[list[MarketEvent], BinanceParser],
    spot: tuple[list[MarketEvent], BinanceParser],
) -> None:
    """Sign convention: offset = local clock - exchange clock. The recorder ran behind, so the
    offset is negative (-1.27 s) and every `recv - exch` in the file is negative too."""
    est, stable = _offsets(usdm[0])
    off, spread = est.offset_ns, est.spread_ns
    assert off is not None and spread is not None
    assert -1_280_000_000 < off < -1_265_000_000, off
    assert est.stable and spread <= est.tolerance_ns
    warm = stable.index(True)
    assert warm < 5_000 and sum(stable[warm:]) >= 0.99 * len(stable[warm:])
    # Spot went through another gateway and route, but the recorder's clock was the same one:
    # the two estimates must agree to within the routes' few ms of differing minimum delay.
    spot_est, _ = _offsets(spot[0])
    assert spot_est.offset_ns is not None and abs(spot_est.offset_ns - off) < 5_000_000
    print(
        f"\nclock offset (local - exchange): USD-M {off / 1e9:+.4f} s, spread "
        f"{spread / 1e6:.2f} ms; spot {spot_est.offset_ns / 1e9:+.4f} s"
    )


@pytest.mark.parametrize("offset", [-1_270_000_000, 0, 500_000_000])
def test_clock_offset_model(offset: int) -> None:
    import random

    rng = random.Random(7)
    est = ClockOffsetEstimator(tolerance_ns=2_000_000)
    exch = 1_723_161_256_000_000_000
    for _ in range(20_000):  # 20 s at 1 kHz; delays 0.3 ms .. ~20 ms, heavy-tailed
        exch += 1_000_000
        delay = 300_000 + int(rng.expovariate(1 / 2_000_000))
        est.add(exch + offset + delay, exch)
        est.add(exch + offset, 0)  # no exchange time: ignored
    assert est.offset_ns is not None and offset <= est.offset_ns <= offset + 400_000
    assert est.stable
    d = est.delay_ns(exch + offset + 5_000_000, exch)
    assert d is not None and 4_600_000 <= d <= 5_000_000
    # a 20 ms clock step makes it unstable until the old buckets have left the window
    flags = []
    for _ in range(15_000):
        exch += 1_000_000
        est.add(exch + offset + 20_000_000 + 300_000 + int(rng.expovariate(1 / 2e6)), exch)
        flags.append(est.stable)
    assert not all(flags[:9_000]) and flags[-1]
    assert est.offset_ns is not None and abs(est.offset_ns - offset - 20_000_000) < 400_000


# -- replay pacing ----------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock that moves 1 µs per read and by the requested time per sleep."""

    def __init__(self) -> None:
        self.now = 5_000_000_000
        self.sleeps: list[float] = []

    def clock(self) -> int:
        self.now += 1_000
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += int(s * 1e9)


def _capture(tmp: Path, offsets_ms: list[int]) -> Path:
    t0 = 1_723_161_255_000_000_000
    path = tmp / "capture.gz"
    with gzip.open(path, "wt") as f:
        for ms in offsets_ms:
            f.write(TICKER_USDM.replace("1723161255088169167", str(t0 + ms * 1_000_000)) + "\n")
        f.write("not a capture line\n")
    return path


@pytest.mark.parametrize("speed", [1.0, 4.0])
def test_replay_schedule_maps_recorded_time_onto_the_clock(tmp_path: Path, speed: float) -> None:
    path = _capture(tmp_path, [0, 1000, 1500, 1500, 3000])
    fake = FakeClock()
    replay = BinanceReplay(path, USDM, speed, clock=fake.clock, sleep=fake.sleep)
    recs = list(replay.records())
    assert [r for r, _ in recs][:5] == [
        1_723_161_255_000_000_000 + ms * 1_000_000 for ms in (0, 1000, 1500, 1500, 3000)
    ]
    start = replay.start_ns
    for (recorded, ev), ms in zip(recs, (0, 1000, 1500, 1500, 3000), strict=False):
        assert isinstance(ev, Quote) and ev.recv_ns == start + int(ms * 1_000_000 / speed)
        assert recorded - recs[0][0] == ms * 1_000_000
    last = recs[-1][1]
    assert recs[-1][0] == -1 and isinstance(last, Malformed) and last.reason == Reason.NO_RECV_TIME
    assert len(fake.sleeps) == 3  # one per wait; the equal timestamps need none
    assert sum(fake.sleeps) == pytest.approx(3.0 / speed - 3 * 200e-6, abs=1e-3)


def test_replay_speed_zero_never_sleeps(tmp_path: Path) -> None:
    path = _capture(tmp_path, [0, 1000, 60_000])

    def no_sleep(s: float) -> None:
        raise AssertionError(f"speed 0 slept {s} s")

    replay = BinanceReplay(path, USDM, 0, sleep=no_sleep)
    t = time.perf_counter_ns()
    events = list(replay)
    assert time.perf_counter_ns() - t < 1_000_000_000
    recv = [e.recv_ns for e in events]
    assert recv == sorted(recv) and t <= recv[0]  # the engine's clock, not the recording's
    with pytest.raises(ValueError):
        BinanceReplay(path, USDM, -1.0)


@needs_data
@pytest.mark.parametrize("speed", [5.0, 20.0])
def test_replay_real_time_pacing(speed: float) -> None:
    """Loose on purpose: the slice takes about recorded/N of wall time (never less, since
    delivery waits for the schedule), allowing a slow shared machine up to 3x."""
    span = 1_500_000_000  # recorded ns
    replay = BinanceReplay(USDM_FILE, USDM, speed)
    it: Iterator[tuple[int, MarketEvent]] = replay.records()
    first, _ = next(it)
    t0 = time.perf_counter_ns()
    n = 0
    for recorded, ev in it:
        assert ev.recv_ns <= time.perf_counter_ns()
        n += 1
        if recorded - first >= span:
            break
    wall = time.perf_counter_ns() - t0
    expected = span / speed
    assert n > 100
    assert 0.95 * expected <= wall <= 3 * expected + 50_000_000, (wall, expected)


@needs_data
def test_replay_unpaced_real_file_does_not_sleep() -> None:
    def no_sleep(s: float) -> None:
        raise AssertionError(f"speed 0 slept {s} s")

    replay = BinanceReplay(USDM_FILE, USDM, 0, sleep=no_sleep)
    kinds = Counter(type(e).__name__ for e in replay)
    assert kinds == {"BookUpdate": 6_552, "Trade": 21_313, "Quote": 66_089}
