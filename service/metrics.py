"""Prometheus metrics, in a registry of their own (one per app, so tests can build many apps).

Every label value comes from a closed set, so that no request can add a series: methods from
``METHODS`` (anything else is ``other``), routes from the app's route templates (anything else
is ``unmatched``), statuses from the codes this server answers (anything else is its class,
e.g. ``5xx``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
# 499: the client hung up before an answer (nginx's convention); 431: request headers too large
STATUSES = frozenset({200, 204, 304, 400, 401, 404, 405, 413, 422, 431, 499, 500, 503})


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


def status_label(status: int) -> str:
    return str(status) if status in STATUSES else f"{status // 100}xx"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("onlstm_http_requests", "HTTP requests", ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram(
            "onlstm_http_request_duration_seconds", "HTTP request latency", ["route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.sentences = Counter("onlstm_sentences_parsed", "Sentences parsed", registry=self.registry)
        self.tokens = Counter("onlstm_tokens_parsed", "Tokens parsed", registry=self.registry)
        self.batch_sentences = Histogram(
            "onlstm_batch_sentences", "Sentences per model call", registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        )
        self.batch_requests = Histogram(
            "onlstm_batch_requests", "Requests per model call", registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64)
        )
        self.batch_seconds = Histogram(
            "onlstm_batch_duration_seconds", "Time of one model call", registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.prepare_seconds = Histogram(
            "onlstm_prepare_duration_seconds", "Time to split and tokenize one request (in a worker process)",
            registry=self.registry, buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.in_flight = Gauge("onlstm_parse_requests_in_flight", "Parse requests queued or being parsed",
                               registry=self.registry)
        self.ready = Gauge("onlstm_model_ready", "1 once the model is loaded", registry=self.registry)

    def observe_batch(self, requests: int, sentences: int, seconds: float) -> None:
        self.batch_requests.observe(requests)
        self.batch_sentences.observe(sentences)
        self.batch_seconds.observe(seconds)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method_label(method), status_label(status)).inc()
        self.latency.labels(route).observe(seconds)
