"""One training run: ``Trainer`` (set-up, the loop, dev evaluations, checkpoints), where the
run is (``Progress``, saved in ``last.pt``), ``TrainingDiverged``, and the helpers for what a
run writes and reads back: ``saved_config`` (the config ``--resume`` continues) and
``drop_rows_after`` (the log rows a killed run wrote after its last checkpoint).

``Trainer`` reads top to bottom: its constructor sets up config -> data -> vocabulary ->
model -> optimizer (-> ``resume``); ``fit`` is the loop, one ``train_step`` per window
(micro-batches, FGM, clipping, optimizer step), ``evaluate`` on dev and ``save`` of
``last.pt`` on their schedules.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from ..models.checkpoint import Release, atomic_write, load_resume, save_release, save_resume
from ..models.network.onlstm import ONLSTMConfig, ONLSTMLanguageModel, count_parameters
from ..models.text.vocab import Vocab
from .adversarial import FGM
from .batching import batchify, encode_stream, shard_rows, windows
from .config import RESUMABLE_FIELDS, ConfigError, TrainConfig
from .corpora import CorpusError
from .dev_evaluation import evaluate_dev
from .devices import make_autocast, seed_everything, uses_bf16
from .distributed import (
    broadcast_from_master,
    check_same_data_on_every_rank,
    master_decides,
    mean_over_ranks,
    setup_distributed,
)
from .inputs import hold_out, load_dev_trees, load_training_text, start_from_release
from .optimization import accumulate_gradients, freeze_parameters, make_optimizer
from .plots import plot_curves
from .step import TrainStep

logger = logging.getLogger("onlstm.training")

# CUDA graphs recorded per run, one per window length: random BPTT around 70 draws a few dozen
# lengths; the rare others run eagerly.  The graphs share one memory pool, so each costs little
GRAPHED_WINDOW_LENGTHS = 64


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
        # perplexity is read on the dev trees' sentences when there are trees, else on held-out training sentences
        self.heldout: list[list[str]] = []
        if not config.dev_corpus:
            sentences, self.heldout = hold_out(config, sentences)
        if checkpoint is not None:
            self.vocab = Vocab(checkpoint["vocab"])
        elif initial is not None:
            self.vocab = initial.vocab  # the release's ids: new words of the new text become <unk>
        else:
            self.vocab = Vocab.build(sentences, config.model.vocab_size, config.min_count, language=config.language)
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
        if self.master and config.dev_corpus and not self.dev_trees:
            raise CorpusError(f"the dev corpus {config.dev_corpus!r} has no trees; give a bracketed .mrg file or folder")
        logger.info(
            "training on %d tokens (vocabulary %d, %.1f%% of the tokens outside it, read as <unk>), dev %d trees, "
            "%d held-out sentences", self.n_tokens, len(self.vocab), 100 * self.unk_share, len(self.dev_trees),
            len(self.heldout),
        )

    def _build_model(self, checkpoint: dict | None, initial: Release | None) -> None:
        """The model (the release's weights when starting from one), optimizer, schedule and FGM."""
        config = self.config
        if checkpoint is not None:
            self.model_config = ONLSTMConfig.from_dict(checkpoint["model_config"])
        else:
            self.model_config = config.model_for_vocabulary(len(self.vocab))
        model = ONLSTMLanguageModel(self.model_config)
        for layer in model.cells():
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
        everyone: list[Any] | None = [mine]
        if self.distributed.enabled:
            everyone = [None] * self.distributed.world_size if self.master else None
            dist.gather_object(mine, everyone, dst=0)
        if not self.master:
            return
        assert everyone is not None  # rank 0 gathered into its list
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
        return cast(ONLSTMLanguageModel, self.average.module) if self.average is not None else self.model

    def _evaluate_on_dev(self) -> dict:
        """``evaluate_dev`` of the released weights, with the online weights' figures beside
        them (``online_dev_*``) when they are averaged."""
        evaluation = evaluate_dev(self.released_model, self.vocab, self.config, self.dev_trees, self.heldout)
        if self.average is not None:
            online = evaluate_dev(self.model, self.vocab, self.config, self.dev_trees, self.heldout)
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
            bool(config.max_minutes and progress.elapsed_seconds > config.max_minutes * 60), self.distributed,
            self.device,
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
        if self.master and self.config.select_on == "perplexity":
            self._choose_without_trees()
        progress = self.progress
        best = self.out_dir / "best.safetensors"
        logger.info(
            "done: %d steps in %.1f minutes; best %s; wrote %s%s, %s (the last evaluation's) and %s "
            "(onlstm train --resume continues from it)", progress.step, progress.elapsed_seconds / 60,
            f"dev sentence F1 {progress.best_score:.1f}" if self.config.select_on == "f1"
            else f"{'dev' if self.dev_trees else 'held-out'} perplexity {-progress.best_score:.1f}",
            f"{best} (the best evaluation), " if best.exists() else "",
            self.out_dir / "last.safetensors", self.out_dir / "metrics.jsonl", self.resume_path,
        )
        return {**self.last_evaluation, "best_score": progress.best_score, "steps": progress.step}

    # --- what rank 0 writes -----------------------------------------------------------

    def _choose_without_trees(self) -> None:
        """Choose the layer and prior of ``best.safetensors`` by ``training.choice``'s tree-free rule
        (on the held-out sentences, or the dev trees' words), write them into it as its defaults,
        and ``choice.json`` beside it (with the dev trees' oracle rows when there are trees)."""
        from .choice import choose_without_trees, oracle_rows, run_releases, stamp_choice

        heldout = self.heldout or [list(gold.words) for gold in self.dev_trees]
        releases = run_releases(self.out_dir)
        if not releases or not heldout:
            return
        choice = choose_without_trees(releases, heldout)
        if self.dev_trees:
            choice["oracle_rows"] = oracle_rows(releases, choice, self.dev_trees)
        (self.out_dir / "choice.json").write_text(json.dumps(choice, indent=1) + "\n")
        if not self.config.keep_releases:  # kept only for the choice
            for release in releases:
                release.path.unlink(missing_ok=True)
        stamp_choice(self.out_dir / "best.safetensors", choice, getattr(torch, self.config.release_dtype))
        logger.info(
            "chosen without trees: checkpoint of step %d (%s perplexity %.1f), layer %d (agreement %s), "
            "prior %+.1f (lean %s)%s: written into %s", choice["checkpoint_step"],
            "held-out" if self.heldout else "dev", choice["heldout_perplexity"],
            choice["layer"], choice["agreement_per_layer"], choice["right_branching_bias"], choice["lean_per_layer"],
            "; dev trees: tree-free F1 {tree_free_f1:.1f}, oracle {oracle_f1:.1f}".format(**choice["oracle_rows"])
            if self.dev_trees else "", self.out_dir / "best.safetensors",
        )

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
            "language": config.language,
            **text_front_door(config.language, config.corpora, config.unit),
            "default_layer": evaluation.get("best_layer", config.model.n_layers // 2),
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
        if self.config.keep_releases or self.config.select_on == "perplexity":  # the tree-free choice compares them
            path = self.out_dir / f"release-step{self.progress.step}.safetensors"
            save_release(path, self.released_model, self.vocab, metadata, dtype)
        with open(self.out_dir / "metrics.jsonl", "a") as log:
            log.write(json.dumps(evaluation) + "\n")
        plot_curves(self.out_dir / "metrics.jsonl", self.out_dir / "curves.png")
        for prefix, label in (("", ""), ("online_", ", online weights")):
            if f"{prefix}dev_perplexity" not in evaluation:
                continue
            scored = evaluation.get(f"{prefix}dev_f1_per_layer")
            logger.info(
                "step %d%s: %s perplexity %.1f%s%s", self.progress.step, label,
                "dev" if scored else "held-out", evaluation[f"{prefix}dev_perplexity"],
                f", dev sentence F1 (greedy) {_by_layer(scored)}" if scored else "",
                " (best so far)" if improved and not prefix else "",
            )


def text_front_door(language: str, corpora: Sequence[str] = (), unit: str = "words") -> dict[str, str]:
    """How the run's text was cut and normalised, recorded in its releases: ``tokenizer``,
    ``normalization`` and ``unit`` (and ``tokens``: ``TOKENS_GIVEN`` for words cut by the user's own segmenter)."""
    from ..models.languages import TOKENS_GIVEN
    from .corpora import TOKENS_PREFIX

    normalization = ("NFKC, Traditional to Simplified (OpenCC t2s), lowercase, digit runs to N" if language == "zh"
                     else "lowercase, digit runs to N")
    if corpora and all(name.startswith(TOKENS_PREFIX) for name in corpora):
        front = {"tokenizer": "the user's own: tokens as given (parse its text tokenized the same way, "
                              "--input-format tokens or \"tokens\" over HTTP)",
                 "tokens": TOKENS_GIVEN}  # read by Parser.tokens_as_given: text it tokenizes gets a warning
    elif language == "zh":
        import jieba

        front = {"tokenizer": f"jieba {jieba.__version__} words of Simplified characters"}
    else:
        from ..models.text.front_doors import FRONT_DOORS

        rules = language if language in FRONT_DOORS else f"{language}: the rules of languages without rules of their own"
        front = {"tokenizer": f"onlstm.models.text ({rules})"}
    if unit == "characters":
        # the characters are the same however the words were cut: no warning for text tokenized here
        front.pop("tokens", None)
        front["tokenizer"] = (f"characters of the words ({front['tokenizer']}); a run of Latin letters or digits "
                              "is one unit")
    return {**front, "normalization": normalization, "unit": unit}


def _by_layer(values: list[float]) -> str:
    return ", ".join(f"layer {layer} {value:.1f}" for layer, value in enumerate(values))


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
