"""ParserPool and the language of a Parser (issue 25): tiny releases marked es/nl stand in for the
real weights, trained apart; English is the bundled release or the tiny model."""

from __future__ import annotations

import pickle
import threading

import pytest

from onlstm.models import languages
from onlstm.models.languages import LanguageError, bundled_languages
from onlstm.models.options import OptionError, ParseOptions
from onlstm.models.parser import Parser
from onlstm.models.pool import ParserPool

from ..releases import make_release


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("releases")
    return {language: make_release(folder, language) for language in ("en", "es", "nl")} | {
        "unmarked": make_release(folder, None)}


def test_a_release_records_its_language_and_results_carry_it(releases):
    spanish = Parser.load(releases["es"], language="es")
    assert spanish.language == "es"
    assert spanish.identity == {"name": "onlstm-tiny-es", "version": spanish.version, "language": "es"}
    result = spanish.parse(["el", "gato", "duerme"])
    assert result.language == "es" and result.model == spanish.identity
    assert result.to_dict()["language"] == "es"
    assert spanish.resolve().language == "es"
    assert Parser.load(releases["unmarked"]).language == "en"  # releases before issue 25 are English


def test_load_refuses_a_release_of_another_language(releases):
    with pytest.raises(LanguageError) as raised:
        Parser.load(releases["es"], language="nl")
    error = raised.value
    assert isinstance(error, OptionError)
    assert (error.code, error.option, error.language, error.available) == ("language_mismatch", "language", "nl", ("es",))
    assert "Parser.load" not in str(error) and "'es'" in str(error) and "Dutch" in str(error)
    with pytest.raises(LanguageError) as raised:
        Parser.load(releases["unmarked"], language="es")
    assert raised.value.code == "language_mismatch" and raised.value.available == ("en",)
    with pytest.raises(LanguageError) as raised:
        Parser.load(releases["es"], language="spanish")
    assert raised.value.code == "unknown_language"


def test_load_without_a_path_takes_the_bundled_model_of_the_language(monkeypatch):
    monkeypatch.setitem(languages.LANGUAGES, "fr", languages.Language("fr", "French", "fr.safetensors"))  # no file
    assert Parser.load(language="en").path == languages.WEIGHTS / "default.safetensors"
    unbundled = next(code for code in languages.LANGUAGES if code not in bundled_languages())
    with pytest.raises(LanguageError) as raised:
        Parser.load(language=unbundled)
    assert raised.value.code == "language_unavailable" and raised.value.available == bundled_languages()
    with pytest.raises(LanguageError) as raised:
        Parser.load(language="xx")
    assert raised.value.code == "unknown_language"


def test_a_parser_refuses_another_language_naming_its_own(releases):
    english = Parser.load(releases["en"])
    with pytest.raises(LanguageError) as raised:
        english.parse("el gato", language="es")
    error = raised.value
    assert (error.code, error.available) == ("language_unavailable", ("en",))
    assert error.message_for("--language").startswith("--language must be 'en'")
    assert "Parser.load(language='es')" in str(error)
    for call in (lambda: english.parse_text("El gato duerme.", language="es"),
                 lambda: english.resolve(ParseOptions(language="es"))):
        with pytest.raises(LanguageError):
            call()
    with pytest.raises(LanguageError) as raised:
        english.resolve(language="xx")
    assert raised.value.code == "unknown_language"
    assert english.parse("the cat", language="en").language == "en"


@pytest.mark.parametrize("bad", ["EN", "eng", "e", 1, True, ""])
def test_the_language_option_is_an_iso_code(bad):
    with pytest.raises(OptionError) as raised:
        ParseOptions(language=bad)
    assert (raised.value.code, raised.value.option) == ("invalid_language", "language")


def test_language_errors_pickle():
    error = LanguageError("language_unavailable", "es", ("en",), "must be 'en'")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.code, copy.language, copy.available, str(copy)) == (
        LanguageError, error.code, "es", ("en",), str(error))


def test_a_pool_dispatches_on_the_language(releases):
    pool = ParserPool(["en", "es", "nl"], checkpoints=releases_without_unmarked(releases))
    assert pool.languages == ("en", "es", "nl") and pool.loaded == pool.languages  # eager, LANGUAGES order
    assert pool.default_language == "en"
    assert pool.parser("en").path == releases["en"]  # a checkpoint replaces the bundled model
    sentence = ["de", "kat", "slaapt"]
    for language in ("es", "nl"):
        result = pool.parse_many([sentence], ParseOptions(language=language))[0]
        alone = Parser.load(releases[language]).parse(sentence)
        assert (result.language, result.model["name"], result.spans) == (language, f"onlstm-tiny-{language}",
                                                                         alone.spans)
        assert pool.resolve(language=language).language == language
    assert pool.parse(sentence).language == "en"
    assert [result.language for result in pool.parse_text("De kat slaapt. De hond blaft.", language="nl")] == ["nl", "nl"]


def releases_without_unmarked(releases):
    return {language: path for language, path in releases.items() if language != "unmarked"}


def test_a_pool_refuses_what_it_does_not_serve(releases, monkeypatch):
    monkeypatch.setitem(languages.LANGUAGES, "fr", languages.Language("fr", "French", "fr.safetensors"))  # no file
    pool = ParserPool(["es"], checkpoints={"es": releases["es"]})
    assert pool.default_language == "es" and pool.languages == ("es",)
    with pytest.raises(LanguageError) as raised:
        pool.parse_many([["a"]], language="nl")
    assert (raised.value.code, raised.value.available) == ("language_unavailable", ("es",))
    with pytest.raises(LanguageError) as raised:
        pool.parser("xx")
    assert raised.value.code == "unknown_language"
    unbundled = next(code for code in languages.LANGUAGES if code not in bundled_languages())
    with pytest.raises(LanguageError) as raised:  # checked when built, not at first use
        ParserPool([unbundled], lazy=True)
    assert raised.value.code == "language_unavailable" and raised.value.available == bundled_languages()
    with pytest.raises(LanguageError) as raised:
        ParserPool(checkpoints={"es": releases["nl"]})  # a checkpoint of another language
    assert raised.value.code == "language_mismatch"


def test_a_lazy_pool_loads_each_language_once_on_first_use(releases, monkeypatch):
    pool = ParserPool(checkpoints=releases_without_unmarked(releases), lazy=True)
    assert pool.loaded == ()
    loads = []
    real_load = ParserPool._load

    def counting_load(self, language):
        loads.append(language)
        return real_load(self, language)

    monkeypatch.setattr(ParserPool, "_load", counting_load)
    got = []
    threads = [threading.Thread(target=lambda: got.append(pool.parser("es"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == ["es"] and len({id(parser) for parser in got}) == 1
    assert pool.loaded == ("es",)
    assert pool.parse_many([["a", "b"]], language="nl")[0].language == "nl"
    assert pool.loaded == ("es", "nl") and loads == ["es", "nl"]


def test_a_failed_lazy_load_is_tried_again(tmp_path, releases):
    broken = tmp_path / "es.safetensors"
    broken.write_bytes(b"not a release")
    pool = ParserPool(["es"], checkpoints={"es": broken}, lazy=True)
    from onlstm.models.checkpoint import CheckpointError

    with pytest.raises(CheckpointError):
        pool.parser("es")
    broken.write_bytes(releases["es"].read_bytes())
    assert pool.parser("es").language == "es"


def test_a_pool_of_loaded_parsers(releases):
    english, spanish = Parser.load(releases["en"]), Parser.load(releases["es"])
    pool = ParserPool.of(spanish, english)
    assert pool.languages == ("en", "es") and pool.parser("es") is spanish
    with pytest.raises(ValueError):
        ParserPool.of(english, Parser.load(releases["unmarked"]))


def test_the_bundled_pool_serves_what_is_bundled():
    pool = ParserPool(lazy=True)
    assert pool.languages == bundled_languages() and "en" in pool.languages
    assert pool.parse(["the", "cat", "sat"]).language == "en"


def test_text_is_split_and_tokenized_as_the_parser_language(releases):
    from onlstm.models.text.sentences import split_text

    text = "¿Qué hora es? Son las tres."
    spanish = Parser.load(releases["es"])
    results = spanish.parse_text(text)
    assert [result.tokens for result in results] == [list(sentence.tokens) for sentence in split_text(text, language="es")]
    assert results[0].tokens[0] == "¿" and [result.language for result in results] == ["es", "es"]
    assert spanish.parse("¿Qué hora es?").tokens[:2] == ["¿", "Qué"]  # one sentence as a str: the same tokenizer


def test_warnings_name_the_parser_language(tmp_path):
    chinese = Parser.load(make_release(tmp_path, "zh"))
    result = chinese.parse(["我们", "今天", "去", "北京"])
    assert result.language == "zh"
    assert not any("Latin alphabet" in warning for warning in result.warnings)  # Chinese is not written in it
    assert any("is it Chinese?" in warning for warning in result.warnings)  # every word is unknown to the tiny model
