"""The cost model against every worked example in reference §1 (to the paisa where the reference
gives paise, within its own rounding where it writes "≈"), the STT columns and their date
switches, the brokerage cap, config errors, and the fast path against the exact one."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vajra.market.instruments import Segment, parse_scaled
from vajra.trading.costs import (
    DEFAULT_DIR,
    Charges,
    CostConfigError,
    CostModel,
    Execution,
    Leg,
    leg_for_segment,
    round_rupee,
)

POST = dt.date(2026, 4, 1)  # the worked examples' rates
PRE = dt.date(2026, 3, 31)
RS = 100  # paise per rupee
LAKH = 100_000 * RS


@pytest.fixture(scope="module")
def model() -> CostModel:
    return CostModel.load()


def rupees(text: str) -> int:
    return parse_scaled(text, 2)


def assert_about(paise: int, reference: str) -> None:
    """`paise` is what the reference's "≈ <reference>" rounds from: within half its last digit."""
    decimals = len(reference.partition(".")[2])
    half = 10 ** (2 - decimals) / 2
    assert abs(paise - rupees(reference)) <= half, (paise, reference)


# --- the worked examples (reference §1, rates from 2026-04-01) ---------------------------------


def test_intraday_equity_one_lakh_each_side_to_the_paisa(model: CostModel) -> None:
    c = model.round_trip(Leg.INTRADAY, LAKH, LAKH, POST)
    assert c == Charges(
        brokerage=rupees("40"),
        stt=rupees("25"),
        exchange=rupees("5.94"),
        ipft=rupees("0.20"),
        sebi=rupees("0.20"),
        stamp=rupees("3.00"),
        gst=rupees("8.34"),
    )
    assert c.total == rupees("82.68")
    assert_about(c.total, "82.7")
    assert round(c.total / LAKH * 10_000, 1) == 8.3  # "8.3 bp of one side"


def test_nifty_futures_one_lot_post_april_2026(model: CostModel) -> None:
    value = 65 * 25_000 * RS
    assert value == rupees("16.25") * 100_000  # "Rs 16.25 lakh a side"
    c = model.round_trip(Leg.FUTURES, value, value, POST)
    assert c.stt == rupees("812.50")
    assert c.exchange == rupees("56.23")  # 0.00173% of 32.5 lakh = 56.225, half up
    assert_about(c.exchange, "56.2")
    assert c.ipft == rupees("3.25")  # one rounding on turnover; per order it would be 3.26
    assert c.sebi == rupees("3.25")
    assert c.stamp == rupees("32.50")
    assert c.brokerage == rupees("40")
    assert c.gst == rupees("18.49")  # 18% of 102.73
    assert_about(c.gst, "18.5")
    assert c.total == rupees("966.22")
    assert_about(c.total, "966")
    assert_about(c.total // 65, "14.9")  # "≈ 14.9 index points" (per unit of the lot)
    assert round(c.stt / c.total, 2) == 0.84  # "STT is about 84% of a futures round trip"


def test_nifty_futures_with_pre_april_2026_stt(model: CostModel) -> None:
    value = 65 * 25_000 * RS
    c = model.round_trip(Leg.FUTURES, value, value, PRE)
    assert c.stt == rupees("325")  # 0.02%
    assert c.total == rupees("478.72")
    assert_about(c.total, "479")


def test_nifty_option_one_lot_at_premium_100(model: CostModel) -> None:
    premium = 65 * 100 * RS
    c = model.round_trip(Leg.OPTIONS, premium, premium, POST)
    assert c == Charges(
        brokerage=rupees("40"),
        stt=rupees("9.75"),  # 0.15% of 6,500
        exchange=rupees("4.55"),  # 4.5539
        ipft=rupees("0.07"),  # 0.065, half up
        sebi=rupees("0.01"),  # 0.013
        stamp=rupees("0.20"),  # 0.195, half up
        gst=rupees("8.03"),  # 18% of 44.63 = 8.0334
    )
    assert c.total == rupees("62.61")
    assert_about(c.total, "62.6")
    assert round(c.total / premium, 2) == 0.01  # "about 1% of premium"


def test_reference_round_trip_formula_is_the_exact_bill(model: CostModel) -> None:
    """The reference's TOTAL formula, with its rates typed in here, against the config files."""
    pct = Fraction(1, 100)
    b, s = 3 * LAKH + 17, 3 * LAKH + 5_001
    brk = 2 * 20 * RS
    r_stt, r_exch, r_ipft = Fraction("0.05") * pct, Fraction("0.00173") * pct, Fraction(1, 10**6)
    r_exch_all = r_exch + r_ipft + Fraction(1, 10**6)  # the formula's 1e-6 is the SEBI fee
    r_stamp = Fraction("0.002") * pct
    total = (
        brk
        + r_stt * s
        + r_exch_all * (b + s)
        + Fraction(18, 100) * (brk + r_exch_all * (b + s))
        + r_stamp * b
    )
    assert model.round_trip_exact(Leg.FUTURES, b, s, POST) == total


# --- rates and dates ---------------------------------------------------------------------------

PCT = Fraction(1, 100)
COLUMNS = [dt.date(2024, 9, 30), dt.date(2024, 10, 1), dt.date(2026, 4, 1)]


@pytest.mark.parametrize(
    ("leg", "side", "column_rates"),
    [
        (Leg.DELIVERY, "stt_buy", ("0.1", "0.1", "0.1")),
        (Leg.DELIVERY, "stt_sell", ("0.1", "0.1", "0.1")),
        (Leg.INTRADAY, "stt_sell", ("0.025", "0.025", "0.025")),
        (Leg.INTRADAY, "stt_buy", ("0", "0", "0")),
        (Leg.FUTURES, "stt_sell", ("0.0125", "0.02", "0.05")),
        (Leg.OPTIONS, "stt_sell", ("0.0625", "0.1", "0.15")),
        (Leg.OPTIONS_EXERCISE, "stt_buy", ("0.125", "0.125", "0.15")),
    ],
)
def test_stt_table(model: CostModel, leg: Leg, side: str, column_rates: tuple[str, ...]) -> None:
    for day, rate in zip(COLUMNS, column_rates, strict=True):
        assert getattr(model.schedule(day).legs[leg], side) == Fraction(rate) * PCT, (day, rate)


def test_date_switch_at_2026_04_01(model: CostModel) -> None:
    value = 65 * 25_000 * RS
    assert model.round_trip(Leg.FUTURES, value, value, PRE).stt == rupees("325")
    assert model.round_trip(Leg.FUTURES, value, value, POST).stt == rupees("812.50")
    assert model.schedule(PRE).path.name == "nse-2024-10.toml"
    assert model.schedule(POST).path.name == "nse-2026-04.toml"
    assert model.schedule(dt.date(2030, 1, 1)).path.name == "nse-2026-04.toml"
    pre_fast = model.round_trip_rate(Leg.FUTURES, PRE).cost(value, value)
    post_fast = model.round_trip_rate(Leg.FUTURES, POST).cost(value, value)
    assert post_fast - pre_fast == pytest.approx(rupees("487.50"))


def test_date_switch_at_2024_10_01(model: CostModel) -> None:
    value = 65 * 25_000 * RS
    assert model.order_charges(Leg.FUTURES, False, value, dt.date(2024, 9, 30)).stt == 20_313
    assert model.order_charges(Leg.FUTURES, False, value, dt.date(2024, 10, 1)).stt == 32_500


def test_date_before_the_first_file_raises(model: CostModel) -> None:
    with pytest.raises(ValueError, match=r"2024-06-30.*nse-2024-07\.toml"):
        model.round_trip(Leg.FUTURES, LAKH, LAKH, dt.date(2024, 6, 30))
    with pytest.raises(ValueError, match=r"nse-2024-07\.toml"):
        model.round_trip_rate(Leg.FUTURES, dt.date(2024, 6, 30))


def test_default_directory_is_the_repos_config() -> None:
    assert Path(__file__).resolve().parents[2] / "config" / "costs" == DEFAULT_DIR
    assert {p.name for p in DEFAULT_DIR.glob("*.toml")} >= {"nse-2024-10.toml", "nse-2026-04.toml"}


# --- brokerage, sides, rounding ------------------------------------------------------------------


@pytest.mark.parametrize("leg", [Leg.INTRADAY, Leg.FUTURES])
@pytest.mark.parametrize(
    ("value", "brokerage"),
    [
        (0, 0),
        (50_000 * RS, 15 * RS),  # 0.03% under the cap
        (6_666_666, 2000),  # 1999.9998 paise rounds to the cap
        (6_666_667, 20 * RS),  # just over: capped
        (LAKH, 20 * RS),
        (100 * LAKH, 20 * RS),
        (12_345, 4),  # 3.7035 paise
    ],
)
def test_brokerage_cap_per_order(model: CostModel, leg: Leg, value: int, brokerage: int) -> None:
    assert model.order_charges(leg, True, value, POST).brokerage == brokerage
    assert model.order_charges(leg, False, value, POST).brokerage == brokerage


def test_cap_is_per_executed_order_not_per_value(model: CostModel) -> None:
    two_orders = [Execution(Leg.INTRADAY, True, LAKH), Execution(Leg.INTRADAY, True, LAKH)]
    assert model.bill(two_orders, POST).brokerage == 40 * RS
    assert model.order_charges(Leg.INTRADAY, True, 2 * LAKH, POST).brokerage == 20 * RS


def test_options_flat_and_delivery_free(model: CostModel) -> None:
    for value in (5 * RS, 6_500 * RS, 100 * LAKH):
        assert model.order_charges(Leg.OPTIONS, True, value, POST).brokerage == 20 * RS
        assert model.order_charges(Leg.DELIVERY, True, value, POST).brokerage == 0


def test_delivery_stt_both_sides_stamp_on_buy(model: CostModel) -> None:
    buy = model.order_charges(Leg.DELIVERY, True, LAKH, POST)
    sell = model.order_charges(Leg.DELIVERY, False, LAKH, POST)
    assert (buy.stt, sell.stt) == (100 * RS, 100 * RS)
    assert (buy.stamp, sell.stamp) == (15 * RS, 0)
    assert buy.gst == 57  # 18% of (2.97 + 0.10 + 0.10) = 0.5706


def test_exercise_stt_is_on_the_holder(model: CostModel) -> None:
    intrinsic = 65 * 50 * RS
    assert model.order_charges(Leg.OPTIONS_EXERCISE, True, intrinsic, POST).stt == 488  # 487.5
    assert model.order_charges(Leg.OPTIONS_EXERCISE, True, intrinsic, PRE).stt == 406  # 406.25
    assert model.order_charges(Leg.OPTIONS_EXERCISE, False, intrinsic, POST).stt == 0


def test_per_order_rounding_differs_from_the_reference(model: CostModel) -> None:
    """Why a bill rounds once: each side's IPFT in the futures example is 1.625 rupees."""
    value = 65 * 25_000 * RS
    one_side = model.order_charges(Leg.FUTURES, True, value, POST)
    assert one_side.ipft == 163
    assert model.round_trip(Leg.FUTURES, value, value, POST).ipft == 325


def test_stt_to_rupee_is_opt_in(model: CostModel) -> None:
    premium = 65 * 100 * RS
    orders = [Execution(Leg.OPTIONS, True, premium), Execution(Leg.OPTIONS, False, premium)]
    assert model.bill(orders, POST).stt == 975
    note = model.bill(orders, POST, stt_to_rupee=True)
    assert note.stt == 1000
    assert note.total == model.bill(orders, POST).total + 25
    assert (round_rupee(81_249), round_rupee(81_250), round_rupee(81_300)) == (
        81_200,
        81_300,
        81_300,
    )


@pytest.mark.parametrize("value", [-1, True])
def test_bad_order_values_raise(model: CostModel, value: int) -> None:
    with pytest.raises(ValueError, match="non-negative int of paise"):
        model.order_charges(Leg.INTRADAY, True, value, POST)


def test_leg_for_segment() -> None:
    assert leg_for_segment(Segment.NSE_EQ) is Leg.INTRADAY
    assert leg_for_segment(Segment.NSE_EQ, delivery=True) is Leg.DELIVERY
    assert leg_for_segment(Segment.NFO_FUT) is Leg.FUTURES
    assert leg_for_segment(Segment.NFO_OPT) is Leg.OPTIONS
    for seg in (Segment.BSE_EQ, Segment.CRYPTO, Segment.INDEX):
        with pytest.raises(ValueError, match=seg.name):
            leg_for_segment(seg)
    with pytest.raises(ValueError, match="delivery"):
        leg_for_segment(Segment.NFO_FUT, delivery=True)


# --- the fast path -------------------------------------------------------------------------------

DAYS = [dt.date(2024, 8, 1), dt.date(2025, 6, 2), PRE, POST, dt.date(2027, 1, 4)]


@settings(max_examples=500, deadline=None)
@given(
    leg=st.sampled_from(list(Leg)),
    day=st.sampled_from(DAYS),
    buy=st.integers(0, 10**11),  # up to Rs 100 crore an order
    sell=st.integers(0, 10**11),
)
def test_fast_path_agrees_with_exact(
    model: CostModel, leg: Leg, day: dt.date, buy: int, sell: int
) -> None:
    fast = model.round_trip_rate(leg, day).cost(buy, sell)
    assert abs(fast - model.round_trip_exact(leg, buy, sell, day)) < 1
    # The bill rounds six components and GST (on rounded inputs) by at most half a paisa each.
    assert abs(fast - model.round_trip(leg, buy, sell, day).total) <= 4


def test_fast_path_on_the_worked_examples(model: CostModel) -> None:
    f = model.round_trip_rate(Leg.INTRADAY, POST).cost(LAKH, LAKH)
    assert f == pytest.approx(8268.12)
    f = model.round_trip_rate(Leg.OPTIONS, POST).cost(650_000, 650_000)
    assert f == pytest.approx(6261.0642)
    # As the NEV's round-trip cost: NIFTY futures, 65 units at 25,000.00 rupees.
    total, stt = model.round_trip_rate(Leg.FUTURES, POST)(25_000 * RS, 65)
    assert total == pytest.approx(96_621.55)
    assert stt == pytest.approx(81_250)


# --- config errors -------------------------------------------------------------------------------

GOOD = (DEFAULT_DIR / "nse-2026-04.toml").read_text()


def write(dir_: Path, name: str, text: str) -> Path:
    dir_.mkdir(parents=True, exist_ok=True)
    p = dir_ / name
    p.write_text(text)
    return p


def replaced(old: str, new: str) -> str:
    assert GOOD.count(old) == 1, old
    return GOOD.replace(old, new)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (replaced('stt_sell = "0.05%"', ""), "missing key legs.futures.stt_sell"),
        (
            replaced('stt_sell = "0.05%"', 'stt_sel = "0.05%"'),
            "missing key legs.futures.stt_sell; unknown key legs.futures.stt_sel",
        ),
        (replaced('stt_sell = "0.05%"', "stt_sell = 0.05"), "legs.futures.stt_sell: expected a pe"),
        (
            replaced('stt_sell = "0.05%"', 'stt_sell = "0.05"'),
            "legs.futures.stt_sell: expected a p",
        ),
        (
            replaced('stt_sell = "0.05%"', 'stt_sell = "5e-2%"'),
            "legs.futures.stt_sell: not a non-n",
        ),
        (replaced('stt_sell = "0.05%"', 'stt_sell = "-0.05%"'), "legs.futures.stt_sell: not a non"),
        (
            replaced("effective_from = 2026-04-01", 'effective_from = "2026-04-01"'),
            "effective_from",
        ),
        (
            replaced("effective_from = 2026-04-01", "effective_from = 2026-04-01T09:15:00"),
            "TOML date",
        ),
        (replaced("effective_from = 2026-04-01", ""), "missing key effective_from"),
        (
            replaced(
                "effective_from = 2026-04-01",
                "effective_from = 2026-04-01\neffective_to = 2026-03-01",
            ),
            "effective_to = 2026-03-01 is before",
        ),
        (replaced("[legs.options]", "[legs.option]"), "missing key legs.options"),
        (replaced('gst = "18%"', 'gst = "18"'), "gst: expected a percentage"),
        (
            replaced(
                'futures = { rate = "0.03%", cap = "20" }', 'futures = { rate = "0.03%", cap = 20 }'
            ),
            "brokerage.zerodha.futures.cap: expected rupees",
        ),
        (
            replaced('futures = { rate = "0.03%", cap = "20" }', 'futures = { fee = "20" }'),
            "unknown key brokerage.zerodha.futures.fee",
        ),
        (
            replaced('options = { flat = "20" }', "options = {}"),
            "brokerage.zerodha.options: give at",
        ),
        (replaced("[brokerage.zerodha]", "[brokerage.upstox]"), "brokerage.zerodha: no such"),
        (GOOD + "\n[legs\n", "not valid TOML"),
        ('foo = "bar"\n' + GOOD, "unknown key foo"),
    ],
)
def test_malformed_config_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, "nse-bad.toml", text)
    with pytest.raises(CostConfigError) as e:
        CostModel.load(tmp_path)
    assert "nse-bad.toml" in str(e.value)
    assert message in str(e.value)
    assert isinstance(e.value, ValueError)


def test_missing_or_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(CostConfigError, match="does not exist"):
        CostModel.load(tmp_path / "nowhere")
    with pytest.raises(CostConfigError, match=r"no \*\.toml"):
        CostModel.load(tmp_path)


def test_overlapping_effective_dates(tmp_path: Path) -> None:
    write(tmp_path / "same", "a.toml", GOOD)
    write(tmp_path / "same", "b.toml", GOOD)
    with pytest.raises(CostConfigError, match=r"a\.toml and .*b\.toml: overlapping"):
        CostModel.load(tmp_path / "same")
    write(
        tmp_path / "end",
        "a.toml",
        replaced(
            "effective_from = 2026-04-01", "effective_from = 2026-01-01\neffective_to = 2026-04-01"
        ),
    )
    write(tmp_path / "end", "b.toml", GOOD)
    with pytest.raises(
        CostConfigError, match=r"a\.toml: effective_to = 2026-04-01 overlaps .*b\.toml"
    ):
        CostModel.load(tmp_path / "end")


def test_dates_in_a_gap_or_after_the_last_end_raise(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.toml",
        replaced(
            "effective_from = 2026-04-01", "effective_from = 2026-01-01\neffective_to = 2026-01-31"
        ),
    )
    write(tmp_path, "b.toml", GOOD)
    m = CostModel.load(tmp_path)
    assert m.schedule(dt.date(2026, 1, 31)).path.name == "a.toml"
    with pytest.raises(ValueError, match=r"2026-02-01.*a\.toml has effective_to = 2026-01-31"):
        m.round_trip(Leg.FUTURES, LAKH, LAKH, dt.date(2026, 2, 1))
    with pytest.raises(ValueError, match=r"a\.toml"):
        m.round_trip_rate(Leg.FUTURES, dt.date(2026, 3, 31))
    assert m.schedule(POST).path.name == "b.toml"


def test_other_broker_profiles_load(tmp_path: Path) -> None:
    extra = GOOD + (
        '\n[brokerage.flat10]\nintraday = { flat = "10" }\ndelivery = { flat = "10" }\n'
        'futures = { flat = "10" }\noptions = { flat = "10" }\noptions_exercise = { flat = "0" }\n'
    )
    write(tmp_path, "x.toml", extra)
    m = CostModel.load(tmp_path, broker="flat10")
    assert m.round_trip(Leg.FUTURES, LAKH, LAKH, POST).brokerage == 20 * RS
    assert m.round_trip_rate(Leg.FUTURES, POST).brokerage_flat == pytest.approx(1180)
