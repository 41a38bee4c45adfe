"""What a release reads of each word: the word itself (``words``: the en, es, pt and nl models) or
its characters (``characters``: the Chinese model since 0.14.0, ``onlstm train --unit characters``).

A character reader still gives trees over words: a word's distance is the model's distance as
the word's first character is read (the master gate's reading at the boundary before it),
so the tree a character reader builds has the same leaves as a word reader's.  Read a character
at a time, Chinese has almost no unknown input (the word model met 23% of Sinica's dev words
outside its vocabulary); trained 3,000 steps and decoded from its input gate's bottom layer with
the split decoder, without a prior, it gave 29.1 on Sinica dev over fresh seeds against the word
model's 22.8 and balanced branching's 23.3
(``training/sweeps/results/preregistration-chinese-characters-input-gate.md``).

    >>> characters("GDP增長3.5%")
    ['GDP', '增', '長', '3', '.', '5', '%']
    >>> expand(["北京", "是", "首都"])
    (['北', '京', '是', '首', '都'], [0, 2, 3])
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .vocab import INVISIBLE, is_punctuation

__all__ = ["MAX_WORD_UNITS", "UNITS", "characters", "expand", "read_units"]

UNITS = ("words", "characters")
# A character reader reads at most this many units of one word: jieba's words have at most a dozen
# characters, and a token of a thousand (a request may send one; the service allows 250 tokens of up
# to 1,000 characters a sentence) would otherwise make one sentence a quarter of a million steps.
MAX_WORD_UNITS = 32

# A run of Latin letters or digits (half- or full-width) stays one unit: "GDP" or "1990" read a
# letter at a time would be units the Chinese text around them never has.
_UNIT = re.compile(r"[A-Za-z0-9\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]+|\S")


def characters(word: str) -> list[str]:
    """A word's characters (no whitespace, no invisible character); a run of Latin letters or digits stays one."""
    return [unit for unit in _UNIT.findall(word) if unit not in INVISIBLE]


def read_units(word: str) -> list[str]:
    """What a character reader reads of a word: its characters less punctuation (the training text
    has none), unless the word is nothing else; never empty (the word itself, read as one unit);
    at most ``MAX_WORD_UNITS`` (the first ones)."""
    units = characters(word)
    return ([unit for unit in units if not is_punctuation(unit)] or units or [word])[:MAX_WORD_UNITS]


def expand(words: Sequence[str]) -> tuple[list[str], list[int]]:
    """``(units, starts)``: the units a character reader reads of ``words``, and the index in
    ``units`` of each word's first unit."""
    units: list[str] = []
    starts: list[int] = []
    for word in words:
        starts.append(len(units))
        units.extend(read_units(word))
    return units, starts
