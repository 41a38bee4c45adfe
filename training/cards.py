"""Write the model card of a bundled language model from its release and the choice report of its runs.

    python -m onlstm.training.cards zh --release models/weights/zh.safetensors \\
        --report training/sweeps/results/languages-zh-cpu.json --out models/weights/zh.md

The card says what the model is, what it was trained on and under which terms, how its layer,
prior and checkpoint were chosen without trees, and its dev figures beside the four baselines
and the oracle (``python -m onlstm.training.choice``'s report, every seed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..models.checkpoint import load_release
from ..models.languages import LANGUAGES
from .choice import RULE, decoding_note

DATA = {
    "zh": ("the train split of the Sinica Treebank 3.0 sample (8,000 clauses of the Academia Sinica Balanced "
           "Corpus, Traditional characters), its words joined and cut again by jieba on Simplified characters",
           "CC BY-NC-SA 2.5 (the Sinica sample's README): **non-commercial use only**, share-alike, attribution "
           "to Academia Sinica; the model inherits these terms"),
    "es": ("the train split of CESS-ESP (488 files of news) and CoNLL-2002 Spanish (EFE news, 2000)",
           "CESS-ESP: for research (its README); CoNLL-2002: the shared task's terms (EFE text for research)"),
    "pt": ("the train split of Floresta Sintá(c)tica 7.4 and Mac-Morpho (Folha de São Paulo, 1994)",
           "distributed with NLTK with permission (the READMEs); check the corpora's terms before commercial use"),
    "nl": ("the train split of the Alpino treebank (Eindhoven corpus) and CoNLL-2002 Dutch (De Morgen, 2000)",
           "distributed with NLTK with permission (the READMEs); check the corpora's terms before commercial use"),
}


def _figures(report: dict) -> list[str]:
    baselines = ", ".join(f"{name} {value:.1f}" for name, value in report["baselines"].items())
    current = report.get("rule") == RULE
    shipped = _shipped_rows(report)
    first = any(row.get("punctuation_first") for row in report["runs"]) and current
    characters = current and all(row.get("unit") == "characters" for row in report["runs"])
    where = ("the input gate's bottom layer, the split decoder, no prior (a character reader)" if characters
             else "layer 1, the prior's sign from that layer's lean, strength 0.4")
    lines = [f"Dev split ({report['dev_sentences']} sentences, words only, sentence-level F1). With the rule the "
             f"release ships ({where}"
             + (", punctuation first" if first else "") + "; model alone: "
             + ("punctuation first, no prior" if first else "no prior") + "): "
             + ", ".join(f"{Path(row['run']).name} {row['f1']:.1f} (model alone {row['model_alone_f1']:.1f})"
                         for row in shipped) + ".", "",
             ("The rule's choices per run (`python -m onlstm.training.choice`), with the oracle on the same trees:"
              if current else
              "The first rule's choices (v1: the layer of most agreement with the run at half its step; "
              "`python -m onlstm.training.choice`), with the oracle on the same trees:"), "",
             "| run | checkpoint | layer | prior | tree-free F1 | model alone | oracle F1 (where) | held-out perplexity |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in report["runs"]:
        oracle = row.get("oracle", {})
        lines.append(f"| {Path(row['run']).name} | step {row['checkpoint_step']} | {row['layer']}{decoding_note(row)} | "
                     f"{row['right_branching_bias']:+.1f}{', punctuation first' if row.get('punctuation_first') else ''} | "
                     f"{row['tree_free_f1']:.1f} | {row['model_alone_f1']:.1f} | "
                     f"{row['oracle_f1']:.1f} (step {oracle.get('checkpoint_step')}, layer {oracle.get('layer')}, "
                     f"prior {oracle.get('right_branching_bias')}) | {row['heldout_perplexity']:.1f} |")
    summary = report["summary"]
    best_trivial = max(value for name, value in report["baselines"].items() if not name.startswith("random"))
    mean = summary["tree_free_f1"]["mean"]
    lines += ["", f"Baselines: {baselines}. Mean over {len(report['runs'])} run(s): "
              f"{'the rule shipped' if current else 'first rule'} "
              f"{mean:.1f} (spread {summary['tree_free_f1']['spread']:.1f}), oracle {summary['oracle_f1']['mean']:.1f}; "
              f"**{mean - best_trivial:+.1f} against the best trivial baseline ({best_trivial:.1f})**."]
    if "simplified" in report:
        for row in report["simplified"]:
            lines.append(f"Script ({Path(row['run']).name}): dev as written (Traditional) {row['traditional_f1']:.1f}, "
                         f"converted to Simplified {row['simplified_f1']:.1f} ({row['words_changed']} words changed).")
    return lines


def _shipped_rows(report: dict) -> list[dict]:
    """``{run, f1, model_alone_f1}`` per run with the rule the release ships: a report written by that
    rule is its own; an older one (the first rule, v1) carries them beside it (``--shipped``), or has none."""
    if report.get("shipped"):
        return report["shipped"]
    if report.get("rule") != RULE:
        return []
    return [{"run": row["run"], "f1": row["tree_free_f1"], "model_alone_f1": row["model_alone_f1"]}
            for row in report["runs"]]


def _shipped(report: dict) -> list[float]:
    """Dev F1 of each run with the rule the release ships, else the report's own choice."""
    return [row["f1"] for row in _shipped_rows(report)] or [row["tree_free_f1"] for row in report["runs"]]


def _quality(report: dict) -> list[str]:
    """The one line a user must read first: where the model stands against the trivial trees."""
    best_name, best = max(((name, value) for name, value in report["baselines"].items()
                           if not name.startswith("random")), key=lambda item: item[1])
    shipped = _shipped(report)
    mean = sum(shipped) / len(shipped)
    verdict = ("above" if mean > best else "**below**")
    return ["## Quality, first",
            f"On the dev trees its trees score {mean:.1f} sentence F1 (mean of {len(report['runs'])} seed(s), "
            f"choices made without trees), {verdict} the {best_name} baseline ({best:.1f}): "
            + ("the model's trees are worth more than the trivial ones there." if mean > best else
               "on this treebank the trivial tree is the better guess; this model is a starting point for "
               "training on more text of your own (`onlstm train --language ... --init-from`), not a finished parser.")]


def _prior(strength: float) -> str:
    """How the distances meet the prior, in words."""
    if strength:
        return f", after a linear prior of strength {strength:+.1f} (`right_branching_bias`; negative leans left)"
    return ", with no prior (`right_branching_bias` 0: the model's own distances)"


def _reads_characters(metadata: dict) -> bool:
    return metadata.get("unit") == "characters"


def _reads(metadata: dict) -> str:
    """What a character reader reads, in words (nothing for a word reader)."""
    if not _reads_characters(metadata):
        return ""
    return ("It reads each word a character at a time (a run of Latin letters or digits is one unit); a word's "
            "distance is the one as its first character is read, so the trees are over words and the perplexity is "
            "per character. ")


def _data(language: str, metadata: dict) -> str:
    data = DATA[language][0]
    if _reads_characters(metadata):
        return data.split(", its words joined")[0] + ", each word cut into characters"
    return data


def card(language: str, release_path: Path, report: dict) -> str:
    release = load_release(release_path)
    metadata = release.metadata
    choice = metadata.get("choice", {})
    data, terms = _data(language, metadata), DATA[language][1]
    name = LANGUAGES[language].name
    return "\n".join([
        f"# Model card: `{metadata.get('name')}` (the bundled {name} model)", "",
        f"File: `models/weights/{release_path.name}` (fp16, {release_path.stat().st_size / 1e6:.1f} MB). "
        f"`Parser.load(language=\"{language}\")`, `POST /parse` with `\"language\": \"{language}\"`.", "",
        "## Terms", f"{terms}.", "", *_quality(report), "",
        "## What it is",
        f"An ON-LSTM language model trained on {name} plain text without any tree; its layer-{metadata['default_layer']} "
        f"master-{metadata.get('default_gate', 'forget')}-gate distances give binary trees with the "
        f"{metadata.get('default_decoder', 'greedy')} top-down rule"
        + _prior(float(metadata["default_right_branching_bias"]))
        + (", splitting first where the text has punctuation between two words (`punctuation_first`; "
           "`\"punctuation_first\": false` turns it off). " if metadata.get("default_punctuation_first") else ". ")
        + _reads(metadata) + f"Text: {metadata.get('tokenizer')}; normalisation: {metadata.get('normalization')}.", "",
        "## Training",
        f"- Data: {data}; {metadata['training_tokens']:,} tokens, punctuation removed, "
        f"{100 * metadata['training_unk_share']:.1f}% outside the vocabulary of "
        f"{len(release.vocab) - 2:,} {'characters' if _reads_characters(metadata) else 'words'}. "
        "Dev and test never read.",
        f"- Recipe: the `language` preset (3 layers of {metadata['train_config']['model']['hidden_size']}, "
        f"embedding 200, Adam, an average of the weights), {metadata['steps']} steps, seed {metadata.get('seed')}, "
        f"{metadata['training_minutes']} minutes on {metadata['device']} (one thread, beside other runs).",
        "- Which run: of the seeds in the table below, the one with the lowest held-out perplexity (no tree read).",
        f"- Command: `onlstm train --language {language} --corpora {metadata['training_data'][0]} --out runs/{language} "
        f"--seed {metadata.get('seed')}` ({' '.join(f'--set {key}' for key in _changed(metadata))}).", "",
        "## Chosen without trees",
        f"{choice.get('rule', '')}: checkpoint of step {choice.get('checkpoint_step')} (held-out perplexity "
        f"{choice.get('heldout_perplexity', 0):.1f} on {choice.get('heldout_sentences')} held-out training sentences), "
        f"agreement per layer {choice.get('agreement_per_layer')} (with step {choice.get('compared_with_step')}), "
        f"lean per layer {choice.get('lean_per_layer')}. No gold tree was read for any of these. The agreement "
        "chose the layer under the first rule (v1); it chose the top layer on English too, 25.4 dev F1 where "
        "layer 1 gives 54.1, so the layer is now English's middle one"
        + ("; a character reader takes its input gate's bottom layer, the split decoder, with no prior."
           if _reads_characters(metadata) else ".")
        , "",
        "## Evaluation", *_figures(report), "",
    ])


def _changed(metadata: dict) -> list[str]:
    config = metadata["train_config"]
    changed = [f"max_steps={config['max_steps']}"]
    if config["model"]["hidden_size"] != 400:  # the language preset's
        changed.append(f"model.hidden_size={config['model']['hidden_size']}")
    if config["model"]["vocab_size"] != 10000:
        changed.append(f"model.vocab_size={config['model']['vocab_size']}")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m onlstm.training.cards", description=__doc__.split("\n\n")[0])
    parser.add_argument("language")
    parser.add_argument("--release", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shipped", type=Path, help="JSON {run: {f1, model_alone_f1}} of the rule the release ships")
    arguments = parser.parse_args(argv)
    report = json.loads(arguments.report.read_text())
    if arguments.shipped:  # {run: {"f1", "model_alone_f1", ...}} of the rule the releases ship
        shipped = json.loads(arguments.shipped.read_text())
        names = [Path(row["run"]).name for row in report["runs"]]
        report["shipped"] = [{"run": name, **shipped[name]} for name in names if name in shipped]
    arguments.out.write_text(card(arguments.language, arguments.release, report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
