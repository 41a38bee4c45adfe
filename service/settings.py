"""Service settings, read from ``ONLSTM_*`` environment variables (and an optional ``.env``).

Every setting is validated when the app is created, so a typo in a deployment fails
at start-up with a message naming the variable, instead of at the first request.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ..models.device import check_device
from ..models.languages import LANGUAGES, bundled_languages
from ..models.limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_SENTENCES, DEFAULT_MAX_TOKEN_CHARS, DEFAULT_MAX_TOKENS

logger = logging.getLogger(__name__)

SECRET_FIELDS = ("api_key",)
LogLevel = Literal["critical", "error", "warning", "info", "debug"]
# ONLSTM_* variables that are not service settings: read by every command (models/network/native.py), by
# training and the tests (training/corpora.py, the data; tests/service/test_browser.py, screenshots)
# and by the benchmarks (the reference implementation)
OTHER_VARIABLES = ("ONLSTM_NATIVE", "ONLSTM_AMX", "ONLSTM_CACHE", "ONLSTM_DATA", "ONLSTM_PEERS", "ONLSTM_SCREENSHOTS")


class SettingsError(ValueError):
    """Invalid settings; the message lists each bad ``ONLSTM_*`` variable and what to change."""


ENV_FILE = ".env"  # read by Settings, and by load_settings for the names it holds


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONLSTM_", env_file=ENV_FILE, extra="ignore", validate_default=True)

    # --- the model -----------------------------------------------------------------------
    checkpoint: Path | None = Field(
        None, description="One release checkpoint (.safetensors) to serve on its own, in the language its card records; "
        "unset = the models bundled with the package (ONLSTM_LANGUAGES)."
    )
    languages: Annotated[dict[str, Path | None], NoDecode] = Field(
        default_factory=dict,
        description="Languages to serve, comma-separated ISO 639-1 codes (en,zh), each from its bundled release, or "
        "code=path for a release of one's own (en,zh=runs/zh/best.safetensors); unset = every bundled language.",
    )
    device: str = Field("cpu", description="Torch device for inference: cpu, cuda or cuda:N.")
    threads: int | None = Field(
        None, ge=1, le=256, description="Intra-op threads for torch (torch.set_num_threads); unset = torch's default."
    )

    # --- the HTTP server (used by `onlstm serve` / `onlstm serve`) -----------------
    host: str = Field("127.0.0.1", min_length=1, description="Interface to listen on (0.0.0.0 for all).")
    port: int = Field(8000, ge=1, le=65535)
    log_level: LogLevel = "info"
    keep_alive_s: float = Field(
        75.0, gt=0, le=3600,
        description="How long an idle keep-alive connection stays open. Longer than clients' own idle expiry "
        "(httpx 5 s, most load balancers 60 s), so that the client closes first and never sends a request on a "
        "connection the server is closing.",
    )

    header_timeout_s: float = Field(
        10.0, gt=0, le=600,
        description="A client must send a request's complete headers within this long of its first byte (or of "
        "connecting), or the connection is closed: slow clients cannot hold connections.",
    )
    max_header_bytes: int = Field(
        16_384, ge=1024, le=1_048_576,
        description="Largest request head (request line and headers) accepted; larger ones get 431.",
    )

    # --- request limits, all checked before any model work ------------------------------
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1024, le=100_000_000, description="Largest request body accepted.")
    max_sentences: int = Field(DEFAULT_MAX_SENTENCES, ge=1, le=100_000, description="Most sentences in one request.")
    max_tokens_per_sentence: int = Field(DEFAULT_MAX_TOKENS, ge=1, le=100_000, description="Most tokens in one sentence.")
    max_token_chars: int = Field(DEFAULT_MAX_TOKEN_CHARS, ge=1, le=100_000, description="Most characters in one token.")

    prepare_timeout_s: float = Field(
        5.0, gt=0, le=600,
        description="CPU seconds a worker process may spend splitting and tokenizing one request; over it, 422.",
    )
    prepare_workers: int = Field(2, ge=1, le=64, description="Worker processes that split and tokenize text.")

    # --- micro-batching ------------------------------------------------------------------
    batch_max_sentences: int = Field(64, ge=1, le=10_000, description="Sentences gathered into one model call.")
    batch_max_wait_ms: float = Field(
        0.0, ge=0, le=10_000,
        description="How long the first request of a batch waits for others to join it. At 0 (the default) a batch "
        "takes the requests that queued while the model was busy with the previous one: a lone request goes at "
        "once, and batches grow with the load.",
    )
    batch_refill_wait_ms: float = Field(
        5.0, ge=0, le=10_000,
        description="Under load, how long a batch waits to hold as many requests as the batch that has just "
        "finished: clients answered together come back a few milliseconds apart. A lone client never waits. "
        "Measured on 2 cores, ~25-token requests: p95 at concurrency 8 56 ms at 0, 38 ms at 5.",
    )
    concurrent_batches: int = Field(1, ge=1, le=64, description="Model calls that may run at the same time.")
    max_queue_wait_s: float = Field(
        30.0, gt=0, le=3600, description="A request still queued after this long is answered 503 with Retry-After."
    )
    max_queued_requests: int = Field(1000, ge=1, le=1_000_000, description="Requests waiting beyond this get 503.")

    # --- deployment ----------------------------------------------------------------------
    drain_timeout_s: float = Field(
        20.0, ge=0, le=3600,
        description="On SIGTERM, how long the requests already in the service may take: /ready answers 503 at once, "
        "new parse requests 503 shutting_down, and queued ones that cannot finish by then are refused the same "
        "way. Under Kubernetes' default 30 s grace period, with room for a preStop pause.",
    )
    api_key: SecretStr | None = Field(
        None, description="When set, POST /parse needs it in an X-API-Key header (or Authorization: Bearer ...)."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins allowed to call the API from a browser, comma-separated (or *); unset = CORS off.",
    )
    log_request_text: bool = Field(
        False, description="Also log the body of each request (the text parsed); off by default, for privacy."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _lowercase_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_key")
    @classmethod
    def _key_is_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("the API key must have at least 16 characters; generate one with `openssl rand -hex 32`")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_urls(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not (origin.startswith(("http://", "https://")) and origin.count("/") == 2):
                raise ValueError(f"{origin!r} is not an origin; give scheme://host[:port] (no path), or *")
        return [origin.rstrip("/") for origin in value]

    @field_validator("checkpoint", mode="before")
    @classmethod
    def _empty_checkpoint_is_bundled(cls, value: object) -> object:
        # ONLSTM_CHECKPOINT= (empty) in a compose file means "the default", not the current directory
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("checkpoint")
    @classmethod
    def _checkpoint_path(cls, value: Path | None) -> Path | None:
        # Not checked here: a missing file, a directory, a truncated or a foreign file are all
        # reported the same way, when the model is loaded (/health 200, /ready 503 with the reason)
        return None if value is None else value.expanduser().resolve()

    @field_validator("languages", mode="before")
    @classmethod
    def _split_languages(cls, value: object) -> object:
        # "en,zh=runs/zh.safetensors" -> {"en": None, "zh": "runs/zh.safetensors"}; empty = every bundled one
        if value is None:
            return {}
        if isinstance(value, str):
            items = [item.strip() for item in value.split(",") if item.strip()]
            pairs = [item.partition("=") for item in items]
            return {code.strip().lower(): (path.strip() or None) for code, _, path in pairs}
        return value

    @field_validator("languages")
    @classmethod
    def _served_languages(cls, value: dict[str, Path | None], info: ValidationInfo) -> dict[str, Path | None]:
        bundled = bundled_languages()
        named = ", ".join(bundled) or "none"
        for code, path in value.items():
            if code not in LANGUAGES:
                raise ValueError(f"unknown language {code!r}: give ISO 639-1 codes, of the bundled languages "
                                 f"{named} (or code=path for a release of one's own, of any ISO 639-1 code)")
            if path is None and code not in bundled:
                raise ValueError(f"no bundled model for {code!r} ({LANGUAGES[code].name}); the bundled languages are "
                                 f"{named}, or give {code}=PATH to a release of one's own")
        if value and info.data.get("checkpoint") is not None:
            raise ValueError("ONLSTM_CHECKPOINT serves one release on its own; to serve several languages, "
                             "give each as code=path here (en,zh=runs/zh/best.safetensors) and unset ONLSTM_CHECKPOINT")
        return {code: None if path is None else path.expanduser().resolve() for code, path in value.items()}

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        # the GPU is checked here rather than after all fields, so that the error names ONLSTM_DEVICE;
        # the same check as onlstm parse --device
        return check_device(value)


def unknown_variables(environment: Mapping[str, str | None]) -> list[str]:
    """A message for each ``ONLSTM_*`` name in ``environment`` that nothing reads, with the closest
    known name: pydantic-settings ignores unknown names, so a misspelt setting would silently keep
    its default.  Names are compared in upper case, as pydantic-settings reads them."""
    prefix = "ONLSTM_"
    known = [field.upper() for field in Settings.model_fields] + [name.removeprefix(prefix) for name in OTHER_VARIABLES]
    messages = []
    for name in sorted(environment):
        # compared without the prefix, which every name shares (else ONLSTM_ZZZ is "close" to ONLSTM_AMX)
        suffix = name.upper().removeprefix(prefix)
        if name.upper().startswith(prefix) and suffix not in known:
            closest = difflib.get_close_matches(suffix, known, n=1)
            suggestion = f"; did you mean {prefix}{closest[0]}?" if closest else ""
            messages.append(f"{name} is not an onlstm setting and is ignored{suggestion}")
    return messages


def load_settings(flags: Mapping[str, object] | None = None, **overrides: object) -> Settings:
    """Settings from the environment and ``.env``, where ``flags`` (command-line options, by
    setting name) and ``overrides`` win.  Unknown ``ONLSTM_*`` names are logged as warnings.
    Bad values raise ``SettingsError``, each named as the user gave it: ``--port`` for a flag,
    ``ONLSTM_PORT`` otherwise."""
    flags = dict(flags or {})
    for message in unknown_variables({**dotenv_values(ENV_FILE), **os.environ}):
        logger.warning(message)
    values: dict[str, Any] = {**flags, **overrides}  # as given: validated (and reported) by Settings
    try:
        return Settings(**values)
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            field = ".".join(str(part) for part in problem["loc"])
            secret = field in SECRET_FIELDS  # never echo a key back, not even a wrong one
            if not field:  # a check across fields
                name, shown = "settings", None
            elif field in flags and field not in overrides:
                name, shown = "--" + field.replace("_", "-"), flags[field]
            else:
                name = f"ONLSTM_{field.upper()}"
                shown = None if field in overrides else os.environ.get(name)
            value = f"={shown!r}" if shown is not None and not secret else ""
            message = problem["msg"].removeprefix("Value error, ")
            lines.append(f"  {name}{value}: {message}")
        raise SettingsError("invalid service settings:\n" + "\n".join(lines)) from None
