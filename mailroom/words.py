"""The words of a request that say what it is about: Indonesian and English, stop words removed."""

from __future__ import annotations

import re
import unicodedata

WORD = re.compile(r"[^\W\d_][\w'-]*[^\W_]|[^\W\d_]", re.UNICODE)

# Words that say nothing about a request's topic: function words of both languages, greetings,
# courtesies and the words every request to a service desk has in common.
INDONESIAN = frozenset("""
ada adalah agar akan aku anda antara apa apakah atas atau bagaimana bagi bahwa baik bapak belum
beliau benar berapa bisa boleh bu buat bukan dalam dan dapat dari daripada demikian dengan di dia
dong engkau harus hari ialah ibu ini itu jadi jika juga kalau kami kamu kan karena ke kecuali
kemudian kenapa kepada ketika kita lagi lah maka mana masih mau melalui memang mohon mereka
misalnya mungkin namun nya oleh pada pak para pun saat saja salam sama sampai sangat saya
sebagai sebelum sedang sejak selamat sementara semua seperti sesudah setelah siang sore sudah
supaya tadi tapi tapinya telah tentang terima kasih tersebut tetapi tidak tolong untuk wassalam
ya yaitu yang pagi malam bantuannya bantu bantuan minta meminta terimakasih hormat dengan hal
sekali banyak saudara rekan tim segera terus lebih kurang hanya begitu belum sudah pernah
""".split())
ENGLISH = frozenset("""
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had
has have having he her here hers him his how i if in into is it its itself just me more most my
no nor not now of off on once only or other our ours out over own please same she should so some
such than thank thanks that the their theirs them then there these they this those through to
too under until up very was we were what when where which while who whom why will with would you
your yours hi hello dear regards best kind morning afternoon evening still get got need needs
help can't cannot don't doesn't isn't i'm i've it's also yet
""".split())
# Words of time, money and signatures: in many requests, about none of them.
EVERYDAY = frozenset("""
senin selasa rabu kamis jumat sabtu minggu januari februari maret april mei juni juli agustus
september oktober november desember monday tuesday wednesday thursday friday saturday sunday
january february march may june july august october december today yesterday tomorrow week
weeks month months year years day days hour hours minute minutes hari kemarin besok lusa
tanggal bulan tahun jam menit pukul pagi siang sore malam lalu depan rp idr usd orang divisi
bagian departemen department team pak bu ibu bapak someone something already since ago
kantor rumah office home work kerja bekerja
""".split())
STOP_WORDS = INDONESIAN | ENGLISH | EVERYDAY
# crude Indonesian suffixes (-nya, -lah, -kah, -kan, -an): a word is indexed and sought both
# as written and without one of them, when at least STEM_LEFT letters remain
SUFFIXES = ("nya", "lah", "kah", "kan", "an")
STEM_LEFT = 4
# English endings a word is compared without ("printers", "printer"), as the porter tokenizer
# finds it, and then a final -e ("updates", "updated", "update"); a word ending in -ss
# ("access") keeps it
ENGLISH_ENDINGS = ("ing", "ed", "es", "s")
# the typographic apostrophes (U+2019, U+2018) phones write in "don't": words hold the plain one
APOSTROPHES = str.maketrans({"\N{RIGHT SINGLE QUOTATION MARK}": "'",
                             "\N{LEFT SINGLE QUOTATION MARK}": "'"})


def words(text: str) -> list[str]:
    """The lower-case words of `text` in order, without stop words, numbers and punctuation."""
    folded = unicodedata.normalize("NFKC", text).casefold().translate(APOSTROPHES)
    return [word for word in WORD.findall(folded) if word not in STOP_WORDS and len(word) > 1]


def terms(about: str) -> list[str]:
    """The words that say what `about` is about, each also without an Indonesian suffix."""
    found: dict[str, None] = {}
    for word in words(about):
        found[word] = None
        found.setdefault(_unsuffixed(word), None)
    return list(found)


def _unsuffixed(word: str) -> str:
    return _without(word, SUFFIXES)


def stem(word: str) -> str:
    """The form a word is compared in: without its Indonesian suffixes, then without an
    English ending, so that "pemesanannya", "pemesanan" and "pemesan" are one word, and
    "printers" and "printer". A word and each of its `terms` have the same stem."""
    unsuffixed, shorter = word, _unsuffixed(word)
    while shorter != unsuffixed:
        unsuffixed, shorter = shorter, _unsuffixed(shorter)
    if unsuffixed.endswith("ss"):
        return unsuffixed
    return _without(_without(unsuffixed, ENGLISH_ENDINGS), ("e",))


def _without(word: str, endings: tuple[str, ...]) -> str:
    """`word` without the first of `endings` it has, when STEM_LEFT letters remain."""
    for ending in endings:
        if word.endswith(ending) and len(word) - len(ending) >= STEM_LEFT:
            return word[:-len(ending)]
    return word
