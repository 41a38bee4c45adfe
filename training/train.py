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

The script reads top to bottom: config -> data -> vocabulary -> model -> the loop
(micro-batches, FGM, clipping, optimizer step) -> dev evaluation -> checkpoints.
Files written to ``--out``:

    last.pt              resume checkpoint (plain data; optimizer, RNG, position, hidden state)
    best.safetensors     release checkpoint of the best dev evaluation (what you serve)
    last.safetensors     release checkpoint of the latest dev evaluation
    config.json          the full TrainConfig
    metrics.jsonl        one JSON line per dev evaluation
    steps.jsonl          one JSON line per optimizer step (loss, tokens/s)
    curves.png           loss / perplexity / F1 curves (when matplotlib is installed)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..models.checkpoint import (
    CheckpointError,
    Release,
    atomic_write,
    load_release,
    load_resume,
    save_release,
    save_resume,
)
from ..models.onlstm import ONLSTMConfig, ONLSTMLanguageModel, activation_regularization, count_parameters
from ..models.parser import Parser
from ..models.vocab import Vocab, is_punctuation
from .adversarial import FGM
from .batching import batchify, encode_stream, shard_rows, windows
from .config import TrainConfig, load_preset
from .corpora import CorpusError, ptb_split_files, read_corpus, read_treebank, tree_tokens
from .evaluate import evaluate_model

logger = logging.getLogger("onlstm.training")

# Fields a resumed run takes from its new command line rather than from the checkpoint.
RUN_LENGTH_FIELDS = (
    "epochs",
    "max_steps",
    "max_minutes",
    "eval_every",
    "checkpoint_every",
    "patience",
    "device",
    "threads",
    "precision",
)


# --- setup ------------------------------------------------------------------------------


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_autocast(precision: str, device: torch.device) -> torch.autocast:
    """bf16 autocast for ``bf16`` (and ``auto`` on a GPU); a disabled context for fp32."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
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


def start_from_release(config: TrainConfig) -> tuple[Release, TrainConfig]:
    """Load ``config.init_from`` and return it with the config's vocabulary size, layer sizes
    and punctuation treatment set to the release's (dropout and everything else stay as
    configured): a words-only vocabulary has no punctuation to keep, and the reverse."""
    release = load_release(Path(config.init_from))
    shape = release.model.config
    punctuation = "keep" if release.metadata.get("punctuation") == "model" else "drop"
    if punctuation != config.punctuation:
        logger.info("punctuation=%s, as the release was trained (it was %s)", punctuation, config.punctuation)
    config = config.override(
        [
            f"{name}={getattr(shape, name)}"
            for name in ("vocab_size", "embedding_size", "hidden_size", "n_layers", "chunk_size")
        ]
        + [f"punctuation={punctuation}"]
    )
    logger.info(
        "starting from %s (%d layers, hidden %d, vocabulary %d)",
        config.init_from, shape.n_layers, shape.hidden_size, shape.vocab_size,
    )
    return release, config


def make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)


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
    """Dev perplexity (words from a fresh state per sentence) and words-only parsing F1 per layer."""
    was_training = model.training
    punctuation = "attach" if config.punctuation == "drop" else "model"
    parser = Parser(
        Release(model=model, vocab=vocab, metadata={"punctuation": punctuation}), model.embedding.weight.device
    )
    try:
        sentences = [tree_tokens(tree) for tree in gold_trees]
        results = parser.parse(sentences, layer=0, punctuation=punctuation, batch_size=64)
        total_nll = total_tokens = 0.0
        for sentence, result in zip(sentences, results):
            n_model_tokens = len(parser.model_positions(sentence, punctuation)) + 1  # the words read, and <eos>
            total_nll += math.log(result.perplexity) * n_model_tokens
            total_tokens += n_model_tokens
        report = evaluate_model(
            gold_trees, lambda inputs: parser.layer_distances(inputs, 64, "model"), "words", ("greedy",), False
        )
    finally:
        model.train(was_training)
    layers = [row for row in report["model"] if isinstance(row["layer"], int)]
    best = max(layers, key=lambda row: row["sentence_f1"])
    return {
        "dev_loss": total_nll / total_tokens,
        "dev_perplexity": math.exp(total_nll / total_tokens),
        "dev_f1_per_layer": [row["sentence_f1"] for row in layers],
        "dev_corpus_f1_per_layer": [row["corpus_f1"] for row in layers],
        "dev_f1": best["sentence_f1"],
        "best_layer": best["layer"],
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


def train(config: TrainConfig, out_dir: Path, resume: bool = False) -> dict:
    """Train; returns the last dev evaluation (and the best one) as a dict."""
    config.validate()
    out_dir = Path(out_dir)
    distributed, device = setup_distributed(config.device)  # rank 0 of 1 unless started by torchrun
    master = distributed.master  # only rank 0 writes files, logs and the progress bar
    if master:
        out_dir.mkdir(parents=True, exist_ok=True)
    if device.type == "cpu":  # the node's cores are shared by its ranks
        torch.set_num_threads(config.threads or max(1, (os.cpu_count() or 1) // distributed.local_world_size))
    rng = seed_everything(config.seed, distributed.rank)
    resume_path = out_dir / "last.pt"
    payload = load_resume(resume_path) if resume and resume_path.exists() else None
    if resume and payload is None:
        logger.warning("%s does not exist: starting from scratch", resume_path)
    if payload is not None and payload.get("world_size", 1) != distributed.world_size:
        raise ValueError(
            f"{resume_path} was written by {payload.get('world_size', 1)} process(es) and this run has "
            f"{distributed.world_size}: resume with the same number (torchrun --nproc-per-node / --nnodes)"
        )
    if payload is not None:
        # the model and data come from the checkpoint; how long to go on comes from this call
        saved = TrainConfig.from_dict(payload["train_config"])
        for name in RUN_LENGTH_FIELDS:
            setattr(saved, name, getattr(config, name))
        config = saved
        logger.info("resuming from %s at step %d", resume_path, payload["progress"]["step"])
    initial = None
    if payload is None and config.init_from:
        initial, config = start_from_release(config)
    if master:
        (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")

    # data and vocabulary: every rank reads the corpora and keeps its own shard of the streams
    sentences = load_training_text(config)
    if payload:
        vocab = Vocab(payload["vocab"])
    elif initial is not None:
        vocab = initial.vocab  # the release's ids: new words of the new text become <unk>
    else:
        vocab = Vocab.build(sentences, config.vocab_size, config.min_count)
    n_streams = config.batch_size * config.accumulate  # per rank
    stream = encode_stream(sentences, vocab)
    one_batch = n_streams * distributed.world_size * (config.bptt + 1)
    if stream.numel() < one_batch:
        raise CorpusError(
            f"the training corpora ({', '.join(config.corpora)}) hold {stream.numel()} tokens, fewer than one batch "
            f"({n_streams * distributed.world_size} streams x {config.bptt + 1} tokens = {one_batch}): "
            "give more text, or lower batch_size, accumulate or bptt (--set batch_size=...)"
        )
    streams = batchify(stream, n_streams * distributed.world_size)
    n_tokens = streams.numel()  # over all ranks
    data = shard_rows(streams, distributed.rank, distributed.world_size).to(device)
    del stream, streams, sentences
    check_same_data_on_every_rank(vocab, n_tokens, distributed)
    dev_trees = load_dev_trees(config) if master else []  # only rank 0 evaluates
    if master and not dev_trees:
        raise CorpusError(f"the dev corpus {config.dev_corpus!r} has no trees; give a bracketed .mrg file or folder")
    logger.info("training on %d tokens (vocabulary %d), dev %d sentences", n_tokens, len(vocab), len(dev_trees))

    # model and optimisation
    model_config = ONLSTMConfig.from_dict(payload["model_config"]) if payload else config.model_config(len(vocab))
    model = ONLSTMLanguageModel(model_config)
    if initial is not None:
        model.load_state_dict(initial.model.state_dict())
    model = model.to(device)
    optimizer = make_optimizer(config, model)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience
    )
    fgm = FGM(model.embedding, config.adversarial_epsilon) if config.adversarial_epsilon > 0 else None
    progress = Progress()
    states = [model.init_state(config.batch_size) for _ in range(config.accumulate)]
    if payload:
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        progress = Progress(**payload["progress"])
        if master:  # rows a killed run wrote after its last checkpoint are written again from here
            for log_name in ("steps.jsonl", "metrics.jsonl"):
                drop_rows_after(out_dir / log_name, progress.step)
        # this rank's hidden states and dropout RNG (rank 0's at the top level, the others' in other_ranks)
        mine = payload if distributed.rank == 0 else payload["other_ranks"][distributed.rank - 1]
        states = [[(h.to(device), c.to(device)) for h, c in micro] for micro in mine["states"]]
        torch.set_rng_state(mine["rng"]["torch"])
        cuda_rng = mine["rng"].get("cuda")
        if device.type == "cuda" and cuda_rng is not None:
            if isinstance(cuda_rng, (list, tuple)):  # older checkpoints: every device's state
                torch.cuda.set_rng_state_all(cuda_rng)
            else:
                torch.cuda.set_rng_state(cuda_rng, device)
        rng.setstate(_to_tuple(payload["rng"]["python"]))  # window lengths: the same on every rank
    # DDP broadcasts rank 0's parameters to the others here, and all-reduces gradients in backward
    ddp_model = (
        DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if distributed.enabled
        else model
    )
    logger.info(
        "model: %s parameters on %s%s",
        f"{count_parameters(model):,}",
        device,
        f", {distributed.world_size} processes (DDP)" if distributed.enabled else "",
    )
    autocast = make_autocast(config.precision, device)

    def rank_state() -> dict:
        """What differs between ranks: the hidden states and the dropout RNG."""
        return {
            "states": [[(h.cpu(), c.cpu()) for h, c in micro] for micro in states],
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            },
        }

    def save_resume_checkpoint() -> None:
        """Called on every rank: rank 0 gathers the others' states and writes ``last.pt``."""
        mine = rank_state()
        everyone = [mine]
        if distributed.enabled:
            everyone = [None] * distributed.world_size if master else None
            dist.gather_object(mine, everyone, dst=0)
        if not master:
            return
        save_resume(
            resume_path,
            {
                "train_config": config.to_dict(),
                "model_config": model_config.to_dict(),
                "vocab": vocab.itos,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "progress": progress.__dict__.copy(),
                "states": mine["states"],
                "rng": {**mine["rng"], "python": rng.getstate()},
                "world_size": distributed.world_size,
                "other_ranks": everyone[1:],
            },
        )

    def release_metadata(evaluation: dict) -> dict:
        return {
            "name": config.name,
            "training_data": config.corpora,
            "punctuation": "attach" if config.punctuation == "drop" else "model",
            "steps": progress.step,
            "epochs": round(progress.epoch + progress.position / data.size(1), 3),
            "training_tokens": n_tokens,
            "training_minutes": round(progress.elapsed_seconds / 60, 1),
            "device": str(device),
            "default_layer": evaluation["best_layer"],
            "default_decoder": "greedy",
            "train_config": config.to_dict(),
            **{key: value for key, value in evaluation.items() if key.startswith("dev_")},
        }

    def evaluate_and_save(train_loss: float) -> dict:
        """Called on every rank: rank 0 evaluates (the others wait for its result), every rank
        keeps the same bookkeeping (best score, patience, plateau schedule), rank 0 writes."""
        evaluation = evaluate_dev(model, vocab, config, dev_trees) if master else None
        evaluation = broadcast_from_master(evaluation, distributed)
        evaluation.update(
            step=progress.step, epoch=progress.epoch, train_loss=train_loss, lr=optimizer.param_groups[0]["lr"]
        )
        score = evaluation["dev_f1"] if config.select_on == "f1" else -evaluation["dev_perplexity"]
        improved = score > progress.best_score
        if improved:
            progress.best_score = score
            progress.evaluations_without_improvement = 0
        else:
            progress.evaluations_without_improvement += 1
        scheduler.step(evaluation["dev_loss"])
        for group in optimizer.param_groups:  # the plateau schedule may have lowered it
            group["base_lr"] = group["lr"]
        if not master:
            return evaluation
        dtype = getattr(torch, config.release_dtype)
        save_release(out_dir / "last.safetensors", model, vocab, release_metadata(evaluation), dtype)
        if improved:
            save_release(out_dir / "best.safetensors", model, vocab, release_metadata(evaluation), dtype)
        with open(out_dir / "metrics.jsonl", "a") as log:
            log.write(json.dumps(evaluation) + "\n")
        plot_curves(out_dir / "metrics.jsonl", out_dir / "curves.png")
        logger.info(
            "step %d: dev perplexity %.1f, dev F1 per layer %s%s",
            progress.step,
            evaluation["dev_perplexity"],
            " ".join(f"{value:.1f}" for value in evaluation["dev_f1_per_layer"]),
            " (best so far)" if improved else "",
        )
        return evaluation

    # the loop
    last_evaluation: dict = {}
    running_loss, running_tokens = 0.0, 0
    started = time.perf_counter() - progress.elapsed_seconds
    stop = False
    diverged = False  # max_bad_steps non-finite steps in a row: stop without writing any checkpoint
    model.train()
    while progress.epoch < config.epochs and not stop:
        bar = tqdm(
            total=data.size(1),
            initial=progress.position,
            unit="tok/stream",
            disable=not master or not sys.stderr.isatty(),
            desc=f"epoch {progress.epoch + 1}/{config.epochs}",
        )
        for position, inputs, targets in windows(data, progress.position, config.bptt, rng, config.random_bptt):
            window_start = time.perf_counter()
            length = inputs.size(1)
            for group in optimizer.param_groups:  # AWD-LSTM: shorter windows take smaller steps
                group["lr"] = group.setdefault("base_lr", group["lr"]) * length / config.bptt
            optimizer.zero_grad(set_to_none=True)
            step_loss, states = accumulate_gradients(ddp_model, inputs, targets, states, config, fgm, autocast)
            step_loss = mean_over_ranks(step_loss, distributed, device)  # every rank skips a bad step together
            progress.position = position + length
            # the norm is measured (and clipped when config.clip) on every step: a finite loss can
            # still give an infinite or NaN gradient, and one such step would poison every weight
            gradient_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip or math.inf).item()
            if not (math.isfinite(step_loss) and math.isfinite(gradient_norm)):
                progress.bad_steps_in_a_row += 1
                logger.warning(
                    "non-finite loss or gradient at step %d (loss %s, gradient norm %s): step skipped, "
                    "%d in a row (the run stops at %d)",
                    progress.step + 1, step_loss, gradient_norm, progress.bad_steps_in_a_row, config.max_bad_steps,
                )
                optimizer.zero_grad(set_to_none=True)
                states = [model.init_state(config.batch_size) for _ in range(config.accumulate)]
                if progress.bad_steps_in_a_row >= config.max_bad_steps:
                    diverged = True
                    stop = True
                    break
                continue
            progress.bad_steps_in_a_row = 0
            optimizer.step()
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"]
            progress.step += 1
            progress.elapsed_seconds = time.perf_counter() - started
            running_loss += step_loss * length
            running_tokens += length
            tokens_per_second = inputs.numel() * distributed.world_size / max(time.perf_counter() - window_start, 1e-9)
            if master:
                with open(out_dir / "steps.jsonl", "a") as step_log:
                    step_log.write(
                        json.dumps(
                            {"step": progress.step, "loss": step_loss, "tokens_per_second": round(tokens_per_second)}
                        )
                        + "\n"
                    )
            bar.update(length)
            bar.set_postfix(
                loss=f"{step_loss:.3f}", ppl=f"{math.exp(min(step_loss, 50)):.1f}", tok_s=f"{tokens_per_second:.0f}"
            )
            if master and bar.disable and progress.step % 50 == 0:
                logger.info(
                    "step %d epoch %d: loss %.3f, %.0f tokens/s",
                    progress.step,
                    progress.epoch + 1,
                    step_loss,
                    tokens_per_second,
                )
            if config.eval_every and progress.step % config.eval_every == 0:
                last_evaluation = evaluate_and_save(running_loss / max(running_tokens, 1))
                running_loss, running_tokens = 0.0, 0
            if progress.step % config.checkpoint_every == 0:
                save_resume_checkpoint()
            # rank 0's clock decides for everyone; the other conditions are the same on every rank
            out_of_time = master_decides(
                config.max_minutes and progress.elapsed_seconds > config.max_minutes * 60, distributed, device
            )
            out_of_steps = config.max_steps and progress.step >= config.max_steps
            patience_spent = config.patience and progress.evaluations_without_improvement >= config.patience
            if out_of_time or out_of_steps or patience_spent:
                logger.info(
                    "stopping at step %d (%s)",
                    progress.step,
                    "time limit" if out_of_time else "step limit" if out_of_steps else "no dev improvement",
                )
                stop = True
                break
        bar.close()
        if not stop:
            progress.epoch += 1
            progress.position = 0
            states = [model.init_state(config.batch_size) for _ in range(config.accumulate)]
            if not config.eval_every:
                last_evaluation = evaluate_and_save(running_loss / max(running_tokens, 1))
                running_loss, running_tokens = 0.0, 0
    if diverged:
        if distributed.owns_group:
            dist.destroy_process_group()
        kept = (
            f"the last good checkpoint, {resume_path} (step {load_resume(resume_path)['progress']['step']}), is kept "
            "as it was"
            if resume_path.exists()
            else "no checkpoint had been written yet"
        )
        raise TrainingDiverged(
            f"{progress.bad_steps_in_a_row} non-finite losses or gradients in a row (max_bad_steps): the run stopped "
            f"after step {progress.step}; {kept}. Lower the learning rate (--set lr=...) or check the data, "
            "then continue with --resume"
        )
    if running_tokens or not last_evaluation:
        last_evaluation = evaluate_and_save(running_loss / max(running_tokens, 1))
    save_resume_checkpoint()
    logger.info(
        "done: %d steps in %.1f minutes; best dev score %.2f",
        progress.step,
        progress.elapsed_seconds / 60,
        progress.best_score,
    )
    if distributed.owns_group:
        dist.destroy_process_group()
    return {**last_evaluation, "best_score": progress.best_score, "steps": progress.step}


class TrainingDiverged(RuntimeError):
    """The loss or the gradient was not finite ``max_bad_steps`` times in a row; the run stopped."""


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


# --- command line -----------------------------------------------------------------------


def build_argparser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onlstm train", description="Train an ON-LSTM language model.")
    parser.add_argument("--preset", default="cpu", help="tiny, cpu, gpu-paper, or a JSON file (default: cpu)")
    parser.add_argument("--out", required=True, type=Path, help="folder for checkpoints and logs")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument(
        "--init-from", metavar="RELEASE", help="start from a release's weights and vocabulary (fine-tune it on new text)"
    )
    parser.add_argument("--accumulate", type=int, help="micro-batches per optimizer step")
    parser.add_argument("--adversarial-epsilon", type=float, help="FGM epsilon on the embeddings (0 = off)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--max-minutes", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--corpora", help="comma-separated corpus names or text files")
    parser.add_argument("--data", help="the shared data folder (default: $ONLSTM_DATA or ../shared/data)")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override any TrainConfig field"
    )
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_argparser().parse_args(argv)
    rank = int(os.environ.get("RANK", 0))
    level = args.log_level.upper()
    if rank and level in ("DEBUG", "INFO"):  # under torchrun only rank 0 logs below WARNING
        level = "WARNING"
    rank_tag = f" [rank {rank}]" if rank else ""
    logging.basicConfig(level=level, format=f"%(asctime)s %(levelname)s %(name)s{rank_tag}: %(message)s")
    try:
        config = load_preset(args.preset)
        overrides = list(args.set)
        named = {
            "accumulate": args.accumulate,
            "adversarial_epsilon": args.adversarial_epsilon,
            "epochs": args.epochs,
            "max_steps": args.max_steps,
            "max_minutes": args.max_minutes,
            "seed": args.seed,
            "corpora": args.corpora,
            "data_dir": args.data,
            "device": args.device,
            "init_from": args.init_from,
        }
        overrides += [f"{key}={value}" for key, value in named.items() if value is not None]
        config = config.override(overrides)
        train(config, args.out, resume=args.resume)
    except (ValueError, CorpusError, CheckpointError) as error:
        logging.getLogger("onlstm.training").error("%s", error)
        return 2
    except TrainingDiverged as error:
        logging.getLogger("onlstm.training").error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
