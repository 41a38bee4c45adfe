"""``onlstm sweep``: see ``onlstm sweep --help``."""

from ..training.sweep import main

__all__ = ["main"]
