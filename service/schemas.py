"""Request and response models of the HTTP API.

Static shape rules (types, exactly one input form, option values) live here;
the size limits depend on settings and are checked in ``service.app`` before any
model work, so that their errors can name the limit and its value.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from typing_extensions import TypeAliasType

from ..models.tree import MAX_RIGHT_BRANCHING_BIAS

Decoder = Literal["greedy", "split"]
Punctuation = Literal["attach", "model"]

# A tree as nested JSON lists whose leaves are the tokens: [["The", "cat"], ["sat", "."]]
NestedTree = TypeAliasType("NestedTree", "str | list[NestedTree]")

PARSE_EXAMPLES: dict[str, dict[str, Any]] = {
    "text": {
        "summary": "Raw text (split into sentences and tokenized)",
        "value": {"text": "The cat sat on the mat. A dog chased it into the garden."},
    },
    "sentences": {
        "summary": "One raw sentence per item (each tokenized)",
        "value": {"sentences": ["The cat sat on the mat.", "Stocks fell 3 % in heavy trading."]},
    },
    "tokens": {
        "summary": "Pre-tokenized sentences (used as given)",
        "value": {"tokens": [["The", "cat", "sat", "on", "the", "mat", "."]]},
    },
    "options": {
        "summary": "Choosing the layer and decoder, with every layer's distances",
        "value": {"text": "The cat sat on the mat.", "layer": 1, "decoder": "split", "all_layers": True},
    },
    "prior": {
        "summary": "The model's own distances, without the right-branching prior",
        "value": {"text": "The cat sat on the mat.", "right_branching_bias": 0},
    },
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


class ParseRequest(BaseModel):
    """Exactly one of ``text``, ``sentences`` or ``tokens``, plus options."""

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
    layer: int | None = Field(
        None, ge=0, description="0-based layer whose distances build the tree (default: the model's best on dev)."
    )
    decoder: Decoder | None = Field(
        None,
        description="greedy: the paper's top-down rule; split: the unbiased split-point rule (default: the model's).",
    )
    punctuation: Punctuation | None = Field(
        None,
        description="attach: punctuation is kept out of the model and attached afterwards; "
        "model: every token goes to the model (default: the model's training setting).",
    )
    right_branching_bias: float | None = Field(
        None, ge=-MAX_RIGHT_BRANCHING_BIAS, le=MAX_RIGHT_BRANCHING_BIAS, allow_inf_nan=False,
        description="Strength of the linear right-branching prior applied to the distances before decoding "
        "(d_t - bias * t / n; 0: the model's own distances; negative leans left; default: the model's, chosen on dev).",
    )
    all_layers: bool = Field(False, description="Also return every layer's distances (layer_distances).")

    @model_validator(mode="after")
    def _exactly_one_input(self) -> ParseRequest:
        given = [name for name in ("text", "sentences", "tokens") if getattr(self, name) is not None]
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


class SentenceResult(BaseModel):
    tokens: list[str] = Field(description="The tokens, as given or as tokenized (original spelling and case).")
    tree: str = Field(description="Binary tree, Penn-Treebank bracketed; brackets in tokens as -LRB-/-RRB-.")
    nested: NestedTree = Field(description="The same tree as nested JSON lists whose leaves are the tokens.")
    spans: list[tuple[int, int]] = Field(
        description="[start, end) token offsets of every constituent of two or more tokens, the sentence included."
    )
    distances: list[float] = Field(description="Syntactic distance of each token, from the layer that built the tree.")
    perplexity: float | None = Field(description="Perplexity of the sentence under the language model.")
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
    layer_distances: list[list[float]] | None = Field(
        None, description="Distances of every layer, [layer][token] (only with all_layers)."
    )
    layer_trees: list[str] | None = Field(
        None, description="The tree each layer's distances give, PTB-bracketed, [layer] (only with all_layers)."
    )


class ModelName(BaseModel):
    name: str
    version: str = Field(description="Content version of the checkpoint (its weights' SHA-256 prefix).")


class ParseResponse(BaseModel):
    model: ModelName
    results: list[SentenceResult]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": {"name": "onlstm-ptb", "version": "3f2a9c1b7d04"},
                    "results": [
                        {
                            "tokens": ["The", "cat", "sat", "."],
                            "tree": "(S (X The cat) (X sat .))",
                            "nested": [["The", "cat"], ["sat", "."]],
                            "spans": [[0, 4], [0, 2], [2, 4]],
                            "distances": [0.21, 0.35, 0.62, 0.62],
                            "perplexity": 87.3,
                            "layer": 1,
                            "offsets": [[0, 3], [4, 7], [8, 11], [11, 12]],
                        }
                    ],
                }
            ]
        }
    )


class LayerCard(BaseModel):
    index: int = Field(description="0-based layer.")
    dev_f1: float | None = Field(description="Sentence-level F1 of this layer's trees on dev (null if not recorded).")
    default: bool = Field(description="Whether trees come from this layer unless a request names another.")


class ModelCard(BaseModel):
    name: str
    version: str
    path: str | None = Field(description="File the model was loaded from.")
    n_layers: int
    default_layer: int
    default_decoder: str
    default_right_branching_bias: float = Field(
        0.0, description="The right-branching prior's strength used unless a request names another.")
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


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: Literal["ready", "loading", "failed", "draining"]
    model: ModelName | None = None
    error: str | None = None


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable reason, e.g. too_many_sentences.")
    message: str = Field(description="What went wrong and what to do about it.")
    limit: str | None = Field(None, description="Name of the limit that was exceeded (its ONLSTM_* setting).")
    value: int | None = Field(None, description="The limit's value.")
    details: list[dict[str, Any]] | None = Field(None, description="Per-field problems of an invalid request.")


class ErrorResponse(BaseModel):
    error: ErrorDetail
