"""The dev evaluation a run is selected on (``evaluate_dev``): perplexity and words-only
parsing F1 per layer of a model in training, scored with ``evaluate``'s functions.  The dev
trees come from ``inputs.load_dev_trees``."""

from __future__ import annotations

from ..models.checkpoint import Release
from ..models.network.onlstm import ONLSTMLanguageModel
from ..models.parser import Parser
from ..models.text.vocab import Vocab
from .config import TrainConfig
from .evaluate import GoldSentence, evaluate_model, model_input, read_perplexity


def evaluate_dev(model: ONLSTMLanguageModel, vocab: Vocab, config: TrainConfig, golds: list[GoldSentence],
                 heldout: list[list[str]] | None = None) -> dict:
    """Perplexity (words from a fresh state per sentence) on the dev trees' sentences, or on the
    held-out training sentences when there are no trees, the share of the tokens read that are
    outside the vocabulary and, with trees, words-only parsing F1 per layer.

    ``dev_f1_per_layer_halves`` scores the first and the second half of the dev sentences (in
    file order) apart, so that a checkpoint or recipe chosen on one half can be reported on
    the other: the size of the selection bias.  F1 is scored with the greedy decoder and
    ``config.right_branching_bias``; with a prior, ``dev_f1_per_layer_without_prior`` beside it.
    """
    was_training = model.training
    punctuation = "attach" if config.punctuation == "drop" else "model"
    parser = Parser(
        Release(model=model, vocab=vocab, metadata={"punctuation": punctuation, "language": config.language,
                                                  "unit": config.unit}),
        model.embedding.weight.device,
    )
    try:
        sentences = [list(gold.tokens) for gold in golds] if golds else list(heldout or [])
        read = read_perplexity(parser, sentences, punctuation)
        distances = parser.layer_distances([model_input(gold, "words") for gold in golds], 64, "model") if golds else []
    finally:
        model.train(was_training)
    evaluation = {"dev_loss": read["loss"], "dev_unk_share": read["unk_share"], "dev_perplexity": read["perplexity"]}
    if golds:
        evaluation.update(_scores_per_layer(golds, distances, config.right_branching_bias))
    return evaluation


def _scores_per_layer(golds: list[GoldSentence], distances: list, bias: float) -> dict:
    """Sentence and corpus F1 per layer, on all of dev and on each half, with and without the prior."""

    def per_layer(start: int, end: int, strength: float = bias) -> dict[str, list[float]]:
        # the caller logs the evaluation once, labelled (Trainer._write_evaluation)
        report = evaluate_model(golds[start:end], lambda _: distances[start:end], "words", ("greedy",), False,
                                (strength,), log_rows=False)
        rows = [row for row in report["model"] if isinstance(row["layer"], int)]
        return {key: [row[key] for row in rows] for key in ("sentence_f1", "corpus_f1")}

    scores = per_layer(0, len(golds))
    f1s = scores["sentence_f1"]
    half = len(golds) // 2
    best_layer = max(range(len(f1s)), key=f1s.__getitem__)
    without_prior = {"dev_f1_per_layer_without_prior": per_layer(0, len(golds), 0.0)["sentence_f1"]} if bias else {}
    return {
        "dev_f1_per_layer": f1s,
        "dev_corpus_f1_per_layer": scores["corpus_f1"],
        "dev_f1_per_layer_halves": ([per_layer(0, half)["sentence_f1"], per_layer(half, len(golds))["sentence_f1"]]
                                    if half else []),
        "dev_f1": f1s[best_layer],
        "best_layer": best_layer,
        **without_prior,
    }
