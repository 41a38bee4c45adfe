"""A spaCy pipeline component: ``nlp.add_pipe("onlstm")`` (``pip install 'onlstm-parser[spacy]'``).

    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")                 # or any pipeline that sets sentence boundaries
    nlp.add_pipe("onlstm", config={"layer": 1})
    doc = nlp("The cat sat on the mat. A dog barked.")
    sentence = next(doc.sents)
    sentence._.parse_string    # '(S (X The cat) (X sat (X on (X the mat))) .)'
    list(sentence._.children)  # the root's child constituents, as Spans: The cat | sat on the mat | .

The options are the config keys ``layer``, ``decoder``, ``gate``, ``punctuation``,
``right_branching_bias`` and ``punctuation_first`` (JSON values, as spaCy's config needs; null: the model's default),
made into one ``ParseOptions`` when the component is created and checked then, with the
library's ``OptionError``; ``ONLSTMComponent(options=ParseOptions(...))`` takes one directly.

The model follows the pipeline's language: ``spacy.blank("es")`` gets the bundled Spanish
model, and a language with no bundled model is a ``LanguageError`` (an ``OptionError``) at
``add_pipe``, naming the bundled ones.  The config key ``language`` (an ISO 639-1 code)
overrides ``nlp.lang``; with ``checkpoint``, the release must be of that language.

The factory is registered through the ``spacy_factories`` entry point, so no import of
this module is needed.  Each sentence is parsed with spaCy's own tokens (whitespace tokens
are left out of the model and absorbed by the constituents around them); ``nlp.pipe``
parses the sentences of a batch of documents together.

Extension attributes, with benepar's meanings (a constituent is a span of the tree: a
token, or a bracket of two or more tokens, or the whole sentence):

* ``Span._.parse_string``: the constituent's bracketed tree (``S`` at the root, ``X``
  inside, leaves the token texts, brackets escaped as ``-LRB-``/``-RRB-``);
* ``Span._.constituents``: every constituent inside the span, pre-order, the span first;
* ``Span._.children``: the constituent's child constituents, in order;
* ``Span._.parent``: the smallest constituent strictly containing it (None for a sentence);
* ``Span._.distances``: the syntactic distance of each token of the span (None for a
  whitespace token);
* ``Span._.perplexity``: the perplexity of the sentence the span is in;
* ``Span._.parse_model``: ``{"name", "version", "language"}`` of the model that parsed the
  span's sentence;
* ``Span._.unk_share`` and ``Span._.parse_warnings``: the share of the sentence's words outside
  the model's vocabulary, and the library's warnings about the sentence (most words unknown, not
  the model's language), as ``ParseResult.unk_share`` and ``.warnings``.

spaCy's Chinese pipelines cut text into single characters by default, and the Chinese model reads
words: the component warns (``logging``) when it meets such a pipeline, and
``spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})`` gives it words cut as
its training text was.

``parse_string``, ``constituents``, ``children`` and ``parent`` raise
``NonConstituentError`` for a span that is not a constituent.  The same attribute names
as benepar's are registered (with ``force=True``): use one of the two parsers per process.

This module is imported whenever spaCy builds a pipeline (that is how entry points work),
so it imports neither torch nor the model until the component is created.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import minibatch

from .models.trees.decoders import NODE_LABEL, ROOT_LABEL, escape_token

if TYPE_CHECKING:  # the module stays light until the component is created (see above)
    from .models.options import ParseOptions
    from .models.parser import Parser

__all__ = ["NonConstituentError", "ONLSTMComponent", "make_onlstm_component"]

PARSES = "onlstm_parses"  # Doc extension: one record per parsed sentence (plain data, so Docs serialize)
logger = logging.getLogger(__name__)


class NonConstituentError(ValueError):
    """The span is not a constituent of the ON-LSTM tree of its sentence."""


@Language.factory(
    "onlstm",
    default_config={"checkpoint": None, "language": None, "layer": None, "decoder": None, "gate": None,
                    "punctuation": None, "right_branching_bias": None, "punctuation_first": None, "batch_size": 64,
                    "device": "cpu"},
    assigns=[f"doc._.{PARSES}"],
    requires=["token.is_sent_start"],
)
def make_onlstm_component(nlp: Language, name: str, checkpoint: str | None, language: str | None,
                          layer: int | None, decoder: str | None, gate: str | None, punctuation: str | None,
                          right_branching_bias: float | None, punctuation_first: bool | None, batch_size: int,
                          device: str) -> ONLSTMComponent:
    """The ``onlstm`` factory.  Config: ``checkpoint`` (a release file; null: the bundled model of the
    language), ``language`` (ISO 639-1; null: the pipeline's ``nlp.lang``), ``layer``, ``decoder``, ``gate``,
    ``punctuation``, ``right_branching_bias``, ``punctuation_first`` (null: the model's defaults), ``batch_size`` (sentences
    per model call), ``device`` (torch device)."""
    component = ONLSTMComponent(name, checkpoint=checkpoint, language=language, pipeline_language=nlp.lang,
                                layer=layer, decoder=decoder, gate=gate, punctuation=punctuation,
                                right_branching_bias=right_branching_bias, punctuation_first=punctuation_first,
                                batch_size=batch_size, device=device)
    if component.parser.language == "zh" and _cuts_characters(nlp):
        logger.warning("this pipeline's tokenizer cuts Chinese into single characters and the %r component's model "
                       "reads words (cut by jieba): its trees would be over characters, which it was not trained on; build the "
                       "pipeline with spacy.blank(\"zh\", config={\"nlp\": {\"tokenizer\": {\"segmenter\": "
                       "\"jieba\"}}}) to give it words", name)
    return component


def _cuts_characters(nlp: Language) -> bool:
    """True for spaCy's Chinese tokenizer with its default segmenter, ``char``."""
    segmenter = getattr(nlp.tokenizer, "segmenter", None)
    return getattr(segmenter, "value", segmenter) == "char"


class ONLSTMComponent:
    """Parses every sentence of a Doc and stores its tree for the ``Span._`` attributes."""

    def __init__(self, name: str = "onlstm", *, checkpoint: str | None = None, options: ParseOptions | None = None,
                 batch_size: int = 64, device: str = "cpu", pipeline_language: str | None = None, **values: Any):
        from .models.options import ParseOptions

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.name = name
        self.options = ParseOptions.of(options, **values)  # a bad option fails here, at add_pipe
        self.parser = _load(checkpoint, device, self.options.language, pipeline_language)
        self.parser.resolve(self.options)  # and one this model cannot take (a layer it lacks)
        self.batch_size = batch_size
        install_extensions()

    def __call__(self, doc: Doc) -> Doc:
        return self._annotate([doc])[0]

    def pipe(self, docs: Iterable[Doc], batch_size: int = 128) -> Iterator[Doc]:
        """Parse the sentences of ``batch_size`` documents at a time (``nlp.pipe``'s batches)."""
        for batch in minibatch(docs, size=batch_size):
            yield from self._annotate(list(batch))

    def _parse(self, token_lists: list[list[str]]) -> list:
        return self.parser.parse_many(token_lists, self.options, batch_size=self.batch_size)

    def _annotate(self, docs: list[Doc]) -> list[Doc]:
        pending: list[tuple[Doc, Span, list[int]]] = []
        for doc in docs:
            if len(doc) and not doc.has_annotation("SENT_START"):
                raise ValueError(
                    f"the {self.name!r} component needs sentence boundaries: add nlp.add_pipe('sentencizer') "
                    "(or a parser or senter) before it"
                )
            doc._.set(PARSES, [])
            for sentence in doc.sents if len(doc) else ():
                kept = [token.i for token in sentence if not token.is_space]
                if kept:
                    pending.append((doc, sentence, kept))
        results = self._parse([[doc[index].text for index in kept] for doc, _, kept in pending]) if pending else []
        for (doc, sentence, kept), result in zip(pending, results):
            doc._.get(PARSES).append(_record(sentence, kept, result))
        return docs


def _load(checkpoint: str | None, device: str, language: str | None, pipeline_language: str | None) -> Parser:
    """The parser of the configured ``language``, else of the pipeline's; a refusal of the pipeline's
    language says where it came from and how to choose another."""
    from .models.languages import LanguageError
    from .models.parser import Parser

    try:
        return Parser.load(checkpoint, device=device, language=language or pipeline_language)
    except LanguageError as error:
        if language is not None or pipeline_language is None:
            raise
        raise LanguageError(error.code, error.language, error.available,
                            f"{error.requirement} (it is the pipeline's nlp.lang; to choose the model's language "
                            "yourself, add the component with config={'language': ...})") from None


def _record(sentence: Span, kept: list[int], result: Any) -> dict[str, Any]:
    """One sentence's parse as plain data, in Doc token indices (what the getters read)."""
    n = len(kept)

    def doc_start(position: int) -> int:  # a constituent starting at the first word starts the sentence
        return sentence.start if position == 0 else kept[position]

    def doc_end(position: int) -> int:
        return sentence.end if position == n else kept[position - 1] + 1

    brackets = {(doc_start(start), doc_end(end)) for start, end in result.spans}
    brackets.add((sentence.start, sentence.end))
    return {
        "start": sentence.start,
        "end": sentence.end,
        "tokens": kept,
        "brackets": sorted(brackets),
        "distances": [float(distance) for distance in result.distances],
        "perplexity": float(result.perplexity),
        "unk_share": float(result.unk_share),
        "warnings": list(result.warnings),
        "layer": int(result.layer),
        "model": dict(result.model),  # its language included
    }


# --- the getters ------------------------------------------------------------------------------


def _sentence_record(span: Span) -> dict[str, Any]:
    records = span.doc._.get(PARSES)
    if records is None:
        raise ValueError("this Doc has no ON-LSTM parse: add the component with nlp.add_pipe('onlstm')")
    index = bisect.bisect_right([record["start"] for record in records], span.start) - 1
    if index < 0 or span.end > records[index]["end"]:
        raise NonConstituentError(f"the span {span.text!r} is not inside one parsed sentence")
    return records[index]


def _constituents_of(record: dict[str, Any]) -> list[tuple[int, int]]:
    """Every constituent of a sentence, pre-order: brackets and the (non-space) tokens."""
    constituents = {tuple(bracket) for bracket in record["brackets"]}
    constituents.update((index, index + 1) for index in record["tokens"])
    return sorted(constituents, key=lambda bounds: (bounds[0], -bounds[1]))


def _locate(span: Span) -> tuple[dict[str, Any], list[tuple[int, int]], int]:
    record = _sentence_record(span)
    constituents = _constituents_of(record)
    try:
        return record, constituents, constituents.index((span.start, span.end))
    except ValueError:
        raise NonConstituentError(f"the span {span.text!r} is not a constituent of its sentence's tree") from None


def _children_of(constituents: list[tuple[int, int]]) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """Each constituent's child constituents, in order, in one pass over the pre-order list.

    With a stack of the open constituents, not recursion: a sentence's tree can be as deep as
    it is long (a right-branching chain of 1,000 tokens), deeper than Python's call stack.
    """
    children: dict[tuple[int, int], list[tuple[int, int]]] = {bounds: [] for bounds in constituents}
    open_constituents: list[tuple[int, int]] = []
    for bounds in constituents:
        while open_constituents and open_constituents[-1][1] <= bounds[0]:
            open_constituents.pop()  # ends before this one starts: not its parent
        if open_constituents:
            children[open_constituents[-1]].append(bounds)
        open_constituents.append(bounds)
    return children


def get_constituents(span: Span) -> Iterator[Span]:
    _, constituents, position = _locate(span)
    for start, end in constituents[position:]:
        if start >= span.end:
            break
        yield span.doc[start:end]


def get_children(span: Span) -> Iterator[Span]:
    _, constituents, position = _locate(span)
    for start, end in _children_of(constituents)[constituents[position]]:
        yield span.doc[start:end]


def get_parent(span: Span) -> Span | None:
    _, constituents, position = _locate(span)
    for start, end in reversed(constituents[:position]):
        if start <= span.start and span.end <= end and (start, end) != (span.start, span.end):
            return span.doc[start:end]
    return None


def get_parse_string(span: Span) -> str:
    record, constituents, position = _locate(span)
    children = _children_of(constituents)
    root = (record["start"], record["end"])
    pieces: list[str] = []
    # pre-order with an explicit stack (see _children_of): a constituent, or None for its ")"
    pending: list[tuple[int, int] | None] = [constituents[position]]
    opened = True  # just after "(X ": the next constituent needs no space before it
    while pending:
        bounds = pending.pop()
        if bounds is None:
            pieces.append(")")
            opened = False
            continue
        if not opened:
            pieces.append(" ")
        inner = children[bounds]
        if inner:
            pieces.append(f"({ROOT_LABEL if bounds == root else NODE_LABEL} ")
            pending.append(None)
            pending.extend(reversed(inner))
            opened = True
        else:  # a token
            token = escape_token(span.doc[bounds[0]].text)
            pieces.append(f"({ROOT_LABEL} {token})" if bounds == root else token)
            opened = False
    return "".join(pieces)


def get_distances(span: Span) -> list[float | None]:
    record = _sentence_record(span)
    by_token = dict(zip(record["tokens"], record["distances"]))
    return [by_token.get(index) for index in range(span.start, span.end)]


def get_perplexity(span: Span) -> float:
    return _sentence_record(span)["perplexity"]


def get_parse_model(span: Span) -> dict[str, str]:
    return dict(_sentence_record(span).get("model") or {})  # Docs saved before there was one: {}


def get_unk_share(span: Span) -> float | None:
    return _sentence_record(span).get("unk_share")  # Docs saved before there was one: None


def get_parse_warnings(span: Span) -> list[str]:
    return list(_sentence_record(span).get("warnings") or [])


def install_extensions() -> None:
    """Register the ``Doc._`` and ``Span._`` attributes (idempotent)."""
    Doc.set_extension(PARSES, default=None, force=True)
    getters = {"parse_string": get_parse_string, "constituents": get_constituents, "children": get_children,
               "parent": get_parent, "distances": get_distances, "perplexity": get_perplexity,
               "parse_model": get_parse_model, "unk_share": get_unk_share, "parse_warnings": get_parse_warnings}
    for name, getter in getters.items():
        Span.set_extension(name, getter=getter, force=True)
