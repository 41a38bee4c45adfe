"""``curves.png`` of a run: train and dev loss, dev perplexity and dev F1 per layer over the
optimizer steps, from its ``metrics.jsonl`` (``plot_curves``; nothing without matplotlib)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger("onlstm.training")


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
    for layer in range(len(rows[0].get("dev_f1_per_layer", []))):  # a run without dev trees has no F1
        axes[2].plot(steps, [row["dev_f1_per_layer"][layer] for row in rows], label=f"layer {layer}")
    axes[2].set_title("dev sentence F1")
    if "dev_f1_per_layer" in rows[0]:
        axes[2].legend()
    for axis in axes:
        axis.set_xlabel("optimizer step")
    figure.tight_layout()
    figure.savefig(out_path, dpi=90)
    plt.close(figure)
