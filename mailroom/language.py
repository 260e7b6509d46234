"""Which language a message is written in: Indonesian or English, by their common words."""

from __future__ import annotations

import re

INDONESIAN = frozenset(
    "yang dan saya tidak untuk dengan mohon terima kasih bapak ibu sudah belum bisa ini itu "
    "ada dari pada akan kami kita atau juga agar dapat karena sebagai bagian tolong minta "
    "selamat pagi siang sore hormat salam apakah bagaimana mengapa kapan sejak hari bulan".split()
)
ENGLISH = frozenset(
    "the and i my to is are was not for with please thanks thank you have has can could would "
    "this that it of in on be dear hello hi regards since when how why what been will from".split()
)
WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def detect(text: str, default: str) -> str:
    """'id' or 'en' by counting common words of each; `default` when neither shows."""
    words = [w.lower() for w in WORD.findall(text[:4000])]
    indonesian = sum(w in INDONESIAN for w in words)
    english = sum(w in ENGLISH for w in words)
    if indonesian == english:
        return default
    return "id" if indonesian > english else "en"
