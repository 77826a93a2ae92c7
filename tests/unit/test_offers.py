"""Offer validity: pure function and the incremental OfferBook agree, in any arrival order."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.offer_rules import Offer, OfferBook, offer_in_force
from udfs.offers import KnownOffers

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


def test_book_prune_keeps_what_can_still_supersede() -> None:
    again = OfferBook(H)
    assert again.add(Offer(0, 50.0))
    assert not again.add(Offer(0, 50.0))  # duplicate
    again.add(Offer(H, 60.0, valid_to_ms=H + 60_000, source="smard"))
    again.add(Offer(3 * H, 70.0))
    assert again.prune(2 * H) == 1  # the offer at 0 can never matter again
    assert again.in_force(2 * H) is None and again.in_force(3 * H).price_per_mwh == 70.0
    again.add(Offer(H // 2, 99.0, valid_to_ms=5 * H))  # late, superseded by the kept H offer
    assert again.in_force(2 * H) is None


def test_the_jobs_book_keeps_the_resolved_offers_it_is_sent() -> None:
    # what a site tick carries: (valid_from, end resolved on the JVM, price, published_at or None)
    book = KnownOffers([(0, H, 50.0, None), (H, H + 60_000, 60.0, None), (3 * H, 4 * H, 70.0, 0)])
    book.put(H, 2 * H, 65.0, None)  # a new winner for the same valid_from replaces the old one
    assert book.known(H, 0) == ((0, H, 50.0), (H, 2 * H, 65.0), (3 * H, 4 * H, 70.0))  # 3 H published at 0
    assert book.known(H // 2, 0) == ((0, H, 50.0), (3 * H, 4 * H, 70.0))  # H not known before it starts
    assert book.known(3 * H, 2 * H) == ((H, 2 * H, 65.0), (3 * H, 4 * H, 70.0))  # from the newest at 2 H on
    book.prune(2 * H)
    state = pickle.loads(pickle.dumps(book.to_state()))
    assert state == [(H, 2 * H, 65.0, None), (3 * H, 4 * H, 70.0, 0)]
    assert KnownOffers(state).to_state() == state and len(KnownOffers(state)) == 2


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
