"""Reading answers to the satisfaction survey: ratings, comments, `stop`, and prose that is none."""

from __future__ import annotations

import pytest

from mailroom.survey import Rating, parse_rating

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass


@pytest.mark.parametrize(("text", "rating"), [
    ("5", Rating(5)),
    ("4/5 - cepat sekali", Rating(4, "cepat sekali")),
    ("4\nCepat, terima kasih.", Rating(4, "Cepat, terima kasih.")),
    ("Sangat puas!\nMantap", Rating(5, "Mantap")),
    ("tidak puas: lambat sekali", Rating(1, "lambat sekali")),
    ("Kurang puas", Rating(2)),
    ("ok", Rating(3)),
    ("Bad \u2013 nobody called back", Rating(2, "nobody called back")),
    ("5, terima kasih", Rating(5, "terima kasih")),
    ("sangat  puas", Rating(5)),
    ("berhenti", Rating(None)),
    ("STOP.", Rating(None)),
])
def test_an_answer_is_read(text: str, rating: Rating) -> None:
    assert parse_rating(text) == rating


@pytest.mark.parametrize("text", [
    "Baik pak, tapi VPN masih error",  # a message that starts with a rating word
    "Stop, the problem is back",
    "1 more question about the invoice",
    "Ok, tapi sekarang mati lagi.",
    "11",
    "6",
    "Terima kasih banyak",
    "",
])
def test_prose_is_not_an_answer(text: str) -> None:
    assert parse_rating(text) is None
