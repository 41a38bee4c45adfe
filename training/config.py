"""Training configuration: one pydantic model that holds the model's own config, presets as
JSON files in ``presets/``.

The architecture is ``models.network.onlstm.ONLSTMConfig`` itself, nested as ``model`` (its fields
are declared once, there); ``model.vocab_size`` is the largest vocabulary to build, and the
model gets the size of the vocabulary actually built.  Every field is checked when the
config is made, so a bad value is refused at start with the field's name and what it
accepts.  From the command line: named flags (``--accumulate 4``) and ``--set field=value``
(``--set lr=0.004``, ``--set model.hidden_size=600``); the whole config is saved in every
checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from ..models.network.onlstm import ONLSTMConfig
from ..models.trees.decoders import MAX_RIGHT_BRANCHING_BIAS

logger = logging.getLogger(__name__)

PRESET_DIR = Path(__file__).resolve().parent / "presets"
MODEL_FIELDS = tuple(item.name for item in dataclasses.fields(ONLSTMConfig))
# How long a run goes on and where it computes: what a resumed run takes from its new command line
# (and from a preset named there), together with where the (same) data lives.  Every other field
# of a resumed run comes from its checkpoint.
RUN_LENGTH_FIELDS = (
    "epochs", "max_steps", "max_minutes", "eval_every", "checkpoint_every", "patience", "device", "threads", "precision",
    "cuda_graphs",
)
RESUMABLE_FIELDS = (*RUN_LENGTH_FIELDS, "data_dir")


class ConfigError(ValueError):
    """A training config that cannot be used; the message names each field and what it accepts."""


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # --- data
    corpora: list[str] = Field(default_factory=lambda: ["ptb-train", "conll2000", "ptb-lm"])  # names or text files
    # the language of the text (ISO 639-1, models.languages.LANGUAGES): how a text file is split and
    # tokenized and how tokens are normalised, recorded in every release (Parser.load checks it)
    language: str = "en"
    data_dir: str = ""  # the shared data folder; "" = $ONLSTM_DATA or ../shared/data
    # gold trees scored at each evaluation, for the oracle rows only unless select_on="f1": "ptb-dev",
    # a .mrg file or folder (English), a treebank folder of the language (its dev split, read by
    # training.treebanks), or "" = none: the run reads no tree and holds out training sentences instead
    dev_corpus: str = ""
    # sentences held out of the training text for perplexity when there are no dev trees
    # (every k-th sentence; 0 = 2% of them, at least 200 and at most 2,000)
    heldout_sentences: NonNegativeInt = 0
    dev_max_sentences: NonNegativeInt = 0  # evaluate on the first N dev sentences only (0 = all)
    punctuation: Literal["drop", "keep"] = "drop"  # "drop": words only (the reference protocol); "keep": punctuation too
    # what the model reads of each word: the word, or its characters (models.text.units; trees stay over
    # words, each word's distance the one at its first character); recorded in every release
    unit: Literal["words", "characters"] = "words"
    min_count: PositiveInt = 1  # rarer tokens become <unk>
    # a release (.safetensors) to start from: its vocabulary, layer sizes and punctuation treatment
    # replace the fields here, its weights the random initialisation; the optimizer starts fresh
    init_from: str = ""
    # parameters kept as they are (names or name prefixes: "embedding", "layers.0", ...), e.g. the
    # layers whose master forget gates give the trees, so that further training lowers perplexity
    # without moving the trees: with init_from, ``--set freeze=embedding,layers.0,layers.1``
    freeze: list[str] = Field(default_factory=list)
    # --- model: ONLSTMConfig's fields (sizes, dropouts); vocab_size = the most frequent normalised
    # tokens kept, <eos> and <unk> included
    model: ONLSTMConfig = Field(default_factory=ONLSTMConfig)
    # --- optimisation
    batch_size: PositiveInt = 20  # streams per micro-batch
    accumulate: PositiveInt = 1  # micro-batches per optimizer step (the effective batch is batch_size * accumulate)
    bptt: PositiveInt = 70  # mean window length; AWD-LSTM draws it at random around this value
    random_bptt: bool = True  # False = fixed windows (reproducible gradients, for tests)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: NonNegativeFloat = 0.002  # Adam 0.002 (the reference's Adam option); SGD 30 (the paper)
    betas: tuple[float, float] = (0.0, 0.999)  # Adam betas; beta1 = 0 as in the reference code
    weight_decay: NonNegativeFloat = 1.2e-6
    clip: NonNegativeFloat = 0.25  # max global gradient norm (0 = no clipping)
    lr_patience: NonNegativeInt = 2  # evaluations without dev-loss improvement before the lr is lowered
    lr_factor: float = Field(0.5, gt=0, le=1)  # the plateau schedule multiplies the lr by this
    alpha: NonNegativeFloat = 2.0  # activation regularisation (AR) weight
    beta: NonNegativeFloat = 1.0  # temporal activation regularisation (TAR) weight
    adversarial_epsilon: NonNegativeFloat = 0.0  # FGM step on the embedding matrix (0 = off)
    # an exponential moving average of the weights (decay per optimizer step; 0 = off): when on,
    # dev evaluation, selection and the releases use the averaged weights, and metrics.jsonl
    # also holds the online weights' figures (online_dev_*) for comparison
    average_decay: float = Field(0.0, ge=0.0, lt=1.0)
    # DropConnect's masks on a CPU: "native" from the C kernel (models.network.cell.drop_connect, 30x
    # faster), "torch" from F.dropout, the random stream the bundled model was trained with (the
    # default preset, its recipe, keeps it; runs saved before this setting resume on it); both
    # the same distribution.  On a GPU F.dropout either way.
    dropconnect_sampler: Literal["native", "torch"] = "native"
    epochs: NonNegativeInt = 10
    max_steps: NonNegativeInt = 0  # stop after this many optimizer steps (0 = no limit)
    max_minutes: NonNegativeFloat = 0.0  # stop after this wall-clock time (0 = no limit)
    # --- bookkeeping
    eval_every: NonNegativeInt = 0  # optimizer steps between dev evaluations (0 = once per epoch)
    checkpoint_every: PositiveInt = 200  # optimizer steps between resume checkpoints
    keep_releases: bool = False  # also keep each evaluation's release (release-step{N}.safetensors), to choose later
    # "perplexity" (held-out perplexity: reads no tree) or "f1" (the best layer's dev sentence F1: needs dev trees)
    select_on: Literal["f1", "perplexity"] = "perplexity"
    # the decoder's right-branching prior (models.trees.decoders.right_branching_prior) with which dev F1 is
    # scored and selected, recorded as the release's default; 0: the model's own distances
    right_branching_bias: float = Field(0.0, ge=-MAX_RIGHT_BRANCHING_BIAS, le=MAX_RIGHT_BRANCHING_BIAS,
                                        allow_inf_nan=False)
    patience: NonNegativeInt = 0  # stop after this many evaluations without improvement (0 = never)
    max_bad_steps: PositiveInt = 10  # consecutive non-finite losses before the run stops
    seed: int = 1111
    threads: NonNegativeInt = 0  # torch intra-op threads on CPU (0 = all cores)
    device: str = "auto"  # "auto" = cuda if available, else cpu
    # "auto" = bf16 autocast on a GPU, fp32 on the CPU; "fp32" on a GPU keeps the fused recurrence
    # (one autograd node per layer), which is faster there than bf16 through the per-step path
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    # on a GPU, replay each window's forward, backward and clipping as a CUDA graph (one launch
    # instead of thousands of small kernels; training.step); used when accumulate is 1, FGM is off
    # and the run is one process, else the step runs eagerly (a warning says why)
    cuda_graphs: bool = True
    release_dtype: Literal["float16", "bfloat16", "float32"] = "float16"  # storage dtype of the releases
    name: str = "onlstm"  # model name written in the release metadata

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        from ..models.languages import LANGUAGES

        if value not in LANGUAGES:
            raise ValueError("unknown language; give an ISO 639-1 code: two lowercase letters (en, fr, de, zh ...)")
        return value

    @model_validator(mode="after")
    def _trees_to_select_on(self) -> TrainConfig:
        if self.select_on == "f1" and not self.dev_corpus:
            raise ValueError("select_on=f1 chooses checkpoints on dev trees: give dev_corpus (--dev DIR), "
                             "or select_on=perplexity")
        return self

    @field_validator("corpora", "betas", "freeze", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        """``--set corpora=ptb-train,my.txt`` and ``--set betas=0.9,0.999`` give lists."""
        if isinstance(value, str):
            return [item for item in value.split(",") if item]
        return value

    @field_validator("model", mode="wrap")
    @classmethod
    def _model_in_range(cls, value: Any, handler) -> ONLSTMConfig:
        """ONLSTMConfig checks that its chunks divide the layers; here every size is at least 1
        and every dropout rate in [0, 1)."""
        try:
            model = handler(value)
        except ZeroDivisionError:  # ONLSTMConfig divided by a chunk size of 0
            raise ValueError("chunk_size must be at least 1") from None
        problems = []
        for item in dataclasses.fields(model):
            number = getattr(model, item.name)
            if isinstance(number, int) and number < 1:
                problems.append(f"{item.name} must be at least 1, got {number}")
            elif isinstance(number, float) and not 0.0 <= number < 1.0:
                problems.append(f"{item.name} is a dropout rate: it must be in [0, 1), got {number}")
        if problems:
            raise ValueError("; ".join(problems))
        return model

    # --- making and changing configs (every path validates and names the field on error)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """A config from its JSON form; the flat form of older checkpoints and presets (the model's
        fields beside the others) is read too."""
        return _validated(_nest_model_fields(values))

    @classmethod
    def from_saved(cls, values: dict) -> TrainConfig:
        """The config of a run saved in a checkpoint or release: ``from_dict``, where runs saved
        before ``dropconnect_sampler`` existed drew DropConnect's masks with F.dropout ("torch"),
        and a resumed one goes on doing so; runs saved before there were tree-free runs scored and
        selected on the PTB dev trees."""
        return cls.from_dict({"dropconnect_sampler": "torch", "dev_corpus": "ptb-dev", "select_on": "f1", **values})

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def updated(self, changes: dict[str, Any]) -> TrainConfig:
        """A copy with ``changes`` applied (typed values; ``model.NAME`` keys, or a ``model`` dict,
        change the model's fields)."""
        values = self.to_dict()
        for name, value in changes.items():
            if name.startswith("model.") and name.removeprefix("model.") in MODEL_FIELDS:
                values["model"][name.removeprefix("model.")] = value
            elif name == "model" and isinstance(value, dict):
                values["model"].update(value)
            else:
                values[name] = value
        return _validated(values)

    def override(self, assignments: list[str]) -> TrainConfig:
        """Apply ``field=value`` strings (``--set``): each value is read as its field's type
        (numbers, ``true``/``false``, comma-separated lists)."""
        changes = {}
        for assignment in assignments:
            name, separator, text = assignment.partition("=")
            if not separator or not name:
                raise ConfigError(f"cannot apply {assignment!r}: expected field=value with a field of TrainConfig")
            changes[name] = text
        return self.updated(changes)

    # BaseModel.validate is pydantic 1's deprecated classmethod; TrainConfig's own method replaces it
    def validate(self) -> TrainConfig:  # type: ignore[override]
        """Check the whole config again (fields of ``model`` can be changed in place without a check)."""
        return _validated(self.to_dict())

    def model_for_vocabulary(self, vocab_size: int) -> ONLSTMConfig:
        """The model's config for a vocabulary of ``vocab_size`` tokens."""
        return dataclasses.replace(self.model, vocab_size=vocab_size)

    def differences(self, other: TrainConfig) -> dict[str, tuple[Any, Any]]:
        """``{field: (this value, other value)}`` for every field that differs (``model.NAME`` for the model's)."""
        mine, theirs = _flatten(self.to_dict()), _flatten(other.to_dict())
        return {name: (mine[name], theirs[name]) for name in mine if mine[name] != theirs[name]}


def _flatten(values: dict) -> dict:
    flat = {name: value for name, value in values.items() if name != "model"}
    flat.update({f"model.{name}": value for name, value in values["model"].items()})
    return flat


def _nest_model_fields(values: dict) -> dict:
    """Move model fields written at the top (the format before the nested ``model``) into ``model``."""
    values = dict(values)
    flat = {name: values.pop(name) for name in MODEL_FIELDS if name in values}
    if flat:
        values["model"] = {**flat, **(values.get("model") or {})}
    return values


def _validated(values: dict) -> TrainConfig:
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as error:
        raise ConfigError("invalid training config: " + "; ".join(_describe(item) for item in error.errors())) from None


def _describe(problem: ErrorDetails) -> str:
    """One pydantic problem as ``field: what is wrong (what it accepts)``."""
    field = ".".join(str(part) for part in problem["loc"])
    if problem["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"{field}: {_unknown_field_hint(field)}"
    message = problem["msg"].removeprefix("Value error, ")
    given = problem.get("input")
    shown = "" if isinstance(given, (dict, list)) else f" (got {given!r})"
    return f"{field}: {message[:1].lower()}{message[1:]}{shown}"


def _unknown_field_hint(field: str) -> str:
    name = field.removeprefix("model.")
    if not field.startswith("model.") and name in MODEL_FIELDS:
        return f"a field of the model: write model.{name}"
    known = [name for name in TrainConfig.model_fields if name != "model"] + [f"model.{item}" for item in MODEL_FIELDS]
    # a field the name begins with first (lrate: lr), then the names spelled most alike
    close = [name for name in known if len(name) >= 2 and field.startswith(name)]
    close += [name for name in difflib.get_close_matches(field, known, n=3) if name not in close][: 3 - len(close)]
    suggestion = f"did you mean {' or '.join(close)}? " if close else ""
    return f"unknown field; {suggestion}the fields are {', '.join(known)}"


def load_preset(name_or_path: str) -> TrainConfig:
    """A preset by name (``tiny``, ``cpu``, ``default``, ``gpu-paper``) or the path of a JSON file."""
    path = Path(name_or_path)
    if not path.is_file():
        path = PRESET_DIR / f"{name_or_path}.json"
    if not path.is_file():
        available = sorted(item.stem for item in PRESET_DIR.glob("*.json"))
        raise ConfigError(f"no preset {name_or_path!r}; available: {', '.join(available)}, or a JSON file path")
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
