"""The ``Parser`` facade: sentences in, trees, distances and perplexities out.

Each sentence is read from a fresh state as ``<eos> w1 ... wn`` and scored on
``w1 ... wn <eos>``; the distance of word ``wi`` is the one computed at the step that
reads ``wi``.  Sentences are sorted by length and parsed in padded batches; a
sentence gets the same result alone or in a batch (the recurrence never looks at
padding).

Punctuation: models trained on words only (the reference protocol, and the default
recipe) never see punctuation.  With ``punctuation="attach"`` punctuation tokens are
removed before the model and put back into the tree afterwards: a punctuation token
takes the distance of the next word plus a hair, so it starts the constituent that
follows it, and punctuation at the end of the sentence attaches to the root.  The
tree restricted to the words is then exactly the words-only tree.
``punctuation="model"`` feeds every token to the model (for models trained with
punctuation).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from nltk import Tree

from .checkpoint import Release, load_release
from .tree import DECODERS, decode_spans, spans_to_tree, to_ptb_string, tree_to_nested
from .vocab import is_punctuation, tokenize

logger = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "default.safetensors"
PUNCTUATION_MODES = ("attach", "model")
_NUDGE = 1e-6  # punctuation splits just before the word that follows it


@dataclass
class ParseResult:
    tokens: list[str]  # as given, or as tokenized (original spelling and case)
    perplexity: float  # exp(mean NLL of the model's words and <eos>), from a fresh state
    distances: list[float]  # one per token, of the layer that built the tree
    spans: list[tuple[int, int]]  # [start, end) of every constituent of >= 2 tokens, whole sentence included
    tree: Tree  # binary tree, leaves are ``tokens``
    layer: int  # 0-based layer whose distances built the tree
    layer_distances: list[list[float]]  # [layer][token]

    def to_dict(self, offsets: Sequence[Sequence[int]] | None = None, all_layers: bool = False) -> dict:
        """The JSON form of one parse, shared by the HTTP API and ``onlstm parse --format jsonl``."""
        record = {
            "tokens": list(self.tokens),
            "tree": to_ptb_string(self.tree),
            "nested": tree_to_nested(self.tree),
            "spans": [[start, end] for start, end in self.spans],
            "distances": [float(distance) for distance in self.distances],
            # JSON has no NaN/Infinity: a perplexity that was not computed is null
            "perplexity": self.perplexity if math.isfinite(self.perplexity) else None,
            "layer": self.layer,
        }
        if offsets is not None:
            record["offsets"] = [[int(start), int(end)] for start, end in offsets]
        if all_layers:
            record["layer_distances"] = [[float(distance) for distance in layer] for layer in self.layer_distances]
        return record


class Parser:
    """Loads a release checkpoint once; parses batches of sentences."""

    def __init__(self, release: Release, device: str | torch.device = "cpu"):
        self.model = release.model.to(device).eval()
        self.vocab = release.vocab
        self.metadata = release.metadata
        self.path = release.path
        self.device = torch.device(device)
        self.n_layers = self.model.config.n_layers
        self.default_layer = int(self.metadata.get("default_layer", min(1, self.n_layers - 1)))
        self.default_decoder = str(self.metadata.get("default_decoder", "greedy"))
        self.default_punctuation = str(self.metadata.get("punctuation", "attach"))

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | torch.device = "cpu") -> Parser:
        """Load a release checkpoint; ``None`` is the model bundled with the package."""
        return cls(load_release(Path(path) if path else DEFAULT_CHECKPOINT, device), device)

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", self.path.stem if self.path else "onlstm"))

    # --- the model's view ---------------------------------------------------------------

    def model_positions(self, tokens: Sequence[str], punctuation: str) -> list[int]:
        """Indices of the tokens the model reads under a punctuation mode."""
        if punctuation == "model":
            return list(range(len(tokens)))
        return [index for index, token in enumerate(tokens) if not is_punctuation(token)]

    @torch.inference_mode()
    def _run(self, token_lists: list[list[str]], batch_size: int, with_perplexity: bool) -> list[tuple[list, float]]:
        """Per sentence: distances [layer][word] over the given tokens, and perplexity."""
        results: list[tuple[list, float]] = [([], math.nan)] * len(token_lists)
        # longest first: batches hold sentences of similar length (little padding), and rows
        # already sorted longest first let the recurrence skip finished rows without reordering
        order = sorted(range(len(token_lists)), key=lambda index: len(token_lists[index]), reverse=True)
        eos = self.vocab.eos_id
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            encoded = [self.vocab.encode(token_lists[index]) for index in batch]
            longest = max(len(ids) for ids in encoded) + 1
            inputs = torch.full((len(batch), longest), eos, dtype=torch.long)
            targets = torch.full((len(batch), longest), eos, dtype=torch.long)
            lengths = torch.tensor([len(ids) + 1 for ids in encoded])
            for row, ids in enumerate(encoded):
                inputs[row, 1 : len(ids) + 1] = torch.tensor(ids, dtype=torch.long)
                targets[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            output = self.model(inputs.to(self.device), lengths)
            distances = output.distances.float().cpu()
            nll = None
            if with_perplexity:
                # only real positions go through the vocabulary projection: in a length-sorted
                # batch of 256 dev sentences, padding is over half of the (B, T) grid
                valid = torch.arange(longest) < lengths.unsqueeze(1)
                nll = torch.full((len(batch), longest), math.nan)
                valid_hidden, valid_targets = output.hidden[valid.to(self.device)], targets[valid].to(self.device)
                # slices of 512 positions: the (512, V) scores and their log-softmax stay near 20 MB
                # each for V = 10000, which keeps the service's peak memory low, at no cost in speed
                nll[valid] = torch.cat([
                    self.model.token_nll(valid_hidden[start : start + 512], valid_targets[start : start + 512])
                    for start in range(0, valid_targets.size(0), 512)
                ]).float().cpu()
            for row, index in enumerate(batch):
                n = len(encoded[row])
                per_layer = distances[:, row, 1 : n + 1].tolist()
                perplexity = math.exp(nll[row, : n + 1].mean().item()) if nll is not None else math.nan
                results[index] = (per_layer, perplexity)
        return results

    def layer_distances(
        self, token_lists: Sequence[Sequence[str]], batch_size: int = 64, punctuation: str | None = None
    ) -> list[list[list[float]]]:
        """Distances ``[sentence][layer][token]`` over the full token lists (see the module doc)."""
        return [analysis[0] for analysis in self._analyse(token_lists, batch_size, punctuation, False)]

    def _analyse(
        self, token_lists: Sequence[Sequence[str]], batch_size: int, punctuation: str | None, with_perplexity: bool
    ) -> list[tuple[list[list[float]], float]]:
        punctuation = punctuation or self.default_punctuation
        if punctuation not in PUNCTUATION_MODES:
            raise ValueError(f"punctuation must be one of {PUNCTUATION_MODES}, got {punctuation!r}")
        positions = [self.model_positions(tokens, punctuation) for tokens in token_lists]
        words = [[tokens[index] for index in kept] for tokens, kept in zip(token_lists, positions)]
        runs = self._run(words, batch_size, with_perplexity)
        analyses = []
        for tokens, kept, (word_distances, perplexity) in zip(token_lists, positions, runs):
            analyses.append(([_fill(len(tokens), kept, layer) for layer in word_distances], perplexity))
        return analyses

    # --- the public call ----------------------------------------------------------------

    def parse(
        self,
        sentences: Sequence[str | Sequence[str]],
        layer: int | None = None,
        decoder: str | None = None,
        punctuation: str | None = None,
        batch_size: int = 64,
        with_perplexity: bool = True,
    ) -> list[ParseResult]:
        """Parse sentences: raw strings (tokenized here) or token lists (used as given).

        Args:
            layer: 0-based layer whose distances build the tree (default: best on dev).
            decoder: ``greedy`` (the paper's rule) or ``split`` (see ``models.tree``).
            punctuation: ``attach`` or ``model`` (see the module doc).
        """
        layer = self.default_layer if layer is None else layer
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer must be between 0 and {self.n_layers - 1}, got {layer}")
        decoder = decoder or self.default_decoder
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {sorted(DECODERS)}, got {decoder!r}")
        token_lists = [tokenize(sentence) if isinstance(sentence, str) else list(sentence) for sentence in sentences]
        for index, tokens in enumerate(token_lists):
            if not tokens:
                raise ValueError(f"sentence {index} has no tokens")
        results = []
        analyses = self._analyse(token_lists, batch_size, punctuation, with_perplexity)
        for tokens, (per_layer, perplexity) in zip(token_lists, analyses):
            distances = per_layer[layer]
            spans = decode_spans(distances, decoder)
            results.append(
                ParseResult(
                    tokens=tokens,
                    perplexity=perplexity,
                    distances=distances,
                    spans=spans,
                    tree=spans_to_tree(tokens, spans),
                    layer=layer,
                    layer_distances=per_layer,
                )
            )
        return results


def _fill(n_tokens: int, kept: list[int], word_distances: list[float]) -> list[float]:
    """Distances over all tokens from the distances of the kept ones (see the module doc)."""
    if len(kept) == n_tokens:
        return list(word_distances)
    top = (max(word_distances) if word_distances else 0.0) + 1.0
    filled = [top] * n_tokens  # punctuation after the last word attaches to the root
    word_at = dict(zip(kept, word_distances))
    following = None
    for position in range(n_tokens - 1, -1, -1):
        if position in word_at:
            following = filled[position] = word_at[position]
        elif following is not None:
            filled[position] = following + _NUDGE
    return filled
