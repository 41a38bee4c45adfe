"""Request and response models of the HTTP API.

Static shape rules (types, exactly one input form, option values) live here;
the size limits depend on settings and are checked in ``service.app`` before any
model work, so that their errors can name the limit and its value.

The option fields (names, types, bounds, descriptions) are ``ParseOptions``'s own:
``ParseRequest`` inherits them.  The examples are the bundled model's real answers, kept in
``examples.json`` (``tests/service/test_examples.py`` re-parses them and rewrites the file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from typing_extensions import TypeAliasType

from ..models.options import ParseOptions

# A tree as nested JSON lists whose leaves are the tokens: [["The", "cat"], ["sat", "."]]
NestedTree = TypeAliasType("NestedTree", "str | list[NestedTree]")

EXAMPLES_PATH = Path(__file__).with_name("examples.json")
# {"parse": {name: {"summary", "request", "response"}}, "model": the GET /model answer}
EXAMPLES: dict[str, Any] = json.loads(EXAMPLES_PATH.read_text(encoding="utf-8"))
PARSE_EXAMPLES: dict[str, dict[str, Any]] = {
    name: {"summary": example["summary"], "value": example["request"]} for name, example in EXAMPLES["parse"].items()
}
PARSE_RESPONSE_EXAMPLES: dict[str, dict[str, Any]] = {
    name: {"summary": example["summary"], "value": example["response"]} for name, example in EXAMPLES["parse"].items()
}


def _require_valid_unicode(value: str, where: str) -> None:
    """Refuse text that cannot be written back as UTF-8 (a lone surrogate such as ``"\\ud800"`` in the JSON)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"{where} holds an unpaired UTF-16 surrogate (\\u{ord(value[error.start]):04x} at character {error.start}), "
            "which is not a Unicode character; send valid Unicode text"
        ) from None


STRICT_NOTE = (
    "Strict types: every field accepts only the JSON type declared here (no coercion: `\"layer\": true` "
    "or `\"layer\": \"1\"` is not layer 1, `\"all_layers\": \"yes\"` is not true), and unknown fields are refused."
)


INPUT_FIELDS = ("text", "sentences", "tokens")  # a request gives exactly one of them


class ParseRequest(ParseOptions):
    """Exactly one of ``text``, ``sentences`` or ``tokens``, plus the options (``ParseOptions``'s fields)."""

    # strict: JSON types are taken as declared, never coerced; the schema says so (x-strict)
    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"description": STRICT_NOTE, "x-strict": True})

    text: str | None = Field(None, description="One or more sentences of raw text; split and tokenized here.")
    sentences: list[str] | None = Field(
        None, min_length=1, description="Raw sentences, one per item; each is tokenized."
    )
    tokens: list[list[str]] | None = Field(
        None, min_length=1, description="Pre-tokenized sentences; tokens are used exactly as given."
    )

    # pydantic's own validation, not ParseOptions' (which raises the first problem as an OptionError):
    # the API's 422 lists every problem with its field, as for the input fields
    __init__ = BaseModel.__init__

    def options(self) -> ParseOptions:
        """The request's options as a plain ``ParseOptions`` (validated already, with the request)."""
        return ParseOptions.model_construct(**{name: getattr(self, name) for name in ParseOptions.model_fields})

    @model_validator(mode="after")
    def _exactly_one_input(self) -> ParseRequest:
        given = [name for name in INPUT_FIELDS if getattr(self, name) is not None]
        if len(given) != 1:
            found = " and ".join(given) if given else "none of them"
            raise ValueError(f"give exactly one of 'text', 'sentences' or 'tokens' (found {found})")
        return self

    @field_validator("text")
    @classmethod
    def _text_has_words(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("text is empty or only whitespace; send at least one word")
        if value is not None:
            _require_valid_unicode(value, "text")
        return value

    @field_validator("sentences")
    @classmethod
    def _sentences_have_words(cls, value: list[str] | None) -> list[str] | None:
        for index, sentence in enumerate(value or [], start=1):
            if not sentence.strip():
                raise ValueError(f"sentence {index} is empty or only whitespace; remove it or add words")
            _require_valid_unicode(sentence, f"sentence {index}")
        return value

    @field_validator("tokens")
    @classmethod
    def _tokens_are_words(cls, value: list[list[str]] | None) -> list[list[str]] | None:
        for index, sentence in enumerate(value or [], start=1):
            if not sentence:
                raise ValueError(f"sentence {index} has no tokens; remove it or add tokens")
            for position, token in enumerate(sentence, start=1):
                # a token with whitespace could not be read back from the bracketed tree
                if not token or any(char.isspace() for char in token):
                    shown = token if len(token) <= 40 else token[:40] + "..."  # never echo a huge token back
                    raise ValueError(
                        f"token {position} of sentence {index} ({shown!r}) is empty or contains whitespace; "
                        "split it into separate tokens"
                    )
                _require_valid_unicode(token, f"token {position} of sentence {index}")
        return value


class ModelName(BaseModel):
    name: str
    version: str = Field(description="Content version of the checkpoint (its weights' SHA-256 prefix).")


class SentenceResult(BaseModel):
    tokens: list[str] = Field(description="The tokens, as given or as tokenized (original spelling and case).")
    tree: str = Field(description="Binary tree, Penn-Treebank bracketed; brackets in tokens as -LRB-/-RRB-.")
    nested: NestedTree = Field(description="The same tree as nested JSON lists whose leaves are the tokens.")
    spans: list[tuple[int, int]] = Field(
        description="[start, end) token offsets of every constituent of two or more tokens, the sentence included."
    )
    distances: list[float] = Field(description="Syntactic distance of each token, from the layer that built the tree.")
    perplexity: float | None = Field(description="Perplexity of the sentence under the language model, per unit "
                                     "it reads: per word, or per character for a model that reads characters "
                                     "(the bundled zh model since 0.14.0; GET /model's metadata.unit).")
    layer: int = Field(description="0-based layer whose distances built the tree.")
    offsets: list[tuple[int, int]] | None = Field(
        None, description="[start, end) character offsets of each token in the input text or sentence."
    )
    unk_share: float = Field(
        0.0, description="Share of the tokens the model read that are outside its vocabulary (read as <unk>)."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What to know before trusting this parse: mostly unknown words, text not in the Latin alphabet.",
    )
    language: str | None = Field(None, description="ISO 639-1 code of the language it was parsed as (en, zh, ...).")
    model: ModelName | None = Field(None, description="The model that parsed it: its name and version.")
    layer_distances: list[list[float]] | None = Field(
        None, description="Distances of every layer, [layer][token] (only with all_layers)."
    )
    layer_trees: list[str] | None = Field(
        None, description="The tree each layer's distances give, PTB-bracketed, [layer] (only with all_layers)."
    )


class ParseResponse(BaseModel):
    model: ModelName
    results: list[SentenceResult]

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["parse"]["text"]["response"]]})


class LayerCard(BaseModel):
    index: int = Field(description="0-based layer.")
    dev_f1: float | None = Field(description="Sentence-level F1 of this layer's trees on dev (null if not recorded).")
    default: bool = Field(description="Whether trees come from this layer unless a request names another.")


class LanguageEntry(BaseModel):
    language: str = Field(description="ISO 639-1 code, what POST /parse takes as `language`.")
    language_name: str = Field(description="The language's English name.")
    model: ModelName
    terms: str = Field(description="What a user of this model must know of its training data's terms of use "
                       "(empty: nothing beyond the card); the English and Chinese models are for non-commercial use only.")
    default: bool = Field(description="Whether a request without `language` is parsed in this one.")


class RequestLimitsCard(BaseModel):
    """What one request may carry on this service (its settings); over them, 413 or 422 naming the limit."""

    max_body_bytes: int = Field(description="Largest request body, in bytes (ONLSTM_MAX_BODY_BYTES).")
    max_sentences: int = Field(description="Most sentences in one request (ONLSTM_MAX_SENTENCES).")
    max_tokens_per_sentence: int = Field(description="Most tokens in one sentence (ONLSTM_MAX_TOKENS_PER_SENTENCE).")
    max_token_chars: int = Field(description="Most characters in one token (ONLSTM_MAX_TOKEN_CHARS).")


class ModelCard(BaseModel):
    name: str
    version: str
    language: str = Field("en", description="ISO 639-1 code of the language this card's model parses.")
    language_name: str = Field("English", description="The language's English name.")
    terms: str = Field("", description="What a user of this model must know of its training data's terms of use.")
    languages: list[LanguageEntry] = Field(
        default_factory=list,
        description="Every language this service parses, with its model (GET /model?language=CODE: its whole card).")
    n_layers: int
    default_layer: int
    default_decoder: str
    default_gate: str = Field("forget", description="The master gate whose distances build the trees unless a "
                              "request names another (forget: the paper's; input).")
    default_right_branching_bias: float = Field(
        0.0, description="The right-branching prior's strength used unless a request names another.")
    default_punctuation_first: bool = Field(
        False, description="Whether trees are split first where the text has punctuation between two words, "
        "unless a request says punctuation_first (on for the bundled es, pt, nl and zh models, whose choices were "
        "made without trees; off for en).")
    punctuation: str
    vocabulary_size: int
    parameters: int
    config: dict[str, Any] = Field(description="The ON-LSTM architecture (ONLSTMConfig).")
    training_data: Any = None
    dev_perplexity: float | None = None
    dev_f1: float | None = None
    dev_f1_per_layer: Any = None
    layers: list[LayerCard] = Field(description="Every layer with its dev F1 (from dev_f1_per_layer) and the default.")
    metadata: dict[str, Any] = Field(description="Everything the checkpoint's card records.")
    limits: RequestLimitsCard | None = Field(
        None, description="What one request may carry here: a client splits its input to fit before sending.")

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["model"]]})


class Health(BaseModel):
    status: str


ReadinessStatus = Literal["ready", "loading", "failed", "draining"]
LanguageStatus = Literal["ready", "loading", "failed"]


class Readiness(BaseModel):
    status: ReadinessStatus
    model: ModelName | None = Field(None, description="The default language's model, once loaded.")
    error: str | None = None
    languages: dict[str, LanguageStatus] = Field(
        default_factory=dict, description="Each language served, by ISO 639-1 code, and its model's state.")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable reason, e.g. too_many_sentences.")
    message: str = Field(description="What went wrong and what to do about it.")
    limit: str | None = Field(None, description="Name of the limit that was exceeded (its ONLSTM_* setting).")
    value: int | None = Field(None, description="The limit's value.")
    details: list[dict[str, Any]] | None = Field(None, description="Per-field problems of an invalid request.")
    available: list[str] | None = Field(
        None, description="The languages served here (ISO 639-1), for a request in another language.")


class ErrorResponse(BaseModel):
    error: ErrorDetail
