"""``onlstm serve --ray [ADDRESS] --replicas N``: the HTTP service on Ray Serve, for clusters
(``pip install 'onlstm-parser[ray]'``).

Two deployments in one Ray Serve application:

* ``ParserReplica`` (``--replicas N``, one CPU each, or ``ONLSTM_THREADS``): each loads the model
  of every language served (``ONLSTM_LANGUAGES``, as ``onlstm serve``) in its constructor, so Ray
  Serve counts it running only once it has its models, and parses with its own micro-batcher (the
  service's, ``service/batcher.py``): requests of one language that reach the same replica together
  share model calls.
* ``HTTPIngress`` (one replica): the service's own FastAPI app (``create_app``: the same routes,
  limits, text preparation and error format as ``onlstm serve``), whose parse requests go to
  the model replicas instead of a local batcher (``RemoteBatcher``).  A model replica that dies
  with a request in it (its process killed, its node lost) costs nothing but time: the request
  is sent again to another replica, and Ray Serve starts a new one.  ``/ready`` says 503 until
  every model replica is running (has its model).

Ray Serve's HTTP proxy listens on ``--host``/``--port``.  The ingress loads the models too (for
the options' defaults, the languages and ``GET /model``) but never runs them on requests; a request's
language travels in its batch key (the resolved ``ParseOptions``) to the replica.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import ray
from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError
from ray.serve.exceptions import ReplicaUnavailableError

from .models.parser import ParseResult
from .models.text.sentences import Sentence
from .service.app import create_app
from .service.batcher import BatcherUnavailable
from .service.languages import ServedModels, release_plan
from .service.lifecycle import load_release, local_batcher
from .service.logs import configure_logging
from .service.settings import Settings
from .service.state import ServiceState, default_loader

logger = logging.getLogger(__name__)

APPLICATION = "onlstm"
# How many model replicas one request may try: each failure is a replica gone, and Ray Serve
# routes the next try to another.
ATTEMPTS = 3
# Requests one model replica takes at once: enough to fill its batches (Ray Serve's default is 5).
REPLICA_ONGOING_REQUESTS = 256
REPLICA_GONE = (RayActorError, ActorUnavailableError, ReplicaUnavailableError)


class ParserReplica:
    """One model and its micro-batcher, in a Ray Serve replica."""

    def __init__(self, settings_values: dict[str, Any]):
        settings = Settings(**settings_values)
        if settings.threads is not None:
            import torch

            torch.set_num_threads(settings.threads)
        # the thread that loads the models is the thread that parses (see service/lifecycle.py)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onlstm-parse")
        self.models = ServedModels()
        for release in release_plan(settings):  # a release that cannot be loaded fails the replica
            self.models.add(self._executor.submit(load_release, release, settings, default_loader).result())
        self._batcher = local_batcher(settings, self._executor, self.models)
        self._started = False

    async def parse(self, sentences: list[Sentence], key: Any) -> list[ParseResult]:
        if not self._started:  # the batcher's collector runs on the replica's event loop
            self._batcher.start()
            self._started = True
        return await self._batcher.submit(sentences, key)


class RemoteBatcher:
    """Stands in for the ingress's batcher: each request's sentences go to a model replica, and
    again to another where one is gone mid-request."""

    def __init__(self, replicas: serve.handle.DeploymentHandle):
        self.replicas = replicas

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def submit(self, items: list[Sentence], key: Any) -> list[ParseResult]:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await self.replicas.parse.remote(items, key)
            except REPLICA_GONE as error:
                logger.warning("a model replica was lost with a request in it (%s); try %d of %d",
                               type(error).__name__, attempt, ATTEMPTS)
            except RayTaskError as error:  # the replica's own answer (busy, shutting down): as the batcher's
                if isinstance(error.cause, BatcherUnavailable):
                    raise error.cause from None
                raise
        raise BatcherUnavailable(f"{ATTEMPTS} model replicas were lost with this request; retry shortly", 1)


class HTTPIngress:
    """The service's FastAPI app, its parse requests sent to ``ParserReplica``s."""

    def __init__(self, settings_values: dict[str, Any], replicas: serve.handle.DeploymentHandle, expected: int):
        self.settings = Settings(**settings_values)
        self.replicas, self.expected = replicas, expected

    def __serve_build_asgi_app__(self):
        app = create_app(self.settings, make_batcher=lambda state, executor: RemoteBatcher(self.replicas))
        state: ServiceState = app.state.service
        state.replicas_waiting = self.replicas_waiting
        return app

    async def replicas_waiting(self) -> str | None:
        running = await asyncio.to_thread(running_model_replicas)
        if running < self.expected:
            return f"{running} of {self.expected} model replicas have their model"
        return None


def running_model_replicas() -> int:
    status = serve.status().applications.get(APPLICATION)
    if status is None or "ParserReplica" not in status.deployments:
        return 0
    # keyed by ray's ReplicaState, a str enum (its module is private): compared by value
    states = status.deployments["ParserReplica"].replica_states
    return sum(count for state, count in states.items() if state == "RUNNING")


def build_application(settings: Settings, replicas: int) -> serve.Application:
    values = settings.model_dump()
    cpus = float(settings.threads or 1)
    # serve.deployment(options)(class): the form its signature types as returning a Deployment
    model = serve.deployment(name="ParserReplica", num_replicas=replicas,
                             ray_actor_options={"num_cpus": cpus}, max_ongoing_requests=REPLICA_ONGOING_REQUESTS,
                             health_check_period_s=2.0)(ParserReplica)  # a lost replica shows in /ready sooner
    ingress = serve.deployment(name="HTTPIngress", num_replicas=1, ray_actor_options={"num_cpus": 0},
                               max_ongoing_requests=4 * REPLICA_ONGOING_REQUESTS)(serve.ingress()(HTTPIngress))
    return ingress.bind(values, model.bind(values), replicas)


# Ray Serve gives its HTTP proxy 5 s to say it is ready and kills it otherwise, which makes serve.start fail:
# with two trainings on the two cores of the CI machine the proxy took longer, and `onlstm serve --ray` exited
# at start-up (eight fleet tests, 2026-12-07). A slow start is no reason to give up; an operator's own
# setting of these wins.
# 45 s keeps the check inside the 60 s serve.start waits for the proxy (ray.serve's HTTP_PROXY_TIMEOUT).
PROXY_PATIENCE = {"RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "45"}


def give_the_proxy_time(address: str | None) -> None:
    """Set ``PROXY_PATIENCE`` where Ray is started here (``address`` None): the cluster's processes
    take this process's environment. A cluster joined at an address keeps its own settings."""
    if address is None:
        for name, seconds in PROXY_PATIENCE.items():
            os.environ.setdefault(name, seconds)


def serve_on_ray(settings: Settings, address: str | None, replicas: int) -> int:
    """Start (or join, at ``address``) Ray, run the application until SIGTERM or SIGINT, then shut it down.
    The start runs in a thread so that a signal during it (minutes on a loaded machine) stops at once."""
    configure_logging(settings.log_level)
    give_the_proxy_time(address)
    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    stop, started = threading.Event(), threading.Event()
    failures: list[BaseException] = []
    for handled in (signal.SIGTERM, signal.SIGINT):
        signal.signal(handled, lambda signal_number, frame: stop.set())

    def start() -> None:
        try:
            serve.start(http_options={"host": settings.host, "port": settings.port})
            serve.run(build_application(settings, replicas), name=APPLICATION, route_prefix="/")
            started.set()
        except BaseException as error:  # re-raised by the main thread, unless a stop came first
            failures.append(error)

    starting = threading.Thread(target=start, name="ray-serve-start", daemon=True)
    starting.start()
    try:
        while starting.is_alive() and not stop.wait(0.2):
            pass
        if failures and not stop.is_set():
            raise failures[0]
        if started.is_set():
            logger.info("serving on Ray Serve at http://%s:%d with %d model replicas", settings.host,
                        settings.port, replicas)
            stop.wait()
        else:
            logger.info("stopped before Ray Serve had started")
        logger.info("stopping: Ray Serve drains its replicas")
        serve.shutdown()
    finally:
        ray.shutdown()
    return 0
