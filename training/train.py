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

``train(config, out, resume)`` is the one call for callers; the command line is
``onlstm.cli.train``.  Where each concern of a run lives, in ``onlstm.training``:

    trainer          Trainer (set-up, the loop, train_step, evaluate, save, resume), Progress,
                     TrainingDiverged; saved_config, drop_rows_after (checkpoint and log files)
    devices          pick_device, uses_bf16, make_autocast, seed_everything, flush_subnormals
    distributed      Distributed, setup_distributed, broadcast_from_master, mean_over_ranks,
                     master_decides, check_same_data_on_every_rank
    inputs           load_training_text, load_dev_trees, start_from_release (what a run reads)
    corpora          the corpora by name, and text of one's own (read_corpus)
    text_files       the readers of each corpus file format (.mrg, CoNLL-2000, Brown, tokenized text)
    treebanks        the multilingual treebanks' readers
    batching         sentences -> id stream -> parallel streams -> windows, a rank's rows
    optimization     freeze_parameters, make_optimizer, accumulate_gradients (micro-batches, FGM)
    step             the CUDA-graph training step (TrainStep)
    adversarial      FGM
    dev_evaluation   evaluate_dev (dev perplexity and F1 per layer, what a run is selected on)
    evaluate         bracket scoring, baselines and the onlstm eval command
    plots            plot_curves (curves.png)
    config           TrainConfig and the presets

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

from pathlib import Path

from .config import TrainConfig
from .devices import flush_subnormals
from .trainer import Trainer


def train(config: TrainConfig, out_dir: Path, resume: bool = False) -> dict:
    """Train (or with ``resume`` continue from ``out_dir/last.pt``); returns the last dev
    evaluation with the best score and the number of steps."""
    trainer = Trainer(config, out_dir, resume=resume)  # sets the number of threads that the flushing covers
    with flush_subnormals():
        return trainer.fit()

