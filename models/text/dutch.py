"""Dutch: its abbreviations, and apostrophes as the Alpino treebank and the CoNLL-2002 text write them.

``'s``, ``'t``, ``'n``, ``'m`` written apart are tokens of their own (``'s avonds``, ``heb 't``);
``z'n``, ``m'n``, ``d'r``, ``zo'n`` are one word; an apostrophe plural or genitive stays on its
word (``auto's``, ``collega's``, ``Puzo's``), which the English tokenizer would split (``auto 's``).
"""

from __future__ import annotations

from .european import Piece, Rules, join_adjacent, words

__all__ = ["RULES"]

_APOSTROPHE_S = frozenset({"'s", "’s"})


def join_apostrophe_s(sentence: str, pieces: list[Piece]) -> list[Piece]:
    """``auto 's`` -> ``auto's``: an ``'s`` written on its word belongs to it in Dutch."""
    return join_adjacent(pieces, lambda before, token: token in _APOSTROPHE_S and before[-1:].isalnum())


RULES = Rules(
    titles=words("dhr. mevr. mw. mr. dr. drs. ir. ing. prof. mgr. ds. st. zr. br. jhr. jkvr. gebr. fa."),
    before_numbers=words("blz. nr. nrs. art. p. pag. hfst. vol. fig. tel. jg. afb."),
    abbreviations=words("""bv. bijv. enz. o.a. z.g.a.n. d.w.z. m.a.w. i.p.v. t.o.v. m.b.t. a.s. e.a. e.d. n.a.v.
        o.m. ca. resp. evt. incl. excl. vgl. zgn. jl. jr. sr. m.i. i.v.m. v.chr. n.chr. d.i. etc. aug. sept.
        okt. dec. jan. feb. nov. min. max. gem. kath. ned. plm. ong. vnl. resp. t.a.v. v.d. a.d. o.i.d."""),
    language_step=join_apostrophe_s,
)
