"""Text pasted from the web carries characters no reader sees: a byte-order mark at the start of a
file, zero-width spaces where a line may break, soft hyphens inside long words, direction marks.
A sentence with them is the same sentence: the same tokens (as written, offsets into the text as
given), the same tree and the same perplexity, in every language."""

from __future__ import annotations

import pytest

from onlstm.models.languages import bundled_languages
from onlstm.models.parser import Parser
from onlstm.models.text import split_text, tokenize_with_offsets
from onlstm.models.text.vocab import INVISIBLE, ZERO_WIDTH_JOINER, is_punctuation, normalize, visible

# (clean, the same with invisible characters): a byte-order mark first, a zero-width space for a
# space and one before a full stop, a soft hyphen inside a word, a left-to-right mark before a word
SENTENCES = {
    "en": ("The international deal was signed in Geneva. It took two years.",
           "\ufeffThe inter\u00adnational\u200bdeal was signed in \u200eGeneva\u200b. It took two years."),
    "es": ("El acuerdo internacional fue firmado en Ginebra. Tardó dos años.",
           "\ufeffEl acuerdo inter\u00adnacional\u200bfue firmado en \u200eGinebra\u200b. Tardó dos años."),
    "pt": ("O acordo internacional foi assinado em Genebra. Levou dois anos.",
           "\ufeffO acordo inter\u00adnacional\u200bfoi assinado em \u200eGenebra\u200b. Levou dois anos."),
    "nl": ("De internationale overeenkomst werd in Genève getekend. Het duurde twee jaar.",
           "\ufeffDe inter\u00adnationale\u200bovereenkomst werd in \u200eGenève\u200b getekend. Het duurde twee jaar."),
    "zh": ("北京是中国的首都。上海也很大。", "\ufeff北京\u200b是中国的首都\u200e。\u200b上海也很大。"),
}


@pytest.mark.parametrize("language", sorted(SENTENCES))
def test_invisible_characters_change_neither_tokens_nor_offsets(language):
    clean, dirty = SENTENCES[language]
    clean_sentences, dirty_sentences = split_text(clean, language=language), split_text(dirty, language=language)
    assert len(dirty_sentences) == len(clean_sentences) == 2
    for clean_sentence, dirty_sentence in zip(clean_sentences, dirty_sentences):
        assert [visible(token) for token in dirty_sentence.tokens] == list(clean_sentence.tokens)
        for token, (start, end) in zip(dirty_sentence.tokens, dirty_sentence.offsets):
            assert dirty[start:end] == token  # as written: the soft hyphen stays in its word
            assert "\u200b" not in token and "\ufeff" not in token
    assert dirty_sentences[0].tokens[0] == clean_sentences[0].tokens[0] and dirty_sentences[0].offsets[0][0] == 1


@pytest.mark.parametrize("language", sorted(SENTENCES))
def test_a_sentence_with_invisible_characters_parses_as_the_clean_one(language):
    if language not in bundled_languages():
        pytest.skip(f"no bundled {language} model")
    parser = Parser.load(language=language)
    clean, dirty = SENTENCES[language]
    for clean_result, dirty_result in zip(parser.parse_text(clean), parser.parse_text(dirty), strict=True):
        assert dirty_result.spans == clean_result.spans
        assert dirty_result.unk_share == clean_result.unk_share
        assert dirty_result.perplexity == pytest.approx(clean_result.perplexity, rel=1e-5)
        assert dirty_result.distances == pytest.approx(clean_result.distances, abs=1e-5)


def test_the_model_reads_words_without_invisible_characters():
    assert normalize("inter\u00adnational") == normalize("international") == "international"
    assert normalize("\ufeffThe") == "the" and normalize("\u200eGeneva\u200f") == "geneva"
    assert normalize("\u202aabc\u202c", "zh") == "abc" and normalize("北\u200b京", "zh") == normalize("北京", "zh")
    assert normalize("👨\u200d👩") == "👨\u200d👩"  # the joiner holds an emoji sequence together: kept
    assert ZERO_WIDTH_JOINER not in INVISIBLE
    assert is_punctuation(",\u200e") and not is_punctuation("\u200e")


def test_text_of_invisible_characters_only_has_no_sentence():
    assert split_text("\ufeff\u200b \u200e\u00ad\n\u200b") == []
    assert tokenize_with_offsets("a \u200e b") == [("a", 0, 1), ("b", 4, 5)]
