"""An NLTK parser (``nltk.parse.api.ParserI``) on the ON-LSTM, local or behind a service.

    from onlstm.nltk import ONLSTMParser

    parser = ONLSTMParser()                                 # the bundled model, in this process
    tree = parser.parse_one("The cat sat on the mat .".split())
    remote = ONLSTMParser(url="http://127.0.0.1:8000")     # a running `onlstm serve`, through onlstm.client
    trees = [next(parses) for parses in remote.parse_sents([["A", "dog", "barked", "."]])]

As NLTK's ``CoreNLPParser`` does for CoreNLP, ``parse`` and ``parse_sents`` take token lists
and ``raw_parse`` / ``raw_parse_sents`` take strings (tokenized here, or by the service).
Each sentence has exactly one parse: the binary tree of the model's syntactic distances
(root ``S``, inner nodes ``X``, leaves the tokens).  ``parse_results`` gives the full
``ParseResult`` objects (distances, perplexity).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from nltk.parse.api import ParserI
from nltk.tree import Tree

from .models.parser import ParseResult
from .models.text import tokenize

OPTIONS = ("layer", "decoder", "punctuation", "right_branching_bias")

__all__ = ["ONLSTMParser"]


class ONLSTMParser(ParserI):
    """``nltk.parse.api.ParserI`` over the local model or, with ``url=``, a running service.

    Args:
        checkpoint: a release checkpoint (default: the bundled model); local mode only.
        url: base URL of an ``onlstm serve`` service; sentences are then parsed there.
        api_key: the service's API key, if it has one.
        parser: an already loaded ``onlstm.Parser`` to use instead of loading one.
        layer, decoder, punctuation, right_branching_bias: defaults of every call (each call may
            override them).
        batch_size: sentences per model call (local) or per ``parse_sents`` slice (both modes).
        device: torch device of the local model.
        timeout: seconds per HTTP request (service mode).
    """

    def __init__(self, checkpoint: str | None = None, *, url: str | None = None, api_key: str | None = None,
                 parser: Any = None, layer: int | None = None, decoder: str | None = None,
                 punctuation: str | None = None, right_branching_bias: float | None = None, batch_size: int = 64,
                 device: str = "cpu", timeout: float = 60.0):
        if url is not None and (checkpoint is not None or parser is not None):
            raise ValueError("give either url= (a running service) or checkpoint=/parser= (a local model), not both")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.options = {"layer": layer, "decoder": decoder, "punctuation": punctuation,
                        "right_branching_bias": right_branching_bias}
        self.batch_size = batch_size
        self.client = None
        self.parser = None
        if url is not None:
            from .client import Client  # needs httpx (the `client` extra); local use does not

            self.client = Client(url, api_key=api_key, timeout=timeout)
        elif parser is not None:
            self.parser = parser
        else:
            from .models.parser import Parser

            self.parser = Parser.load(checkpoint, device=device)

    def __repr__(self) -> str:
        where = self.client.url if self.client is not None else getattr(self.parser, "name", "local model")
        return f"ONLSTMParser({where!r})"

    def close(self) -> None:
        """Close the HTTP connections (service mode); the object is not usable afterwards."""
        if self.client is not None:
            self.client.close()

    def grammar(self):
        raise NotImplementedError(
            "ONLSTMParser has no grammar: its trees come from the syntactic distances of a language model "
            "trained without treebank supervision, so there are no rules or labels to return"
        )

    # --- results -------------------------------------------------------------------------

    def parse_results(self, sentences: Sequence[Sequence[str]], **options: Any) -> list[ParseResult]:
        """Full results (tree, distances, perplexity) of token lists, in order."""
        token_lists = [_tokens(sentence) for sentence in sentences]
        if not token_lists:
            return []
        chosen = {**self.options, **options}
        unknown = set(chosen) - set(OPTIONS)
        if unknown:
            raise TypeError(f"unknown option(s) {sorted(unknown)}; the options are {', '.join(OPTIONS)}")
        if self.client is not None:
            return self.client.parse(tokens=token_lists, **chosen)
        return self.parser.parse_many(token_lists, batch_size=self.batch_size, **chosen)

    # --- ParserI ------------------------------------------------------------------------------

    def parse_sents(self, sents: Iterable[Sequence[str]], *args: Any, **options: Any) -> Iterator[Iterator[Tree]]:
        """One iterator (of one tree) per sentence; sentences are parsed ``batch_size`` at a time."""
        if args:
            raise TypeError(f"parse_sents takes the sentences and keyword options ({', '.join(OPTIONS)})")
        sentences = iter(sents)
        while batch := list(itertools.islice(sentences, self.batch_size)):
            for result in self.parse_results(batch, **options):
                yield iter([result.tree])

    def parse(self, sent: Sequence[str], *args: Any, **options: Any) -> Iterator[Tree]:
        """An iterator over the one tree of a tokenized sentence."""
        return next(self.parse_sents([sent], *args, **options))

    def parse_one(self, sent: Sequence[str], *args: Any, **options: Any) -> Tree:
        return self.parse_results([sent], **options)[0].tree

    def parse_all(self, sent: Sequence[str], *args: Any, **options: Any) -> list[Tree]:
        return [self.parse_one(sent, *args, **options)]

    # --- raw strings, as CoreNLPParser ---------------------------------------------------------

    def raw_parse(self, sentence: str, *args: Any, **options: Any) -> Iterator[Tree]:
        """Parse one untokenized sentence (Penn-Treebank tokenization, as the service's)."""
        return next(self.raw_parse_sents([sentence], *args, **options))

    def raw_parse_sents(self, sentences: Iterable[str], *args: Any, **options: Any) -> Iterator[Iterator[Tree]]:
        def tokenized() -> Iterator[list[str]]:
            for sentence in sentences:
                if not isinstance(sentence, str):
                    raise TypeError(f"raw_parse takes strings, got {type(sentence).__name__}; parse takes token lists")
                tokens = tokenize(sentence)
                if not tokens:
                    raise ValueError(f"the sentence {sentence!r} has no tokens")
                yield tokens

        return self.parse_sents(tokenized(), *args, **options)


def _tokens(sentence: Sequence[str]) -> list[str]:
    if isinstance(sentence, str):
        raise TypeError(
            "parse takes a tokenized sentence (a list of strings), as every NLTK parser does; "
            "use raw_parse for an untokenized string"
        )
    tokens = list(sentence)
    if not tokens or not all(isinstance(token, str) and token for token in tokens):
        raise ValueError(f"a sentence must be a non-empty list of non-empty token strings, got {tokens!r}")
    return tokens
