"""English text: sentence boundaries and Penn Treebank tokens, with their character offsets.

Sentence splitting (``english_sentence_spans``) is rule-based, in the spirit of
the "Golden Rules" of sentence boundary detection (abbreviations, initials, numbered
lists, quotations, parentheses, ellipses, URLs and e-mails, numbers). Lowercase informal
text (``i went home. then i slept.``) ends its sentences before a lowercase word too, except
after an abbreviation (``e.g. the``, ``etc. and``, ``Mr. smith``, ``U.S. officials``), an
ellipsis or a closing quote (``"Why?" he asked``). It looks at the whitespace-separated chunks
of the text once each, with no regular expression that can backtrack, so its time is linear in
the length of the text.

Tokenization (``english_tokenize_with_offsets``) follows the Penn Treebank conventions the model's
vocabulary expects (NLTK's rule-based Treebank tokenizer), with what that tokenizer gets wrong
fixed: URLs and e-mail addresses stay whole, currency symbols are split from amounts
(``€3.5`` -> ``€ 3.5``, as ``$3.5`` -> ``$ 3.5``), numbers are split from their units
(``3.8m`` -> ``3.8 m``, ``10km`` -> ``10 km``, ``25°C`` -> ``25 °C``) but not from ordinals
or decades (``5th``, ``1990s``, ``'80s``), and Chinese and Japanese characters, written without
spaces, become one token each. A curly apostrophe makes the same tokens as a straight one
(``isn’t`` -> ``is n’t``; ``normalize`` reads them alike), each emoji is one token (a symbol,
which the parser leaves out of what the model reads, as it does punctuation), and a full stop
that ends a sentence never stays on its word (``1. Buy milk`` -> ``1 . Buy milk``).

These are English's rules and the base the other languages' front doors build on
(``models.text.front_doors``); ``models.text.sentences`` chooses between them by language.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import regex  # NLTK's own dependency: Unicode grapheme clusters and emoji properties, which re lacks
from nltk.tokenize import NLTKWordTokenizer

from .vocab import EMOJI_COMPONENTS, ZERO_WIDTH_JOINER

__all__ = ["OPENING_MARKS", "english_sentence_spans", "english_tokenize_with_offsets", "is_abbreviation"]


# --- sentence splitting ------------------------------------------------------------------

_CLOSERS = "\"'”’»)]}"
OPENING_MARKS = "\"'“‘«([{„‚"  # „ ‚: German, Czech, Polish ... open low and close with “ ‘
# a “ or ‘ that ends a word closes a quotation („Hallo!“): in English it only ever opens one, at a
# word's start, so English text reads as before
_LOW_QUOTES = "“‘"
_LOW_QUOTE_CLOSING = str.maketrans(_LOW_QUOTES, "”’")
_TERMINATORS = ".!?…"
# Full stops of Chinese and Japanese end a sentence with or without a space after them.
_WIDE_TERMINATORS = "。！？"
_BULLETS = "•▪‣◦⁃∙"

# Titles and other words written before a name: their full stop never ends a sentence.
_PREPOSITIVE = frozenset("""mr mrs ms messrs mme mlle dr prof rev hon gen lt col maj capt cmdr adm sgt cpl pvt
    sen rep gov pres supt insp det st mt ft fr sr sra srta""".split())
# Words whose full stop ends a sentence only when a capitalised word or a number does not follow
# as part of the same phrase: ``No. 5``, ``p. 55``, ``Jan. 5``, ``Fig. 3``.
_BEFORE_NUMBERS = frozenset("""no nos nr n° nº p pp para paras fig figs vol vols ch chap sec secs art arts op
    ed eds ex eq eqs tab ref refs pt pts jan feb mar apr jun jul aug sep sept oct nov dec""".split())
# Words whose full stop is an abbreviation inside a sentence, but ends it before a capital
# (``Jane and co. They ...``, ``... Briggs & Co. at noon``).
_POSTPOSITIVE = frozenset("""co corp inc ltd llc plc bros jr esq etc al dept univ assn approx est""".split())
# Never the end of a sentence: a phrase follows.
_NEVER_FINAL = frozenset("""e.g i.e cf vs viz ca approx""".split())
# Multi-period abbreviations of times: before a capitalised word they usually end the sentence.
_TIMES = frozenset({"a.m", "p.m"})
# Abbreviations written in lowercase inside a sentence (``approx. the``, ``5 hrs. later``): a
# lowercase word after them continues the sentence, where after an ordinary word it begins one.
_LOWERCASE_ABBREVIATIONS = frozenset("""abbr acad admin adv apt assoc asst attn ave avg bldg blvd cit cont corp
    dept dist div esp excl fl ft gal govt hr hrs hwy ibid incl inst intl lb lbs max mfg min misc mo mos natl
    oz pkg pl pop pres qt rd resp sq seq tel temp univ wk wks yr yrs cc cu""".split())
_ABBREVIATIONS = _PREPOSITIVE | _BEFORE_NUMBERS | _POSTPOSITIVE | _NEVER_FINAL | _LOWERCASE_ABBREVIATIONS
# Abbreviations that are common words too (``I said no. then ...``): abbreviations only before a number.
_ALSO_WORDS = frozenset({"no"})
# Lowercase informal text: a sentence that ends in one of these letters (``how r u?``) can end
# before a lowercase word; any other single letter with a stop is an initial.
_ONE_LETTER_WORDS = frozenset("iu")
# Words that commonly begin a sentence: after an abbreviation such as ``U.S.`` they decide
# whether the full stop also ends the sentence (``... the U.S. How about you?``) or not
# (``... the U.S. Government ...``).
_SENTENCE_STARTERS = frozenset("""a an the this that these those he she it its they we i you his her their our my
    your there here how what when where who whom whose why which however but and or so yet if as after before
    while although though because since in on at for from by with to of into during once then thus also still
    meanwhile moreover furthermore nevertheless instead indeed finally first second last today yesterday
    tomorrow did do does is are was were has have had can could will would should may might must not no yes
    many most some all both each every one none few several such other another mr mrs ms dr""".split())


@dataclass(frozen=True)
class _Chunk:
    start: int
    end: int
    text: str


def _chunks(text: str) -> list[_Chunk]:
    """Whitespace-separated pieces, with wide full stops (``。``) ending the piece they are in."""
    chunks = []
    for match in re.finditer(r"\S+", text):  # one pass, no backtracking
        start, piece = match.start(), match.group()
        cut = index = 0
        while index < len(piece):
            if piece[index] not in _WIDE_TERMINATORS:
                index += 1
                continue
            end = index + 1
            while end < len(piece) and piece[end] in _WIDE_TERMINATORS + _CLOSERS:
                end += 1
            chunks.append(_Chunk(start + cut, start + end, piece[cut:end]))
            cut = index = end
        for end in _glued_sentence_ends(piece, cut):
            chunks.append(_Chunk(start + cut, start + end, piece[cut:end]))
            cut = end
        if cut < len(piece):
            chunks.append(_Chunk(start + cut, start + len(piece), piece[cut:]))
    return chunks


def _glued_sentence_ends(piece: str, start: int) -> list[int]:
    """Ends of sentences written without a space after them (``one.Two``): a lowercase word of two
    letters or more, a final mark, then a capitalised word. URLs and e-mail addresses are left alone."""
    if "@" in piece or "://" in piece or piece.lower().startswith("www."):
        return []
    ends = []
    for index in range(max(start, 2), len(piece) - 2):
        if (piece[index] in ".!?" and piece[index - 1].islower() and piece[index - 2].islower()
                and piece[index + 1].isupper() and piece[index + 2].islower()):
            ends.append(index + 1)
    return ends


def _closing_form(piece: str) -> str:
    """``piece`` with the marks that close after its last word in their closing form: a “ or ‘ there
    (not alone) closes, as in ``„Hallo!“``, so it reads as ” or ’ (``„Hallo!”``)."""
    start = len(piece)
    while start > 1 and (piece[start - 1] in _CLOSERS or piece[start - 1] in _LOW_QUOTES):
        start -= 1
    if start == 1 and piece[0] in _CLOSERS:
        start = 0
    return piece[:start] + piece[start:].translate(_LOW_QUOTE_CLOSING)


def _strip_closers(piece: str) -> str:
    return _closing_form(piece).rstrip(_CLOSERS)


def _starts_sentence_like(piece: str) -> bool:
    """Whether a chunk can begin a sentence: a capital, a digit, or a letter of a script without case."""
    index = 0
    while index < len(piece) and piece[index] in OPENING_MARKS:
        index += 1
    if index == len(piece):
        return False
    char = piece[index]
    if char.isupper() or char.isdigit():
        return True
    return char.isalpha() and not char.islower()  # scripts without letter case


def _word_of(piece: str) -> str:
    """The lowercased word before a final full stop, opening marks removed."""
    return piece.lstrip(OPENING_MARKS).lower()


_LIST_NUMBER = re.compile(r"(?:[•⁃·▪‣◦∙])?(\d{1,3})(?:\.\)|\.|\))")  # 1.  1)  1.)  ⁃9.
_LIST_LETTER = re.compile(r"([a-z])(?:\.\)|\.|\))")


def _list_value(piece: str) -> tuple[str, int] | None:
    """The kind and value of a list marker chunk (``2.`` -> ("number", 2), ``b)`` -> ("letter", 2))."""
    if len(piece) > 6:
        return None
    match = _LIST_NUMBER.fullmatch(piece)
    if match:
        return "number", int(match.group(1))
    match = _LIST_LETTER.fullmatch(piece)
    if match:
        return "letter", ord(match.group(1)) - ord("a") + 1
    return None


def _list_markers(chunks: Sequence[_Chunk]) -> set[int]:
    """Indices of chunks that are items of a list: markers whose values run on (1, 2 / a, b / 9, 10),
    each followed by more text and not the number of an abbreviation (``vol. 2.``, ``p. 3.``)."""
    values = {
        index: _list_value(chunk.text)
        for index, chunk in enumerate(chunks)
        if index + 1 < len(chunks) and (index == 0 or _word_of(chunks[index - 1].text).rstrip(".") not in _BEFORE_NUMBERS)
    }
    found = {index: value for index, value in values.items() if value is not None}
    markers: set[int] = set()
    by_kind: dict[str, list[tuple[int, int]]] = {}
    for index, (kind, value) in sorted(found.items()):
        by_kind.setdefault(kind, []).append((index, value))
    for kind, items in by_kind.items():
        for (first_index, first_value), (second_index, second_value) in zip(items, items[1:]):
            if second_value == first_value + 1 and (kind == "number" or first_value == 1 or first_index in markers):
                markers.update((first_index, second_index))
    return markers


def _ends_after_full_stop(chunks: Sequence[_Chunk], index: int, core: str, following: str) -> bool:
    """The decision for a chunk whose last mark (before closing quotes) is a single full stop."""
    word = _word_of(core[:-1])
    if not word:
        return False
    if word in _PREPOSITIVE or word in _NEVER_FINAL:
        return False
    next_is_number = following[:1].isdigit()
    if word in _BEFORE_NUMBERS:
        return not next_is_number and _starts_sentence_like(following)
    if word in _POSTPOSITIVE:
        return _starts_sentence_like(following)
    if len(word) == 1 and word.isalpha():
        # an initial (``Jonas E. Smith``) unless it is the pronoun at the end of a clause (``you and I.``)
        previous = chunks[index - 1].text if index > 0 else ""
        return word == "i" and not previous[:1].isupper() and _starts_sentence_like(following)
    if "." in word and word.replace(".", "").isalpha() and len(word) <= 8:
        # multi-period abbreviations: U.S.  E.U.  a.m.  U.S.A.
        if word in _TIMES:
            return _starts_sentence_like(following)
        next_word = following.lstrip(OPENING_MARKS).rstrip(_CLOSERS + ",.;:!?").lower()
        return _starts_sentence_like(following) and next_word in _SENTENCE_STARTERS
    return _starts_sentence_like(following)


def _spaced_ellipsis_end(chunks: Sequence[_Chunk], index: int) -> int:
    """Index of the last chunk of a spaced ellipsis (``. . .``) starting at ``index``, or ``index - 1``."""
    end = index
    while end < len(chunks) and _strip_closers(chunks[end].text) == ".":
        end += 1
    return end - 1


_LONGEST_ENCLOSED = 200  # chunks; an unmatched quote must not swallow the rest of a long paragraph


def _enclosed(chunks: Sequence[_Chunk]) -> list[bool]:
    """Per chunk: whether it lies inside a quotation or parenthesis that goes on after it.

    A full stop inside ``"...  ..."`` or ``(...  ...)`` does not end the sentence around it
    (``"It's weak. It blows out," says Zinn.`` is one sentence); the mark that closes the
    region is judged as usual (``"This is great." She ...`` ends after the quote).
    """
    inside = [False] * len(chunks)
    # one stack of opening chunk indices per kind of mark: every step is O(1), so a text of
    # thousands of unmatched brackets stays linear
    open_at: dict[str, list[int]] = {"“": [], "(": [], '"': []}
    for index, chunk in enumerate(chunks):
        text = _closing_form(chunk.text)  # „Hallo!“ closes a German quotation, opens no English one
        for opener, closer in (("“", "”"), ("(", ")")):
            balance = text.count(opener) - text.count(closer)
            open_at[opener].extend([index] * max(0, balance))
            for _ in range(max(0, -balance)):
                _close(open_at[opener], index, inside)
        # a straight quote opens at the start of a word and closes at its end
        starts_quote = text.lstrip("([{'‘")[:1] == '"'
        previous_end = _strip_closers(chunks[index - 1].text)[-1:] if index else ""
        if starts_quote and previous_end and previous_end in _TERMINATORS:
            # a quotation that goes on over several paragraphs reopens without closing: drop the open one
            open_at['"'].clear()
        opens = starts_quote and not open_at['"']
        closes = text.rstrip(_TERMINATORS + ",;:)]'’").endswith('"') and (not opens or text.count('"') > 1)
        if opens and len(text) > 1:
            open_at['"'].append(index)
        if closes:
            _close(open_at['"'], index, inside)
    return inside


def _close(stack: list[int], index: int, inside: list[bool]) -> None:
    """Close the innermost open region of one kind at chunk ``index``; mark what it encloses."""
    if stack:
        start = stack.pop()
        if index - start <= _LONGEST_ENCLOSED:
            for inner in range(start, index):
                inside[inner] = True


# French and Russian typography set guillemets apart from their words (« Bonjour »); English text
# does not space its brackets and quotes, and a spaced one there (tokenized text, Brown's
# ". ( 2 ) Fulton") is read as before
_SPACED_OPENERS = "«‹"


def _following(chunks: Sequence[_Chunk], index: int) -> str:
    """The chunk after ``index``; a guillemet written apart from its word (``« Bonjour``) is read
    with the word after it, as if it were written against it."""
    following = chunks[index + 1].text
    if index + 2 < len(chunks) and following and not following.lstrip(_SPACED_OPENERS):
        return following + chunks[index + 2].text
    return following


def _boundaries(chunks: Sequence[_Chunk]) -> list[int]:
    """Indices ``i`` such that a sentence ends after chunk ``i`` (the text's end excluded)."""
    markers = _list_markers(chunks)
    inside = _enclosed(chunks)
    ends: list[int] = []
    index = 0
    while index < len(chunks) - 1:
        chunk, following = chunks[index].text, _following(chunks, index)
        if inside[index]:
            index += 1
            continue
        if index + 1 in markers or (following[:1] in _BULLETS and len(following) <= 6):
            if index not in markers and chunk[:1] not in _BULLETS:
                ends.append(index)  # a new list item begins
            index += 1
            continue
        if index in markers:
            index += 1
            continue
        core = _strip_closers(chunk)
        if core.endswith("[...") or core.endswith("[…"):
            index += 1
            continue  # an omission mark inside a quotation
        if _strip_closers(following) == ".":
            # a spaced ellipsis follows: ". . ." inside a sentence, ". . . ." (or a full stop
            # and ". . .") at its end
            last = _spaced_ellipsis_end(chunks, index + 1)
            if last == index + 1 and not core.endswith("."):
                index += 1
                continue  # one stop written apart from its word (``drive . they``): judged as a stop
            dots = last - index + (1 if core.endswith(".") else 0)
            after = chunks[last + 1].text if last + 1 < len(chunks) else ""
            if after and (_starts_sentence_like(after) or _starts_lowercase(after)) and dots >= 4:
                ends.append(index if core.endswith(".") and not core.endswith("..") else last)
            index = last + 1
            continue
        if core[-1:] and core[-1] in _TERMINATORS + _WIDE_TERMINATORS and _ends(chunks, index, core, following):
            ends.append(index)
        index += 1
    return ends


def _starts_lowercase(piece: str) -> bool:
    return piece.lstrip(OPENING_MARKS)[:1].islower()


def is_abbreviation(word: str, following: str = "") -> bool:
    """Whether ``word`` (without its final full stop) is an abbreviation whose stop does not end a
    sentence before the word ``following``: a listed one, a unit (``40 cc. of``), a multi-period
    one (``U.S``, ``e.g``) or an initial (``J``)."""
    lowered = word.lower().rsplit("-", 1)[-1]  # ``a 3-by-6-ft. sign``
    if lowered in _ALSO_WORDS:
        return following[:1].isdigit()
    if lowered in _ABBREVIATIONS or (lowered in _UNITS and lowered != "am") or "." in lowered:
        return True
    return len(lowered) == 1 and lowered.isalpha() and lowered not in _ONE_LETTER_WORDS


def _ends_before_lowercase(chunk: str, core: str, following: str) -> bool:
    """Lowercase informal text (``i went home. then i slept.``) ends its sentences before a
    lowercase word; edited text does so only after a quotation (``"Why?" he asked``), a brand
    (``Yahoo! in``) or an abbreviation (``etc. and``), where the sentence goes on."""
    if chunk != core:
        return False  # a closing quote or bracket after the mark: a reporting clause follows
    if core.endswith(("..", "…")):
        return False  # an ellipsis before a lowercase word is a pause
    if not core.strip(".!?"):
        return True  # a mark written apart from its word (``drive . they``, ``the deal ? watch``)
    word = _word_of(core[:-1]).rstrip(_CLOSERS)
    if not any(char.isalnum() for char in word):
        return False
    if core[-1] in "!?":
        return not core.lstrip(OPENING_MARKS)[:1].isupper()
    return not is_abbreviation(word, following)


def _ends(chunks: Sequence[_Chunk], index: int, core: str, following: str) -> bool:
    if core[-1] in _WIDE_TERMINATORS:
        return True
    if _starts_lowercase(following):
        return _ends_before_lowercase(chunks[index].text, core, following)
    if core[-1] in "!?" or core.endswith(("...", "…")):
        return _starts_sentence_like(following)
    if core in (".", "...") or core.endswith(".."):
        return _starts_sentence_like(following)
    return _ends_after_full_stop(chunks, index, core, following)


_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")


def english_sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of the sentences of English ``text``, whitespace trimmed.

    A blank line always ends a sentence; within a paragraph the rules of the module doc apply.
    Linear in ``len(text)``.
    """
    spans: list[tuple[int, int]] = []
    paragraph_start = 0
    for paragraph_end in [match.start() for match in _PARAGRAPH_BREAK.finditer(text)] + [len(text)]:
        chunks = _chunks(text[paragraph_start:paragraph_end])
        first = 0
        for last in _boundaries(chunks) + [len(chunks) - 1]:
            if first <= last:
                spans.append((paragraph_start + chunks[first].start, paragraph_start + chunks[last].end))
            first = last + 1
        paragraph_start = paragraph_end
    return spans


# --- tokenization ------------------------------------------------------------------------

_WORD_TOKENIZER = NLTKWordTokenizer()
_URL_PREFIXES = ("http://", "https://", "ftp://", "www.")
_TRAILING_URL_PUNCTUATION = ".,;:!?" + _CLOSERS
_UNITS = frozenset("""k m bn b mn tn km kg g mg mm cm ml l kw kwh mw gw mph kph km/h lb lbs oz ft yd mi gb mb tb kb
    ghz mhz hz h hr hrs min mins ms sec secs am pm bp ° °c °f""".split())
_CURLY_APOSTROPHE = "\u2019"
_EMOJI = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}]")
_PICTOGRAPH = regex.compile(r"\p{Extended_Pictographic}")
_REGIONAL_INDICATOR = regex.compile(r"\p{Regional_Indicator}")
_SKIN_TONES = frozenset(map(chr, range(0x1F3FB, 0x1F400)))
_APOSTROPHES = "'’‘"
_ELIDED_YEAR = re.compile(r"[0-9]{2}s?")  # '80s, ’69
_APOSTROPHES_AND_HYPHENS = str.maketrans("", "", _APOSTROPHES + "-")


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x3040 <= code <= 0x30FF
            or 0xF900 <= code <= 0xFAFF or 0x20000 <= code <= 0x2FA1F or 0x3000 <= code <= 0x303F
            or 0xFF00 <= code <= 0xFFEF)


def _protected_spans(sentence: str) -> list[tuple[int, int]]:
    """Spans of URLs and e-mail addresses, which must stay single tokens."""
    spans = []
    for match in re.finditer(r"\S+", sentence):
        piece, start = match.group(), match.start()
        lead = len(piece) - len(piece.lstrip(OPENING_MARKS))
        core = piece[lead:]
        trimmed = core.rstrip(_TRAILING_URL_PUNCTUATION)
        # a closing bracket that the URL itself opened stays with it (wikipedia.org/wiki/Foo_(bar))
        while len(trimmed) < len(core) and core[len(trimmed)] in ")]" and trimmed.count("(") > trimmed.count(")"):
            trimmed = core[: len(trimmed) + 1]
        if _is_url(trimmed) or _is_email(trimmed):
            spans.append((start + lead, start + lead + len(trimmed)))
    return spans


def _is_url(piece: str) -> bool:
    lowered = piece.lower()
    return lowered.startswith(_URL_PREFIXES) and len(piece) > len("www.") + 2


def _is_email(piece: str) -> bool:
    local, at, domain = piece.partition("@")
    if not at or not local or "@" in domain or "." not in domain:
        return False
    return domain.rsplit(".", 1)[1].isalpha() and not domain.startswith(".") and ".." not in domain


def _nltk_spans(sentence: str) -> list[tuple[int, int]]:
    # NLTK knows contractions (it's, isn't) only with the straight apostrophe and takes the curly
    # one for a closing quote (it ’ s); the two have the same length, so the spans fit the text
    # as written, and a curly closing quote is still split off as a straight one is.
    straight = sentence.replace(_CURLY_APOSTROPHE, "'")
    try:
        return list(_WORD_TOKENIZER.span_tokenize(straight))
    except ValueError:
        # span alignment fails on some unusual quote sequences: whitespace pieces instead
        return [match.span() for match in re.finditer(r"\S+", sentence)]


def _join_elided_years(sentence: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``'80s`` and ``’69`` are one word, as in the Penn Treebank, where NLTK splits off the apostrophe."""
    joined: list[tuple[int, int]] = []
    for start, end in spans:
        if joined and _elides_a_year(sentence, joined[-1], start, end):
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    return joined


def _elides_a_year(sentence: str, previous: tuple[int, int], start: int, end: int) -> bool:
    apostrophe_start, apostrophe_end = previous
    if apostrophe_end != start or apostrophe_end - apostrophe_start != 1 or sentence[apostrophe_start] not in _APOSTROPHES:
        return False
    if apostrophe_start > 0 and sentence[apostrophe_start - 1].isalnum():
        return False  # rock'80s is not an elided year
    # a quoted number ('80') keeps its quotes
    return _ELIDED_YEAR.fullmatch(sentence, start, end) is not None and sentence[end : end + 1] not in _APOSTROPHES


def _merge_protected(spans: list[tuple[int, int]], protected: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Replace the tokenizer's pieces inside each protected span by the span itself."""
    if not protected:
        return spans
    merged: list[tuple[int, int]] = []
    queue = iter(protected)
    current = next(queue, None)
    for start, end in spans:
        while current is not None and current[1] <= start:
            current = next(queue, None)
        if current is None or end <= current[0]:
            merged.append((start, end))
            continue
        # the piece overlaps the protected span: keep what lies outside it, and the span once
        if start < current[0]:
            merged.append((start, current[0]))
        if not merged or merged[-1] != current:
            merged.append(current)
        if end > current[1]:
            merged.append((current[1], end))
    return merged


def _split_token(token: str) -> list[int]:
    """Cut points inside one token: currency symbols off amounts, numbers off units, CJK characters apart."""
    cuts: list[int] = []
    if len(token) > 1 and unicodedata.category(token[0]) == "Sc" and token[1].isdigit():
        cuts.append(1)
    elif token.startswith(("US$", "A$", "C$", "HK$", "NZ$", "S$")) and token[-1].isdigit():
        cuts.append(token.index("$") + 1)
    start = cuts[-1] if cuts else 0
    number_end = start
    while number_end < len(token) and (token[number_end].isdigit() or token[number_end] in ".,"):
        number_end += 1
    suffix = token[number_end:]
    # ordinals and decades (5th, 1990s) are single words; units are not in _UNITS's sense
    if number_end > start and token[start].isdigit() and suffix.lower() in _UNITS:
        cuts.append(number_end)
    if any(_is_cjk(char) for char in token):
        cuts.extend(index for index in range(1, len(token)) if _is_cjk(token[index]) or _is_cjk(token[index - 1]))
    if _EMOJI.search(token):
        cuts.extend(_emoji_cuts(token))
    if "…" in token:  # NLTK splits "..." off words but not the one-character ellipsis (waited…then)
        cuts.extend(match.end() for match in re.finditer("…+|[^…]+", token))
    return sorted(cut for cut in set(cuts) if 0 < cut < len(token))


def _emoji_cuts(token: str) -> list[int]:
    """Both edges of each emoji: ``it👍🏽`` -> ``it 👍🏽``, ``🙂🙂`` -> ``🙂 🙂``.

    An emoji is one token however many code points it holds (a ZWJ family, a skin tone, a
    flag's two regional indicators). Written out rather than with ``regex``'s ``\\X``, whose
    time grows with the square of a run of regional indicators.
    """
    cuts = []
    index = 0
    while index < len(token):
        if _EMOJI.match(token, index) is None:
            index += 1
            continue
        cuts.append(index)
        index = _emoji_end(token, index)
        cuts.append(index)
    return cuts


def _emoji_end(token: str, start: int) -> int:
    """The end of the emoji that begins at ``start``."""
    if _REGIONAL_INDICATOR.match(token, start):
        pair = _REGIONAL_INDICATOR.match(token, start + 1) is not None
        return start + (2 if pair else 1)
    end = start + 1
    while end < len(token):
        if token[end] in _SKIN_TONES or (token[end] in EMOJI_COMPONENTS and token[end] != ZERO_WIDTH_JOINER):
            end += 1
        elif token[end] == ZERO_WIDTH_JOINER and _PICTOGRAPH.match(token, end + 1):
            end += 2
        else:
            break
    return end


def _has_stuck_stop(token: str, following: str) -> bool:
    """A full stop that ends a sentence, glued to its word inside a sentence the splitter kept
    whole (``"It's weak. It blows out," says Zinn.``) or to a list number (``1. Buy milk``):
    abbreviations and capitalised words (``Calif.``, maybe an abbreviation) keep theirs."""
    body = token[:-1]
    if not body or not token.endswith(".") or body.endswith("."):
        return False
    if body[0].isdigit() and body[-1].isdigit():
        return all(char.isdigit() or char in ",." for char in body)
    return body.islower() and body.translate(_APOSTROPHES_AND_HYPHENS).isalpha() and not is_abbreviation(body, following)


def english_tokenize_with_offsets(sentence: str) -> list[tuple[str, int, int]]:
    """Penn-Treebank-style tokens of one English sentence with their ``[start, end)`` character spans.

    The tokens are the characters as written (``"`` stays ``"``, not ````/''``).
    """
    spans = _join_elided_years(sentence, _merge_protected(_nltk_spans(sentence), _protected_spans(sentence)))
    tokens = []
    for index, (start, end) in enumerate(spans):
        token = sentence[start:end]
        previous = start
        cuts = [] if _is_url(token) or _is_email(token) else _split_token(token)
        following = sentence[spans[index + 1][0] : spans[index + 1][1]] if index + 1 < len(spans) else ""
        if following and _has_stuck_stop(token, following) and len(token) - 1 not in cuts:
            cuts.append(len(token) - 1)  # NLTK splits only the stop at the very end of the text
        for cut in cuts:
            tokens.append((sentence[previous : start + cut], previous, start + cut))
            previous = start + cut
        tokens.append((sentence[previous:end], previous, end))
    return tokens
