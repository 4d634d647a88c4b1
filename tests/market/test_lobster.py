"""LOBSTER: the parsers on literal and fuzzed lines, the L3 -> L2 book on hand-built and generated
flows, the zip shell, and the acceptance test against the real AMZN sample: after every message
our top 5 levels equal the orderbook file's row, on every row."""

from __future__ import annotations

import io
import itertools
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vajra.market.book import Violation
from vajra.market.events import BookUpdate, Malformed, Side, Trade
from vajra.market.feeds.lobster import (
    EMPTY_ASK,
    EMPTY_BID,
    LobsterBook,
    LobsterMessage,
    LobsterMessageParser,
    LobsterRow,
    LobsterRowParser,
    MessageType,
    TradingPhase,
    iter_lobster_lines,
    iter_lobster_zip,
    lobster_instrument,
    lobster_session,
    read_lobster_session,
)
from vajra.market.instruments import Segment

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".." / "shared" / "data"
SAMPLE = DATA / "lobster" / "LOBSTER_SampleFile_AMZN_2012-06-21_5.zip"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"real market data folder {DATA} is absent (CI always has it)"
)

# 2012-06-21 00:00 in New York (EDT, UTC-4) = 04:00 UTC
AMZN_MIDNIGHT_NS = 1_340_251_200 * 1_000_000_000

M = MessageType
#: AMZN's tick in LOBSTER price units (1/10000 USD): book levels are price // TICK
TICK = lobster_instrument().tick


def msg(
    mtype: MessageType, oid: int, size: int, price: int, direction: Side, t: int = 1
) -> LobsterMessage:
    return LobsterMessage(t, mtype, oid, size, price, direction)


# -- message parser ----------------------------------------------------------------------------


def time_of(p: LobsterMessageParser, line: str) -> int:
    m = p.parse_line(line)
    assert isinstance(m, LobsterMessage), m
    return m.time_ns


def test_parses_literal_lines_bytes_and_str() -> None:
    p = LobsterMessageParser()
    # line 1 of the AMZN sample: a hidden sell order executed
    assert p.parse_line(b"34200.017459617,5,0,1,2238200,-1\n") == LobsterMessage(
        34_200_017_459_617, M.EXECUTE_HIDDEN, 0, 1, 2_238_200, Side.ASK
    )
    # 8 decimals, CRLF, str input: the missing ns digit is a zero, not a float artefact
    assert p.parse_line("34200.18960767,1,11885113,21,2238100,1\r\n") == LobsterMessage(
        34_200_189_607_670, M.SUBMIT, 11_885_113, 21, 2_238_100, Side.BID
    )
    assert time_of(p, "34712.61772,4,24804599,190,2238600,1") == 34_712_617_720_000
    # ReadMe halt example: no decimals at all
    assert p.parse_line("36023,7,0,0,-1,-1") == LobsterMessage(
        36_023_000_000_000, M.HALT, 0, 0, -1, Side.ASK
    )
    assert p.parse_line("36723,6,-1,5000,2238200,-1") == LobsterMessage(
        36_723_000_000_000, M.CROSS, -1, 5000, 2_238_200, Side.ASK
    )
    assert (p.lines, p.malformed, p.rounded_times) == (5, 0, 0)


def test_time_is_exact_and_float_noise_is_rounded_and_counted() -> None:
    p = LobsterMessageParser()
    # the one such line in the AMZN sample (message line 67823)
    m = p.parse_line("43002.632812672004,3,134172772,100,2238700,-1")
    assert isinstance(m, LobsterMessage) and m.time_ns == 43_002_632_812_672
    assert time_of(p, "1.0000000005,5,0,1,100,1") == 1_000_000_001
    assert time_of(p, "1.0000000004999,5,0,1,100,1") == 1_000_000_000
    assert time_of(p, "1.9999999999,5,0,1,100,1") == 2_000_000_000
    assert time_of(p, "1.000000001000,5,0,1,100,1") == 1_000_000_001  # zeros: nothing rounded
    assert p.rounded_times == 4 and p.malformed == 0
    # int(float(t) * 1e9) gives 34200000019945 here: the exact path must not go through floats
    assert time_of(p, "34200.000019946,5,0,1,100,1") == 34_200_000_019_946


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"34200.1,1,5,10,2238100\n", "expected 6 fields, got 5"),
        (b"34200.1,1,5,10,2238100,1,7", "expected 6 fields, got 7"),
        (b"", "empty line"),
        (b"\r\n", "empty line"),
        (b"34200.1,1,abc,10,2238100,1", "order_id"),
        (b"34200.1,1,5,1_0,2238100,1", "size"),
        (b"34200.1,1,5,10,22381.00,1", "price"),
        (b"34200.1,1,5,10,99999999999999999999,1", "price"),
        (b" 34200.1,1,5,10,2238100,1", "time"),
        (b"34200.,1,5,10,2238100,1", "time"),
        (b"3.42e4,1,5,10,2238100,1", "time"),
        (b"-34200.1,1,5,10,2238100,1", "time"),
        (b"34200.1,8,5,10,2238100,1", "unknown message type 8"),
        (b"34200.1,0,5,10,2238100,1", "unknown message type 0"),
        (b"34200.1,01,5,10,2238100,1", "unknown message type 01"),
        (b"34200.1,1,5,10,2238100,0", "direction must be 1 or -1"),
        (b"34200.1,1,5,10,2238100,2", "direction must be 1 or -1"),
        (b"34200.1,1,5,-10,2238100,1", "out of range"),
        (b"34200.1,3,5,0,2238100,1", "out of range"),
        (b"34200.1,4,5,10,0,-1", "out of range"),
        (b"34200.1,2,-5,10,2238100,-1", "out of range"),
        (b"34200.1,7,0,0,2,-1", "halt indicator"),
        (b"34200.1,7,0,0,1,1", "halt indicator"),
        (b"34200.1,7,9,0,1,-1", "halt indicator"),
        (b"34200.1,6,5,-1,2238100,-1", "type 6"),
        (b"34200.1,1,5,10,2238100,1\xff", "not ASCII"),
        ("34200.1,1,5,10,2238100,١", "not ASCII"),
    ],
)
def test_malformed_lines_are_events_not_exceptions(line: bytes | str, reason: str) -> None:
    p = LobsterMessageParser()
    out = p.parse_line(line, recv_ns=777)
    assert isinstance(out, Malformed), out
    assert reason in out.reason and out.reason.startswith("LOBSTER message")
    assert out.recv_ns == 777
    assert (p.lines, p.malformed) == (1, 1)


_TOKENS = st.sampled_from(
    ["", "-", "-1", "0", "1", "2", "5", "6", "7", "8", "34200.5", ".5", "1.", "1e3", "x", " 1"]
)
_FIELD = st.one_of(_TOKENS, st.integers(-(10**20), 10**20).map(str), st.text(max_size=6))
_CSVISH = st.lists(_FIELD, max_size=8).map(",".join)


@settings(max_examples=400, deadline=None)
@given(line=st.one_of(st.binary(max_size=80), st.text(max_size=80), _CSVISH))
def test_message_parser_never_raises(line: bytes | str) -> None:
    p = LobsterMessageParser()
    out = p.parse_line(line)
    assert isinstance(out, LobsterMessage | Malformed)
    assert p.malformed == (1 if isinstance(out, Malformed) else 0)


@settings(max_examples=300, deadline=None)
@given(
    t=st.integers(0, 86_400 * 10**9),
    trim=st.booleans(),
    mtype=st.sampled_from([M.SUBMIT, M.CANCEL, M.DELETE, M.EXECUTE, M.EXECUTE_HIDDEN]),
    oid=st.integers(0, 2**40),
    size=st.integers(1, 10**9),
    price=st.integers(1, 10**12),
    direction=st.sampled_from([Side.BID, Side.ASK]),
)
def test_message_round_trip(
    t: int, trim: bool, mtype: MessageType, oid: int, size: int, price: int, direction: Side
) -> None:
    frac = f"{t % 10**9:09d}"
    if trim:  # LOBSTER drops trailing zeros (8- and 5-decimal times in the sample)
        frac = frac.rstrip("0")
    stamp = f"{t // 10**9}.{frac}" if frac else f"{t // 10**9}"
    text = f"{stamp},{int(mtype)},{oid},{size},{price},{int(direction)}"
    assert LobsterMessageParser().parse_line(text.encode()) == LobsterMessage(
        t, mtype, oid, size, price, direction
    )


# -- orderbook-row parser ----------------------------------------------------------------------


def test_row_parser_literal_and_sentinels() -> None:
    p = LobsterRowParser(5)
    first = (
        b"2239500,100,2231800,100,2239900,100,2230700,200,2240000,220,2230400,100,"
        b"2242500,100,2230000,10,2244000,547,2226200,100\n"
    )
    assert p.parse_line(first) == LobsterRow(
        asks=((2239500, 100), (2239900, 100), (2240000, 220), (2242500, 100), (2244000, 547)),
        bids=((2231800, 100), (2230700, 200), (2230400, 100), (2230000, 10), (2226200, 100)),
    )
    p2 = LobsterRowParser(3)
    row = f"101,5,99,7,102,1,{EMPTY_BID},0,{EMPTY_ASK},0,{EMPTY_BID},0"
    assert p2.parse_line(row) == LobsterRow(asks=((101, 5), (102, 1)), bids=((99, 7),))
    empty = ",".join([f"{EMPTY_ASK},0,{EMPTY_BID},0"] * 3)
    assert p2.parse_line(empty) == LobsterRow(asks=(), bids=())
    assert p.malformed == p2.malformed == 0


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("101,5,99,7,102,1,98,1,103,1,97", "expected 12 fields, got 11"),
        ("101,5,99,7,102,1,98,1,103,1,97,1,0", "expected 12 fields, got 13"),
        ("101,5,99,7,102,1,98,1,103,1,97,x", "bid_sz3"),
        ("101,5,99,7,102,1,98,1,103,1,97,1.5", "bid_sz3"),
        (f"101,5,99,7,{EMPTY_ASK},3,98,1,{EMPTY_ASK},0,97,1", "empty ask level 2 has size 3"),
        (f"101,5,99,7,102,1,{EMPTY_BID},2,103,1,{EMPTY_BID},0", "empty bid level 2 has size 2"),
        (f"101,5,99,7,{EMPTY_ASK},0,98,1,103,1,97,1", "ask level 3"),  # a hole
        (f"101,5,99,7,102,1,{EMPTY_BID},0,103,1,97,1", "bid level 3"),
        ("101,5,99,7,101,1,98,1,103,1,97,1", "ask level 2"),  # not rising
        ("101,5,99,7,102,1,99,1,103,1,97,1", "bid level 2"),  # not falling
        ("101,0,99,7,102,1,98,1,103,1,97,1", "ask level 1"),  # zero size on a real level
        ("101,5,0,7,102,1,98,1,103,1,97,1", "bid level 1"),
        ("", "empty line"),
        (b"101,5,99,7,102,1,98,1,103,1,97,\xe9", "not ASCII"),
    ],
)
def test_malformed_rows(line: bytes | str, reason: str) -> None:
    p = LobsterRowParser(3)
    out = p.parse_line(line, recv_ns=5)
    assert isinstance(out, Malformed), out
    assert reason in out.reason and out.recv_ns == 5
    assert p.malformed == 1


@settings(max_examples=300, deadline=None)
@given(
    line=st.one_of(
        st.binary(max_size=120),
        st.text(max_size=120),
        st.lists(
            st.one_of(_FIELD, st.just(str(EMPTY_ASK)), st.just(str(EMPTY_BID))), max_size=14
        ).map(",".join),
    )
)
def test_row_parser_never_raises(line: bytes | str) -> None:
    out = LobsterRowParser(3).parse_line(line)
    assert isinstance(out, LobsterRow | Malformed)


@settings(max_examples=200, deadline=None)
@given(
    asks=st.lists(st.integers(1, 10**9), max_size=4, unique=True),
    bids=st.lists(st.integers(1, 10**9), max_size=4, unique=True),
    sizes=st.lists(st.integers(1, 10**6), min_size=8, max_size=8),
)
def test_row_round_trip(asks: list[int], bids: list[int], sizes: list[int]) -> None:
    a = tuple(zip(sorted(asks), sizes[:4], strict=False))
    b = tuple(zip(sorted(bids, reverse=True), sizes[4:], strict=False))
    fields: list[int] = []
    for i in range(4):
        fields += a[i] if i < len(a) else (EMPTY_ASK, 0)
        fields += b[i] if i < len(b) else (EMPTY_BID, 0)
    assert LobsterRowParser(4).parse_line(",".join(map(str, fields))) == LobsterRow(a, b)


# -- instrument and session --------------------------------------------------------------------


def test_instrument_and_session_names() -> None:
    inst = lobster_instrument(token=42)
    assert (inst.symbol, inst.token, inst.segment) == ("AMZN", 42, Segment.US_EQ)
    assert (inst.price_decimals, inst.tick, inst.lot) == (4, 100, 1)
    assert inst.format_price(2_238_200) == "223.8200"
    s = lobster_session(
        [
            "LOBSTER_SampleFiles_ReadMe.txt",
            "AMZN_2012-06-21_34200000_57600000_orderbook_5.csv",
            "AMZN_2012-06-21_34200000_57600000_message_5.csv",
        ]
    )
    assert (s.symbol, s.levels, s.start_ms, s.end_ms) == ("AMZN", 5, 34_200_000, 57_600_000)
    assert s.midnight_ns == AMZN_MIDNIGHT_NS
    winter = lobster_session(["X_2012-01-03_0_1_message_1.csv", "X_2012-01-03_0_1_orderbook_1.csv"])
    assert winter.midnight_ns == 1_325_566_800 * 10**9  # EST, UTC-5
    with pytest.raises(ValueError, match="found 0"):
        lobster_session(["AMZN_2012-06-21_34200000_57600000_message_5.csv"])


# -- LobsterBook on hand-built flows -----------------------------------------------------------


def started(levels: int = 3) -> LobsterBook:
    """Asks 101/103/105 and bids 99/97/95 (ticks: cents), full at 3 levels, ids all unknown.
    Levels two ticks apart leave room to insert a level between them."""
    lb = LobsterBook(lobster_instrument(token=7), levels=levels, midnight_ns=AMZN_MIDNIGHT_NS)
    lb.snapshot(FULL)
    return lb


FULL = LobsterRow(((10100, 10), (10300, 20), (10500, 30)), ((9900, 11), (9700, 21), (9500, 31)))


def row(asks: list[tuple[int, int]], bids: list[tuple[int, int]] | None = None) -> LobsterRow:
    return LobsterRow(tuple(asks), FULL.bids if bids is None else tuple(bids))


def ticks(lb: LobsterBook) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    return lb.book.levels()


def test_submit_cancel_execute_delete_as_absolute_levels() -> None:
    lb = started()
    t = 34_200_000_000_001
    (u,) = lb.on_message(msg(M.SUBMIT, 1, 5, 10100, Side.ASK, t=t))
    # levels are tick indexes (price // tick: 10100 -> 101); trades keep price units
    assert isinstance(u, BookUpdate) and u.asks == ((10100 // TICK, 15),) and u.bids == ()
    assert u.asks == ((101, 15),) and u.rejects == 0
    assert (u.token, u.recv_ns, u.exch_ns) == (7, t, AMZN_MIDNIGHT_NS + t)
    (u,) = lb.on_message(msg(M.CANCEL, 1, 2, 10100, Side.ASK))
    assert isinstance(u, BookUpdate) and u.asks == ((101, 13),) and u.rejects == 0
    tr, u = lb.on_message(msg(M.EXECUTE, 1, 3, 10100, Side.ASK))
    # a sell limit order executed: the buyer crossed the spread
    assert isinstance(tr, Trade) and (tr.price, tr.qty, tr.aggressor) == (10100, 3, Side.BID)
    assert isinstance(u, BookUpdate) and u.asks == ((101, 10),) and u.rejects == 0
    assert lb.orders == {}  # fully executed
    tr, u = lb.on_message(msg(M.EXECUTE, 99, 11, 9900, Side.BID))  # an unknown resting order
    assert isinstance(tr, Trade) and tr.aggressor is Side.ASK and tr.price == 9900
    assert isinstance(u, BookUpdate) and u.bids == ((99, 0),) and u.rejects == 0
    assert ticks(lb)[0] == [(97, 21), (95, 31)]
    lb.on_message(msg(M.SUBMIT, 2, 4, 9600, Side.BID))
    (u,) = lb.on_message(msg(M.DELETE, 2, 4, 9600, Side.BID))
    assert isinstance(u, BookUpdate) and u.bids == ((96, 0),) and u.rejects == 0
    assert lb.unknown_orders == 1 and lb.trades == 2 and lb.order_mismatches == 0
    assert lb.book.sane and lb.orders == {}


def test_unknown_orders_reduce_the_level_the_row_gave() -> None:
    """Orders resting before the sample: their shares are only known inside the row's level
    quantity, and each message removes exactly what it states."""
    lb = started()
    lb.on_message(msg(M.CANCEL, 500, 4, 10300, Side.ASK))
    lb.on_message(msg(M.DELETE, 501, 6, 10300, Side.ASK))
    assert ticks(lb)[1][1] == (103, 10)
    assert lb.unknown_orders == 2 and lb.order_mismatches == 0


def test_known_order_that_changed_out_of_view_is_a_counted_mismatch() -> None:
    lb = started()
    lb.on_message(msg(M.SUBMIT, 1, 200, 10300, Side.ASK))
    lb.on_message(msg(M.DELETE, 1, 100, 10300, Side.ASK))  # 100 went while we did not look
    assert lb.order_mismatches == 1 and 1 not in lb.orders
    assert ticks(lb)[1][1] == (103, 120)  # the level follows the message, not our record


def test_hidden_execution_is_a_trade_that_leaves_the_book() -> None:
    lb = started()
    before = ticks(lb)
    (tr,) = lb.on_message(msg(M.EXECUTE_HIDDEN, 0, 100, 10050, Side.BID))
    assert isinstance(tr, Trade) and (tr.price, tr.qty, tr.aggressor) == (10050, 100, Side.ASK)
    assert ticks(lb) == before and lb.book.updates == 1


def test_cross_and_halts_leave_the_book() -> None:
    lb = started()
    before = ticks(lb)
    assert lb.on_message(msg(M.CROSS, -1, 5000, 10000, Side.ASK)) == ()
    phases = []
    for price in (-1, 0, 1):  # ReadMe: halt, quoting resumes, trading resumes
        assert lb.on_message(msg(M.HALT, 0, 0, price, Side.ASK)) == ()
        phases.append(lb.phase)
    assert phases == [TradingPhase.HALTED, TradingPhase.QUOTING, TradingPhase.TRADING]
    assert ticks(lb) == before and lb.crosses == 1 and lb.trades == 0


def test_first_message_is_in_the_first_row_already() -> None:
    lb = LobsterBook(lobster_instrument(), levels=2)
    r = LobsterRow(((10100, 5),), ((9900, 1),))
    events = lb.snapshot(r, msg(M.SUBMIT, 1, 5, 10100, Side.ASK))
    assert len(events) == 1 and isinstance(events[0], BookUpdate) and events[0].snapshot
    assert (events[0].bids, events[0].asks, events[0].rejects) == (((99, 1),), ((101, 5),), 0)
    assert ticks(lb) == ([(99, 1)], [(101, 5)])  # not 10
    assert lb.orders == {1: (Side.ASK, 10100, 5)}
    tr, snap = lb.snapshot(r, msg(M.EXECUTE, 9, 2, 10100, Side.ASK))
    assert isinstance(tr, Trade) and tr.aggressor is Side.BID and isinstance(snap, BookUpdate)
    assert lb.messages == 2 and lb.trades == 1


def test_over_reduction_is_refused_by_the_book_not_hidden() -> None:
    lb = started()
    lb.on_message(msg(M.DELETE, 9, 50, 10100, Side.ASK))  # the level holds 10
    assert lb.book.violations()["BAD_QTY"] == 1 and ticks(lb)[1][0] == (101, 10)


def test_a_deeper_level_entering_view_is_taken_from_the_row() -> None:
    lb = started()
    lb.on_message(msg(M.DELETE, 9, 10, 10100, Side.ASK))  # best ask empties
    r = row([(10300, 20), (10500, 30), (10800, 8)])
    u = lb.reconcile_from_row(r)
    assert u is not None and u.asks == ((10800 // TICK, 8),) == ((108, 8),) and u.bids == ()
    assert (lb.reconciliations, lb.levels_taken, lb.levels_corrected) == (1, 1, 1)
    assert lb.top_matches(r) and lb.ask_edge == 108
    # a row that shows fewer levels than requested is the whole side: nothing beyond to take
    lb.on_message(msg(M.DELETE, 9, 8, 10800, Side.ASK))
    assert lb.reconcile_from_row(row([(10300, 20), (10500, 30)])) is None
    assert lb.ask_edge > 10**12 and lb.reconciliations == 1


def test_a_row_level_off_the_grid_is_refused_and_counted_not_rounded() -> None:
    lb = started()
    lb.on_message(msg(M.DELETE, 9, 10, 10100, Side.ASK))  # best ask empties
    r = row([(10300, 20), (10500, 30), (10850, 8)])  # 108.50 cents: not a one-cent tick
    u = lb.reconcile_from_row(r)
    assert u is not None and u.asks == () and u.rejects == Violation.OFF_TICK
    assert lb.book.violations()["OFF_TICK"] == 1
    assert ticks(lb)[1] == [(103, 20), (105, 30)]  # nothing rounded onto tick 108
    assert not lb.top_matches(r)


def test_pushed_out_levels_are_kept_but_retaken_when_they_return() -> None:
    lb = started()
    lb.on_message(msg(M.SUBMIT, 1, 4, 10200, Side.ASK))  # 105 falls out of view
    pushed = row([(10100, 10), (10200, 4), (10300, 20)])
    assert lb.reconcile_from_row(pushed) is None
    assert ticks(lb)[1] == [(101, 10), (102, 4), (103, 20), (105, 30)]  # last-seen 105 kept
    assert lb.ask_edge == 103
    # the window moves back down onto 105: unchanged, but taken anyway (we could not know)
    lb.on_message(msg(M.DELETE, 1, 4, 10200, Side.ASK))
    assert lb.reconcile_from_row(FULL) is None
    assert (lb.reconciliations, lb.levels_taken, lb.levels_corrected) == (1, 1, 0)
    # push it out again, let it vanish out of view, then bring the window back down
    lb.on_message(msg(M.SUBMIT, 2, 4, 10200, Side.ASK))
    lb.reconcile_from_row(pushed)
    lb.on_message(msg(M.DELETE, 2, 4, 10200, Side.ASK))
    back = row([(10100, 10), (10300, 20), (10600, 2)])
    u = lb.reconcile_from_row(back)
    assert u is not None and set(u.asks) == {(105, 0), (106, 2)}
    assert (lb.reconciliations, lb.levels_taken, lb.levels_corrected) == (2, 2, 1)
    assert lb.levels_dropped == 1 and lb.top_matches(back) and lb.divergent_levels == 0


@pytest.mark.parametrize("side", [Side.ASK, Side.BID])
def test_the_window_edge_follows_messages_between_rows(side: Side) -> None:
    """Rows can be lost (a malformed line): a level pushed out by a submit must count as out of
    view from that message on, so when it returns with a size changed unseen, the next row
    that arrives gives it back instead of reporting a divergence."""
    lb = started()
    new, pushed, deep = (10200, 10500, 30) if side is Side.ASK else (9800, 9500, 31)
    lb.on_message(msg(M.SUBMIT, 1, 4, new, side))  # `pushed` falls out of view; no row follows
    assert (lb.ask_edge, lb.bid_edge) == ((103, 95) if side is Side.ASK else (105, 97))
    lb.on_message(msg(M.DELETE, 1, 4, new, side))  # `pushed` is back in view
    asks = [(10100, 10), (10300, 20), (10500, 7)] if side is Side.ASK else list(FULL.asks)
    bids = [(9900, 11), (9700, 21), (9500, 7)] if side is Side.BID else list(FULL.bids)
    r = row(asks, bids)
    u = lb.reconcile_from_row(r)
    assert u is not None and (u.asks or u.bids) == ((pushed // TICK, 7),)
    assert lb.top_matches(r) and lb.divergent_levels == 0 and deep != 7


def test_reconcile_never_writes_inside_the_window() -> None:
    lb = started()
    lb.on_message(msg(M.CANCEL, 9, 1, 9700, Side.BID))
    lying = row([(10100, 10), (10300, 99), (10500, 30)], [(9900, 11), (9700, 21), (9600, 31)])
    assert lb.reconcile_from_row(lying) is None
    # 103x99 vs 20, 97x21 vs 20, 96 shown but absent: all inside. Our 95 is not contradicted:
    # behind a 96 it would be the 4th level, out of the row.
    assert lb.divergent_levels == 3 and lb.reconciliations == 0
    assert ticks(lb) == ([(99, 11), (97, 20), (95, 31)], [(101, 10), (103, 20), (105, 30)])


def test_a_short_row_proves_last_seen_levels_gone() -> None:
    lb = started()
    lb.on_message(msg(M.SUBMIT, 1, 1, 9800, Side.BID))  # 95 falls out of view, kept
    lb.reconcile_from_row(row(list(FULL.asks), [(9900, 11), (9800, 1), (9700, 21)]))
    assert lb.book.bid_depth() == 4
    lb.on_message(msg(M.DELETE, 9, 21, 9700, Side.BID))
    u = lb.reconcile_from_row(row(list(FULL.asks), [(9900, 11), (9800, 1)]))
    assert u is not None and u.bids == ((95, 0),)
    assert lb.book.bid_depth() == 2 and lb.bid_edge == 0
    assert (lb.reconciliations, lb.levels_taken, lb.levels_dropped) == (1, 0, 1)
    # with the whole side in view, a new deep level is in the messages and needs no row
    lb.on_message(msg(M.SUBMIT, 3, 2, 9000, Side.BID))
    r = row(list(FULL.asks), [(9900, 11), (9800, 1), (9000, 2)])
    assert lb.reconcile_from_row(r) is None and lb.top_matches(r)
    assert lb.bid_edge == 90 and lb.beyond_view == 0


def test_submit_below_the_window_is_counted() -> None:
    """A message priced below the window means the view had a hole we did not re-read (no row
    step after a level left): applied, counted, and repaired by the next row."""
    lb = started()
    lb.on_message(msg(M.SUBMIT, 1, 3, 10700, Side.ASK))
    assert lb.beyond_view == 1
    lb.reconcile_from_row(row([(10100, 10), (10300, 20), (10500, 30)]))
    assert lb.top_matches(FULL)


# -- LobsterBook on generated LOBSTER-like files -----------------------------------------------


@dataclass
class TrueBook:
    """A full-depth order book and the LOBSTER files it would produce at `levels`: a message is
    written only when its price ranks within the top `levels` of its side, and each row is the
    top `levels` after it."""

    levels: int
    orders: dict[int, tuple[Side, int, int]] = field(default_factory=dict)
    qty: dict[Side, dict[int, int]] = field(default_factory=lambda: {Side.BID: {}, Side.ASK: {}})

    def ranked(self, side: Side, extra: int | None = None) -> list[int]:
        prices = set(self.qty[side]) | ({extra} if extra is not None else set())
        return sorted(prices, reverse=side is Side.BID)

    def visible(self, side: Side, price: int) -> bool:
        return self.ranked(side, price).index(price) < self.levels

    def add(self, oid: int, side: Side, price: int, size: int) -> None:
        self.orders[oid] = (side, price, size)
        self.qty[side][price] = self.qty[side].get(price, 0) + size

    def reduce(self, oid: int, size: int) -> None:
        side, price, left = self.orders[oid]
        if left == size:
            del self.orders[oid]
        else:
            self.orders[oid] = (side, price, left - size)
        lv = self.qty[side]
        lv[price] -= size
        if not lv[price]:
            del lv[price]

    def row(self) -> LobsterRow:
        a, b = self.ranked(Side.ASK)[: self.levels], self.ranked(Side.BID)[: self.levels]
        return LobsterRow(
            tuple((p, self.qty[Side.ASK][p]) for p in a),
            tuple((p, self.qty[Side.BID][p]) for p in b),
        )


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(), levels=st.integers(1, 4), resting=st.integers(0, 12), steps=st.integers(1, 120)
)
def test_generated_flows_match_every_row(
    data: st.DataObject, levels: int, resting: int, steps: int
) -> None:
    """Random order flow with orders resting before the sample and activity below the window:
    after every written message our top levels equal the row, nothing inside the window is ever
    taken from a row, and every level a row gives us lies below the previous row's window.

    With `skips`, some rows are lost (as a malformed row is): the window edge must follow the
    messages alone until the next good row, which must still bring the book back exactly."""
    skips = data.draw(st.booleans(), label="skips")
    true = TrueBook(levels)
    bid_px = st.integers(90, 99).map(lambda t: t * 100)
    ask_px = st.integers(101, 110).map(lambda t: t * 100)
    oid = 0
    for _ in range(resting):  # the book before the sample starts: ids we will never see added
        oid += 1
        side = data.draw(st.sampled_from([Side.BID, Side.ASK]))
        true.add(
            oid,
            side,
            data.draw(bid_px if side is Side.BID else ask_px),
            data.draw(st.integers(1, 9)),
        )
    written: list[tuple[LobsterMessage, LobsterRow]] = []
    t = 34_200 * 10**9
    for _ in range(steps):
        t += 1
        kind = data.draw(st.sampled_from(["submit", "submit", "reduce", "reduce", "hidden"]))
        if kind == "reduce" and true.orders:
            rid = data.draw(st.sampled_from(sorted(true.orders)))
            side, price, left = true.orders[rid]
            mtype = data.draw(st.sampled_from([M.CANCEL, M.DELETE, M.EXECUTE]))
            size = left if mtype is M.DELETE else data.draw(st.integers(1, left))
            if mtype is M.CANCEL and size == left:
                mtype = M.DELETE
            shown = true.visible(side, price)
            true.reduce(rid, size)
            m = LobsterMessage(t, mtype, rid, size, price, side)
        elif kind == "hidden":
            shown, m = True, LobsterMessage(t, M.EXECUTE_HIDDEN, 0, 3, 10000, Side.ASK)
        else:
            oid += 1
            side = data.draw(st.sampled_from([Side.BID, Side.ASK]))
            price = data.draw(bid_px if side is Side.BID else ask_px)
            size = data.draw(st.integers(1, 9))
            shown = true.visible(side, price)
            true.add(oid, side, price, size)
            m = LobsterMessage(t, M.SUBMIT, oid, size, price, side)
        if shown:
            written.append((m, true.row()))
    if not written:
        return
    lb = LobsterBook(lobster_instrument(), levels=levels)
    (m0, r0), rest = written[0], written[1:]
    lb.snapshot(r0, m0)
    assert lb.top_matches(r0)
    prev: LobsterRow | None = r0
    for m, r in rest:
        lb.on_message(m)
        if skips and data.draw(st.integers(0, 3), label="skip row") == 0:
            prev = None
            continue
        u = lb.reconcile_from_row(r)
        assert lb.top_matches(r), (m, r, lb.book.levels())
        if u is not None and prev is not None:  # levels are ticks, rows are price units
            for t, _ in u.bids:
                assert len(prev.bids) == levels and t < prev.bids[-1][0] // TICK
            for t, _ in u.asks:
                assert len(prev.asks) == levels and t > prev.asks[-1][0] // TICK
        prev = r
    assert lb.divergent_levels == 0 and lb.book.sane
    if not skips:
        assert lb.beyond_view == 0 and lb.book.violations()["BAD_QTY"] == 0
    assert lb.trades == sum(m.type in (M.EXECUTE, M.EXECUTE_HIDDEN) for m, _ in written)
    lb.book.check_consistency()


# -- the zip shell on a small hand-made archive ------------------------------------------------


def make_zip(path: Path, messages: list[str], rows: list[str], levels: int = 2) -> Path:
    stem = f"TEST_2012-06-21_34200000_57600000_{{}}_{levels}.csv"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(stem.format("message"), "".join(m + "\n" for m in messages))
        zf.writestr(stem.format("orderbook"), "".join(r + "\n" for r in rows))
        zf.writestr("README.txt", "not a LOBSTER member")
    return path


def test_zip_shell_events_clocks_and_malformed(tmp_path: Path) -> None:
    e2 = f"{EMPTY_ASK},0,{EMPTY_BID},0"
    z = make_zip(
        tmp_path / "t.zip",
        [
            "34200.000000001,1,1,5,10100,-1",
            "34200.5,1,2,3,9900,1",
            "34201,4,1,2,10100,-1",
            "garbage",
            "34202,3,2,3,9900,1",
            "34203,5,0,7,10000,1",
        ],
        [
            f"10100,5,{EMPTY_BID},0,{e2}",
            f"10100,5,9900,3,{e2}",
            f"10100,3,9900,3,{e2}",
            f"10100,3,9900,1,{e2}",  # the lost message left 1 share here: the resync takes it
            f"10100,3,{EMPTY_BID},0,{e2}",
            "10100,3",
        ],
    )
    assert read_lobster_session(z).levels == 2
    lb = LobsterBook(lobster_instrument("TEST", 3), levels=2, midnight_ns=AMZN_MIDNIGHT_NS)
    ev = list(iter_lobster_zip(z, book=lb))
    kinds = [type(e).__name__ for e in ev]
    assert kinds == [
        "BookUpdate",  # snapshot from row 1
        "BookUpdate",  # bid 99x3
        "Trade",
        "BookUpdate",  # ask 101x3
        "Malformed",  # "garbage"
        "BookUpdate",  # resync snapshot from row 4
        "BookUpdate",  # delete of order 2 against the resynced 1 share: refused as BAD_QTY
        "Malformed",  # row 6
        "Trade",  # the hidden execution still applies
    ]
    snap = ev[0]
    assert isinstance(snap, BookUpdate) and snap.snapshot and snap.token == 3
    assert snap.recv_ns == 34_200_000_000_001 and snap.exch_ns == AMZN_MIDNIGHT_NS + snap.recv_ns
    tr = ev[2]
    assert isinstance(tr, Trade) and (tr.price, tr.qty, tr.aggressor) == (10100, 2, Side.BID)
    assert tr.exch_ns == 1_340_285_401 * 10**9  # 2012-06-21 09:30:01 EDT
    bad = ev[4]
    assert isinstance(bad, Malformed) and bad.recv_ns == 34_201 * 10**9
    resync = ev[5]
    assert isinstance(resync, BookUpdate) and resync.snapshot and resync.bids == ((99, 1),)
    assert resync.asks == ((101, 3),) and resync.rejects == 0
    hidden = ev[8]
    assert isinstance(hidden, Trade) and hidden.aggressor is Side.ASK
    assert lb.book.violations()["BAD_QTY"] == 1


def test_zip_shell_uneven_files_end_in_malformed(tmp_path: Path) -> None:
    e2 = f"{EMPTY_ASK},0,{EMPTY_BID},0"
    z = make_zip(
        tmp_path / "u.zip",
        ["34200,1,1,5,10100,-1", "34201,1,2,5,10200,-1", "34202,1,3,5,10300,-1"],
        [f"10100,5,{EMPTY_BID},0,{e2}"],
    )
    pairs = list(iter_lobster_lines(z))
    assert [len(p[1]) > 0 for p in pairs] == [True, False, False]
    ev = list(iter_lobster_zip(z))
    assert [type(e).__name__ for e in ev] == [
        "BookUpdate",
        "Malformed",
        "BookUpdate",
        "Malformed",
        "BookUpdate",
    ]


def test_zip_shell_streams_without_extracting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data folder is read-only and the sample must never be copied out: the shell reads
    members as streams, lazily, and writes nothing."""
    z = make_zip(
        tmp_path / "r.zip",
        ["34200,5,0,1,10000,1", "34201,5,0,2,10000,-1"],
        [f"{EMPTY_ASK},0,{EMPTY_BID},0"] * 2,
        1,
    )

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the shell extracted a member")

    monkeypatch.setattr(zipfile.ZipFile, "extract", refuse)
    monkeypatch.setattr(zipfile.ZipFile, "extractall", refuse)
    monkeypatch.setattr(zipfile.ZipFile, "read", refuse)  # whole-member reads are not streaming
    before = sorted(tmp_path.iterdir())
    events = iter_lobster_zip(z)
    first, snap = next(events), next(events)  # lazily: one pair read, the rest still zipped
    assert isinstance(first, Trade) and first.aggressor is Side.ASK
    assert isinstance(snap, BookUpdate) and snap.snapshot
    assert [e.aggressor for e in events if isinstance(e, Trade)] == [Side.BID]
    assert sorted(tmp_path.iterdir()) == before


# -- the real AMZN sample ----------------------------------------------------------------------


def raw_message_lines() -> list[list[str]]:
    """Message fields split by hand (not by our parser), for independent counts."""
    with zipfile.ZipFile(SAMPLE) as zf:
        name = next(n for n in zf.namelist() if "_message_" in n)
        text = io.TextIOWrapper(zf.open(name), encoding="ascii")
        return [line.rstrip("\n").split(",") for line in text]


@needs_data
def test_acceptance_every_row_of_the_amzn_sample() -> None:
    """Start from the first orderbook row, apply every message, and compare the top 5 levels of
    both sides (price and size) with the orderbook file after every message: all 155,935 rows.

    Reconciliation, bounded and explained: a level can only enter the 5-level view from below
    when a message empties a visible level on a side that shows 5 levels before and after it
    (submits push levels *out*, never in). So the levels we take from the file must be exactly
    that count, one per such message, each strictly below the previous row's 5th level.
    """
    started_at = time.perf_counter()
    session = read_lobster_session(SAMPLE)
    lb = LobsterBook(lobster_instrument(token=1), levels=5, midnight_ns=session.midnight_ns)
    tick = lb.tick
    assert tick == TICK == 100
    messages, rows = LobsterMessageParser(), LobsterRowParser(5)
    n = mismatched = entering = would_mismatch = changed = 0
    prev: LobsterRow | None = None
    for mline, rline in iter_lobster_lines(SAMPLE):
        m, r = messages.parse_line(mline), rows.parse_line(rline)
        assert isinstance(m, LobsterMessage), (n, m)
        assert isinstance(r, LobsterRow), (n, r)
        if prev is None:
            *_, snap = lb.snapshot(r, m)
            assert isinstance(snap, BookUpdate) and snap.snapshot and snap.rejects == 0
            assert snap.bids == tuple((p // tick, q) for p, q in r.bids)
            assert snap.asks == tuple((p // tick, q) for p, q in r.asks)
        else:
            for e in lb.on_message(m):
                if isinstance(e, BookUpdate):  # one level, at the message's price, as a tick
                    side, other = (e.bids, e.asks) if m.direction is Side.BID else (e.asks, e.bids)
                    assert e.rejects == 0 and not other and len(side) == 1, (n, e)
                    assert side[0][0] * tick == m.price, (n, m, e)
                else:  # trades keep price units
                    assert e.price == m.price, (n, m, e)
            would_mismatch += not lb.top_matches(r)
            u = lb.reconcile_from_row(r)
            changed += u is not None
            if u is not None:  # never inside the levels we could derive (u: ticks; rows: price)
                for t, _ in u.bids:
                    assert len(prev.bids) == 5 and t < prev.bids[-1][0] // tick, (n, u, prev)
                for t, _ in u.asks:
                    assert len(prev.asks) == 5 and t > prev.asks[-1][0] // tick, (n, u, prev)
            if m.type in (M.CANCEL, M.DELETE, M.EXECUTE):
                before = prev.bids if m.direction is Side.BID else prev.asks
                after = r.bids if m.direction is Side.BID else r.asks
                emptied = m.price in {p for p, _ in before} and m.price not in {p for p, _ in after}
                entering += emptied and len(before) == 5 and len(after) == 5
        mismatched += not lb.top_matches(r)
        prev = r
        n += 1
    elapsed = time.perf_counter() - started_at
    stats = lb.stats()
    print(f"\nLOBSTER AMZN 2012-06-21: {n} rows replayed and compared in {elapsed:.1f} s")
    for k, v in stats.items():
        print(f"  {k:18} {v}")
    print(f"  {'would_mismatch':18} {would_mismatch}  (rows wrong without the row step)")
    print(f"  {'rows_changed':18} {changed}  (rows whose reconcile changed the book)")
    print(f"  {'rounded_times':18} {messages.rounded_times}")
    assert n == 155_935 and messages.malformed == 0 and rows.malformed == 0
    assert mismatched == 0
    assert lb.divergent_levels == 0 and lb.beyond_view == 0
    assert lb.book.sane and not any(lb.book.counts)
    # bounded and explained: one level per message that emptied a visible level of a full side
    assert lb.levels_taken == lb.reconciliations == entering
    assert entering <= stats["messages"] and lb.levels_corrected <= lb.levels_taken
    # the row changed our book exactly on the rows where we were wrong without it (a level that
    # returned with another size, was new to us, or had gone while out of view)
    assert would_mismatch == changed
    assert messages.rounded_times == 1
    lb.book.check_consistency()


@needs_data
def test_trades_of_the_amzn_sample_through_the_zip_shell() -> None:
    raw = raw_message_lines()
    executions = [i for i, f in enumerate(raw) if f[1] in ("4", "5")]
    session = read_lobster_session(SAMPLE)
    lb = LobsterBook(lobster_instrument(token=9), levels=5, midnight_ns=session.midnight_ns)
    trades: list[Trade] = []
    malformed = 0
    for e in iter_lobster_zip(SAMPLE, token=9, book=lb):
        if isinstance(e, Trade):
            trades.append(e)
        elif isinstance(e, Malformed):
            malformed += 1
    assert malformed == 0
    assert len(trades) == len(executions) == lb.trades
    by_line = {i + 1: tr for i, tr in zip(executions, trades, strict=True)}
    # hand-checked lines (1-based line numbers of the message file):
    # 1: "34200.017459617,5,0,1,2238200,-1" hidden sell order executed -> buyer aggressed
    first = by_line[1]
    assert (first.price, first.qty, first.aggressor) == (2_238_200, 1, Side.BID)
    assert first.recv_ns == 34_200_017_459_617
    assert first.exch_ns == 1_340_285_400_017_459_617  # 2012-06-21 13:30:00.017459617 UTC
    # 29: "34200.190226476,4,11885113,21,2238100,1" the buy order of line 2 hit by a seller
    assert (by_line[29].price, by_line[29].qty, by_line[29].aggressor) == (2_238_100, 21, Side.ASK)
    # 38: "34200.39141294,4,14585251,100,2239500,-1" best ask lifted by a buyer
    assert (by_line[38].price, by_line[38].qty, by_line[38].aggressor) == (2_239_500, 100, Side.BID)
    # 89: "34200.553743035,5,0,100,2239700,1" hidden buy order hit by a seller
    assert (by_line[89].price, by_line[89].qty, by_line[89].aggressor) == (2_239_700, 100, Side.ASK)
    assert all(a.exch_ns <= b.exch_ns for a, b in itertools.pairwise(trades))
    assert sum(t.aggressor is Side.BID for t in trades) == sum(
        f[5] == "-1" for f in (raw[i] for i in executions)
    )
    assert lb.divergent_levels == 0 and lb.book.sane
