"""Language-ID + quality scoring throughput: inside `llamaprep prepare` vs fastText called directly.

Both sides run on one core over the same documents (default: the first 5,000 of webmix shard 0, copied
to a temporary JSONL.gz file first), from reading that file to the scores:
- direct: one Python process reads the file and calls fastText on batches of 256 texts, with the
  preprocessing the stages use (newlines to spaces for lid.176, `quality_text` for the quality model);
- pipeline: `llamaprep prepare --stages langid,quality` in this process (the in-process runner, one
  worker), thresholds at 0 so every document is scored and kept, shards and manifest written.
The pipeline figure includes everything `prepare` adds (job start-up, model loading, reading the file,
Document objects, writing the per-file output and the final shard); the ratio pipeline/direct is the
share of the direct speed the pipeline keeps.
"Per core" is documents per CPU-second of this process (`time.process_time`, all its threads), which
stays meaningful on a shared machine where wall-clock time depends on other load; wall time is printed
too.

Run from the repo root:
    python benchmarks/langid_quality_throughput.py [--docs 5000] [--input FILE.jsonl.gz] [--quality-model M]
Without --quality-model, the demo model is trained first from data/samples/quality (not timed).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import fasttext  # noqa: E402

import pipelines.prepare  # noqa: E402,F401  (imported before timing, as fastText is for the direct side)
from filters.document import Document  # noqa: E402
from filters.fasttext_model import packaged_lid_model_path  # noqa: E402
from filters.prepared import read_manifest  # noqa: E402
from filters.quality import quality_text  # noqa: E402
from filters.quality_training import train_quality_model  # noqa: E402
from pipelines.cli import main as llamaprep  # noqa: E402
from pipelines.phases import STAGE_BATCH  # noqa: E402

DEFAULT_INPUTS = sorted((ROOT.parent / "shared" / "bench" / "webmix").glob("webmix-*.jsonl.gz"))


def copy_head(sources: list[Path], target: str, limit: int) -> tuple[int, float]:
    """The first `limit` lines of JSONL.gz files, in order, into `target`; returns (documents, MB of text)."""
    count, text_bytes = 0, 0
    with gzip.open(target, "wt", encoding="utf-8") as out:
        for source in sources:
            with gzip.open(source, "rt", encoding="utf-8") as src:
                for line in src:
                    out.write(line)
                    count += 1
                    text_bytes += len(json.loads(line)["text"].encode("utf-8"))
                    if count == limit:
                        return count, text_bytes / 1e6
    return count, text_bytes / 1e6


def parse_document(line: str) -> Document:
    record = json.loads(line)
    return Document(id=record["id"], text=record["text"], source=record.get("source", "bench"))


def read_texts(folder: Path) -> list[str]:
    texts = []
    for path in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line in f]
    return texts


class Timer:
    """CPU seconds of this process and wall seconds of a block."""

    def __enter__(self) -> Timer:
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu = time.process_time() - self._cpu
        self.wall = time.perf_counter() - self._wall


def score_batch(lid, quality, texts: list[str]) -> None:
    lid.predict([text.replace("\r", " ").replace("\n", " ") for text in texts], k=1)
    quality.predict([quality_text(text) for text in texts], k=-1)


def run_direct(path: str, quality_model: str) -> Timer:
    with Timer() as timer:
        lid = fasttext.load_model(packaged_lid_model_path())
        quality = fasttext.load_model(quality_model)
        batch: list[str] = []
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                batch.append(parse_document(line).text)
                if len(batch) == STAGE_BATCH:
                    score_batch(lid, quality, batch)
                    batch = []
        score_batch(lid, quality, batch)
    return timer


def run_beam(path: str, quality_model: str) -> tuple[Timer, int]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        args = [
            "prepare",
            path,
            "--output",
            out,
            "--stages",
            "langid,quality",
            "--min-language-score",
            "0",
            "--quality-model",
            quality_model,
            "--min-quality",
            "0",
            "--quiet",
        ]
        with Timer() as timer:
            assert llamaprep(args) == 0
        return timer, read_manifest(out)["counts"]["kept"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, nargs="+", default=DEFAULT_INPUTS, help="JSONL.gz files read in order")
    parser.add_argument("--docs", type=int, default=5_000)
    parser.add_argument("--quality-model", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "docs.jsonl.gz")
        count, megabytes = copy_head(args.input, path, args.docs)
        quality_model = args.quality_model
        if quality_model is None:
            quality_model = os.path.join(tmp, "quality.bin")
            samples = ROOT / "data" / "samples" / "quality"
            train_quality_model(read_texts(samples / "positive"), read_texts(samples / "negative"), quality_model)
        direct = run_direct(path, quality_model)
        pipeline, kept = run_beam(path, quality_model)
    assert kept == count, f"pipeline kept {kept} of {count} documents"
    print(f"documents: {count} ({megabytes:.1f} MB of text) from {len(args.input)} file(s) starting {args.input[0]}")
    for name, timer in (("direct fastText (1 process)", direct), ("llamaprep prepare (1 worker)", pipeline)):
        rate = count / timer.cpu
        print(f"{name:38s} {timer.cpu:7.2f} CPU s {timer.wall:7.2f} wall s {rate:8.0f} docs/s per core")
    print(f"ratio pipeline / direct (docs/s per core): {direct.cpu / pipeline.cpu:.2f}")


if __name__ == "__main__":
    main()
