"""``ParseOptions``: the one place the parse options are defined.

Every front door builds one (the library from keyword arguments, the HTTP schema by
inheriting its fields, the CLI from flags, the integrations from their arguments), and it
is validated once, when it is built.  A ``None`` field means "the model's default";
``Parser.resolve`` fills the defaults in and checks what depends on the model (how many
layers it has, whether it read punctuation in training), returning options with no
``None`` left, which the service's batcher uses as its grouping key.

    options = ParseOptions(layer=1, right_branching_bias=0)
    parser.parse("The cat sat.", options)          # or parser.parse("The cat sat.", layer=1)

Adding an option means adding a field here and reading it where it acts (the decoder, the
renderer); the schema, the flags and the integrations follow.

Errors are ``OptionError`` (a ``ValueError``) carrying a stable ``code`` and the ``option``
that is wrong, so that a front end can name the option as its user knows it (a CLI flag)
without rewriting the message text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .trees.decoders import MAX_RIGHT_BRANCHING_BIAS

__all__ = ["Decoder", "Gate", "OptionError", "ParseOptions", "Punctuation", "DECODER_NAMES", "GATE_NAMES",
           "LANGUAGE_PATTERN", "PUNCTUATION_MODES"]

# The decoders of models.trees.decoders.DECODERS (a test holds the two to each other)
Decoder = Literal["greedy", "split"]
DECODER_NAMES: tuple[str, ...] = get_args(Decoder)
Punctuation = Literal["attach", "model"]
PUNCTUATION_MODES: tuple[str, ...] = get_args(Punctuation)
Gate = Literal["forget", "input"]
GATE_NAMES: tuple[str, ...] = get_args(Gate)

# What each option must be, phrased to follow its name ("layer must be ...")
REQUIREMENTS = {
    "layer": "must be an integer of at least 0 (a 0-based layer)",
    "decoder": f"must be one of {list(DECODER_NAMES)}",
    "gate": f"must be one of {list(GATE_NAMES)}",
    "punctuation": f"must be one of {list(PUNCTUATION_MODES)}",
    "right_branching_bias": f"must be a finite number between {-MAX_RIGHT_BRANCHING_BIAS:g} and "
                            f"{MAX_RIGHT_BRANCHING_BIAS:g} (0: the model's own distances)",
    "punctuation_first": "must be true or false",
    "all_layers": "must be true or false",
    "language": "must be a two-letter lowercase ISO 639-1 code (en, zh, es, pt, nl; default: the model's own)",
}
LANGUAGE_PATTERN = r"^[a-z]{2}$"


class OptionError(ValueError):
    """A parse option that cannot be taken.

    Attributes:
        option: the field's name (``layer``, ``right_branching_bias``, ...).
        code: stable and machine-readable: ``invalid_<option>``, ``unknown_option`` (no such
            option) or ``unsupported_option`` (valid, but not for this model); for the language,
            ``models.languages.LanguageError``'s codes (``unknown_language``, ``language_unavailable``,
            ``language_mismatch``).
        requirement: what the value must be, phrased to follow the option's name.
        value: what was given.
    """

    def __init__(self, option: str, code: str, requirement: str, value: Any):
        self.option, self.code, self.requirement, self.value = option, code, requirement, value
        super().__init__(self.message_for(option))

    def message_for(self, name: str) -> str:
        """The message with the option spelt as the caller's user knows it (``--right-branching-bias``)."""
        return f"{name} {self.requirement}, got {self.value!r}"

    def __reduce__(self):  # picklable: worker processes and Ray actors raise it
        return (OptionError, (self.option, self.code, self.requirement, self.value))


class ParseOptions(BaseModel):
    """How sentences are parsed; ``None``: the model's default (see ``Parser.resolve``).

    Frozen and hashable: requests with equal options share a batch.  Strict: ``layer=True``
    or ``layer="1"`` is refused, not coerced.
    """

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    layer: int | None = Field(
        None, ge=0, description="0-based layer whose distances build the tree (default: the model's best on dev).")
    decoder: Decoder | None = Field(
        None, description="greedy: the paper's top-down rule; split: the unbiased split-point rule "
        "(default: the model's).")
    gate: Gate | None = Field(
        None, description="forget: distances from the master forget gate, 1 - mean(f~_t) (the paper's); input: "
        "from the master input gate, mean(i~_t), how high the word is written (default: the model's).")
    punctuation: Punctuation | None = Field(
        None, description="attach: punctuation is kept out of the model and attached afterwards; "
        "model: every token goes to the model (default: the model's training setting).")
    right_branching_bias: float | None = Field(
        None, ge=-MAX_RIGHT_BRANCHING_BIAS, le=MAX_RIGHT_BRANCHING_BIAS, allow_inf_nan=False,
        description="Strength of the linear right-branching prior applied to the distances before decoding "
        "(d_t - bias * t / n; 0: the model's own distances; negative leans left; default: the model's).")
    punctuation_first: bool | None = Field(
        None, description="Split first before each word that follows punctuation between two words (1 is added "
        "to that word's distance), then as the decoder does (needs punctuation='attach'; default: the model's: "
        "on for the bundled es, pt, nl and zh models, off for en; see "
        "training/sweeps/results/preregistration-punctuation-first-default.md).")
    all_layers: bool = Field(False, description="Also return every layer's distances and trees.")
    language: str | None = Field(
        None, pattern=LANGUAGE_PATTERN,
        description="ISO 639-1 code of the text's language (en, zh, es, pt, nl), which chooses the model, the "
        "sentence splitting and the tokenization; a parser of another language refuses it (default: the model's "
        "own; a front door serving several languages: en).")

    # At run time, pydantic's ValidationError becomes an OptionError. Hidden from mypy, whose pydantic plugin
    # then types __init__ by the fields above: ParseOptions(layer="1") is a type error (tests/test_typecheck.py).
    if not TYPE_CHECKING:
        def __init__(self, **values: Any):
            try:
                super().__init__(**values)
            except ValidationError as error:
                raise _option_error(error, values) from None

    def replace(self, **changes: Any) -> ParseOptions:
        """These options with ``changes`` (validated); a ``None`` change keeps the current value."""
        given = {name: value for name, value in changes.items() if value is not None}
        if not given:
            return self
        return ParseOptions(**{**self.model_dump(exclude_unset=True), **given})

    @property
    def resolved(self) -> bool:
        """Whether every default has been filled in (by ``Parser.resolve``)."""
        return None not in (self.layer, self.decoder, self.gate, self.punctuation, self.right_branching_bias,
                            self.punctuation_first, self.language)

    @classmethod
    def of(cls, options: ParseOptions | None = None, **values: Any) -> ParseOptions:
        """``options`` with keyword values over it: the convenience every front door offers."""
        if options is not None and not isinstance(options, ParseOptions):
            raise TypeError(f"options must be a ParseOptions, got {type(options).__name__}")
        return (options or _DEFAULTS).replace(**values)


def _option_error(error: ValidationError, values: dict[str, Any]) -> OptionError:
    problem = error.errors()[0]
    name = str(problem["loc"][0]) if problem["loc"] else "options"
    if problem["type"] == "extra_forbidden":
        return OptionError(name, "unknown_option", f"is not a parse option (the options are {list(REQUIREMENTS)})",
                           values.get(name))
    return OptionError(name, f"invalid_{name}", REQUIREMENTS.get(name, problem["msg"]), values.get(name))


_DEFAULTS = ParseOptions()
