"""The text front door's speed: sentence splitting and tokenization of raw text.

* 20,000 Brown sentences, detokenized into running text (one paragraph per 20 sentences),
  split and tokenized by ``onlstm.models.text.split_text``; its sentence count against the
  corpus's own (Brown marks every sentence).
* One multi-megabyte text (the ABC news corpus, both files, about 4 MB) split into sentences.
* pySBD, the rule-based splitter the Golden Rules come with, on the same inputs where it is
  installed (``pip install pysbd``), paragraph by paragraph, within a time budget: its rate
  is extrapolated when the budget runs out before the input does.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from onlstm.models.text.sentences import sentence_spans, split_text
from onlstm.training.corpora import default_data_dir, read_brown

PYSBD_BUDGET_SECONDS = 60.0


def brown_paragraphs(count: int = 20_000, per_paragraph: int = 20) -> tuple[list[str], int]:
    """Running text from Brown's tokens (spaces before punctuation removed), and its sentence count."""
    folder = default_data_dir() / "brown"
    sentences: list[str] = []
    for path in sorted(folder.glob("c[a-r][0-9][0-9]")):
        for tokens in read_brown(path):
            text = " ".join(tokens)
            text = re.sub(r" ([.,;:!?')])", r"\1", text).replace("`` ", '"').replace(" ''", '"')
            sentences.append(text)
            if len(sentences) == count:
                break
        if len(sentences) == count:
            break
    paragraphs = [" ".join(sentences[start : start + per_paragraph]) for start in range(0, len(sentences), per_paragraph)]
    return paragraphs, len(sentences)


def abc_text() -> str:
    folder = default_data_dir() / "abc"
    return "\n\n".join(Path(folder, name).read_text(encoding="latin-1") for name in ("rural.txt", "science.txt"))


def time_ours(paragraphs: list[str]) -> dict:
    started = time.perf_counter()
    sentences = sum(len(split_text(paragraph)) for paragraph in paragraphs)
    elapsed = time.perf_counter() - started
    return {"seconds": round(elapsed, 2), "sentences": sentences}


def time_pysbd(paragraphs: list[str]) -> dict | None:
    try:
        import pysbd
    except ImportError:
        return None
    segmenter = pysbd.Segmenter(language="en", clean=False)
    started, done, sentences = time.perf_counter(), 0, 0
    for paragraph in paragraphs:
        sentences += len(segmenter.segment(paragraph))
        done += len(paragraph)
        if time.perf_counter() - started > PYSBD_BUDGET_SECONDS:
            break
    elapsed = time.perf_counter() - started
    total = sum(len(paragraph) for paragraph in paragraphs)
    return {"seconds": round(elapsed, 2), "sentences": sentences, "share_done": round(done / total, 3),
            "extrapolated_seconds": round(elapsed * total / max(done, 1), 1)}


def run(quick: bool = False) -> dict:
    paragraphs, n_brown = brown_paragraphs(2_000 if quick else 20_000)
    text = abc_text()
    if quick:
        text = text[:500_000]
    result = {"brown_sentences": n_brown, "brown_chars": sum(map(len, paragraphs)), "abc_chars": len(text)}
    result["ours_brown"] = time_ours(paragraphs)
    started = time.perf_counter()
    spans = sentence_spans(text)
    result["ours_abc"] = {"seconds": round(time.perf_counter() - started, 2), "sentences": len(spans)}
    result["pysbd_brown"] = time_pysbd(paragraphs)
    result["pysbd_abc"] = time_pysbd([text])  # one multi-megabyte text, as a user would pass it
    return result


def table(result: dict) -> list[str]:
    lines = [f"Text front door: {result['brown_sentences']} Brown sentences ({result['brown_chars'] / 1e6:.1f} MB), "
             f"ABC text {result['abc_chars'] / 1e6:.1f} MB"]
    ours = result["ours_brown"]
    lines.append(f"  ours, split + tokenize Brown: {ours['seconds']} s, {ours['sentences']} sentences found "
                 f"({result['brown_sentences'] / max(ours['seconds'], 1e-9):.0f} sentences/s)")
    lines.append(f"  ours, split ABC: {result['ours_abc']['seconds']} s, {result['ours_abc']['sentences']} sentences")
    for name in ("pysbd_brown", "pysbd_abc"):
        figures = result[name]
        if figures is None:
            lines.append(f"  {name}: pysbd is not installed")
        else:
            lines.append(f"  {name}: {figures['seconds']} s for {figures['share_done']:.0%} of the input "
                         f"(whole input: about {figures['extrapolated_seconds']} s), {figures['sentences']} sentences")
    return lines
