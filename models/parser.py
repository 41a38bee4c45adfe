"""The ``Parser`` facade: sentences in, trees, distances and perplexities out.

    parser = Parser.load()                                   # the bundled model
    parser.parse("The cat sat on the mat.")                  # one sentence -> one ParseResult
    parser.parse(["The", "cat", "sat"])                      # one tokenized sentence -> one ParseResult
    parser.parse_many(["The cat sat.", ["A", "dog", "ran"]]) # several -> a list
    parser.parse_text("The cat sat. The dog ran.")           # a text, split into sentences -> a list
    for result in parser.parse_iter(open("big.txt")): ...    # a stream of sentences, any size

Each sentence is read from a fresh state as ``<eos> w1 ... wn`` and scored on
``w1 ... wn <eos>``; the distance of word ``wi`` is the one computed at the step that
reads ``wi``: from the master forget gate (``gate="forget"``, the paper's and every bundled
model's default), or from the master input gate (``gate="input"``, ``mean(i~)``: how high the
word is written), which on the Spanish and Portuguese dev trees holds more of the structure in
layer 0 with the split decoder (``training/sweeps/results/layer-signals-cpu.md``).

Sentences are sorted by length and parsed in padded batches; a sentence gets the same result
alone or in a batch (the recurrence never looks at padding; the order in which its products are
summed depends on the batch size, so distances and perplexities agree to about 1e-6 relative,
and the trees are the same).

Punctuation: models trained on words only (the reference protocol, and the default
recipe) never see punctuation.  With ``punctuation="attach"`` punctuation tokens are
removed before the model, the tree is built over the words, and each mark is attached
where a treebank puts it (``models.trees.punctuation``); restricted to the words, the tree is
exactly the words-only tree.  The distance reported for a mark is the next word's plus a
hair (for display; the tree does not come from it).  ``punctuation="model"`` feeds every
token to the model, for models trained with punctuation in their vocabulary.

Units: a release reads words or, where its metadata says ``"unit": "characters"`` (the Chinese
model since 0.14.0, ``onlstm train --unit characters``), each word's characters (``models.text.units``): the word's
distance is then the one computed as its first character is read, the tree is still over the
words, and the perplexity is per character read.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import torch
from nltk import Tree

from .checkpoint import CheckpointError, Release, load_release
from .languages import (
    DEFAULT_LANGUAGE,
    TOKENS_GIVEN,
    LanguageError,
    bundled_checkpoint,
    bundled_languages,
    check_known,
    language_name,
    release_language,
)
from .network.recurrence import narrow_inference_weights
from .options import Decoder, Gate, OptionError, ParseOptions, Punctuation
from .text.sentences import Sentence, split_text
from .text.units import MAX_WORD_UNITS, UNITS, characters, expand, read_units
from .text.vocab import UNK, is_punctuation, normalize
from .trees import punctuation as marks
from .trees.decoders import (
    decode_spans,
    follows_mark,
    punctuation_first_distances,
    spans_to_tree,
    to_ptb_string,
    tree_to_nested,
)

__all__ = ["DEFAULT_CHECKPOINT", "LayerSpans", "ParseResult", "Parser", "SentenceLike", "as_sentence"]

logger = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "default.safetensors"  # the English release
# scripts other than Latin: a sentence mostly outside the Latin alphabet is no warning for these languages
# the languages whose models were trained on text in the Latin alphabet; of a language of one's own the
# package does not know the script
LATIN_SCRIPT_LANGUAGES = frozenset({"en", "es", "pt", "nl"})
_NUDGE = 1e-6  # a mark's displayed distance: just above the word that follows it
UNKNOWN_WARNING_SHARE = 0.5  # a sentence with at least this share of unknown words carries a warning
# positions whose vocabulary scores are computed at once for perplexity (x V floats, twice)
NLL_SLICE_ROWS = 128

SentenceLike = str | Sequence[str] | Sentence


def _one_thread_after_fork() -> None:
    # OpenMP's thread pool does not survive fork(): a forked child whose parent had run torch on
    # several threads hangs at its first parallel operation (spaCy's nlp.pipe(n_process=2), a
    # fork-based multiprocessing pool). One thread in the child runs serially and cannot hang.
    torch.set_num_threads(1)


os.register_at_fork(after_in_child=_one_thread_after_fork)


class LayerSpans(Sequence):
    """Each layer's spans, a layer decoded (and its punctuation attached) when first read:
    most callers read only the layer that built the tree.  Compares, prints and pickles as a list."""

    def __init__(self, count: int, decode: Callable[[int], list[tuple[int, int]]]):
        self._decode = decode
        self._done: list[list[tuple[int, int]] | None] = [None] * count

    def __len__(self) -> int:
        return len(self._done)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[position] for position in range(*index.indices(len(self)))]
        if self._done[index] is None:
            self._done[index] = self._decode(range(len(self))[index])
        return self._done[index]

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented

    def __repr__(self) -> str:
        return repr(list(self))

    def __reduce__(self):
        return list, (list(self),)


@dataclass
class ParseResult:
    """One parsed sentence.

    ``tokens`` are as given or as tokenized (original spelling and case); ``sentence``
    carries them with their character offsets in the input text when it came as text.
    """

    tokens: list[str]
    perplexity: float  # exp(mean NLL of the units read (words, or characters) and <eos>), from a fresh state
    distances: list[float]  # one per token, of the layer that built the tree
    spans: list[tuple[int, int]]  # [start, end) of every constituent of >= 2 tokens, whole sentence included
    tree: Tree  # binary over the words, leaves are ``tokens``
    layer: int  # 0-based layer whose distances built the tree
    layer_distances: list[list[float]]  # [layer][token]
    sentence: Sentence | None = None
    unk_share: float = 0.0  # share of the tokens the model read that are outside its vocabulary
    warnings: list[str] = field(default_factory=list)
    layer_spans: Sequence[list[tuple[int, int]]] = field(default_factory=list)  # [layer][span], same decoder
    options: ParseOptions | None = None  # what built it, the model's defaults filled in
    language: str = DEFAULT_LANGUAGE  # ISO 639-1 code of the model that parsed it (and of its tokenization)
    # the model that made it: {"name", "version", "language"} (Parser.identity), as written beside the results
    model: dict[str, str] = field(default_factory=dict)

    def __reduce__(self):
        # the tree is as deep as the sentence is long and pickle recurses through it (worker
        # processes, Ray replicas): past about 1,000 words it failed, so the tree travels as the
        # spans it is built from
        state = {item.name: getattr(self, item.name) for item in fields(self) if item.name != "tree"}
        return _result_from_state, (state,)

    @property
    def offsets(self) -> list[tuple[int, int]] | None:
        """``[start, end)`` of each token in the input text, when the input was text."""
        if self.sentence is None or self.sentence.offsets is None:
            return None
        return [(start, end) for start, end in self.sentence.offsets]

    def layer_tree(self, layer: int) -> Tree:
        """The tree that layer ``layer``'s distances give (with the same decoder and punctuation)."""
        if not 0 <= layer < len(self.layer_spans):
            raise ValueError(f"layer must be between 0 and {len(self.layer_spans) - 1}, got {layer}")
        return spans_to_tree(self.tokens, self.layer_spans[layer])

    def to_dict(self, all_layers: bool | None = None) -> dict:
        """The JSON form of one parse, shared by the HTTP API and ``onlstm parse --format jsonl``;
        every layer's distances and trees too when ``all_layers`` (default: the options' ``all_layers``)."""
        if all_layers is None:
            all_layers = self.options is not None and self.options.all_layers
        record = {
            "tokens": list(self.tokens),
            "tree": to_ptb_string(self.tree),
            "nested": tree_to_nested(self.tree),
            "spans": [[start, end] for start, end in self.spans],
            "distances": [float(distance) for distance in self.distances],
            # JSON has no NaN/Infinity: a perplexity that was not computed is null
            "perplexity": self.perplexity if math.isfinite(self.perplexity) else None,
            "layer": self.layer,
            "unk_share": round(self.unk_share, 4),
            "warnings": list(self.warnings),
            "language": self.language,
        }
        # null for tokens given without their text, as the HTTP answer has always written it
        record["offsets"] = None if self.offsets is None else [[int(start), int(end)] for start, end in self.offsets]
        if all_layers:
            record["layer_distances"] = [[float(distance) for distance in layer] for layer in self.layer_distances]
            record["layer_trees"] = [to_ptb_string(self.layer_tree(layer)) for layer in range(len(self.layer_spans))]
        return record


def _result_from_state(state: dict) -> ParseResult:
    """A pickled ``ParseResult`` back, its tree rebuilt from its tokens and spans."""
    return ParseResult(tree=spans_to_tree(state["tokens"], state["spans"]), **state)


class Parser:
    """Loads a release checkpoint once; parses sentences, one or many."""

    def __init__(self, release: Release, device: str | torch.device = "cpu"):
        self.model = release.model.to(device).eval()
        self.vocab = release.vocab
        self.metadata = release.metadata
        self.path = release.path
        self.digest = release.digest
        self.device = torch.device(device)
        self.n_layers = self.model.config.n_layers
        self.default_layer = int(self.metadata.get("default_layer", min(1, self.n_layers - 1)))
        # the release names one of the decoders and punctuation modes (onlstm train writes them)
        self.default_decoder = cast(Decoder, str(self.metadata.get("default_decoder", "greedy")))
        self.default_gate = cast(Gate, str(self.metadata.get("default_gate", "forget")))
        self.default_punctuation = cast(Punctuation, str(self.metadata.get("punctuation", "attach")))
        # releases before the prior was introduced decode the model's own distances
        self.default_right_branching_bias = float(self.metadata.get("default_right_branching_bias", 0.0))
        # split first at the text's punctuation (ParseOptions.punctuation_first): releases chosen without trees
        # turn it on (training.choice), English's dev-chosen one does not
        self.default_punctuation_first = bool(self.metadata.get("default_punctuation_first", False))
        # a vocabulary without punctuation cannot read it: "model" would turn every mark into <unk>
        self.reads_punctuation = any(is_punctuation(token) for token in self.vocab.itos[2:])
        # ISO 639-1: chooses the sentence splitting and tokenization of text, and the languages it accepts
        self.language = release_language(self.metadata)
        # trained on tokens cut by its trainer's own segmenter (onlstm train --tokens): the rules that
        # tokenize text here cut them otherwise (Japanese text, one character at a time)
        self.tokens_as_given = self.metadata.get("tokens") == TOKENS_GIVEN
        # what the model reads of a word: the word, or its characters (models.text.units)
        self.unit = str(self.metadata.get("unit", "words"))
        if self.unit not in UNITS:
            raise CheckpointError(f"{self.path}: the release reads {self.unit!r} units; this version of onlstm "
                                  f"reads {' or '.join(UNITS)}: upgrade onlstm to load it", "unknown_unit")

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | torch.device = "cpu",
             language: str | None = None) -> Parser:
        """Load a release checkpoint.

        Args:
            path: a release file; ``None``: the model bundled with the package for ``language``.
            device: torch device.
            language: ISO 639-1 code (``models.languages.LANGUAGES``).  Without ``path``, whose
                bundled model to load (default ``en``); with ``path``, what the release must be
                (its metadata's ``language``; releases without one are English).
        Raises:
            LanguageError: ``unknown_language``, ``language_unavailable`` (no bundled model of it)
                or ``language_mismatch`` (the release is of another language).
            CheckpointError: the file cannot be read as a release.
        """
        if path is None:
            return cls._owning(load_release(bundled_checkpoint(language or DEFAULT_LANGUAGE), device), device)
        release = load_release(Path(path), device)
        found = release_language(release.metadata)
        if language is not None and language != found:
            check_known(language, (found,))
            raise LanguageError(
                "language_mismatch", language, (found,),
                f"must be {found!r}, the language of {path} ({language_name(found)}): leave the language out to "
                f"parse {language_name(found)} with it, or give a release trained on {language_name(language)} "
                f"(or no path, for the bundled one)")
        return cls._owning(release, device)

    @classmethod
    def _owning(cls, release: Release, device: str | torch.device) -> Parser:
        """A parser of a release loaded for it alone, so its weights may change form: those the C
        kernels read are kept in float16 (``narrow_inference_weights``: 46 MB less for the five
        bundled models on a CPU with AMX).  Never a model someone else trains (``Parser(release)``
        of ``training.dev_evaluation``): its optimizer holds the float32 parameters."""
        parser = cls(release, device)
        narrow_inference_weights(parser.model.cells())
        return parser

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", self.path.stem if self.path else "onlstm"))

    @property
    def version(self) -> str:
        """A short content version: the release's own, else the prefix of its weights' SHA-256."""
        return str(self.metadata.get("version") or self.digest[:12] or "unknown")

    @property
    def identity(self) -> dict[str, str]:
        """``{"name", "version", "language"}``: what a written result records of the model that made it."""
        return {"name": self.name, "version": self.version, "language": self.language}

    def resolve(self, options: ParseOptions | None = None, **values: Any) -> ParseOptions:
        """``options`` (and keyword values over them) with this model's defaults filled in.

        Raises ``OptionError`` for what this model cannot take: a layer it lacks
        (``invalid_layer``), punctuation it never read (``unsupported_option``), another
        language (``LanguageError``, an ``OptionError``: ``language_unavailable``, or
        ``unknown_language``): one parser parses one language; load another with
        ``Parser.load(language=...)``, or serve several with ``models.pool.ParserPool``.
        """
        options = ParseOptions.of(options, **values)
        self.check_language(options.language)
        layer = self.default_layer if options.layer is None else options.layer
        if layer >= self.n_layers:
            raise OptionError("layer", "invalid_layer",
                              f"must be an integer between 0 and {self.n_layers - 1} (this model's layers)", layer)
        punctuation = options.punctuation or self.default_punctuation
        if punctuation == "model" and not self.reads_punctuation:
            raise OptionError(
                "punctuation", "unsupported_option",
                f"must be 'attach' for {self.name!r}: it was trained without punctuation (its vocabulary has "
                "none, so every mark would be read as <unk>)", punctuation)
        bias = self.default_right_branching_bias if options.right_branching_bias is None \
            else options.right_branching_bias
        # the model's default yields to punctuation='model' (asked for, or the model's): only an explicit
        # punctuation_first=True with it is a contradiction worth an error
        punctuation_first = self.default_punctuation_first and punctuation == "attach" \
            if options.punctuation_first is None else options.punctuation_first
        if punctuation_first and punctuation != "attach":
            raise OptionError("punctuation_first", "unsupported_option",
                              "needs punctuation='attach': with punctuation='model' the marks are words the model "
                              "reads, not boundaries between them", punctuation_first)
        # every field is valid already (checked when `options` was built, or this model's own defaults)
        return ParseOptions.model_construct(layer=layer, decoder=options.decoder or self.default_decoder,
                                            gate=options.gate or self.default_gate,
                                            punctuation=punctuation, right_branching_bias=float(bias),
                                            punctuation_first=punctuation_first,
                                            all_layers=options.all_layers, language=self.language)

    def check_language(self, language: str | None) -> None:
        """``LanguageError`` unless ``language`` is this parser's (``None`` is)."""
        if language is None or language == self.language:
            return
        check_known(language, (self.language,))
        if language in bundled_languages():
            other = (f"for {language_name(language)} load Parser.load(language={language!r}) or Parser.load(PATH) "
                     "of a release trained on it (or a ParserPool of several)")
        else:
            other = (f"no {language_name(language)} model is bundled: train one (onlstm train --language {language} "
                     "--text FILE) and load Parser.load(PATH) of its release")
        raise LanguageError(
            "language_unavailable", language, (self.language,),
            f"must be {self.language!r}: the model {self.name!r} parses {language_name(self.language)}; {other}")

    # --- the model's view ---------------------------------------------------------------

    def model_positions(self, tokens: Sequence[str], punctuation: str) -> list[int]:
        """Indices of the tokens the model reads under a punctuation mode."""
        if punctuation == "model":
            return list(range(len(tokens)))
        return [index for index, token in enumerate(tokens) if not is_punctuation(token)]

    def units_read(self, words: Sequence[str]) -> int:
        """How many units the model reads of ``words`` (the count its perplexity is a mean over, less ``<eos>``)."""
        return len(words) if self.unit == "words" else sum(len(read_units(word)) for word in words)

    def _run(self, token_lists: list[list[str]], batch_size: int, with_perplexity: bool,
             gate: str = "forget") -> list[tuple[list, float]]:
        """Per sentence: ``gate``'s distances [layer][word] over the given tokens, and perplexity;
        a character reader's word distance is the one at the word's first character."""
        if self.unit == "words":
            return self._run_units(token_lists, batch_size, with_perplexity, gate)
        expanded = [expand(tokens) for tokens in token_lists]
        runs = self._run_units([units for units, _ in expanded], batch_size, with_perplexity, gate)
        return [([[layer[start] for start in starts] for layer in per_layer], perplexity)
                for (per_layer, perplexity), (_, starts) in zip(runs, expanded)]

    @torch.inference_mode()
    def _run_units(self, token_lists: list[list[str]], batch_size: int, with_perplexity: bool,
                   gate: str = "forget") -> list[tuple[list, float]]:
        """Per sentence: ``gate``'s distances [layer][unit] over the units given, and perplexity."""
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
            # only real positions are read: in a length-sorted batch of 256 dev sentences, padding
            # is over half of the (B, T) grid
            output = self.model.read_packed(inputs.to(self.device), lengths)
            valid = output.valid.cpu()  # (T, B)
            distances = torch.zeros(self.n_layers, longest, len(batch))
            distances[:, valid] = (output.distances if gate == "forget" else output.input_distances).float().cpu()
            nll = None
            if with_perplexity:
                valid_targets = targets.t()[valid].to(self.device)
                nll = torch.full((longest, len(batch)), math.nan)
                # slices of NLL_SLICE_ROWS positions: the (rows, V) scores and their log-softmax stay
                # near 5 MB each for V = 10000, which keeps the service's peak memory low
                nll[valid] = torch.cat([
                    self.model.token_nll(output.hidden[start : start + NLL_SLICE_ROWS],
                                         valid_targets[start : start + NLL_SLICE_ROWS])
                    for start in range(0, valid_targets.size(0), NLL_SLICE_ROWS)
                ]).float().cpu()
            for row, index in enumerate(batch):
                n = len(encoded[row])
                per_layer = distances[:, 1 : n + 1, row].tolist()
                perplexity = math.exp(nll[: n + 1, row].mean().item()) if nll is not None else math.nan
                results[index] = (per_layer, perplexity)
        return results

    def _read(self, token_lists: Sequence[Sequence[str]], punctuation: str, batch_size: int,
              with_perplexity: bool, gate: str = "forget") -> tuple[list[list[int]], list[tuple[list, float]]]:
        """Run the model over the tokens it reads under ``punctuation``; per sentence, the positions
        of those tokens and (``gate``'s distances [layer][token read], perplexity)."""
        positions = [self.model_positions(tokens, punctuation) for tokens in token_lists]
        words = [[tokens[index] for index in kept] for tokens, kept in zip(token_lists, positions)]
        return positions, (self._run(words, batch_size, with_perplexity, gate) if token_lists else [])

    def layer_distances(
        self, token_lists: Sequence[Sequence[str]], batch_size: int = 64, punctuation: str | None = None,
        gate: str | None = None,
    ) -> list[list[list[float]]]:
        """Distances ``[sentence][layer][token]`` over the full token lists (see the module doc), from
        the master ``gate`` (``forget`` or ``input``; default: the model's)."""
        positions, runs = self._read(token_lists, punctuation or self.default_punctuation, batch_size, False,
                                     ParseOptions.of(gate=gate).gate or self.default_gate)
        return [
            [_fill(len(tokens), kept, layer) for layer in word_distances]
            for tokens, kept, (word_distances, _) in zip(token_lists, positions, runs)
        ]

    # --- the public calls ---------------------------------------------------------------

    def parse(self, sentence: SentenceLike | Sequence[SentenceLike], options: ParseOptions | None = None,
              **values: Any) -> ParseResult | list[ParseResult]:
        """Parse one sentence, or a list of them.

        A ``str`` is ONE sentence (tokenized here, not split: use ``parse_text`` for a text
        of several sentences); a list of ``str`` is ONE tokenized sentence; a ``Sentence``
        is one sentence.  Each gives one ``ParseResult``.  A list or tuple of those (token
        lists or ``Sentence`` objects) gives a list.  Options as for ``parse_many``.
        """
        if isinstance(sentence, (str, Sentence)):
            return self.parse_many([sentence], options, **values)[0]
        if isinstance(sentence, (list, tuple)):
            if sentence and all(isinstance(item, str) for item in sentence):
                for index, token in enumerate(sentence):
                    if any(char.isspace() for char in token):
                        raise ValueError(
                            f"parse() reads a list of strings as ONE tokenized sentence, but item {index + 1} "
                            f"({token[:40]!r}) contains whitespace: for several sentences use "
                            "parse_many([...]), for a text parse_text(...)"
                        )
                return self.parse_many([sentence], options, **values)[0]
            return self.parse_many(sentence, options, **values)
        raise TypeError(
            f"parse() takes a str (one sentence), a list of str (one tokenized sentence), a Sentence, "
            f"or a list of token lists / Sentences; got {type(sentence).__name__}"
        )

    def parse_text(self, text: str, options: ParseOptions | None = None, *, batch_size: int = 64,
                   with_perplexity: bool = True, **values: Any) -> list[ParseResult]:
        """Split ``text`` into sentences (as the parser's language splits them) and parse each;
        offsets are relative to ``text``.  Options as for ``parse_many``."""
        if not isinstance(text, str):
            raise TypeError(f"parse_text() takes a str, got {type(text).__name__}")
        resolved = self.resolve(options, **values)  # another language is refused before its text is split
        return self.parse_many(split_text(text, language=self.language), resolved, batch_size=batch_size,
                               with_perplexity=with_perplexity)

    def parse_iter(self, sentences: Iterable[SentenceLike], options: ParseOptions | None = None,
                   chunk_size: int = 1024, *, batch_size: int = 64, with_perplexity: bool = True,
                   **values: Any) -> Iterator[ParseResult]:
        """Parse a stream of sentences of any length, ``chunk_size`` at a time, in order.  A ``str``
        item with nothing but whitespace (a blank line of a file) is skipped, as ``onlstm parse
        --input-format lines`` skips it; any other sentence without tokens is a ``ValueError``."""
        if isinstance(sentences, (str, Sentence)):
            raise TypeError("parse_iter() takes an iterable of sentences; for one sentence use parse()")
        resolved = self.resolve(options, **values)  # once, before the first chunk is read
        iterator = (sentence for sentence in sentences if not (isinstance(sentence, str) and not sentence.strip()))
        while chunk := list(itertools.islice(iterator, chunk_size)):
            yield from self.parse_many(chunk, resolved, batch_size=batch_size, with_perplexity=with_perplexity)

    def predict(self, source: Any, output: Any, options: ParseOptions | None = None, **arguments: Any) -> Any:
        """Parse a file or stream into a file or stream, in input order (``models.predict.predict``:
        the input and output formats, worker processes, the options): what ``onlstm parse`` runs.

            parser.predict("article.txt", "trees.jsonl")
            parser.predict("sentences.txt", "trees.mrg", ParseOptions(layer=1), input_format="lines", format="ptb")
        """
        from .predict import predict  # the file engine builds on this module, not the other way round

        return predict(self, source, output, options, **arguments)

    def parse_many(
        self,
        sentences: Iterable[SentenceLike],
        options: ParseOptions | None = None,
        *,
        batch_size: int = 64,
        with_perplexity: bool = True,
        **values: Any,
    ) -> list[ParseResult]:
        """Parse sentences: each a ``str`` (one sentence, tokenized here), a token list or a ``Sentence``.

        Args:
            options: a ``ParseOptions`` (``None``: the model's defaults); keyword ``values``
                (``layer=1``, ``decoder="split"``, ``punctuation``, ``right_branching_bias``,
                ``all_layers``) are laid over it, validated as ``ParseOptions`` fields:
                layer: 0-based layer whose distances build the tree (default: best on dev).
                decoder: ``greedy`` (the paper's rule) or ``split`` (see ``models.trees.decoders``).
                punctuation: ``attach`` or ``model`` (see the module doc).
                right_branching_bias: strength of the linear right-branching prior the decoder
                applies to the distances (``models.trees.decoders.right_branching_prior``; 0: none;
                default: the model's, chosen on dev). ``distances`` in the results stay the model's.
            batch_size: sentences per model call.
            with_perplexity: ``False`` skips the vocabulary projection (faster; perplexity is NaN).
        Raises:
            OptionError: an option this model cannot take (its ``code`` is stable).
        """
        resolved = self.resolve(options, **values)
        inputs = [as_sentence(item, index, self.language) for index, item in enumerate(sentences)]
        token_lists = [list(sentence.tokens) for sentence in inputs]
        positions, runs = self._read(token_lists, resolved.punctuation or self.default_punctuation, batch_size,
                                     with_perplexity, resolved.gate or self.default_gate)
        return [
            self._result(sentence, kept, word_distances, perplexity, resolved)
            for sentence, kept, (word_distances, perplexity) in zip(inputs, positions, runs)
        ]

    def _result(self, sentence: Sentence, kept: list[int], word_distances: list[list[float]], perplexity: float,
                options: ParseOptions) -> ParseResult:
        tokens = list(sentence.tokens)
        decoder, bias = str(options.decoder), float(options.right_branching_bias or 0.0)
        if len(kept) == len(tokens):
            def decode(index: int) -> list[tuple[int, int]]:
                return decode_spans(word_distances[index], decoder, bias)
        else:
            read = set(kept)
            sides = marks.directions(tokens, sentence.offsets, [index not in read for index in range(len(tokens))])
            after_mark = follows_mark([index in read for index in range(len(tokens))]) \
                if options.punctuation_first else None

            def decode(index: int) -> list[tuple[int, int]]:
                values = word_distances[index] if after_mark is None else \
                    punctuation_first_distances(word_distances[index], after_mark)
                return marks.attach(decode_spans(values, decoder, bias), kept, sides, tokens)
        layer = int(options.layer or 0)
        layer_spans = LayerSpans(len(word_distances), decode)
        per_layer = [_fill(len(tokens), kept, distances) for distances in word_distances]
        words = [tokens[index] for index in kept]
        unknown = sum(1 for word in words if not self.knows(word))
        unk_share = unknown / len(words) if words else 0.0
        return ParseResult(
            tokens=tokens, perplexity=perplexity, distances=per_layer[layer], spans=layer_spans[layer],
            tree=spans_to_tree(tokens, layer_spans[layer]), layer=layer, layer_distances=per_layer,
            sentence=sentence, unk_share=unk_share, warnings=self._result_warnings(sentence, words, unknown),
            layer_spans=layer_spans, options=options, language=self.language, model=self.identity,
        )

    def knows(self, word: str) -> bool:
        """Whether the model reads ``word`` without ``<unk>``: the word, or each of its characters, in the vocabulary."""
        if self.unit == "words":
            return normalize(word, self.language) in self.vocab
        return all(normalize(unit, self.language) in self.vocab for unit in read_units(word))

    def _result_warnings(self, sentence: Sentence, words: Sequence[str], unknown: int) -> list[str]:
        """``_warnings``; for a character reader, one for tokens longer than it reads; for a release trained
        on tokens as given, one for text tokenized here."""
        warnings = _warnings(words, unknown, self.language)
        if self.unit == "characters":
            long_words = [word for word in words if len(characters(word)) > MAX_WORD_UNITS]
            if long_words:
                warnings.append(f"{len(long_words)} token(s) of more than {MAX_WORD_UNITS} characters (the first begins "
                                f"{long_words[0][:12]!r}); the model read the first {MAX_WORD_UNITS} characters of each: "
                                "give text, or tokens cut into words")
        if self.tokens_as_given and sentence.offsets is not None:  # text, tokenized here
            warnings.append(f"the model {self.name!r} was trained on tokens cut by its trainer's own segmenter, and "
                            "this text was tokenized by the package's rules: give the sentence as tokens cut the "
                            "same way (a token list, --input-format tokens, \"tokens\" over HTTP)")
        return warnings


def as_sentence(item: SentenceLike, index: int = 0, language: str = DEFAULT_LANGUAGE) -> Sentence:
    """One input sentence as a ``Sentence`` (a ``str`` tokenized as ``language`` is);
    ``index`` (0-based) names it in errors, counted from 1."""
    if isinstance(item, Sentence):
        sentence = item
    elif isinstance(item, str):
        sentence = Sentence.from_text(item, language=language)
    elif isinstance(item, (list, tuple)):
        sentence = Sentence.from_tokens(item)
    else:
        raise TypeError(
            f"sentence {index + 1} is a {type(item).__name__}; each sentence must be a str, "
            "a list of token strings, or a Sentence"
        )
    if not sentence.tokens:
        raise ValueError(f"sentence {index + 1} has no tokens")
    return sentence


def _warnings(words: Sequence[str], unknown: int, language: str = DEFAULT_LANGUAGE) -> list[str]:
    """What a user should know before trusting a parse: unknown words, another script."""
    warnings = []
    name = language_name(language)
    if words and unknown / len(words) >= UNKNOWN_WARNING_SHARE and len(words) >= 2:
        warnings.append(
            f"{unknown} of {len(words)} words are outside the model's vocabulary ({UNK}): the tree and the "
            f"perplexity say little about this sentence (is it {name}? are the words made up or misspelt?)"
        )
    if language not in LATIN_SCRIPT_LANGUAGES:
        return warnings
    letters = [char for word in words for char in word if char.isalpha()]
    latin = sum(1 for char in letters if _is_latin(char))
    if letters and latin / len(letters) < 0.5:
        warnings.append(f"the sentence is mostly not in the Latin alphabet; the model was trained on {name} text")
    return warnings


def _is_latin(char: str) -> bool:
    """Latin letters: Basic Latin, Latin-1, Latin Extended A and B, IPA, Latin Extended Additional."""
    code = ord(char)
    return code < 0x2B0 or 0x1D00 <= code <= 0x1EFF or 0x2C60 <= code <= 0x2C7F or 0xA720 <= code <= 0xA7FF


def _fill(n_tokens: int, kept: list[int], word_distances: list[float]) -> list[float]:
    """Distances over all tokens from the distances of the kept ones (see the module doc)."""
    if len(kept) == n_tokens:
        return list(word_distances)
    top = (max(word_distances) if word_distances else 0.0) + 1.0
    filled = [top] * n_tokens  # punctuation after the last word: above every word
    word_at = dict(zip(kept, word_distances))
    following = None
    for position in range(n_tokens - 1, -1, -1):
        if position in word_at:
            following = filled[position] = word_at[position]
        elif following is not None:
            filled[position] = following + _NUDGE
    return filled
