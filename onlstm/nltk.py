"""An NLTK parser (``nltk.parse.api.ParserI``) on the ON-LSTM, local or behind a service.

    from onlstm.nltk import ONLSTMParser

    parser = ONLSTMParser()                                 # the bundled model, in this process
    tree = parser.parse_one("The cat sat on the mat .".split())
    remote = ONLSTMParser(url="http://127.0.0.1:8000")     # a running `onlstm serve`, through onlstm.client
    trees = [next(parses) for parses in remote.parse_sents([["A", "dog", "barked", "."]])]
    split = ONLSTMParser(options=ParseOptions(decoder="split"), layer=0)   # options, keyword values over them

As NLTK's ``CoreNLPParser`` does for CoreNLP, ``parse`` and ``parse_sents`` take token lists
and ``raw_parse`` / ``raw_parse_sents`` take strings (tokenized here, or by the service).
Each sentence has exactly one parse: the binary tree of the model's syntactic distances
(root ``S``, inner nodes ``X``, leaves the tokens).  ``parse_results`` gives the full
``ParseResult`` objects (distances, perplexity).

Options are a ``ParseOptions`` (``options=``) with keyword values over it, for the parser
(its defaults) and for each call (over the parser's); they are checked when given, with the
library's ``OptionError`` and its codes, in both modes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from nltk.parse.api import ParserI
from nltk.tree import Tree

from .models.options import ParseOptions
from .models.parser import Parser, ParseResult
from .models.text.sentences import tokenize

if TYPE_CHECKING:
    from .client import Client

__all__ = ["ONLSTMParser"]


class ONLSTMParser(ParserI):
    """``nltk.parse.api.ParserI`` over the local model or, with ``url=``, a running service.

    Args:
        checkpoint: a release checkpoint (default: the bundled model); local mode only.
        url: base URL of an ``onlstm serve`` service; sentences are then parsed there.
        api_key: the service's API key, if it has one.
        parser: an already loaded ``onlstm.Parser`` to use instead of loading one.
        options: a ``ParseOptions``, the defaults of every call (each call may override them);
            keyword ``values`` (``layer=1``, ``decoder``, ``punctuation``, ``right_branching_bias``)
            are laid over it.
        batch_size: sentences per model call (local) or per ``parse_sents`` slice (both modes).
        device: torch device of the local model.
        timeout: seconds per HTTP request (service mode).
    """

    def __init__(self, checkpoint: str | None = None, *, url: str | None = None, api_key: str | None = None,
                 parser: Any = None, options: ParseOptions | None = None, batch_size: int = 64,
                 device: str = "cpu", timeout: float = 60.0, **values: Any):
        if url is not None and (checkpoint is not None or parser is not None):
            raise ValueError("give either url= (a running service) or checkpoint=/parser= (a local model), not both")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.options = ParseOptions.of(options, **values)
        self.batch_size = batch_size
        # exactly one of the two: a service's client, or a local parser
        self.client: Client | None = None
        self.parser: Parser | None = None
        if url is not None:
            from .client import Client  # needs httpx (the `client` extra); local use does not

            self.client = Client(url, api_key=api_key, timeout=timeout)
        elif parser is not None:
            self.parser = parser
        else:
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

    def parse_results(self, sentences: Sequence[Sequence[str]], options: ParseOptions | None = None,
                      **values: Any) -> list[ParseResult]:
        """Full results (tree, distances, perplexity) of token lists, in order; ``options`` and
        keyword ``values`` are laid over the parser's own."""
        return self._results(sentences, self._options(options, values))

    def _results(self, sentences: Sequence[Sequence[str]], options: ParseOptions) -> list[ParseResult]:
        token_lists = [_tokens(sentence) for sentence in sentences]
        if not token_lists:
            return []
        if self.client is not None:
            return self.client.parse(tokens=token_lists, options=options)
        assert self.parser is not None  # set when there is no client
        return self.parser.parse_many(token_lists, options, batch_size=self.batch_size)

    def _options(self, options: ParseOptions | None, values: dict[str, Any]) -> ParseOptions:
        """The parser's options with a call's over them (what the call sets, a ``None`` keeping the parser's)."""
        if options is None and not values:
            return self.options
        return self.options.replace(**ParseOptions.of(options, **values).model_dump(exclude_unset=True))

    # --- ParserI ------------------------------------------------------------------------------

    def parse_sents(self, sents: Iterable[Sequence[str]], *args: Any, options: ParseOptions | None = None,
                    **values: Any) -> Iterator[Iterator[Tree]]:
        """One iterator (of one tree) per sentence; sentences are parsed ``batch_size`` at a time."""
        if args:
            raise TypeError("parse_sents takes the sentences, options= (a ParseOptions) and keyword option values")
        chosen = self._options(options, values)  # a bad option fails here, before the first sentence
        return self._trees(iter(sents), chosen)

    def _trees(self, sentences: Iterator[Sequence[str]], options: ParseOptions) -> Iterator[Iterator[Tree]]:
        while batch := list(itertools.islice(sentences, self.batch_size)):
            for result in self._results(batch, options):
                yield iter([result.tree])

    def parse(self, sent: Sequence[str], *args: Any, **values: Any) -> Iterator[Tree]:
        """An iterator over the one tree of a tokenized sentence."""
        return next(self.parse_sents([sent], *args, **values))

    def parse_one(self, sent: Sequence[str], *args: Any, **values: Any) -> Tree:
        return self.parse_results([sent], **values)[0].tree

    def parse_all(self, sent: Sequence[str], *args: Any, **values: Any) -> list[Tree]:
        return [self.parse_one(sent, *args, **values)]

    # --- raw strings, as CoreNLPParser ---------------------------------------------------------

    def raw_parse(self, sentence: str, *args: Any, **values: Any) -> Iterator[Tree]:
        """Parse one untokenized sentence (Penn-Treebank tokenization, as the service's)."""
        return next(self.raw_parse_sents([sentence], *args, **values))

    def raw_parse_sents(self, sentences: Iterable[str], *args: Any, **values: Any) -> Iterator[Iterator[Tree]]:
        def tokenized() -> Iterator[list[str]]:
            for sentence in sentences:
                if not isinstance(sentence, str):
                    raise TypeError(f"raw_parse takes strings, got {type(sentence).__name__}; parse takes token lists")
                tokens = tokenize(sentence)
                if not tokens:
                    raise ValueError(f"the sentence {sentence!r} has no tokens")
                yield tokens

        return self.parse_sents(tokenized(), *args, **values)


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
