"""The model cards say which rule produced the figures they show and the command that trains the model."""

from onlstm.training import cards
from onlstm.training.choice import RULE


def report(rule: str) -> dict:
    row = {"run": "runs/lang/es-s1", "checkpoint_step": 1500, "layer": 1, "right_branching_bias": 0.4,
           "tree_free_f1": 25.6, "model_alone_f1": 18.3, "oracle_f1": 32.7, "heldout_perplexity": 129.6,
           "oracle": {"checkpoint_step": 1500, "layer": 0, "right_branching_bias": 0.8}}
    return {"rule": rule, "runs": [row], "dev_sentences": 577,
            "baselines": {"left-branching": 6.7, "right-branching": 31.0, "balanced": 21.2, "random (3 seeds)": 17.5},
            "summary": {"tree_free_f1": {"mean": 25.6, "spread": 0.0}, "oracle_f1": {"mean": 32.7, "spread": 0.0}}}


def test_a_report_of_the_shipped_rule_is_its_own_shipped_row():
    text = "\n".join(cards._figures(report(RULE)))
    assert "es-s1 25.6 (model alone 18.3)" in text
    assert "first rule" not in text and "the rule shipped 25.6" in text
    assert "**-5.4 against the best trivial baseline (31.0)**" in text


def test_a_first_rule_report_says_so_and_takes_the_shipped_figures_beside_it():
    older = report("checkpoint: lowest held-out perplexity; layer: most agreement ...")
    older["shipped"] = [{"run": "es-s1", "f1": 26.3, "model_alone_f1": 23.3}]
    text = "\n".join(cards._figures(older))
    assert "es-s1 26.3 (model alone 23.3)" in text and "The first rule's choices (v1" in text
    assert cards._shipped(older) == [26.3]


def test_the_command_names_every_setting_that_differs_from_the_preset():
    config = {"max_steps": 1500, "model": {"vocab_size": 10000, "hidden_size": 600}}
    assert cards._changed({"train_config": config}) == ["max_steps=1500", "model.hidden_size=600"]
    config["model"]["hidden_size"] = 400
    assert cards._changed({"train_config": config}) == ["max_steps=1500"]


def test_a_report_whose_rule_splits_at_punctuation_first_says_so_in_the_sentence_and_the_table():
    first = report(RULE)
    first["runs"][0]["punctuation_first"] = True
    text = "\n".join(cards._figures(first))
    assert "strength 0.4, punctuation first; model alone: punctuation first, no prior)" in text
    assert "| 1 | +0.4, punctuation first | 25.6 |" in text
    plain = "\n".join(cards._figures(report(RULE)))
    assert "punctuation first" not in plain and "model alone: no prior" in plain


def test_a_character_readers_card_says_it_reads_characters_without_a_prior():
    readers = report(RULE)
    readers["runs"][0].update(unit="characters", right_branching_bias=0.0, punctuation_first=True)
    text = "\n".join(cards._figures(readers))
    assert "(the input gate's bottom layer, the split decoder, no prior (a character reader), punctuation first;" in text
    assert "| 1 | +0.0, punctuation first | 25.6 |" in text  # the rows of a report before the gate was recorded
    readers["runs"][0].update(gate="input", decoder="split", layer=0)
    assert "| 0 (input gate, split) | +0.0, punctuation first | 25.6 |" in "\n".join(cards._figures(readers))
    assert cards._reads({"unit": "characters"}).startswith("It reads each word a character at a time")
    assert cards._reads({}) == "" and cards._prior(0.0).startswith(", with no prior")
    assert cards._prior(0.4) == ", after a linear prior of strength +0.4 (`right_branching_bias`; negative leans left)"
    assert cards._data("zh", {"unit": "characters"}).endswith("Traditional characters), each word cut into characters")
    assert "jieba" in cards._data("zh", {})
