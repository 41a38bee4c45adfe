"""Train an ON-LSTM language model and select it on dev parsing F1.

    onlstm train --preset cpu --out runs/cpu          # or: python -m onlstm train --preset cpu ...
    onlstm train --preset cpu --out runs/cpu --resume # continue exactly where it stopped
    torchrun --standalone --nproc-per-node=4 -m onlstm train --preset gpu-paper --out runs/ddp   # DDP

Under ``torchrun`` (RANK and WORLD_SIZE in the environment) the run is distributed data
parallel, as in nanoGPT: ``nccl`` on GPUs, ``gloo`` on CPUs.  Rank r trains on rows
``[r*B*A, (r+1)*B*A)`` of the corpus cut into ``world_size * batch_size * accumulate``
parallel streams (a contiguous 1/world_size of the token stream), so N processes with
``accumulate=A`` take the same optimizer steps as one process with ``accumulate=N*A``
(up to dropout).  Gradients are all-reduced once per optimizer step (``no_sync`` on the
other micro-batches).  Dropout and DropConnect are seeded with ``seed + rank`` on purpose;
the window lengths come from ``seed`` on every rank so all ranks walk the stream in step.
Only rank 0 evaluates on dev and writes checkpoints, logs and the progress bar; its
decisions (learning-rate plateau, early stop, time limit) are broadcast so every rank
stops at the same step.  ``last.pt`` holds every rank's RNG and hidden states, so a
resume with the same number of processes continues exactly.

``Trainer`` reads top to bottom: its constructor sets up config -> data -> vocabulary ->
model -> optimizer (-> ``resume``); ``fit`` is the loop, one ``train_step`` per window
(micro-batches, FGM, clipping, optimizer step), ``evaluate`` on dev and ``save`` of
``last.pt`` on their schedules.  ``train(config, out, resume)`` is the one call for
callers; the command line is ``onlstm.cli.train``.  Files written to ``--out``:

    last.pt              resume checkpoint (plain data; optimizer, RNG, position, hidden state)
    best.safetensors     release checkpoint of the best dev evaluation (what you serve)
    last.safetensors     release checkpoint of the latest dev evaluation
    config.json          the full TrainConfig
    metrics.jsonl        one JSON line per dev evaluation
    steps.jsonl          one JSON line per optimizer step (loss, tokens/s)
    curves.png           loss / perplexity / F1 curves (when matplotlib is installed)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from ..models.checkpoint import (
    Release,
    atomic_write,
    load_release,
    load_resume,
    save_release,
    save_resume,
)
from ..models.network import native
from ..models.network.onlstm import ONLSTMConfig, ONLSTMLanguageModel, activation_regularization, count_parameters
from ..models.parser import Parser
from ..models.text.vocab import Vocab, is_punctuation
from .adversarial import FGM
from .batching import batchify, encode_stream, shard_rows, windows
from .config import RESUMABLE_FIELDS, ConfigError, TrainConfig
from .corpora import CorpusError, ptb_split_files, read_corpus, read_treebank, tree_tokens
from .evaluate import evaluate_model, model_input, prepare_gold_trees, read_perplexity
from .step import TrainStep

logger = logging.getLogger("onlstm.training")

# CUDA graphs recorded per run, one per window length: random BPTT around 70 draws a few dozen
# lengths; the rare others run eagerly.  The graphs share one memory pool, so each costs little
GRAPHED_WINDOW_LENGTHS = 64

# --- setup ------------------------------------------------------------------------------


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def uses_bf16(precision: str, device: torch.device) -> bool:
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def make_autocast(precision: str, device: torch.device) -> torch.autocast:
    """bf16 autocast for ``bf16`` (and ``auto`` on a GPU); a disabled context for fp32."""
    use_bf16 = uses_bf16(precision, device)
    if device.type == "cuda" and not use_bf16:
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 storage, TF32 tensor-core products
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)


def seed_everything(seed: int, rank: int = 0) -> random.Random:
    """Torch (dropout, DropConnect, initialisation) from ``seed + rank``: each rank draws its own
    masks.  The returned Python RNG (window lengths) comes from ``seed`` alone, the same on
    every rank, so all ranks take windows of the same lengths and stay in step."""
    torch.manual_seed(seed + rank)
    return random.Random(seed)


@dataclass
class Distributed:
    """This process's place in a ``torchrun`` job; rank 0 of 1 when run alone."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    enabled: bool = False  # started by torchrun: the model is wrapped in DDP
    owns_group: bool = False  # this call initialised the process group (and destroys it)

    @property
    def master(self) -> bool:
        return self.rank == 0


def setup_distributed(device_name: str) -> tuple[Distributed, torch.device]:
    """Join the ``torchrun`` process group when RANK and WORLD_SIZE are set (nanoGPT's recipe):
    ``nccl`` with one GPU per local rank, ``gloo`` on CPUs.  Rendezvous comes from torchrun's
    MASTER_ADDR / MASTER_PORT."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Distributed(), pick_device(device_name)
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    device = pick_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)  # one GPU per process on each node
        torch.cuda.set_device(device)
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if dist.get_world_size() != world_size or dist.get_rank() != rank:
        raise ValueError(
            f"the process group ({dist.get_rank()} of {dist.get_world_size()}) disagrees with RANK / WORLD_SIZE"
        )
    return Distributed(rank, local_rank, world_size, local_world_size, True, owns_group), device


def broadcast_from_master(value, distributed: Distributed):
    """Rank 0's ``value`` on every rank (any picklable object); the others wait for it."""
    if not distributed.enabled:
        return value
    holder = [value if distributed.master else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def mean_over_ranks(value: float, distributed: Distributed, device: torch.device) -> float:
    """The mean of a float over all ranks (NaN anywhere gives NaN everywhere)."""
    if not distributed.enabled:
        return value
    total = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(total)  # SUM: gloo has no AVG
    return total.item() / distributed.world_size


def master_decides(flag: bool, distributed: Distributed, device: torch.device) -> bool:
    """Rank 0's yes/no on every rank (clocks differ between processes)."""
    if not distributed.enabled:
        return bool(flag)
    decision = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(decision, src=0)
    return bool(decision.item())


def check_same_data_on_every_rank(vocab: Vocab, n_tokens: int, distributed: Distributed) -> None:
    """Every rank builds the vocabulary and the stream from its own copy of the corpora; they must agree."""
    if not distributed.enabled:
        return
    digest = hashlib.sha256("\n".join(vocab.itos).encode()).hexdigest() + f"/{n_tokens}"
    digests = [None] * distributed.world_size
    dist.all_gather_object(digests, digest)
    if len(set(digests)) != 1:
        differing = [rank for rank, other in enumerate(digests) if other != digests[0]]
        raise ValueError(
            f"ranks {differing} read different training data from rank 0 (vocabulary or token count differ): "
            "every node needs the same corpora and --data folder"
        )


def load_training_text(config: TrainConfig) -> list[list[str]]:
    """All training sentences, with punctuation removed when the config says so."""
    sentences = []
    data_dir = Path(config.data_dir) if config.data_dir else None
    for name in config.corpora:
        corpus = read_corpus(name, data_dir)
        if not corpus:
            raise CorpusError(f"corpus {name!r} has no sentences; check the file")
        sentences.extend(corpus)
        logger.info("corpus %s: %d sentences, %d tokens", name, len(corpus), sum(map(len, corpus)))
    if config.punctuation == "drop":
        sentences = [[token for token in sentence if not is_punctuation(token)] for sentence in sentences]
    sentences = [sentence for sentence in sentences if sentence]
    if not sentences:
        raise CorpusError("the training corpora contain no words")
    return sentences


def load_dev_trees(config: TrainConfig) -> list:
    data_dir = Path(config.data_dir) if config.data_dir else None
    if config.dev_corpus == "ptb-dev":
        trees = read_treebank(ptb_split_files(data_dir, "dev"))
    else:
        path = Path(config.dev_corpus)
        trees = read_treebank(sorted(path.glob("*.mrg")) if path.is_dir() else [path])
    if config.dev_max_sentences:
        trees = trees[: config.dev_max_sentences]
    return trees


# The fields of the model a release fixes (its dropout rates are training settings: they stay as configured).
SHAPE_FIELDS = ("vocab_size", "embedding_size", "hidden_size", "n_layers", "chunk_size")


def start_from_release(config: TrainConfig) -> tuple[Release, TrainConfig]:
    """Load ``config.init_from`` and return it with the config's vocabulary size, layer sizes
    and punctuation treatment set to the release's (dropout and everything else stay as
    configured): a words-only vocabulary has no punctuation to keep, and the reverse."""
    release = load_release(Path(config.init_from))
    shape = release.model.config
    punctuation = "keep" if release.metadata.get("punctuation") == "model" else "drop"
    if punctuation != config.punctuation:
        logger.info("punctuation=%s, as the release was trained (it was %s)", punctuation, config.punctuation)
    config = config.updated({"model": {name: getattr(shape, name) for name in SHAPE_FIELDS}, "punctuation": punctuation})
    logger.info(
        "starting from %s (%d layers, hidden %d, vocabulary %d)",
        config.init_from, shape.n_layers, shape.hidden_size, shape.vocab_size,
    )
    return release, config


def freeze_parameters(model: torch.nn.Module, names: list[str]) -> None:
    """Keep the parameters named by ``names`` (a name, or a prefix ending at a dot) as they are."""
    if not names:
        return
    parameters = dict(model.named_parameters())
    for name in names:
        matched = [key for key in parameters if key == name or key.startswith(name + ".")]
        if not matched:
            prefixes = sorted({key.rsplit(".", 1)[0] for key in parameters} | set(parameters))
            raise ConfigError(f"freeze: {name!r} names no parameter of the model; use one of {', '.join(prefixes)}")
        for key in matched:
            parameters[key].requires_grad_(False)
    kept = sum(parameter.numel() for parameter in model.parameters() if not parameter.requires_grad)
    logger.info("frozen: %s (%s of %s parameters)", ", ".join(names), f"{kept:,}", f"{count_parameters(model):,}")


def make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    trained = [parameter for parameter in model.parameters() if parameter.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(trained, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(trained, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    return torch.optim.Adam(trained, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)


def accumulate_gradients(
    model: ONLSTMLanguageModel,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    states: list,
    config: TrainConfig,
    fgm: FGM | None,
    autocast,
) -> tuple[float, list]:
    """Forward and backward one window of ``accumulate * batch_size`` streams.

    Micro-batch k holds streams ``[k*B, (k+1)*B)`` and carries its own hidden state;
    each loss is divided by ``accumulate``, so the summed gradient equals the gradient
    of the mean loss over the whole window (one large batch).  With FGM on, every
    micro-batch adds the gradient of its adversarial loss, computed from its own
    clean gradient.

    Args:
        inputs, targets: (accumulate * B, T) token ids.
        states: per micro-batch, the per-layer (h, c) to continue from.
    Returns:
        the mean clean negative log-likelihood, and the new states.
    """
    # Under DDP the forward goes through the wrapper (its hooks all-reduce the gradients);
    # token_nll and init_state live on the wrapped module.  The tied embedding and the output
    # bias get their gradient in the same backward, after forward, which is all DDP's reducer
    # needs.  Gradients are all-reduced in the last backward of the step only: no_sync before.
    ddp = isinstance(model, DistributedDataParallel)
    core = model.module if ddp else model
    mean_nll = 0.0
    new_states = []
    for micro in range(config.accumulate):
        last = micro == config.accumulate - 1
        rows = slice(micro * config.batch_size, (micro + 1) * config.batch_size)
        state = [(h.detach(), c.detach()) for h, c in states[micro]]
        if fgm:
            fgm.mark()
        with _sync_gradients(model, last and not fgm), autocast:
            output = model(inputs[rows], state=state)
            nll = core.token_nll(output.hidden, targets[rows]).mean()
            loss = nll + activation_regularization(output, config.alpha, config.beta)
        (loss / config.accumulate).backward()
        new_states.append(output.state)
        mean_nll += nll.item() / config.accumulate
        if fgm:
            attacked = fgm.attack()
            # with FGM the adversarial backward is the step's last; under DDP it runs on every
            # rank (weighted 0 where this rank's gradient gave no attack) so all ranks all-reduce
            if attacked or (ddp and last):
                with _sync_gradients(model, last), autocast:
                    adversarial_output = model(inputs[rows], state=state)
                    adversarial_loss = core.token_nll(adversarial_output.hidden, targets[rows]).mean()
                (adversarial_loss * (1.0 if attacked else 0.0) / config.accumulate).backward()
                fgm.restore()
    return mean_nll, new_states


def _sync_gradients(model: torch.nn.Module, now: bool):
    """A context: DDP all-reduces the gradients of the backward after this forward only when ``now``."""
    if isinstance(model, DistributedDataParallel) and not now:
        return model.no_sync()
    return contextlib.nullcontext()


# --- evaluation -------------------------------------------------------------------------


def evaluate_dev(model: ONLSTMLanguageModel, vocab: Vocab, config: TrainConfig, gold_trees: list) -> dict:
    """Dev perplexity (words from a fresh state per sentence), words-only parsing F1 per layer and
    the share of the dev tokens read that are outside the vocabulary.

    ``dev_f1_per_layer_halves`` scores the first and the second half of the dev sentences (in
    file order) apart, so that a checkpoint or recipe chosen on one half can be reported on
    the other: the size of the selection bias.  F1 is scored with the greedy decoder and
    ``config.right_branching_bias``; with a prior, ``dev_f1_per_layer_without_prior`` beside it.
    """
    was_training = model.training
    punctuation = "attach" if config.punctuation == "drop" else "model"
    parser = Parser(
        Release(model=model, vocab=vocab, metadata={"punctuation": punctuation}), model.embedding.weight.device
    )
    try:
        read = read_perplexity(parser, [tree_tokens(tree) for tree in gold_trees], punctuation)
        golds = prepare_gold_trees(gold_trees)
        distances = parser.layer_distances([model_input(gold, "words") for gold in golds], 64, "model")
    finally:
        model.train(was_training)

    def per_layer(start: int, end: int, bias: float = config.right_branching_bias) -> dict[str, list[float]]:
        # the caller logs the evaluation once, labelled (Trainer._write_evaluation)
        report = evaluate_model(golds[start:end], lambda _: distances[start:end], "words", ("greedy",), False, (bias,),
                                log_rows=False)
        rows = [row for row in report["model"] if isinstance(row["layer"], int)]
        return {key: [row[key] for row in rows] for key in ("sentence_f1", "corpus_f1")}

    scores = per_layer(0, len(golds))
    f1s = scores["sentence_f1"]
    half = len(golds) // 2
    best_layer = max(range(len(f1s)), key=f1s.__getitem__)
    without_prior = ({"dev_f1_per_layer_without_prior": per_layer(0, len(golds), bias=0.0)["sentence_f1"]}
                     if config.right_branching_bias else {})
    return {
        "dev_loss": read["loss"],
        "dev_unk_share": read["unk_share"],
        "dev_perplexity": read["perplexity"],
        "dev_f1_per_layer": f1s,
        "dev_corpus_f1_per_layer": scores["corpus_f1"],
        "dev_f1_per_layer_halves": ([per_layer(0, half)["sentence_f1"], per_layer(half, len(golds))["sentence_f1"]]
                                    if half else []),
        "dev_f1": f1s[best_layer],
        "best_layer": best_layer,
        **without_prior,
    }


def plot_curves(metrics_path: Path, out_path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.info("matplotlib is not installed (pip install '.[train]'): no curves.png")
        return
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    if not rows:
        return
    steps = [row["step"] for row in rows]
    figure, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].plot(steps, [row["train_loss"] for row in rows], label="train")
    axes[0].plot(steps, [row["dev_loss"] for row in rows], label="dev")
    axes[0].set_title("loss (nats/token)")
    axes[0].legend()
    axes[1].plot(steps, [row["dev_perplexity"] for row in rows])
    axes[1].set_title("dev perplexity")
    for layer in range(len(rows[0]["dev_f1_per_layer"])):
        axes[2].plot(steps, [row["dev_f1_per_layer"][layer] for row in rows], label=f"layer {layer}")
    axes[2].set_title("dev sentence F1")
    axes[2].legend()
    for axis in axes:
        axis.set_xlabel("optimizer step")
    figure.tight_layout()
    figure.savefig(out_path, dpi=90)
    plt.close(figure)


# --- the run ----------------------------------------------------------------------------


@dataclass
class Progress:
    """Where the run is; saved in every resume checkpoint."""

    epoch: int = 0
    position: int = 0  # column of the stream where the next window starts
    step: int = 0  # optimizer steps taken
    best_score: float = -math.inf
    evaluations_without_improvement: int = 0
    bad_steps_in_a_row: int = 0
    elapsed_seconds: float = 0.0


class TrainingDiverged(RuntimeError):
    """The loss or the gradient was not finite ``max_bad_steps`` times in a row; the run stopped."""


class Trainer:
    """One training run, on one process or on every rank of a ``torchrun`` job.

    The constructor sets everything up (process group, config, data, vocabulary, model,
    optimizer, and the state of ``last.pt`` when resuming); ``fit`` is the loop.  Every
    rank runs the same calls in the same order; only rank 0 evaluates on dev and writes
    files, and its decisions reach the other ranks through broadcasts.
    """

    def __init__(self, config: TrainConfig, out_dir: Path, resume: bool = False):
        config = config.validate()
        self.out_dir = Path(out_dir)
        self.resume_path = self.out_dir / "last.pt"
        self.distributed, self.device = setup_distributed(config.device)  # rank 0 of 1 unless under torchrun
        self.master = self.distributed.master  # only rank 0 writes files, logs and the progress bar
        if self.master:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.device.type == "cpu":  # the node's cores are shared by its ranks
            torch.set_num_threads(config.threads or max(1, (os.cpu_count() or 1) // self.distributed.local_world_size))
        self.rng = seed_everything(config.seed, self.distributed.rank)
        checkpoint = self._read_checkpoint() if resume else None
        self.config, initial = self._settle_config(config, checkpoint)
        if self.master:
            (self.out_dir / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        self._load_data(checkpoint, initial)
        self._build_model(checkpoint, initial)
        self.progress = Progress()
        self.states = self._fresh_states()
        if checkpoint is not None:
            self.resume(checkpoint)
        # DDP broadcasts rank 0's parameters to the others here, and all-reduces gradients in backward
        self.ddp_model = (
            DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            if self.distributed.enabled
            else self.model
        )
        self.autocast = make_autocast(self.config.precision, self.device)
        self.graph_step = self._make_graph_step()
        self.running_loss, self.running_tokens = 0.0, 0  # train loss since the last dev evaluation
        self.last_evaluation: dict = {}

    # --- setting up -------------------------------------------------------------------

    def _read_checkpoint(self) -> dict | None:
        """``last.pt`` when it exists (a warning when it does not), written by as many processes as this run has."""
        if not self.resume_path.exists():
            logger.warning("%s does not exist: starting from scratch", self.resume_path)
            return None
        checkpoint = load_resume(self.resume_path)
        if checkpoint.get("world_size", 1) != self.distributed.world_size:
            raise ValueError(
                f"{self.resume_path} was written by {checkpoint.get('world_size', 1)} process(es) and this run has "
                f"{self.distributed.world_size}: resume with the same number (torchrun --nproc-per-node / --nnodes)"
            )
        return checkpoint

    def _settle_config(self, config: TrainConfig, checkpoint: dict | None) -> tuple[TrainConfig, Release | None]:
        """The config of the run: the checkpoint's (with this call's run length) when resuming,
        else ``config``, with the release's shape when it starts from one."""
        if checkpoint is not None:
            saved = TrainConfig.from_saved(checkpoint["train_config"])
            refused = {name: pair for name, pair in saved.differences(config).items() if name not in RESUMABLE_FIELDS}
            if refused:
                changes = ", ".join(f"{name} (saved {old!r}, asked {new!r})" for name, (old, new) in refused.items())
                raise ConfigError(
                    f"cannot change {changes} on --resume: the run continues with the configuration saved in "
                    f"{self.resume_path}; only {', '.join(RESUMABLE_FIELDS)} can change. Drop those settings, "
                    "or start a new run in another --out folder"
                )
            logger.info("resuming from %s at step %d", self.resume_path, checkpoint["progress"]["step"])
            # the model, data and optimisation come from the checkpoint; how long to go on from this call
            return saved.updated({name: getattr(config, name) for name in RESUMABLE_FIELDS}), None
        if config.init_from:
            release, config = start_from_release(config)
            return config, release
        return config, None

    def _load_data(self, checkpoint: dict | None, initial: Release | None) -> None:
        """The vocabulary, this rank's rows of the training streams and (rank 0) the dev trees."""
        config, distributed = self.config, self.distributed
        sentences = load_training_text(config)  # every rank reads the corpora and keeps its own shard
        if checkpoint is not None:
            self.vocab = Vocab(checkpoint["vocab"])
        elif initial is not None:
            self.vocab = initial.vocab  # the release's ids: new words of the new text become <unk>
        else:
            self.vocab = Vocab.build(sentences, config.model.vocab_size, config.min_count)
        n_streams = config.batch_size * config.accumulate * distributed.world_size
        stream = encode_stream(sentences, self.vocab)
        # with --init-from, or a small vocabulary, much of a new text can fall outside the vocabulary
        self.unk_share = (stream == self.vocab.unk_id).sum().item() / max(stream.numel() - len(sentences), 1)
        one_batch = n_streams * (config.bptt + 1)
        if stream.numel() < one_batch:
            raise CorpusError(
                f"the training corpora ({', '.join(config.corpora)}) hold {stream.numel()} tokens, fewer than one "
                f"batch ({n_streams} streams x {config.bptt + 1} tokens = {one_batch}): "
                "give more text, or lower batch_size, accumulate or bptt (--set batch_size=...)"
            )
        streams = batchify(stream, n_streams)
        self.n_tokens = streams.numel()  # over all ranks
        self.data = shard_rows(streams, distributed.rank, distributed.world_size).to(self.device)
        check_same_data_on_every_rank(self.vocab, self.n_tokens, distributed)
        self.dev_trees = load_dev_trees(config) if self.master else []  # only rank 0 evaluates
        if self.master and not self.dev_trees:
            raise CorpusError(f"the dev corpus {config.dev_corpus!r} has no trees; give a bracketed .mrg file or folder")
        logger.info(
            "training on %d tokens (vocabulary %d, %.1f%% of the tokens outside it, read as <unk>), dev %d sentences",
            self.n_tokens, len(self.vocab), 100 * self.unk_share, len(self.dev_trees),
        )

    def _build_model(self, checkpoint: dict | None, initial: Release | None) -> None:
        """The model (the release's weights when starting from one), optimizer, schedule and FGM."""
        config = self.config
        if checkpoint is not None:
            self.model_config = ONLSTMConfig.from_dict(checkpoint["model_config"])
        else:
            self.model_config = config.model_for_vocabulary(len(self.vocab))
        model = ONLSTMLanguageModel(self.model_config)
        for layer in model.layers:
            layer.native_dropconnect = config.dropconnect_sampler == "native"
        if initial is not None:
            model.load_state_dict(initial.model.state_dict())
        self.model = model.to(self.device)
        freeze_parameters(self.model, config.freeze)
        self.optimizer = make_optimizer(config, self.model)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience
        )
        self.fgm = FGM(self.model.embedding, config.adversarial_epsilon) if config.adversarial_epsilon > 0 else None
        # the average starts as a copy of the initial weights and follows each optimizer step
        self.average = (
            AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(config.average_decay))
            if config.average_decay
            else None
        )
        logger.info(
            "model: %s parameters on %s%s",
            f"{count_parameters(self.model):,}",
            self.device,
            f", {self.distributed.world_size} processes (DDP)" if self.distributed.enabled else "",
        )

    def _fresh_states(self) -> list:
        """Zero hidden states, one per micro-batch."""
        return [self.model.init_state(self.config.batch_size) for _ in range(self.config.accumulate)]

    def _reset_states(self) -> None:
        """Back to zero hidden states (in place under CUDA graphs: the graphs read those tensors)."""
        if self.graph_step is not None:
            self.graph_step.reset_state()
        else:
            self.states = self._fresh_states()

    def _make_graph_step(self) -> TrainStep | None:
        """The CUDA-graph step (``cuda_graphs``) when the run is on a GPU and allows it; it
        carries the hidden state from here on (``self.states`` is its state)."""
        config = self.config
        if not config.cuda_graphs or self.device.type != "cuda":
            return None
        blockers = [
            reason
            for reason, present in (
                (f"accumulate is {config.accumulate} (graphs need 1)", config.accumulate > 1),
                ("FGM is on (adversarial_epsilon)", self.fgm is not None),
                ("the run has several processes (DDP)", self.distributed.enabled),
            )
            if present
        ]
        if blockers:
            logger.warning("cuda_graphs: the training step runs eagerly, because %s", "; ".join(blockers))
            return None
        step = TrainStep(
            self.model, None, config.batch_size, alpha=config.alpha, beta=config.beta, clip=config.clip,
            cuda_graphs=True, autocast_dtype=torch.bfloat16 if uses_bf16(config.precision, self.device) else None,
            max_graphs=GRAPHED_WINDOW_LENGTHS,
        )
        step.reset_state(self.states[0])
        self.states = [step.state]
        return step

    # --- the public steps -------------------------------------------------------------

    def resume(self, checkpoint: dict) -> None:
        """Continue exactly where ``checkpoint`` (a ``last.pt`` payload) stopped: weights, optimizer,
        schedule, progress, and this rank's hidden states and random states."""
        self.model.load_state_dict(checkpoint["model"])
        if self.average is not None:
            self.average.load_state_dict(checkpoint["average"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.progress = Progress(**checkpoint["progress"])
        if self.master:  # rows a killed run wrote after its last checkpoint are written again from here
            for log_name in ("steps.jsonl", "metrics.jsonl"):
                drop_rows_after(self.out_dir / log_name, self.progress.step)
        # this rank's hidden states and dropout RNG (rank 0's at the top level, the others' in other_ranks)
        rank = self.distributed.rank
        mine = checkpoint if rank == 0 else checkpoint["other_ranks"][rank - 1]
        self.states = [[(h.to(self.device), c.to(self.device)) for h, c in micro] for micro in mine["states"]]
        torch.set_rng_state(mine["rng"]["torch"])
        cuda_rng = mine["rng"].get("cuda")
        if self.device.type == "cuda" and cuda_rng is not None:
            if isinstance(cuda_rng, (list, tuple)):  # older checkpoints: every device's state
                torch.cuda.set_rng_state_all(cuda_rng)
            else:
                torch.cuda.set_rng_state(cuda_rng, self.device)
        self.rng.setstate(_to_tuple(checkpoint["rng"]["python"]))  # window lengths: the same on every rank

    def train_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> float | None:
        """One optimizer step on a window (inputs, targets: (streams, length) token ids).

        Returns the mean training loss, or None when the loss or the gradient was not finite:
        the step is skipped (no update, fresh hidden states), and after ``max_bad_steps`` such
        steps in a row the run stops with ``TrainingDiverged``.
        """
        config, optimizer = self.config, self.optimizer
        length = inputs.size(1)
        for group in optimizer.param_groups:  # AWD-LSTM: shorter windows take smaller steps
            group["lr"] = group.setdefault("base_lr", group["lr"]) * length / config.bptt
        if self.graph_step is not None:  # the same forward, backward and clipping, replayed
            loss, gradient_norm = (value.item() for value in self.graph_step.step(inputs, targets))
        else:
            optimizer.zero_grad(set_to_none=True)
            loss, self.states = accumulate_gradients(
                self.ddp_model, inputs, targets, self.states, config, self.fgm, self.autocast
            )
            loss = mean_over_ranks(loss, self.distributed, self.device)  # every rank skips a bad step together
            # the norm is measured (and clipped when config.clip) on every step: a finite loss can
            # still give an infinite or NaN gradient, and one such step would poison every weight
            gradient_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.clip or math.inf).item()
        if not (math.isfinite(loss) and math.isfinite(gradient_norm)):
            self._skip_bad_step(loss, gradient_norm)
            return None
        self.progress.bad_steps_in_a_row = 0
        optimizer.step()
        if self.average is not None:
            self.average.update_parameters(self.model)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"]
        self.progress.step += 1
        self.running_loss += loss * length
        self.running_tokens += length
        return loss

    def evaluate(self) -> dict:
        """Dev evaluation, on every rank: rank 0 evaluates (the others wait for its result), every
        rank keeps the same bookkeeping (best score, patience, plateau schedule), rank 0 writes
        the release checkpoints and ``metrics.jsonl``."""
        config, progress = self.config, self.progress
        evaluation = self._evaluate_on_dev() if self.master else None
        evaluation = broadcast_from_master(evaluation, self.distributed)
        train_loss = self.running_loss / max(self.running_tokens, 1)
        self.running_loss, self.running_tokens = 0.0, 0
        evaluation.update(
            step=progress.step, epoch=progress.epoch, train_loss=train_loss, lr=self.optimizer.param_groups[0]["lr"]
        )
        score = evaluation["dev_f1"] if config.select_on == "f1" else -evaluation["dev_perplexity"]
        improved = score > progress.best_score
        if improved:
            progress.best_score = score
            progress.evaluations_without_improvement = 0
        else:
            progress.evaluations_without_improvement += 1
        # the schedule follows the weights the optimizer moves, so averaging leaves their path unchanged
        self.scheduler.step(evaluation.get("online_dev_loss", evaluation["dev_loss"]))
        for group in self.optimizer.param_groups:  # the plateau schedule may have lowered it
            group["base_lr"] = group["lr"]
        if self.master:
            self._write_evaluation(evaluation, improved)
        self.last_evaluation = evaluation
        return evaluation

    def save(self) -> None:
        """Write ``last.pt``; called on every rank: rank 0 gathers the others' states and writes."""
        mine = self._rank_state()
        everyone = [mine]
        if self.distributed.enabled:
            everyone = [None] * self.distributed.world_size if self.master else None
            dist.gather_object(mine, everyone, dst=0)
        if not self.master:
            return
        save_resume(
            self.resume_path,
            {
                "train_config": self.config.to_dict(),
                "model_config": self.model_config.to_dict(),
                "vocab": self.vocab.itos,
                "model": self.model.state_dict(),
                **({"average": self.average.state_dict()} if self.average is not None else {}),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "progress": self.progress.__dict__.copy(),
                "states": mine["states"],
                "rng": {**mine["rng"], "python": self.rng.getstate()},
                "world_size": self.distributed.world_size,
                "other_ranks": everyone[1:],
            },
        )

    def fit(self) -> dict:
        """The loop: epochs of windows, a step per window, dev evaluations and checkpoints on
        their schedule, until the epochs, steps, minutes or patience run out.  Returns the last
        dev evaluation with ``best_score`` and ``steps``."""
        config, progress = self.config, self.progress
        started = time.perf_counter() - progress.elapsed_seconds
        self.model.train()
        try:
            while progress.epoch < config.epochs:
                bar = self._progress_bar()
                for position, inputs, targets in windows(
                    self.data, progress.position, config.bptt, self.rng, config.random_bptt
                ):
                    window_started = time.perf_counter()
                    loss = self.train_step(inputs, targets)
                    progress.position = position + inputs.size(1)
                    if loss is None:
                        continue
                    progress.elapsed_seconds = time.perf_counter() - started
                    self._log_step(loss, inputs, time.perf_counter() - window_started, bar)
                    if config.eval_every and progress.step % config.eval_every == 0:
                        self.evaluate()
                    if progress.step % config.checkpoint_every == 0:
                        self.save()
                    if self._should_stop():
                        bar.close()
                        return self._finish()
                bar.close()
                self._end_epoch()
            return self._finish()
        finally:
            if self.distributed.owns_group:
                dist.destroy_process_group()

    # --- inside the loop --------------------------------------------------------------

    @property
    def released_model(self) -> ONLSTMLanguageModel:
        """The weights evaluated on dev and written to the releases: the average when there is one."""
        return self.average.module if self.average is not None else self.model

    def _evaluate_on_dev(self) -> dict:
        """``evaluate_dev`` of the released weights, with the online weights' figures beside
        them (``online_dev_*``) when they are averaged."""
        evaluation = evaluate_dev(self.released_model, self.vocab, self.config, self.dev_trees)
        if self.average is not None:
            online = evaluate_dev(self.model, self.vocab, self.config, self.dev_trees)
            evaluation.update({f"online_{key}": value for key, value in online.items()})
        return evaluation

    def _progress_bar(self) -> tqdm:
        return tqdm(
            total=self.data.size(1),
            initial=self.progress.position,
            unit="tok/stream",
            disable=not self.master or not sys.stderr.isatty(),
            desc=f"epoch {self.progress.epoch + 1}/{self.config.epochs}",
        )

    def _skip_bad_step(self, loss: float, gradient_norm: float) -> None:
        """Forget a step whose loss or gradient is not finite; stop after ``max_bad_steps`` in a row."""
        progress = self.progress
        progress.bad_steps_in_a_row += 1
        logger.warning(
            "non-finite loss or gradient at step %d (loss %s, gradient norm %s): step skipped, "
            "%d in a row (the run stops at %d)",
            progress.step + 1, loss, gradient_norm, progress.bad_steps_in_a_row, self.config.max_bad_steps,
        )
        self.optimizer.zero_grad(set_to_none=True)
        self._reset_states()
        if progress.bad_steps_in_a_row < self.config.max_bad_steps:
            return
        kept = (
            f"the last good checkpoint, {self.resume_path} (step {load_resume(self.resume_path)['progress']['step']}), "
            "is kept as it was"
            if self.resume_path.exists()
            else "no checkpoint had been written yet"
        )
        raise TrainingDiverged(
            f"{progress.bad_steps_in_a_row} non-finite losses or gradients in a row (max_bad_steps): the run stopped "
            f"after step {progress.step}; {kept}. Lower the learning rate (--set lr=...) or check the data, "
            "then continue with --resume"
        )

    def _log_step(self, loss: float, inputs: torch.Tensor, seconds: float, bar: tqdm) -> None:
        """``steps.jsonl``, the progress bar, and a log line every 50 steps when there is no bar."""
        tokens_per_second = inputs.numel() * self.distributed.world_size / max(seconds, 1e-9)
        step = self.progress.step
        if self.master:
            with open(self.out_dir / "steps.jsonl", "a") as step_log:
                record = {"step": step, "loss": loss, "tokens_per_second": round(tokens_per_second)}
                step_log.write(json.dumps(record) + "\n")
        bar.update(inputs.size(1))
        bar.set_postfix(loss=f"{loss:.3f}", ppl=f"{math.exp(min(loss, 50)):.1f}", tok_s=f"{tokens_per_second:.0f}")
        if self.master and bar.disable and step % 50 == 0:
            epoch = self.progress.epoch + 1
            logger.info("step %d epoch %d: loss %.3f, %.0f tokens/s", step, epoch, loss, tokens_per_second)

    def _should_stop(self) -> bool:
        """Out of time, steps or patience; rank 0's clock decides for everyone, the rest is the same on every rank."""
        config, progress = self.config, self.progress
        out_of_time = master_decides(
            config.max_minutes and progress.elapsed_seconds > config.max_minutes * 60, self.distributed, self.device
        )
        out_of_steps = config.max_steps and progress.step >= config.max_steps
        patience_spent = config.patience and progress.evaluations_without_improvement >= config.patience
        if out_of_time or out_of_steps or patience_spent:
            reason = "time limit" if out_of_time else "step limit" if out_of_steps else "no dev improvement"
            logger.info("stopping at step %d (%s)", progress.step, reason)
            return True
        return False

    def _end_epoch(self) -> None:
        """Back to the start of the streams with fresh hidden states; evaluate when once per epoch."""
        self.progress.epoch += 1
        self.progress.position = 0
        self._reset_states()
        if not self.config.eval_every:
            self.evaluate()

    def _finish(self) -> dict:
        """The last evaluation (unless the last step had one) and checkpoint."""
        if self.running_tokens or not self.last_evaluation:
            self.evaluate()
        self.save()
        progress = self.progress
        best = self.out_dir / "best.safetensors"
        logger.info(
            "done: %d steps in %.1f minutes; best dev score %.2f; wrote %s%s, %s (the last evaluation's) and %s "
            "(onlstm train --resume continues from it)", progress.step, progress.elapsed_seconds / 60,
            progress.best_score, f"{best} (the best on dev), " if best.exists() else "",
            self.out_dir / "last.safetensors", self.out_dir / "metrics.jsonl", self.resume_path,
        )
        return {**self.last_evaluation, "best_score": progress.best_score, "steps": progress.step}

    # --- what rank 0 writes -----------------------------------------------------------

    def _rank_state(self) -> dict:
        """What differs between ranks: the hidden states and the dropout RNG."""
        return {
            "states": [[(h.cpu(), c.cpu()) for h, c in micro] for micro in self.states],
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            },
        }

    def _release_metadata(self, evaluation: dict) -> dict:
        config, progress = self.config, self.progress
        return {
            "name": config.name,
            "training_data": config.corpora,
            "punctuation": "attach" if config.punctuation == "drop" else "model",
            "steps": progress.step,
            "epochs": round(progress.epoch + progress.position / self.data.size(1), 3),
            "training_tokens": self.n_tokens,
            "training_unk_share": round(self.unk_share, 4),
            "training_minutes": round(progress.elapsed_seconds / 60, 1),
            "device": str(self.device) + (f" ({torch.cuda.get_device_name(self.device)})" if self.device.type == "cuda" else ""),
            "default_layer": evaluation["best_layer"],
            "default_decoder": "greedy",
            "default_right_branching_bias": config.right_branching_bias,
            "train_config": config.to_dict(),
            **{key: value for key, value in evaluation.items() if key.startswith("dev_")},
        }

    def _write_evaluation(self, evaluation: dict, improved: bool) -> None:
        """``last.safetensors`` (and ``best.safetensors`` when improved, ``release-step{N}.safetensors``
        with ``keep_releases``), ``metrics.jsonl``, ``curves.png``."""
        dtype = getattr(torch, self.config.release_dtype)
        metadata = self._release_metadata(evaluation)
        save_release(self.out_dir / "last.safetensors", self.released_model, self.vocab, metadata, dtype)
        if improved:
            save_release(self.out_dir / "best.safetensors", self.released_model, self.vocab, metadata, dtype)
        if self.config.keep_releases:
            path = self.out_dir / f"release-step{self.progress.step}.safetensors"
            save_release(path, self.released_model, self.vocab, metadata, dtype)
        with open(self.out_dir / "metrics.jsonl", "a") as log:
            log.write(json.dumps(evaluation) + "\n")
        plot_curves(self.out_dir / "metrics.jsonl", self.out_dir / "curves.png")
        logger.info(
            "step %d: dev perplexity %.1f, dev sentence F1 (greedy) %s%s",
            self.progress.step,
            evaluation["dev_perplexity"],
            _by_layer(evaluation["dev_f1_per_layer"]),
            " (best so far)" if improved else "",
        )
        if "online_dev_perplexity" in evaluation:
            logger.info(
                "step %d, online weights: dev perplexity %.1f, dev sentence F1 (greedy) %s",
                self.progress.step,
                evaluation["online_dev_perplexity"],
                _by_layer(evaluation["online_dev_f1_per_layer"]),
            )


def _by_layer(values: list[float]) -> str:
    return ", ".join(f"layer {layer} {value:.1f}" for layer, value in enumerate(values))


def train(config: TrainConfig, out_dir: Path, resume: bool = False) -> dict:
    """Train (or with ``resume`` continue from ``out_dir/last.pt``); returns the last dev
    evaluation with the best score and the number of steps."""
    trainer = Trainer(config, out_dir, resume=resume)  # sets the number of threads that the flushing covers
    with flush_subnormals():
        return trainer.fit()


@contextlib.contextmanager
def flush_subnormals() -> Iterator[None]:
    """Read and write subnormal floats (below 1.2e-38 in float32) as zero on the CPU while training.

    After about a thousand steps of the default recipe some weights of the recurrent and input
    matrices and tens of thousands of their gradients are subnormal, and x86 cores take a slow
    microcode path for every operation on one: the steps slowed from 2,200 to 850 tokens/s
    halfway through the run. Flushed, the same run resumed at step 2,000 takes 2,500 tokens/s
    with the same loss 40 steps later to every printed digit. ``torch.set_flush_denormal``
    reaches the calling thread only; the C kernels' library sets the threads of torch's OpenMP
    pool too. Torch's default (off) is restored afterwards.
    """
    kernels = native.kernels()
    torch.set_flush_denormal(True)
    if kernels is None or not kernels.flush_subnormals(True):
        logger.info("subnormal floats are flushed in the main thread only (no C kernels, or no shared OpenMP pool)")
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
        if kernels is not None:
            kernels.flush_subnormals(False)


def saved_config(out_dir: Path) -> TrainConfig | None:
    """The config saved in ``out_dir/last.pt`` (what ``--resume`` continues), or None when there is none."""
    path = Path(out_dir) / "last.pt"
    return TrainConfig.from_saved(load_resume(path)["train_config"]) if path.exists() else None


def drop_rows_after(path: Path, step: int) -> None:
    """Remove the rows of a JSON-lines log with a ``step`` after ``step`` (and a last line cut short by a crash)."""
    if not path.exists():
        return
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            row_step = json.loads(line).get("step", 0)
        except (json.JSONDecodeError, AttributeError):
            dropped += 1
            continue
        if row_step <= step:
            kept.append(line + "\n")
        else:
            dropped += 1
    if dropped:
        atomic_write(path, lambda temporary: Path(temporary).write_text("".join(kept)))
        logger.info("%s: removed %d rows written after the checkpoint's step %d", path.name, dropped, step)


def _to_tuple(value):
    """``random.setstate`` wants nested tuples; checkpoints may hold lists."""
    return tuple(_to_tuple(item) for item in value) if isinstance(value, (list, tuple)) else value
