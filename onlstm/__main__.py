"""``python -m onlstm ...`` is the ``onlstm`` command."""

import sys

from .cli import main

sys.exit(main())
