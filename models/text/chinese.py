"""Chinese words: Traditional characters read as Simplified, and words cut by jieba.

The Chinese model reads Simplified characters whatever the input's script (``to_simplified``,
OpenCC's ``t2s`` table, which maps one character to one character, so offsets into the
converted text are offsets into the input), and its words are jieba's (``segment``, jieba's
own dictionary, shipped inside its wheel: nothing is downloaded).  Training text and parse
input are cut by the same function, so the model's vocabulary is jieba's words.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile

logger = logging.getLogger(__name__)

SEGMENTER = "jieba"
SCRIPT_CONVERSION = "opencc-t2s"


@functools.cache
def _converter():
    import opencc

    return opencc.OpenCC("t2s")


@functools.cache
def _tokenizer():
    import jieba

    # jieba prints to stderr through its own handler ("Building prefix dict ...", and a traceback
    # when its cache cannot be written): not ours to print.  Its records go to this process's
    # logging instead, where they are dropped (a read-only temp dir only costs the cache).
    jieba_logger = logging.getLogger("jieba")
    jieba_logger.removeHandler(jieba.log_console)
    jieba_logger.addHandler(logging.NullHandler())
    jieba_logger.propagate = False
    tokenizer = jieba.Tokenizer()
    tokenizer.tmp_dir = _cache_folder()
    return tokenizer


def _cache_folder() -> str:
    """A folder of this user's own for jieba's cache of its dictionary (which takes 0.5 s to
    build). jieba's default is a file in the shared temp dir, which another user could have
    written; with no folder of our own, a path that cannot exist: no cache, built at each start."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    folder = os.path.join(tempfile.gettempdir(), f"onlstm-jieba-{uid if uid is not None else 'user'}")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if uid is None or os.stat(folder).st_uid == uid:
            return folder
        return tempfile.mkdtemp(prefix="onlstm-jieba-")
    except OSError as error:
        logger.debug("no cache folder for jieba's dictionary (%s): it is built at each start", error)
        return os.path.join(os.devnull, "onlstm-jieba")


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
