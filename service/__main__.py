"""``python -m service`` / ``onlstm serve``: run the HTTP service with uvicorn."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onlstm serve",
        description="Serve the ON-LSTM parser over HTTP (API at /parse, page at /, docs at /docs). "
        "Every option can also be set with an ONLSTM_* environment variable; options win.",
    )
    parser.add_argument("--host", help="interface to listen on (ONLSTM_HOST, default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, help="port (ONLSTM_PORT, default 8000)")
    parser.add_argument("--checkpoint", help="release checkpoint to serve (ONLSTM_CHECKPOINT, default: the bundled model)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (ONLSTM_THREADS)")
    parser.add_argument("--log-level", help="critical, error, warning, info or debug (ONLSTM_LOG_LEVEL, default info)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_argument_parser().parse_args(argv)
    # imported here so that --help answers without loading torch
    import uvicorn

    from service.app import create_app
    from service.settings import SettingsError, load_settings

    overrides = {name: value for name, value in vars(arguments).items() if value is not None}
    try:
        settings = load_settings(**overrides)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                timeout_graceful_shutdown=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
