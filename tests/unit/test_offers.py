"""Offer validity: pure function and the incremental OfferBook agree, in any arrival order."""

from __future__ import annotations

import json
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udfs.offers import Offer, OfferBook, offer_in_force

H = 3_600_000


def test_basic_validity_and_default_interval() -> None:
    a = Offer(0, 50.0, valid_to_ms=H)
    b = Offer(H, 60.0)  # no valid_to: interval
    assert offer_in_force([a, b], 0, H) == a
    assert offer_in_force([a, b], H - 1, H) == a
    assert offer_in_force([a, b], H, H) == b
    assert offer_in_force([a, b], 2 * H - 1, H) == b
    assert offer_in_force([a, b], 2 * H, H) is None  # all offers expired
    assert offer_in_force([a, b], -1, H) is None
    assert offer_in_force([], 0, H) is None


def test_later_offer_supersedes_even_when_it_expired() -> None:
    long = Offer(0, 50.0, valid_to_ms=3 * H)
    short = Offer(H, 70.0, valid_to_ms=H + 60_000)
    assert offer_in_force([long, short], H // 2, H) == long
    assert offer_in_force([long, short], H, H) == short
    assert offer_in_force([short, long], H + 120_000, H) is None  # long does not come back


def test_same_valid_from_tie_break_is_order_free() -> None:
    x = Offer(0, 50.0, valid_to_ms=H)
    y = Offer(0, 40.0, valid_to_ms=2 * H)  # later valid_to wins
    z = Offer(0, 45.0, valid_to_ms=2 * H)  # same end: higher price wins
    for order in ([x, y, z], [z, y, x], [y, x, z]):
        assert offer_in_force(order, 10, H) == z
        assert OfferBook(H, order).in_force(10) == z


def test_invalid_offers_rejected() -> None:
    with pytest.raises(ValueError, match="price_per_mwh"):
        Offer(0, float("nan"))
    with pytest.raises(ValueError, match="valid_to"):
        Offer(10, 1.0, valid_to_ms=10)
    with pytest.raises(ValueError, match="default_interval_ms"):
        offer_in_force([], 0, 0)


def test_book_state_roundtrip_prune_and_timer_hint() -> None:
    book = OfferBook(H)
    assert book.add(Offer(0, 50.0))
    assert not book.add(Offer(0, 50.0))  # duplicate
    book.add(Offer(H, 60.0, valid_to_ms=H + 60_000, source="smard"))
    book.add(Offer(3 * H, 70.0))
    state = book.to_state()
    assert json.loads(json.dumps(state)) == state
    again = OfferBook.from_state(pickle.loads(pickle.dumps(state)), H)
    assert again.to_state() == state
    assert again.next_change_ms(0) == H
    assert again.next_change_ms(H) == H + 60_000
    assert again.next_change_ms(2 * H) == 3 * H
    assert again.prune(2 * H) == 1  # the offer at 0 can never matter again
    assert again.in_force(2 * H) is None and again.in_force(3 * H).price_per_mwh == 70.0
    again.add(Offer(H // 2, 99.0, valid_to_ms=5 * H))  # late, superseded by the kept H offer
    assert again.in_force(2 * H) is None


offers_st = st.lists(
    st.builds(
        lambda start, length, price, has_to: Offer(
            start * 60_000, float(price), (start + length) * 60_000 if has_to else None
        ),
        st.integers(0, 300),
        st.integers(1, 120),
        st.integers(-20, 200),
        st.booleans(),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(offers_st, st.randoms(use_true_random=False), st.integers(-10, 500))
def test_book_equals_pure_function_for_any_order_and_duplicates(offers, rnd, minute) -> None:
    t = minute * 60_000
    shuffled = offers + offers[: len(offers) // 2]
    rnd.shuffle(shuffled)
    expected = offer_in_force(offers, t, H)
    assert offer_in_force(shuffled, t, H) == expected
    book = OfferBook(H, shuffled)
    assert book.in_force(t) == expected
    book.prune(t)  # pruning up to t keeps every answer at t and later
    assert book.in_force(t) == expected
    assert book.in_force(t + 90 * 60_000) == offer_in_force(offers, t + 90 * 60_000, H)
