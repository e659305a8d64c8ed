"""Tokenizer training time, and tokenization throughput inside the Beam pipeline vs SentencePiece alone.

Builds a prepared directory from the webmix benchmark corpus (../shared/bench, real multilingual web-like
text, languages from its truth file), then measures:

1. `train_tokenizer` on it (LLaMA's settings, --vocab-size, a --train-sentences sample): wall and CPU time;
2. the baseline: one process, one SentencePiece processor, one thread, batch-encoding the same texts
   already in memory (the cheapest possible way to get the ids): tokens/s per core;
3. `llamaprep tokenize` as a subprocess (the whole command: start-up, read shards, encode, split, write
   token shards, manifest) with the local runner: 1 worker x 1 thread, N worker processes x 1 thread,
   and 1 worker x N SentencePiece threads; and the ratio of N workers to 1 worker in wall time.

The baseline is measured again right before each configuration, and the ratio pipeline/baseline per core
(the target is >= 0.8) is printed two ways: wall-clock tokens/s divided by the cores used, and tokens per
CPU-second of all processes (which stays meaningful on a shared, loaded machine). Last come tokens per
UTF-8 byte and per character for English and the other languages.

    python benchmarks/tokenize_throughput.py --mb 64 --vocab-size 32000
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filters.document import DOCUMENT_SCHEMA, UNKNOWN_LANGUAGE, Document  # noqa: E402
from filters.prepared import iter_texts, shard_name, shard_paths  # noqa: E402
from pipelines.arrow_files import AtomicArrowWriter, write_manifest  # noqa: E402
from tokenizer.token_shards import read_token_manifest  # noqa: E402
from tokenizer.tokenizer import Tokenizer  # noqa: E402
from tokenizer.train import train_tokenizer  # noqa: E402

BENCH = ROOT.parent / "shared" / "bench"


def build_prepared(directory: Path, megabytes: float, shards: int) -> tuple[int, int]:
    """The first `megabytes` of webmix as a prepared directory; returns (documents, bytes)."""
    languages = {}
    with gzip.open(BENCH / "webmix-truth.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            languages[row["id"]] = row["lang"]
    docs, size, budget = [], 0, megabytes * 1e6
    for path in sorted((BENCH / "webmix").glob("webmix-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                docs.append(
                    Document(
                        id=row["id"],
                        text=row["text"],
                        source=row["source"].split(":")[0],
                        language=languages.get(row["id"], UNKNOWN_LANGUAGE),
                    )
                )
                size += len(row["text"].encode("utf-8"))
                if size >= budget:
                    break
        if size >= budget:
            break
    entries = []
    for i in range(shards):
        relative = f"documents/{shard_name(i, shards)}"
        with AtomicArrowWriter(str(directory / relative), DOCUMENT_SCHEMA, "zstd") as writer:
            writer.write_rows([d.to_row() for d in docs[i::shards]])
        entries.append({"path": relative, "documents": len(docs[i::shards]), "bytes": writer.bytes})
    write_manifest(str(directory), {"kind": "documents", "documents": {"shards": entries, "documents": len(docs)}})
    return len(docs), size


def baseline(prepared: Path, model: Path) -> tuple[float, float, int]:
    """One SentencePiece processor, one thread, texts in memory: (tokens/s wall, tokens per CPU-second, tokens)."""
    texts = [t for batch in iter_texts(shard_paths(str(prepared))) for t in batch.column("text").to_pylist()]
    tokenizer = Tokenizer(model)
    wall, cpu = time.perf_counter(), time.process_time()
    encoded = tokenizer.encode_batch(texts, bos=True, eos=True, num_threads=1)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    tokens = sum(len(ids) for ids in encoded)
    return tokens / wall, tokens / cpu, tokens


def pipeline(prepared: Path, model: Path, output: Path, workers: int, threads: int) -> tuple[float, float, dict]:
    """`llamaprep tokenize` as a subprocess: (tokens/s wall, tokens per CPU-second of all its processes, manifest)."""
    command = [sys.executable, "-m", "pipelines.cli", "tokenize", str(prepared), "--tokenizer", str(model),
               "--output", str(output), "--overwrite", "--val-fraction", "0.01", "--encode-threads", str(threads),
               "--workers", str(workers)]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    manifest = read_token_manifest(output)
    tokens = sum(manifest["tokens"].values())
    return tokens / wall, tokens / cpu, manifest


def language_sizes(prepared: Path) -> tuple[Counter, Counter]:
    """UTF-8 bytes and characters of text per language."""
    sizes: Counter = Counter()
    chars: Counter = Counter()
    for batch in iter_texts(shard_paths(str(prepared))):
        for text, language in zip(batch.column("text").to_pylist(), batch.column("language").to_pylist(), strict=True):
            sizes[language] += len(text.encode("utf-8"))
            chars[language] += len(text)
    return sizes, chars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=64, help="MB of webmix text to tokenize")
    parser.add_argument("--vocab-size", type=int, default=32000)
    parser.add_argument("--train-sentences", type=int, default=300_000, help="sample size for training")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--shards", type=int, default=8, help="input shards (the pipeline's parallel tasks)")
    parser.add_argument("--keep", help="keep the work directory here instead of a temporary one")
    args = parser.parse_args()

    work = Path(args.keep or tempfile.mkdtemp(prefix="tokbench-"))
    prepared = work / "prepared"
    if prepared.exists():
        shutil.rmtree(prepared)
    documents, size = build_prepared(prepared, args.mb, args.shards)
    print(f"input: {documents:,} webmix documents, {size / 1e6:.1f} MB of text, {args.shards} shards")

    started, cpu = time.perf_counter(), time.process_time()
    record = train_tokenizer(shard_paths(str(prepared)), work / "tokenizer", args.vocab_size, args.train_sentences)
    train_s, cpu = time.perf_counter() - started, time.process_time() - cpu
    sample = record["sample"]
    print(
        f"tokenizer training: {train_s:.1f}s wall, {cpu:.1f} CPU-seconds, for vocab {args.vocab_size:,} on "
        f"{sample['sentences_sampled']:,} sentences ({sample['bytes_sampled'] / 1e6:.1f} MB; wall: sampling "
        f"{record['seconds']['sampling']}s, SentencePiece {record['seconds']['training']}s with "
        f"{record['trainer_flags']['num_threads']} threads)"
    )
    model = work / "tokenizer" / "tokenizer.model"

    configurations = [(1, 1)]
    if args.workers > 1:
        configurations += [(args.workers, 1), (1, args.workers)]
    wall_rates = {}
    for workers, threads in configurations:
        # the baseline runs right before each configuration, so both see the same load on a shared machine
        direct_wall, direct_cpu, tokens = baseline(prepared, model)
        print(
            f"baseline, SentencePiece alone (1 process, 1 thread, texts in memory): {direct_wall:,.0f} tokens/s "
            f"wall, {direct_cpu:,.0f} tokens per CPU-second"
        )
        output = work / f"tokens-{workers}x{threads}"
        wall_rate, cpu_rate, manifest = pipeline(prepared, model, output, workers, threads)
        wall_rates[(workers, threads)] = wall_rate
        assert sum(manifest["tokens"].values()) == tokens, "pipeline and baseline disagree on the token count"
        cores = workers * threads
        print(
            f"  llamaprep tokenize, local runner, {workers} worker(s) x {threads} thread(s) (whole CLI run: start-up,"
            f" read, encode, write, manifest): {wall_rate:,.0f} tokens/s wall = {wall_rate / cores:,.0f} per core "
            f"(ratio {wall_rate / cores / direct_wall:.2f}); {cpu_rate:,.0f} tokens per CPU-second "
            f"(ratio {cpu_rate / direct_cpu:.2f})"
        )

    if (args.workers, 1) in wall_rates:
        print(
            f"--workers {args.workers} vs 1 (whole CLI run, wall tokens/s): "
            f"{wall_rates[(args.workers, 1)] / wall_rates[(1, 1)]:.2f}x"
        )
    sizes, chars = language_sizes(prepared)
    by_language = manifest["by_language"]

    def text_tokens(languages: list[str]) -> int:
        """Tokens of these languages without each document's BOS and EOS."""
        return sum(c["tokens"] - 2 * c["documents"] for lang in languages for c in by_language[lang].values())

    print("tokens per UTF-8 byte and per character (BOS/EOS excluded), by language, largest first:")
    for language, size in sizes.most_common(12):
        tokens = text_tokens([language])
        print(f"  {language:>4}  {size / 1e6:7.2f} MB  {tokens / size:.3f}/byte  {tokens / chars[language]:.3f}/char")
    others = [lang for lang in sizes if lang != "en"]
    other_bytes, other_chars = sum(sizes[lang] for lang in others), sum(chars[lang] for lang in others)
    print(
        f"English {text_tokens(['en']) / sizes['en']:.3f} tokens/byte, {text_tokens(['en']) / chars['en']:.3f}/char;"
        f" all other languages {text_tokens(others) / other_bytes:.3f} tokens/byte,"
        f" {text_tokens(others) / other_chars:.3f}/char"
    )
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
