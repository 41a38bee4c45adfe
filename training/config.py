"""Training configuration: one dataclass, presets as JSON files in ``presets/``.

Every field can be overridden on the command line (``--set field=value`` or the
named flags of ``onlstm train``); the whole config is saved in every checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..models.onlstm import ONLSTMConfig

PRESET_DIR = Path(__file__).resolve().parent / "presets"


@dataclass
class TrainConfig:
    # --- data
    corpora: list[str] = field(default_factory=lambda: ["ptb-train", "conll2000", "ptb-lm"])  # names or text files
    data_dir: str = ""  # the shared data folder; "" = $ONLSTM_DATA or ../shared/data
    dev_corpus: str = "ptb-dev"  # .mrg trees scored each evaluation (perplexity and F1)
    dev_max_sentences: int = 0  # evaluate on the first N dev sentences only (0 = all)
    punctuation: str = "drop"  # "drop": train on words only (the reference protocol); "keep": punctuation too
    vocab_size: int = 10000  # most frequent normalised tokens, <eos> and <unk> included
    min_count: int = 1  # rarer tokens become <unk>
    # a release (.safetensors) to start from: its vocabulary, layer sizes and punctuation treatment
    # replace the fields here, its weights the random initialisation; the optimizer starts fresh
    init_from: str = ""
    # --- model (see models.onlstm.ONLSTMConfig)
    embedding_size: int = 400
    hidden_size: int = 1150
    n_layers: int = 3
    chunk_size: int = 10
    dropout_output: float = 0.45
    dropout_hidden: float = 0.3
    dropout_input: float = 0.5
    dropout_embedding: float = 0.1
    dropconnect: float = 0.45
    # --- optimisation
    batch_size: int = 20  # streams per micro-batch
    accumulate: int = 1  # micro-batches per optimizer step (the effective batch is batch_size * accumulate)
    bptt: int = 70  # mean window length; AWD-LSTM draws it at random around this value
    random_bptt: bool = True  # False = fixed windows (reproducible gradients, for tests)
    optimizer: str = "adam"  # "adam", "adamw" or "sgd"
    lr: float = 0.002  # Adam 0.002 (the reference's Adam option); SGD 30 (the paper)
    betas: tuple[float, float] = (0.0, 0.999)  # Adam betas; beta1 = 0 as in the reference code
    weight_decay: float = 1.2e-6
    clip: float = 0.25  # max global gradient norm (0 = no clipping)
    lr_patience: int = 2  # evaluations without dev-loss improvement before the lr is halved
    lr_factor: float = 0.5
    alpha: float = 2.0  # activation regularisation (AR) weight
    beta: float = 1.0  # temporal activation regularisation (TAR) weight
    adversarial_epsilon: float = 0.0  # FGM step on the embedding matrix (0 = off)
    epochs: int = 10
    max_steps: int = 0  # stop after this many optimizer steps (0 = no limit)
    max_minutes: float = 0.0  # stop after this wall-clock time (0 = no limit)
    # --- bookkeeping
    eval_every: int = 0  # optimizer steps between dev evaluations (0 = once per epoch)
    checkpoint_every: int = 200  # optimizer steps between resume checkpoints
    select_on: str = "f1"  # "f1" (best layer's dev sentence F1) or "perplexity": what "best" means
    patience: int = 0  # stop after this many evaluations without improvement (0 = never)
    max_bad_steps: int = 10  # consecutive non-finite losses before the run stops
    seed: int = 1111
    threads: int = 0  # torch intra-op threads on CPU (0 = all cores)
    device: str = "auto"  # "auto" = cuda if available, else cpu
    # "auto" = bf16 autocast on a GPU, fp32 on the CPU; "fp32" on a GPU keeps the fused recurrence
    # (one autograd node per layer), which is faster there than bf16 through the per-step path
    precision: str = "auto"
    release_dtype: str = "float16"  # storage dtype of the release checkpoints
    name: str = "onlstm"  # model name written in the release metadata

    def model_config(self, vocab_size: int) -> ONLSTMConfig:
        return ONLSTMConfig(
            vocab_size=vocab_size,
            embedding_size=self.embedding_size,
            hidden_size=self.hidden_size,
            n_layers=self.n_layers,
            chunk_size=self.chunk_size,
            dropout_output=self.dropout_output,
            dropout_hidden=self.dropout_hidden,
            dropout_input=self.dropout_input,
            dropout_embedding=self.dropout_embedding,
            dropconnect=self.dropconnect,
        )

    def validate(self) -> None:
        problems = []
        if self.punctuation not in ("drop", "keep"):
            problems.append("punctuation must be 'drop' or 'keep'")
        if self.optimizer not in ("adam", "adamw", "sgd"):
            problems.append("optimizer must be 'adam', 'adamw' or 'sgd'")
        if self.precision not in ("auto", "bf16", "fp32"):
            problems.append("precision must be 'auto', 'bf16' or 'fp32'")
        if self.select_on not in ("f1", "perplexity"):
            problems.append("select_on must be 'f1' or 'perplexity'")
        for name in ("batch_size", "accumulate", "bptt", "vocab_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if self.adversarial_epsilon < 0:
            problems.append("adversarial_epsilon must be >= 0")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))
        self.model_config(self.vocab_size)  # raises on a chunk size that does not divide the layers

    def to_dict(self) -> dict:
        values = asdict(self)
        values["betas"] = list(self.betas)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {item.name: item for item in fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"unknown training config fields: {', '.join(sorted(unknown))}")
        values = dict(values)
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        return cls(**values)

    def override(self, assignments: list[str]) -> TrainConfig:
        """Apply ``field=value`` strings (values parsed as JSON when they parse, else as text)."""
        values = self.to_dict()
        for assignment in assignments:
            name, separator, text = assignment.partition("=")
            if not separator or name not in values:
                raise ValueError(f"cannot apply {assignment!r}: expected field=value with a field of TrainConfig")
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text
            if name == "corpora" and isinstance(value, str):
                value = [item for item in value.split(",") if item]
            if isinstance(values[name], float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            values[name] = value
        return TrainConfig.from_dict(values)


def load_preset(name_or_path: str) -> TrainConfig:
    """A preset by name (``tiny``, ``cpu``, ``gpu-paper``) or the path of a JSON file."""
    path = Path(name_or_path)
    if not path.is_file():
        path = PRESET_DIR / f"{name_or_path}.json"
    if not path.is_file():
        available = sorted(item.stem for item in PRESET_DIR.glob("*.json"))
        raise ValueError(f"no preset {name_or_path!r}; available: {', '.join(available)}, or a JSON file path")
    return TrainConfig.from_dict(json.loads(path.read_text()))
