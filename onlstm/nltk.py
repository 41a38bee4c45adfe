"""An NLTK parser (``nltk.parse.api.ParserI``) on the ON-LSTM, local or behind a service.

    from onlstm.nltk import ONLSTMParser

    parser = ONLSTMParser()                                 # the bundled model, in this process
    tree = parser.parse_one("The cat sat on the mat .".split())
    remote = ONLSTMParser(url="http://127.0.0.1:8000")     # a running `onlstm serve`, through onlstm.client
    trees = [next(parses) for parses in remote.parse_sents([["A", "dog", "barked", "."]])]
    split = ONLSTMParser(options=ParseOptions(decoder="split"), layer=0)   # options, keyword values over them
    spanish = ONLSTMParser(language="es")                    # the bundled Spanish model
    parser.parse_one(["El", "gato", "duerme"], language="es")   # per call: the Spanish model, loaded on first use

As NLTK's ``CoreNLPParser`` does for CoreNLP, ``parse`` and ``parse_sents`` take token lists
and ``raw_parse`` / ``raw_parse_sents`` take strings (tokenized here, or by the service).
Each sentence has exactly one parse: the binary tree of the model's syntactic distances
(root ``S``, inner nodes ``X``, leaves the tokens).  ``parse_results`` gives the full
``ParseResult`` objects (distances, perplexity).

Options are a ``ParseOptions`` (``options=``) with keyword values over it, for the parser
(its defaults) and for each call (over the parser's); they are checked when given, with the
library's ``OptionError`` and its codes, in both modes.

Languages: the option ``language`` (ISO 639-1) chooses the model and how ``raw_parse``
tokenizes.  Locally, the parser holds a ``models.pool.ParserPool``: the parser's own language
(``language=``, default en; with ``checkpoint=``, the release's) is loaded at construction,
another bundled language on its first call (``languages=`` limits which); a language without
a model is a ``LanguageError`` (an ``OptionError``) naming those that can be had.  With
``url=``, the service's languages are the service's.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from nltk.parse.api import ParserI
from nltk.tree import Tree

from .models.languages import DEFAULT_LANGUAGE
from .models.options import ParseOptions
from .models.parser import Parser, ParseResult
from .models.pool import ParserPool
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
        parser: an already loaded ``onlstm.Parser`` (or a ``ParserPool``) to use instead of loading one.
        options: a ``ParseOptions``, the defaults of every call (each call may override them);
            keyword ``values`` (``layer=1``, ``decoder``, ``punctuation``, ``right_branching_bias``,
            ``language``) are laid over it.
        languages: local mode without ``checkpoint``/``parser``: the bundled languages calls may
            ask for (default: every bundled one), each loaded on its first use.
        batch_size: sentences per model call (local) or per ``parse_sents`` slice (both modes).
        device: torch device of the local model.
        timeout: seconds per HTTP request (service mode).
    """

    def __init__(self, checkpoint: str | None = None, *, url: str | None = None, api_key: str | None = None,
                 parser: Any = None, options: ParseOptions | None = None, batch_size: int = 64,
                 device: str = "cpu", timeout: float = 60.0, languages: Sequence[str] | None = None,
                 **values: Any):
        if url is not None and (checkpoint is not None or parser is not None):
            raise ValueError("give either url= (a running service) or checkpoint=/parser= (a local model), not both")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.options = ParseOptions.of(options, **values)
        self.batch_size = batch_size
        # exactly one of the two: a service's client, or local parsers (one per language)
        self.client: Client | None = None
        self.pool: ParserPool | None = None
        if url is not None:
            from .client import Client  # needs httpx (the `client` extra); local use does not

            self.client = Client(url, api_key=api_key, timeout=timeout)
        else:
            self.pool = _local_pool(checkpoint, parser, device, languages, self.options.language)

    @property
    def parser(self) -> Parser | None:
        """The local parser of the parser's own language (None with ``url=``)."""
        return self.pool.parser(self.options.language) if self.pool is not None else None

    @property
    def language(self) -> str:
        """The language of a call that names none: the parser's option, else the local model's, else en."""
        if self.options.language is not None:
            return self.options.language
        return self.pool.default_language if self.pool is not None else DEFAULT_LANGUAGE

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
        assert self.pool is not None  # set when there is no client
        return self.pool.parse_many(token_lists, options, batch_size=self.batch_size)

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
        if self.pool is not None:
            self.pool.parser(chosen.language)  # and a language without a model (loaded now if it has one)
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
        """Parse one untokenized sentence, tokenized as its language is (English: Penn-Treebank tokens, as the service)."""
        return next(self.raw_parse_sents([sentence], *args, **values))

    def raw_parse_sents(self, sentences: Iterable[str], *args: Any, options: ParseOptions | None = None,
                        **values: Any) -> Iterator[Iterator[Tree]]:
        """Parse untokenized sentences, tokenized as the call's language is (see the module doc)."""
        language = self._options(options, values).language or self.language  # a bad option fails here

        def tokenized() -> Iterator[list[str]]:
            for sentence in sentences:
                if not isinstance(sentence, str):
                    raise TypeError(f"raw_parse takes strings, got {type(sentence).__name__}; parse takes token lists")
                tokens = tokenize(sentence, language=language)
                if not tokens:
                    raise ValueError(f"the sentence {sentence!r} has no tokens")
                yield tokens

        return self.parse_sents(tokenized(), *args, options=options, **values)


def _local_pool(checkpoint: str | None, parser: Any, device: str, languages: Sequence[str] | None,
                language: str | None) -> ParserPool:
    """The local models: the given parser or checkpoint alone, else the bundled languages (lazily), the
    parser's own language loaded now, so that a language without a model fails at construction."""
    if isinstance(parser, ParserPool):
        pool = parser
    elif parser is not None:
        pool = ParserPool.of(parser)
    elif checkpoint is not None:
        pool = ParserPool.of(Parser.load(checkpoint, device=device, language=language))
    else:
        pool = ParserPool(languages, device, lazy=True)
    pool.parser(language)
    return pool


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
