"""Train an ON-LSTM language model and select it on dev parsing F1.

    onlstm train --preset cpu --out runs/cpu          # or: python -m training --preset cpu ...
    onlstm train --preset cpu --out runs/cpu --resume # continue exactly where it stopped

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
from tqdm import tqdm

from models.checkpoint import Release, load_resume, save_release, save_resume
from models.onlstm import ONLSTMConfig, ONLSTMLanguageModel, activation_regularization, count_parameters
from models.parser import Parser
from models.vocab import Vocab, is_punctuation
from training.adversarial import FGM
from training.batching import batchify, encode_stream, windows
from training.config import TrainConfig, load_preset
from training.corpora import CorpusError, ptb_split_files, read_corpus, read_treebank, tree_tokens

logger = logging.getLogger("training")

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
)


# --- setup ------------------------------------------------------------------------------


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> random.Random:
    torch.manual_seed(seed)
    return random.Random(seed)


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
    mean_nll = 0.0
    new_states = []
    for micro in range(config.accumulate):
        rows = slice(micro * config.batch_size, (micro + 1) * config.batch_size)
        state = [(h.detach(), c.detach()) for h, c in states[micro]]
        if fgm:
            fgm.mark()
        with autocast:
            output = model(inputs[rows], state=state)
            nll = model.token_nll(output.hidden, targets[rows]).mean()
            loss = nll + activation_regularization(output, config.alpha, config.beta)
        (loss / config.accumulate).backward()
        new_states.append(output.state)
        mean_nll += nll.item() / config.accumulate
        if fgm and fgm.attack():
            with autocast:
                adversarial_output = model(inputs[rows], state=state)
                adversarial_loss = model.token_nll(adversarial_output.hidden, targets[rows]).mean()
            (adversarial_loss / config.accumulate).backward()
            fgm.restore()
    return mean_nll, new_states


# --- evaluation -------------------------------------------------------------------------


def evaluate_dev(model: ONLSTMLanguageModel, vocab: Vocab, config: TrainConfig, gold_trees: list) -> dict:
    """Dev perplexity (words from a fresh state per sentence) and words-only parsing F1 per layer."""
    from training.evaluate import evaluate_model  # the scoring module is heavy only at import of nltk trees

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
            n_model_tokens = sum(1 for token in sentence if punctuation == "model" or not is_punctuation(token)) + 1
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
    out_dir.mkdir(parents=True, exist_ok=True)
    device = pick_device(config.device)
    if device.type == "cpu":
        torch.set_num_threads(config.threads or os.cpu_count() or 1)
    rng = seed_everything(config.seed)
    resume_path = out_dir / "last.pt"
    payload = load_resume(resume_path) if resume and resume_path.exists() else None
    if resume and payload is None:
        logger.warning("%s does not exist: starting from scratch", resume_path)
    if payload is not None:
        # the model and data come from the checkpoint; how long to go on comes from this call
        saved = TrainConfig.from_dict(payload["train_config"])
        for name in RUN_LENGTH_FIELDS:
            setattr(saved, name, getattr(config, name))
        config = saved
        logger.info("resuming from %s at step %d", resume_path, payload["progress"]["step"])
    (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")

    # data and vocabulary
    sentences = load_training_text(config)
    vocab = Vocab(payload["vocab"]) if payload else Vocab.build(sentences, config.vocab_size, config.min_count)
    n_streams = config.batch_size * config.accumulate
    data = batchify(encode_stream(sentences, vocab), n_streams).to(device)
    n_tokens = data.numel()
    dev_trees = load_dev_trees(config)
    logger.info("training on %d tokens (vocabulary %d), dev %d sentences", n_tokens, len(vocab), len(dev_trees))

    # model and optimisation
    model_config = ONLSTMConfig.from_dict(payload["model_config"]) if payload else config.model_config(len(vocab))
    model = ONLSTMLanguageModel(model_config).to(device)
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
        states = [[(h.to(device), c.to(device)) for h, c in micro] for micro in payload["states"]]
        torch.set_rng_state(payload["rng"]["torch"])
        if torch.cuda.is_available() and payload["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state_all(payload["rng"]["cuda"])
        rng.setstate(_to_tuple(payload["rng"]["python"]))
    logger.info("model: %s parameters on %s", f"{count_parameters(model):,}", device)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )

    def save_resume_checkpoint() -> None:
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
                "states": [[(h.cpu(), c.cpu()) for h, c in micro] for micro in states],
                "rng": {
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                    "python": rng.getstate(),
                },
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
        evaluation = evaluate_dev(model, vocab, config, dev_trees)
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
    model.train()
    while progress.epoch < config.epochs and not stop:
        bar = tqdm(
            total=data.size(1),
            initial=progress.position,
            unit="tok/stream",
            disable=not sys.stderr.isatty(),
            desc=f"epoch {progress.epoch + 1}/{config.epochs}",
        )
        for position, inputs, targets in windows(data, progress.position, config.bptt, rng, config.random_bptt):
            window_start = time.perf_counter()
            length = inputs.size(1)
            for group in optimizer.param_groups:  # AWD-LSTM: shorter windows take smaller steps
                group["lr"] = group.setdefault("base_lr", group["lr"]) * length / config.bptt
            optimizer.zero_grad(set_to_none=True)
            step_loss, states = accumulate_gradients(model, inputs, targets, states, config, fgm, autocast)
            progress.position = position + length
            if not math.isfinite(step_loss):
                progress.bad_steps_in_a_row += 1
                logger.warning(
                    "non-finite loss at step %d: step skipped (%d in a row)", progress.step, progress.bad_steps_in_a_row
                )
                optimizer.zero_grad(set_to_none=True)
                states = [model.init_state(config.batch_size) for _ in range(config.accumulate)]
                if progress.bad_steps_in_a_row >= config.max_bad_steps:
                    logger.error(
                        "%d non-finite losses in a row: stopping; the last good checkpoint is kept",
                        progress.bad_steps_in_a_row,
                    )
                    stop = True
                    break
                continue
            progress.bad_steps_in_a_row = 0
            if config.clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"]
            progress.step += 1
            progress.elapsed_seconds = time.perf_counter() - started
            running_loss += step_loss * length
            running_tokens += length
            tokens_per_second = inputs.numel() / max(time.perf_counter() - window_start, 1e-9)
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
            if bar.disable and progress.step % 50 == 0:
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
            out_of_time = config.max_minutes and progress.elapsed_seconds > config.max_minutes * 60
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
    if running_tokens or not last_evaluation:
        last_evaluation = evaluate_and_save(running_loss / max(running_tokens, 1))
    save_resume_checkpoint()
    logger.info(
        "done: %d steps in %.1f minutes; best dev score %.2f",
        progress.step,
        progress.elapsed_seconds / 60,
        progress.best_score,
    )
    return {**last_evaluation, "best_score": progress.best_score, "steps": progress.step}


def _to_tuple(value):
    """``random.setstate`` wants nested tuples; checkpoints may hold lists."""
    return tuple(_to_tuple(item) for item in value) if isinstance(value, (list, tuple)) else value


# --- command line -----------------------------------------------------------------------


def build_argparser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onlstm train", description="Train an ON-LSTM language model.")
    parser.add_argument("--preset", default="cpu", help="tiny, cpu, gpu-paper, or a JSON file (default: cpu)")
    parser.add_argument("--out", required=True, type=Path, help="folder for checkpoints and logs")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
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
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
        }
        overrides += [f"{key}={value}" for key, value in named.items() if value is not None]
        config = config.override(overrides)
        train(config, args.out, resume=args.resume)
    except (ValueError, CorpusError) as error:
        logging.getLogger("training").error("%s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
