"""What a training run reads, by its config: the training sentences of its corpora
(``load_training_text``), the dev trees it is selected on (``load_dev_trees``) and, with
``init_from``, the release it starts from (``start_from_release``).  The readers of each
corpus format are in ``corpora``; cutting the text into id streams and windows is ``batching``."""

from __future__ import annotations

import logging
from pathlib import Path

from ..models.checkpoint import Release, load_release
from ..models.text.vocab import is_punctuation
from .config import TrainConfig
from .corpora import CorpusError, ptb_split_files, read_corpus, read_treebank

logger = logging.getLogger("onlstm.training")


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
