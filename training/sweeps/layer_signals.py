"""Tree-free signals that might say which layer of a release holds the syntax, beside what the
dev trees say (an exploration; nothing here is used by ``onlstm.training.choice``).

    python training/sweeps/layer_signals.py --language es --corpora es-cess \\
        runs/lang/h600-es-s1/best.safetensors runs/lang/h600-es-s2/best.safetensors

Per release and layer: the model alone on dev (sentence F1, words only: what the signal should
predict), its lean (F1 against right- minus left-branching trees), and the mean per-sentence
Spearman correlation of its distance before word t with the negative bigram PMI of words t-1 and t
(counts of the training text, read as the release reads it; distributional work puts constituent
boundaries where adjacent words share little information). Then, between releases (seeds), the
agreement of every pair of layers. Only the words of dev sentences are read for the signals.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import math
import statistics

import torch

from onlstm import Parser
from onlstm.models.text.vocab import is_punctuation
from onlstm.training import corpora, treebanks
from onlstm.training.choice import agreement, lean, trees_from_distances
from onlstm.training.evaluate import model_input, score_spans


def ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    for rank, index in enumerate(order):
        result[index] = float(rank)
    return result


def spearman(first: list[float], second: list[float]) -> float | None:
    if len(first) < 3:
        return None
    a, b = ranks(first), ranks(second)
    mean_a, mean_b = statistics.fmean(a), statistics.fmean(b)
    numerator = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b))
    denominator = math.sqrt(sum((x - mean_a) ** 2 for x in a) * sum((y - mean_b) ** 2 for y in b))
    return numerator / denominator if denominator else None


def pmi_table(parser: Parser, sentences: list[list[str]]):
    """Bigram PMI over the release's ids (add-0.1 bigrams, add-1 unigrams), punctuation dropped as in training."""
    unigrams: collections.Counter[int] = collections.Counter()
    bigrams: collections.Counter[tuple[int, int]] = collections.Counter()
    for sentence in sentences:
        ids = parser.vocab.encode([token for token in sentence if not is_punctuation(token)])
        unigrams.update(ids)
        bigrams.update(zip(ids, ids[1:]))
    n_unigrams, n_bigrams, size = sum(unigrams.values()), sum(bigrams.values()), len(parser.vocab)

    def pmi(left: int, right: int) -> float:
        joint = math.log((bigrams[(left, right)] + 0.1) / (n_bigrams + 0.1 * size * size))
        return joint - math.log((unigrams[left] + 1) / (n_unigrams + size)) - math.log(
            (unigrams[right] + 1) / (n_unigrams + size))

    return pmi


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    arguments.add_argument("releases", nargs="+")
    arguments.add_argument("--language", required=True)
    arguments.add_argument("--corpora", required=True, help="the named training texts, comma-separated")
    options = arguments.parse_args()
    torch.set_num_threads(1)
    golds = treebanks.read_gold(options.language, None, "dev")
    words = [model_input(gold, "words") for gold in golds]
    lengths = [len(sentence) for sentence in words]
    training = [sentence for name in options.corpora.split(",")
                for sentence in corpora.read_corpus(name, None, options.language)]
    trees = {}
    for index, path in enumerate(options.releases):
        parser = Parser.load(path)
        pmi = pmi_table(parser, training)
        distances = parser.layer_distances(words, 64, "model")
        for layer, layer_trees in enumerate(trees_from_distances(distances)):  # the model read once
            trees[(index, layer)] = layer_trees
            correlations = []
            for sentence, per_layer in zip(words, distances):
                ids = parser.vocab.encode(sentence)
                boundary = [-pmi(ids[position - 1], ids[position]) for position in range(1, len(ids))]
                value = spearman(per_layer[layer][1:], boundary)
                if value is not None:
                    correlations.append(value)
            alone = score_spans(golds, layer_trees, "words")["sentence_f1"]
            print(f"{path} layer {layer}: alone {alone:.1f}, lean {lean(layer_trees, lengths):.1f}, "
                  f"PMI correlation {statistics.fmean(correlations):+.3f}", flush=True)
    for first, second in itertools.combinations(sorted(trees), 2):
        if first[0] != second[0]:
            print(f"agreement release {first[0]} layer {first[1]} / release {second[0]} layer {second[1]}: "
                  f"{agreement(trees[first], trees[second], lengths):.1f}", flush=True)


if __name__ == "__main__":
    main()
