"""Rebuild the bundled quality-classifier training samples from ../shared/corpora (run from the repo root).

positive/: long-form, edited text standing in for "pages used as references by Wikipedia": the Debian
Policy Manual, the Debian FAQ (English) and Botchan (Project Gutenberg header and footer removed), cut at
line boundaries into documents of about 2,000 characters; plus the English pages (lid.176 score >= 0.5)
of the Common Crawl sample whose text is mostly prose (see `prose_share`).
negative/: the English Common Crawl pages that are mostly not prose: navigation, link lists, tables.
The prose rule follows C4's "keep lines that end in terminal punctuation" (Raffel et al. 2020), counted
by characters: a page is prose when >= 80% of its characters are in such lines of >= 5 words, and
low-quality when < 30% are; pages in between are left out.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from filters.fasttext_model import load_fasttext_model, packaged_lid_model_path, predict_top, single_line

SHARED = Path("../shared/corpora")
OUT = Path("data/samples/quality")
CHUNK_CHARS = 2000
MIN_CHARS = 200
PROSE_MIN, NON_PROSE_MAX = 0.8, 0.3
TERMINAL_PUNCTUATION = (".", "!", "?", '"', "'")


def chunks(text: str) -> list[str]:
    """Consecutive lines grouped into documents of about CHUNK_CHARS, cut at a line boundary."""
    out, current = [], []
    size = 0
    for line in text.splitlines():
        current.append(line)
        size += len(line) + 1
        if size >= CHUNK_CHARS:
            out.append("\n".join(current).strip())
            current, size = [], 0
    out.append("\n".join(current).strip())
    return [c for c in out if len(c) >= MIN_CHARS]


def prose_share(text: str) -> float:
    """Share of the characters of non-empty lines that sit in sentence-like lines."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    total = sum(len(line) for line in lines)
    prose = sum(len(line) for line in lines if line.endswith(TERMINAL_PUNCTUATION) and len(line.split()) >= 5)
    return prose / total if total else 0.0


def gutenberg_body(text: str) -> str:
    start = text.index("*** START OF")
    end = text.index("*** END OF")
    return text[text.index("\n", start) + 1 : end]


def read_gz(path: Path) -> str:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.read()


def write(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def main() -> None:
    sources = {
        "debian-policy": read_gz(SHARED / "quality/debian-policy_4.6.2.0_policy.txt.gz"),
        "debian-faq": read_gz(SHARED / "langid/debian-faq.en.txt.gz"),
        "botchan": gutenberg_body(read_gz(SHARED / "quality/botchan.txt.gz")),
    }
    for name, text in sources.items():
        records = [{"id": f"{name}-{i:04d}", "text": c, "source": name} for i, c in enumerate(chunks(text))]
        write(OUT / "positive" / f"{name}.jsonl.gz", records)
    with gzip.open(SHARED / "web/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz", "rt") as f:
        docs = [json.loads(line) for line in f]
    docs = [d for d in docs if d["text"].strip()]
    model = load_fasttext_model(packaged_lid_model_path())
    predictions = predict_top(model, [single_line(d["text"]) for d in docs])
    english = [
        {"id": d["id"], "text": d["text"], "source": "cc-2019-30"}
        for d, (language, score) in zip(docs, predictions, strict=True)
        if language == "en" and score >= 0.5
    ]
    write(
        OUT / "positive" / "cc-2019-30-en-prose.jsonl.gz", [d for d in english if prose_share(d["text"]) >= PROSE_MIN]
    )
    write(
        OUT / "negative" / "cc-2019-30-en-non-prose.jsonl.gz",
        [d for d in english if prose_share(d["text"]) < NON_PROSE_MAX],
    )


if __name__ == "__main__":
    main()
