"""Spanish: its abbreviations; ``¿``/``¡`` and the rest are the common rules of ``european``.

``del`` and ``al`` stay one token each, as CESS-ESP and the CoNLL-2002 text write them (``del
Estado``, ``al sistema``); clitics stay on their verb (``dárselo``), as both write them; and so
does a percentage (``13%``: 100 times in the CoNLL text against 4 ``%`` apart, 14 to 0 in CESS).
"""

from __future__ import annotations

from .european import Piece, Rules, join_adjacent, words

__all__ = ["RULES"]

def join_percentages(sentence: str, pieces: list[Piece]) -> list[Piece]:
    """``13 %`` -> ``13%``, as the Spanish text writes a percentage."""
    return join_adjacent(pieces, lambda before, token: token == "%" and before[-1:].isdigit())


RULES = Rules(
    titles=words("""Sr. Sra. Srta. Sres. Sras. Srs. D. Dña. Dª. Dr. Dra. Dres. Lic. Lcdo. Lcda. Ing. Arq. Prof. Profa.
        Sto. Sta. Fr. Excmo. Excma. Ilmo. Ilma. Rvdo. Mons. Gral. Cnel. Tte. Cap. Sgto."""),
    before_numbers=words("pág. págs. p. pp. núm. n. nº. art. arts. cap. vol. fig. apdo. c. av. avda. tel."),
    abbreviations=words("""etc. ej. p.ej. vs. aprox. EE.UU. Cía. S.A. S.L. Ud. Uds. Vd. Vds. dpto. depto. admón.
        ctra. ed. cf. pza. ss. sig. sigs. a.C. d.C. a.m. p.m. tfno. izq. dcha. máx. mín. hnos. cía."""),
    language_step=join_percentages,
)
