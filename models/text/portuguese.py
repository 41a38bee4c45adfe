"""Portuguese: its abbreviations, and contractions split as the training text splits them.

Mac-Morpho (the Portuguese training text, 1.2M words) and Floresta write the contractions of
a preposition and an article or pronoun apart: ``da`` is ``de a``, ``no`` ``em o``, ``pelo``
``por o``, ``à`` ``a a``, ``dele`` ``de ele``, ``neste`` ``em este``... (``de a`` 14,122 times
against 1,137 ``da`` in Mac-Morpho).  So the tokens are the two words, and **both share the
span of the contraction** in the input (``da`` at 10-12 gives ``de`` 10-12 and ``a`` 10-12):
the only tokens for which ``text[start:end] != token``; the contraction is recovered by
``text[start:end]``.

Mac-Morpho keeps a contraction whole, and so do the tokens here, where it is part of a name
(``da``, ``do``, ``das``, ``dos`` between two capitalised words: ``Ministério da Fazenda``), of a fixed phrase (``do que``,
``pelo menos``, ``no entanto``, ``ao longo``, ``às vezes``...), before an infinitive (``ao
chegar``) and for the pronoun ``nos`` after a word that draws it before the verb (``que nos
leva``).  A clitic on its verb is a token of its own, the hyphen dropped, as Mac-Morpho writes
it (``Trata-se`` -> ``Trata`` ``se``; Floresta writes ``Trata-`` ``se``).  Currencies stay
whole (``R$``, ``US$``, ``Cr$``: 2,700 times in Mac-Morpho) and so do hours (``21h``).
"""

from __future__ import annotations

import re

from .european import Piece, Rules, join_adjacent, words

__all__ = ["CONTRACTIONS", "RULES", "portuguese_step", "split_contractions"]


def _table(text: str) -> dict[str, tuple[str, str]]:
    """``da=de+a ...`` -> {"da": ("de", "a"), ...}"""
    return {entry.split("=")[0]: tuple(entry.split("=")[1].split("+")) for entry in text.split()}  # type: ignore[misc]


CONTRACTIONS: dict[str, tuple[str, str]] = _table("""
    da=de+a do=de+o das=de+as dos=de+os na=em+a no=em+o nas=em+as nos=em+os
    pela=por+a pelo=por+o pelas=por+as pelos=por+os à=a+a às=a+as ao=a+o aos=a+os
    num=em+um numa=em+uma nuns=em+uns numas=em+umas dum=de+um duma=de+uma duns=de+uns dumas=de+umas
    dele=de+ele dela=de+ela deles=de+eles delas=de+elas nele=em+ele nela=em+ela neles=em+eles nelas=em+elas
    deste=de+este desta=de+esta destes=de+estes destas=de+estas disto=de+isto
    neste=em+este nesta=em+esta nestes=em+estes nestas=em+estas nisto=em+isto
    desse=de+esse dessa=de+essa desses=de+esses dessas=de+essas disso=de+isso
    nesse=em+esse nessa=em+essa nesses=em+esses nessas=em+essas nisso=em+isso
    daquele=de+aquele daquela=de+aquela daqueles=de+aqueles daquelas=de+aquelas daquilo=de+aquilo
    naquele=em+aquele naquela=em+aquela naqueles=em+aqueles naquelas=em+aquelas naquilo=em+aquilo
    àquele=a+aquele àquela=a+aquela àqueles=a+aqueles àquelas=a+aquelas àquilo=a+aquilo
    daí=de+aí daqui=de+aqui dali=de+ali donde=de+onde doutro=de+outro doutra=de+outra
    doutros=de+outros doutras=de+outras noutro=em+outro noutra=em+outra noutros=em+outros noutras=em+outras
""")

# Contractions Mac-Morpho keeps whole before these words (it writes ``do que`` 453 times, ``de o
# que`` 131; ``pelo menos`` 181, ``por o menos`` never).
_FIXED_PHRASES = frozenset(
    tuple(phrase.split("_"))
    for phrase in """do_que no_entanto pelo_menos ao_menos ao_longo ao_vivo ao_redor ao_invés ao_passo ao_largo
        ao_sabor ao_contrário às_vezes às_avessas aos_poucos à_toa à_medida do_sul do_norte""".split()
)
# Words after which ``nos`` is the pronoun, drawn before its verb (``não nos agradam``).
_PRONOUN_NOS_AFTER = frozenset("que não nunca jamais se quem também já só ainda como onde quando lhe me te".split())
_CLITICS = "me|te|se|lhe|lhes|nos|vos|o|a|os|as|lo|la|los|las|no|na|nas"
_VERB_AND_CLITIC = re.compile(rf"([^\W\d_]{{2,}})-({_CLITICS})", re.IGNORECASE)


# Between two capitalised words Mac-Morpho keeps ``da`` whole 1,072 times and splits it 670 times
# (``do`` 1,340 / 399, ``dos`` 352 / 109), but splits ``na``, ``no``, ``ao``, ``à`` more often than
# not, and nearly always after an acronym (``da`` 16 / 152).
_IN_NAMES = frozenset({"da", "do", "das", "dos"})


def _is_acronym(word: str) -> bool:
    return len(word) > 1 and word.isupper()


def _keeps_whole(contraction: str, previous: str, following: str) -> bool:
    """Where Mac-Morpho writes the contraction as one word (see the module doc)."""
    if contraction in _IN_NAMES and previous[:1].isupper() and following[:1].isupper() and not _is_acronym(previous):
        return True  # inside a name (``Folha da Tarde``; but ``CPI do Orçamento``, ``PSDB na Câmara``)
    following = following.lower()
    if (contraction, following) in _FIXED_PHRASES:
        return True
    if contraction == "ao" and following.endswith(("ar", "er", "ir", "or", "ôr")) and following.isalpha():
        return True  # ao + infinitive
    return contraction == "nos" and previous.lower() in _PRONOUN_NOS_AFTER


def _cased(word: str, like: str) -> str:
    """``word`` in the case of the contraction it comes from (``Da`` -> ``De``, ``DA`` -> ``DE``)."""
    if like.isupper() and len(like) > 1:
        return word.upper()
    return word[:1].upper() + word[1:] if like[:1].isupper() else word


_CURRENCY_PREFIXES = frozenset({"R", "US", "U", "Cr", "NCz", "Cz"})


def _joins(before: str, token: str) -> bool:
    """``R`` ``$`` -> ``R$``, ``21`` ``h`` -> ``21h``: cuts the English tokenizer makes and Mac-Morpho does not."""
    return (token == "$" and before in _CURRENCY_PREFIXES) or (token == "h" and before.isdigit())


def portuguese_step(sentence: str, pieces: list[Piece]) -> list[Piece]:
    """Currencies and hours joined, then contractions and clitics split."""
    return split_contractions(sentence, join_adjacent(pieces, _joins))


def split_contractions(sentence: str, pieces: list[Piece]) -> list[Piece]:
    """Contractions -> their two words, sharing the contraction's span; clitics off their verb."""
    result: list[Piece] = []
    for index, (token, start, end) in enumerate(pieces):
        previous = pieces[index - 1][0] if index else ""
        following = pieces[index + 1][0] if index + 1 < len(pieces) else ""
        parts = CONTRACTIONS.get(token.lower())
        clitic = _VERB_AND_CLITIC.fullmatch(token)
        if parts and not _keeps_whole(token.lower(), previous, following):
            result.append((_cased(parts[0], token), start, end))
            result.append((parts[1].upper() if token.isupper() and len(token) > 1 else parts[1], start, end))
        elif clitic:
            result.append((clitic.group(1), start, start + clitic.end(1)))
            result.append((clitic.group(2), start + clitic.start(2), end))
        else:
            result.append((token, start, end))
    return result


RULES = Rules(
    titles=words("""Sr. Sra. Srta. Srs. Sras. Dr. Dra. Drs. Dras. Prof. Profa. Profs. Eng. Engª. D. Dª. Exmo. Exma.
        Sto. Sta. Fr. Pe. Gen. Cel. Cap. Sgt. Ten. Cmdt. Mons. Revmo."""),
    before_numbers=words("pág. págs. p. pp. n. nº. núm. art. arts. cap. vol. fig. tel. av. r. cf."),
    abbreviations=words("""etc. ex. Ltda. S.A. Cia. a.C. d.C. obs. aprox. séc. sécs. ed. trad. org. coord. dep. min.
        máx. mín. op. cit. ibid. a.m. p.m. V.Exa. v.g. i.e. e.g. fls."""),
    language_step=portuguese_step,
)
