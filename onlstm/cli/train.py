"""``onlstm train``: see ``onlstm train --help``."""

from ..training.train import main

__all__ = ["main"]
