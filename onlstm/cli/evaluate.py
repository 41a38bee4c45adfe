"""``onlstm eval``: see ``onlstm eval --help``."""

from ..training.evaluate import main

__all__ = ["main"]
