"""Unsupervised constituency parsing with an Ordered-Neurons LSTM language model.

    from onlstm import Parser
    parser = Parser.load()                       # the bundled model (English)
    result = parser.parse("The cat sat on the mat.")
    result.tree.pretty_print()
    spanish = Parser.load(language="es")         # the bundled model of another language
    pool = ParserPool()                          # every bundled language, chosen by ParseOptions.language

Subpackages, lowest floor first (each imports only from the floors below it):
``onlstm.models`` (the ON-LSTM, tree decoders, text handling, checkpoints, ``Parser``),
``onlstm.training`` (configuration, corpora, the trainer, evaluation) and
``onlstm.service`` (the HTTP service).  ``onlstm.cli`` is the ``onlstm`` command.
"""

from __future__ import annotations

__version__ = "0.15.0"

__all__ = ["LanguageError", "OptionError", "ParseOptions", "Parser", "ParserPool", "ParseResult", "__version__"]

# `import onlstm` stays light (no torch) so that `onlstm --version` and the subcommands'
# --help answer at once; the public names load on first use.
_LAZY = {"Parser": ".models.parser", "ParseResult": ".models.parser", "ParseOptions": ".models.options",
         "OptionError": ".models.options", "ParserPool": ".models.pool", "LanguageError": ".models.languages"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
