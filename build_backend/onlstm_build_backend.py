"""setuptools' build backend (``setuptools.build_meta``), less one notice.

Mapping the top-level folders into ``onlstm`` (pyproject.toml's package-dir) makes setuptools
install an editable checkout through an import finder, and it then warns, on every
``pip install -e .``, that folders named like the package may shadow it.  Here the only such
folder is the package itself, so that warning says nothing true about this project, and pip
prints it as a backend warning to every new user; every other warning still comes through.
"""

from __future__ import annotations

import warnings

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F403  (the other hooks, unchanged)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Editable installation")
        return build_meta.build_editable(wheel_directory, config_settings, metadata_directory)
