"""``onlstm serve`` / ``onlstm serve``: run the HTTP service with uvicorn."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported at run time only when serving, so that --help stays fast
    from ..service.drain import DrainingServer
    from ..service.settings import Settings

# After the drain (service/drain.py) has answered every parse request, uvicorn's own shutdown
# gives the responses still being written this long.
GRACEFUL_SHUTDOWN_SECONDS = 5


def build_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onlstm serve",
        description="Serve the ON-LSTM parser over HTTP (API at /parse, page at /, docs at /docs). "
        "Every option can also be set with an ONLSTM_* environment variable; options win.",
    )
    parser.add_argument("--host", help="interface to listen on (ONLSTM_HOST, default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, help="port (ONLSTM_PORT, default 8000)")
    parser.add_argument("--languages", metavar="CODES",
                        help="languages to serve, comma-separated ISO 639-1 codes, each CODE or CODE=PATH to a release "
                        "(ONLSTM_LANGUAGES, default: every bundled language)")
    parser.add_argument("--checkpoint", help="one release to serve on its own, in the language it records "
                        "(ONLSTM_CHECKPOINT, default: the bundled models)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (ONLSTM_THREADS)")
    parser.add_argument("--log-level", help="critical, error, warning, info or debug (ONLSTM_LOG_LEVEL, default info)")
    parser.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                        help="serve on Ray Serve: a local Ray without ADDRESS, else the cluster's (auto, HOST:6379); "
                        "needs the ray extra")
    parser.add_argument("--replicas", type=int, default=None, metavar="N",
                        help="with --ray: model replicas, each with its own micro-batching (default 2)")
    return parser


def build_server(settings: Settings) -> DrainingServer:
    """The uvicorn server ``onlstm serve`` runs (the container's CMD runs exactly this).

    Idle keep-alive connections are kept ``settings.keep_alive_s`` (75 s by default, longer than
    clients' and load balancers' own expiry), SIGTERM drains the service within
    ``settings.drain_timeout_s`` (service/drain.py), and the h11 protocol bounds each request's
    head in time and size (service/protocol.py)."""
    import uvicorn

    from ..service.app import create_app
    from ..service.drain import DrainingServer
    from ..service.protocol import bounded_h11_protocol

    app = create_app(settings)
    protocol = bounded_h11_protocol(settings.header_timeout_s, settings.max_header_bytes)
    # the app logs every request itself (with its id and timing), so uvicorn's access log is off
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                            access_log=False, http=protocol, h11_max_incomplete_event_size=settings.max_header_bytes,
                            # typed int by uvicorn, which hands it to loop.call_later: fractions of a second work
                            timeout_keep_alive=settings.keep_alive_s,  # type: ignore[arg-type]
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS)
    return DrainingServer(config, app.state.service, settings.drain_timeout_s)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_argument_parser().parse_args(argv)
    from ..service.runtime import tune_process

    tune_process()  # before torch is imported
    # imported here so that --help answers without loading torch
    from ..service.settings import SettingsError, load_settings

    options = vars(arguments)
    ray_address, replicas = options.pop("ray"), options.pop("replicas")
    if replicas is not None and (ray_address is None or replicas < 1):
        print("error: --replicas N (N >= 1) goes with --ray", file=sys.stderr)
        return 2
    overrides = {name: value for name, value in options.items() if value is not None}
    try:
        settings = load_settings(flags=overrides)  # errors name the flag typed: --port, not ONLSTM_PORT
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if ray_address is not None:
        from ..ray_serve import serve_on_ray

        return serve_on_ray(settings, None if ray_address == "local" else ray_address, replicas or 2)
    server = build_server(settings)

    # While it serves, the server handles SIGTERM/SIGINT itself (the first drains, service/drain.py);
    # uvicorn then re-raises a signal that stopped it with the handlers it found installed, so that
    # the default handler would kill the process and the exit status would be -15.  A graceful
    # shutdown is a success: the handlers below only ask the server to stop (which makes the re-raise
    # harmless and also covers a signal that arrives before uvicorn installs its own), and the
    # command exits 0.
    def stop_gracefully(signal_number: int, frame: object) -> None:
        server.should_exit = True

    for handled in (signal.SIGTERM, signal.SIGINT):
        signal.signal(handled, stop_gracefully)
    server.run()
    if not server.started:
        return 1  # uvicorn has logged why (e.g. the port is in use)
    return 0


if __name__ == "__main__":
    sys.exit(main())
