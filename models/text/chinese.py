"""Chinese words: Traditional characters read as Simplified, and words cut by jieba.

The Chinese model reads Simplified characters whatever the input's script (``to_simplified``,
OpenCC's ``t2s`` table, which maps one character to one character, so offsets into the
converted text are offsets into the input), and its words are jieba's (``segment``, jieba's
own dictionary, shipped inside its wheel: nothing is downloaded).  Training text and parse
input are cut by the same function, so the model's vocabulary is jieba's words.
"""

from __future__ import annotations

import array
import bisect
import functools
import logging

SEGMENTER = "jieba"
SCRIPT_CONVERSION = "opencc-t2s"


@functools.cache
def _converter():
    import opencc

    return opencc.OpenCC("t2s")


class PrefixFrequencies:
    """jieba's prefix dictionary (every word and every prefix of a word -> the word's frequency, 0
    for a prefix only) in 16 bytes an entry instead of a dict's ~125: the 64-bit hash of each key's
    UTF-8 bytes, sorted, beside its frequency.  jieba reads it with ``in``, ``[]`` and ``get`` only.
    A string's own ``hash`` would not do: CPython hashes a string's internal buffer, so ``zzzz``
    (four Latin-1 bytes 7a) and ``空空`` (two UCS-2 units 7a7a) share it; UTF-8 bytes are one
    spelling per string.  Two keys, or a key and a string looked up, would have to share all 64
    bits to be confused: for jieba's 498,113 keys about one chance in 10^13 a lookup.  Hashes are
    this process's own (Python salts them), so the table is built in each process."""

    __slots__ = ("_hashes", "_frequencies")

    def __init__(self, hashes: array.array, frequencies: array.array):
        self._hashes, self._frequencies = hashes, frequencies

    @classmethod
    def from_dictionary(cls, lines) -> tuple[PrefixFrequencies, int]:
        """The table and the total frequency of jieba's dictionary file (lines of ``word freq
        [tag]``, UTF-8 bytes), with jieba's own rules (``Tokenizer.gen_pfdict``): a word's last
        line gives its frequency; a prefix that is no word has 0."""
        import numpy

        hashes, priorities, frequencies = array.array("q"), array.array("q"), array.array("q")
        total = 0
        for line_number, line in enumerate(lines, 1):
            word, count = line.strip().decode("utf-8").split(" ")[:2]
            frequency = int(count)
            total += frequency
            for end in range(1, len(word)):
                hashes.append(hash(word[:end].encode("utf-8", "surrogatepass")))
                priorities.append(0)
                frequencies.append(0)
            hashes.append(hash(word.encode("utf-8", "surrogatepass")))
            priorities.append(line_number)  # a later line of the same word wins
            frequencies.append(frequency)
        keys, ranks = numpy.frombuffer(hashes, numpy.int64), numpy.frombuffer(priorities, numpy.int64)
        order = numpy.lexsort((ranks, keys))  # by hash, then by line: each hash's last entry wins
        sorted_keys = keys[order]
        last = numpy.append(sorted_keys[1:] != sorted_keys[:-1], True)
        chosen = order[last]
        values = numpy.frombuffer(frequencies, numpy.int64)[chosen]
        return cls(array.array("q", keys[chosen].tobytes()), array.array("q", values.tobytes())), total

    def get(self, key: str, default=None):
        wanted = hash(key.encode("utf-8", "surrogatepass"))
        index = bisect.bisect_left(self._hashes, wanted)
        if index < len(self._hashes) and self._hashes[index] == wanted:
            return self._frequencies[index]
        return default

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __getitem__(self, key: str) -> int:
        frequency = self.get(key)
        if frequency is None:
            raise KeyError(key)
        return frequency

    def __len__(self) -> int:
        return len(self._hashes)


def _compact_tokenizer_class():
    import jieba

    class CompactTokenizer(jieba.Tokenizer):
        """jieba's tokenizer with its default dictionary held as ``PrefixFrequencies``: the dict
        jieba builds took 62 MB of a process's resident memory (measured: 249.8 -> 311.6 MB on the
        first cut), the table 7.8 MB.  Built from the dictionary file in 0.6 s (jieba's cache of its
        dict is not read or written)."""

        initialized: bool  # jieba's attribute, set in its __init__ (jieba has no type hints)

        def initialize(self, dictionary=None):
            if dictionary is not None:
                raise ValueError("the compact tokenizer reads jieba's own dictionary only")
            with self.lock:
                if self.initialized:
                    return
                with self.get_dict_file() as lines:
                    self.FREQ, self.total = PrefixFrequencies.from_dictionary(lines)
                self.initialized = True

    return CompactTokenizer


@functools.cache
def _tokenizer():
    import jieba

    # jieba prints to stderr through its own handler (its loading messages; with its own
    # dictionary, a traceback when its cache cannot be written): not ours to print.  Its records
    # go to this process's logging instead, where they are dropped.
    jieba_logger = logging.getLogger("jieba")
    jieba_logger.removeHandler(jieba.log_console)
    jieba_logger.addHandler(logging.NullHandler())
    jieba_logger.propagate = False
    return _compact_tokenizer_class()()


def to_simplified(text: str) -> str:
    """``text`` in Simplified characters, one character for each of ``text``'s (so offsets carry
    over); where a phrase of the table would change the length, character by character."""
    converted = _converter().convert(text)
    if len(converted) == len(text):
        return converted
    return "".join(_converter().convert(char) for char in text)


def segment(text: str) -> list[tuple[int, int]]:
    """Character spans of jieba's words in ``text`` (read as Simplified), whitespace left out."""
    simplified = to_simplified(text)
    return [(start, end) for _, start, end in _tokenizer().tokenize(simplified, HMM=True) if simplified[start:end].strip()]


def segment_words(text: str) -> list[str]:
    """The words of ``text`` as written (its own script), cut where ``segment`` cuts."""
    return [text[start:end] for start, end in segment(text)]
