"""``python -m training ...`` is ``onlstm train ...``."""

import sys

from training.train import main

sys.exit(main())
