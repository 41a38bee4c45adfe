"""Text: sentence splitting, tokens with their character offsets (``sentences``), and the
vocabulary with the normalisation the model reads words in (``vocab``), for each language
(``language="en"`` by default; the rules of the others in ``chinese_text``, ``european`` with
``spanish``, ``portuguese``, ``dutch``, looked up in ``front_doors``).

The text front door's public names are here too, so ``onlstm.models.text`` reads as before::

    from onlstm.models.text import Sentence, split_text, tokenize
"""

from .sentences import Sentence, sentence_spans, split_text, tokenize, tokenize_with_offsets

__all__ = ["Sentence", "sentence_spans", "split_text", "tokenize", "tokenize_with_offsets"]
