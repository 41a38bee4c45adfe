"""What a training run reads, by its config: the training sentences of its corpora
(``load_training_text``), the dev trees it is selected on (``load_dev_trees``) and, with
``init_from``, the release it starts from (``start_from_release``).  The readers of each
corpus format are in ``corpora``; cutting the text into id streams and windows is ``batching``."""

from __future__ import annotations

import logging
from pathlib import Path

from ..models.checkpoint import Release, load_release
from ..models.text.units import characters
from ..models.text.vocab import is_punctuation
from .config import TrainConfig
from .corpora import CorpusError, ptb_split_files, read_corpus, read_treebank
from .evaluate import GoldSentence, prepare_gold_trees

logger = logging.getLogger("onlstm.training")


def load_training_text(config: TrainConfig) -> list[list[str]]:
    """All training sentences, cut into characters for a character reader (``unit``), with punctuation
    removed when the config says so."""
    sentences = []
    data_dir = Path(config.data_dir) if config.data_dir else None
    for name in config.corpora:
        corpus = read_corpus(name, data_dir, config.language)
        if not corpus:
            raise CorpusError(f"corpus {name!r} has no sentences; check the file")
        sentences.extend(corpus)
        logger.info("corpus %s: %d sentences, %d tokens", name, len(corpus), sum(map(len, corpus)))
    if config.unit == "characters":  # cut as a character reader reads parse input (models.text.units)
        sentences = [[unit for token in sentence for unit in characters(token)] for sentence in sentences]
    if config.punctuation == "drop":
        sentences = [[token for token in sentence if not is_punctuation(token)] for sentence in sentences]
    sentences = [sentence for sentence in sentences if sentence]
    if not sentences:
        raise CorpusError("the training corpora contain no words")
    return sentences


def load_dev_trees(config: TrainConfig) -> list[GoldSentence]:
    """The dev trees of ``config.dev_corpus``, prepared for scoring; none for ``""``.  An English
    corpus is Penn Treebank brackets (``ptb-dev``, a .mrg file or folder); another language's
    is that language's treebank folder, whose dev split ``training.treebanks`` reads."""
    data_dir = Path(config.data_dir) if config.data_dir else None
    if not config.dev_corpus:
        return []
    if config.dev_corpus == "ptb-dev":
        golds = prepare_gold_trees(read_treebank(ptb_split_files(data_dir, "dev")))
    elif config.language == "en":
        path = Path(config.dev_corpus)
        golds = prepare_gold_trees(read_treebank(sorted(path.glob("*.mrg")) if path.is_dir() else [path]))
    else:
        from .treebanks import read_gold

        golds = list(read_gold(config.language, config.dev_corpus, "dev"))
    if config.dev_max_sentences:
        golds = golds[: config.dev_max_sentences]
    return golds


def hold_out(config: TrainConfig, sentences: list[list[str]]) -> tuple[list[list[str]], list[list[str]]]:
    """``(training, held out)``: every k-th sentence held out for perplexity, ``heldout_sentences``
    of them (0: 2%, at least 200 and at most 2,000), spread over the corpora rather than the
    end of the last one."""
    wanted = config.heldout_sentences or min(2000, max(200, len(sentences) // 50))
    if len(sentences) < 2 * wanted:
        raise CorpusError(
            f"the training text has {len(sentences)} sentences: too few to hold out {wanted} for perplexity; "
            "give more text, set heldout_sentences lower, or give dev trees (--dev)"
        )
    every = len(sentences) // wanted
    heldout = [sentence for index, sentence in enumerate(sentences) if index % every == every - 1][:wanted]
    kept = set(range(every - 1, every * wanted, every))
    return [sentence for index, sentence in enumerate(sentences) if index not in kept], heldout


# The fields of the model a release fixes (its dropout rates are training settings: they stay as configured).
SHAPE_FIELDS = ("vocab_size", "embedding_size", "hidden_size", "n_layers", "chunk_size")


def start_from_release(config: TrainConfig) -> tuple[Release, TrainConfig]:
    """Load ``config.init_from`` and return it with the config's vocabulary size, layer sizes,
    unit and punctuation treatment set to the release's (dropout and everything else stay as
    configured): a words-only vocabulary has no punctuation to keep, and the reverse."""
    release = load_release(Path(config.init_from))
    shape = release.model.config
    punctuation = "keep" if release.metadata.get("punctuation") == "model" else "drop"
    if punctuation != config.punctuation:
        logger.info("punctuation=%s, as the release was trained (it was %s)", punctuation, config.punctuation)
    changes: dict = {"model": {name: getattr(shape, name) for name in SHAPE_FIELDS}, "punctuation": punctuation,
                     "language": release.metadata.get("language", "en"), "unit": release.metadata.get("unit", "words")}
    inherited = float(release.metadata.get("default_right_branching_bias", 0.0))
    if inherited and not config.right_branching_bias:
        # a fine-tuned model keeps the prior its trees were chosen with, unless the run re-chooses it
        logger.info("right_branching_bias=%g, the release's default", inherited)
        changes["right_branching_bias"] = inherited
    if changes["unit"] != config.unit:  # its vocabulary holds the one or the other
        logger.info("unit=%s, as the release was trained (it was %s)", changes["unit"], config.unit)
    if changes["language"] != config.language:
        logger.info("language=%s, as the release was trained (it was %s)", changes["language"], config.language)
    config = config.updated(changes)
    logger.info(
        "starting from %s (%d layers, hidden %d, vocabulary %d)",
        config.init_from, shape.n_layers, shape.hidden_size, shape.vocab_size,
    )
    return release, config
