"""`llamaprep tokenize`: turn prepared text shards into token shards (format in `tokenizer/token_shards.py`).

The pipeline::

    shard paths -> tasks (runs of record batches, ~--task-documents each) -> Reshuffle
      -> EncodeTask: one Tokenizer per worker, SentencePiece batch encoding into numpy arrays, every document
         BOS + ids + EOS, split by id hash, one staged Arrow file per (task, split)
      -> ToList -> Finalize: staged files renamed in input order to train|val/tokens-NNNNN-of-MMMMM.arrow,
         then manifest.json (written last: a directory without one is an unfinished run)

Output names and contents depend only on the input and the tokenizer, not on the runner or worker count.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from filters.document import UNKNOWN_LANGUAGE
from filters.options import ConfigError
from filters.prepared import MANIFEST_NAME, open_arrow, read_manifest, shard_paths
from pipelines.arrow_files import check_writable, ensure_dir, join, write_bytes, write_manifest
from pipelines.commands import DEFAULT_TASK_DOCUMENTS
from pipelines.exchange import Spread
from pipelines.runners import METRICS_NAMESPACE, counters, pipeline_options, run_pipeline
from tokenizer.split import SPLIT_HASH, split_of
from tokenizer.token_shards import (
    SPLITS,
    TOKEN_SCHEMA_VERSION,
    TOKEN_SHARD_KIND,
    token_dtype,
    token_table,
)
from tokenizer.tokenizer import Tokenizer

STAGING_DIR = ".staging"


def token_shard_name(index: int, count: int) -> str:
    return f"tokens-{index:05d}-of-{count:05d}.arrow"


def _ipc_bytes(table: pa.Table) -> pa.Buffer:
    """An uncompressed IPC file with one record batch, so a reader's memory map is one flat array."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(table.num_rows, 1))
    return sink.getvalue()


def plan_tasks(path_and_index: tuple[int, str], task_documents: int) -> Iterator[dict[str, Any]]:
    """Split one input shard into tasks: runs of whole record batches of about `task_documents` rows."""
    shard_index, path = path_and_index
    reader = open_arrow(path)
    first, rows = 0, 0
    for i in range(reader.num_record_batches):
        rows += reader.get_batch(i).num_rows
        if rows >= task_documents:
            yield {"shard": shard_index, "path": path, "first": first, "stop": i + 1, "rows": rows}
            first, rows = i + 1, 0
    if first < reader.num_record_batches or reader.num_record_batches == 0:
        yield {"shard": shard_index, "path": path, "first": first, "stop": reader.num_record_batches, "rows": rows}


class EncodeTask(beam.DoFn):
    """Encode one task's documents and stage one token file per split; emits one record per staged file."""

    def __init__(self, model_path: str, model_proto: bytes, output: str, val_fraction: float, num_threads: int):
        self._model_path = model_path
        self._model_proto = model_proto
        self._output = output
        self._val_fraction = val_fraction
        self._num_threads = num_threads

    def setup(self) -> None:
        self._tokenizer = Tokenizer(self._model_path, model_proto=self._model_proto)
        self._dtype = token_dtype(self._tokenizer.n_words)
        self._documents = Metrics.counter(METRICS_NAMESPACE, "documents")
        self._tokens = Metrics.counter(METRICS_NAMESPACE, "tokens")
        self._skipped = Metrics.counter(METRICS_NAMESPACE, "skipped.empty_text")

    def process(self, task: dict[str, Any]) -> Iterator[dict[str, Any]]:
        ids, texts, sources, languages = [], [], [], []
        skipped = 0
        for batch in self._batches(task):
            data = batch.to_pydict()
            for doc_id, text, source, language in zip(
                data["id"], data["text"], data["source"], data["language"], strict=True
            ):
                if not text:
                    skipped += 1
                    continue
                ids.append(doc_id)
                texts.append(text)
                sources.append(source)
                languages.append(language)
        encoded = self._tokenizer.encode_batch(texts, bos=True, eos=True, num_threads=self._num_threads)
        columns: dict[str, dict[str, list]] = {s: defaultdict(list) for s in SPLITS}
        for doc_id, source, language, tokens in zip(ids, sources, languages, encoded, strict=True):
            split = columns[split_of(doc_id, self._val_fraction)]
            split["id"].append(doc_id)
            split["source"].append(source)
            split["language"].append(language)
            split["tokens"].append(tokens)
        self._skipped.inc(skipped)
        if skipped:
            yield {"split": None, "skipped_empty": skipped}
        for split, rows in columns.items():
            if rows["id"]:
                yield self._stage(task, split, rows)

    def _batches(self, task: dict[str, Any]) -> Iterator[pa.RecordBatch]:
        reader = open_arrow(task["path"])
        for i in range(task["first"], task["stop"]):
            yield reader.get_batch(i).select(["id", "text", "source", "language"])

    def _stage(self, task: dict[str, Any], split: str, rows: dict[str, list]) -> dict[str, Any]:
        """Write a split's rows under .staging/ and describe them (counts per source and language)."""
        table = token_table(rows["id"], rows["source"], rows["language"], rows["tokens"], self._dtype)
        key = f"{task['shard']:05d}-{task['first']:06d}"
        path = join(self._output, STAGING_DIR, split, f"{key}.arrow")
        data = _ipc_bytes(table)
        write_bytes(path, data)
        lengths = [len(t) for t in rows["tokens"]]
        by_source: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        by_language: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for source, language, n in zip(rows["source"], rows["language"], lengths, strict=True):
            for counts in (by_source[source], by_language[language or UNKNOWN_LANGUAGE]):
                counts[0] += 1
                counts[1] += n
        self._documents.inc(len(lengths))
        self._tokens.inc(sum(lengths))
        return {
            "key": key,
            "split": split,
            "staged": path,
            "documents": len(lengths),
            "tokens": int(sum(lengths)),
            "bytes": data.size,
            "sha256": hashlib.sha256(memoryview(data)).hexdigest(),
            "by_source": dict(by_source),
            "by_language": dict(by_language),
        }


def _merge_counts(records: list[dict[str, Any]], field: str) -> dict[str, dict[str, dict[str, int]]]:
    """{name: {split: {"documents": n, "tokens": n}}} summed over staged files."""
    merged: dict[str, dict[str, dict[str, int]]] = {}
    for record in records:
        for name, (documents, tokens) in record.get(field, {}).items():
            counts = merged.setdefault(name, {}).setdefault(record["split"], {"documents": 0, "tokens": 0})
            counts["documents"] += documents
            counts["tokens"] += tokens
    return dict(sorted(merged.items()))


def finalize(records: list[dict[str, Any]], output: str, header: dict[str, Any]) -> dict[str, Any]:
    """Rename staged files to their final names in input order, then write the manifest."""
    splits: dict[str, list[dict[str, Any]]] = {}
    for split in SPLITS:
        staged = sorted((r for r in records if r["split"] == split), key=lambda r: r["key"])
        entries = []
        if staged:
            ensure_dir(join(output, split))
        for index, record in enumerate(staged):
            relative = f"{split}/{token_shard_name(index, len(staged))}"
            final = join(output, relative)
            already_moved = FileSystems.exists(final) and not FileSystems.exists(record["staged"])  # a retry
            if not already_moved:
                FileSystems.rename([record["staged"]], [final])
            entries.append({k: record[k] for k in ("documents", "tokens", "bytes", "sha256")} | {"path": relative})
        splits[split] = entries
    staging = join(output, STAGING_DIR)
    if FileSystems.exists(staging):
        FileSystems.delete([staging])
    manifest = {
        **header,
        "splits": splits,
        "documents": {s: sum(e["documents"] for e in splits[s]) for s in SPLITS},
        "tokens": {s: sum(e["tokens"] for e in splits[s]) for s in SPLITS},
        "skipped": {"empty_text": sum(r["skipped_empty"] for r in records if r["split"] is None)},
        "by_source": _merge_counts(records, "by_source"),
        "by_language": _merge_counts(records, "by_language"),
    }
    write_manifest(output, manifest)
    return manifest


def load_tokenizer(path: str) -> tuple[Tokenizer, bytes]:
    """The tokenizer and its serialized model, read through Beam FileSystems (local, gs://, s3://)."""
    if not FileSystems.exists(path):
        raise FileNotFoundError(f"no SentencePiece model at {path}")
    with FileSystems.open(path) as f:
        proto = f.read()
    return Tokenizer(path, model_proto=proto), proto


def manifest_header(
    input_dirs: list[str], inputs: list[str], tokenizer: Tokenizer, model_proto: bytes, val_fraction: float
) -> dict[str, Any]:
    """The manifest fields known before the run: format, vocabulary, tokenizer identity, split rule."""
    return {
        "kind": TOKEN_SHARD_KIND,
        "schema_version": TOKEN_SCHEMA_VERSION,
        "input": input_dirs,
        "input_shards": len(inputs),
        "vocab_size": tokenizer.n_words,
        "bos_id": tokenizer.bos_id,
        "eos_id": tokenizer.eos_id,
        "pad_id": tokenizer.pad_id,
        "dtype": token_dtype(tokenizer.n_words).name,
        "tokenizer": {"path": tokenizer.model_path, "sha256": hashlib.sha256(model_proto).hexdigest()},
        "val_fraction": val_fraction,
        "split_rule": SPLIT_HASH,
        "document_layout": "BOS, the document's ids, EOS",
    }


def open_output(output: str, overwrite: bool) -> None:
    """Refuse to mix two runs in one directory unless asked to replace the old one, and never replace a
    directory of another kind (prepared documents)."""
    manifest = join(output, MANIFEST_NAME)
    existing = [manifest, *(join(output, name) for name in (*SPLITS, STAGING_DIR))]
    present = [path for path in existing if FileSystems.exists(path)]
    if manifest in present:
        kind = read_manifest(output).get("kind")
        if kind != TOKEN_SHARD_KIND:
            raise ConfigError(f"{output} holds a {kind!r} directory, not token shards; choose another --output")
    if present and not overwrite:
        raise ConfigError(f"{output} already holds token shards; pass --overwrite to replace them")
    if present:
        FileSystems.delete(present)


def tokenize(
    input_dirs: list[str],
    model_path: str,
    output: str,
    val_fraction: float,
    options: beam.options.pipeline_options.PipelineOptions,
    runner: Any,
    num_threads: int,
    task_documents: int = DEFAULT_TASK_DOCUMENTS,
    overwrite: bool = False,
) -> tuple[dict[str, Any], dict[str, int]]:
    """Run the pipeline over the shards of one or more prepared directories (one per source of a mixture:
    each document keeps its `source`); returns (manifest, counters)."""
    if not 0 <= val_fraction < 1:
        raise ConfigError("--val-fraction must be in [0, 1)")
    if task_documents < 1:
        raise ConfigError("--task-documents must be at least 1")
    inputs = []
    for input_dir in input_dirs:
        found = shard_paths(input_dir)
        if not found:
            raise FileNotFoundError(f"{input_dir} holds no documents (its manifest lists no shards)")
        inputs += found
    tokenizer, model_proto = load_tokenizer(model_path)
    open_output(output, overwrite)
    check_writable(output)
    header = manifest_header(list(input_dirs), inputs, tokenizer, model_proto, val_fraction)

    def build(pipeline: beam.Pipeline) -> None:
        _ = (
            pipeline
            | "Shards" >> beam.Create(list(enumerate(inputs)))
            | "Plan" >> beam.FlatMap(plan_tasks, task_documents)
            | "Order" >> beam.combiners.ToList()
            | "LargestFirst"
            >> beam.FlatMap(lambda tasks: sorted(tasks, key=lambda t: (-t["rows"], t["shard"], t["first"])))
            | "Spread" >> Spread(lambda task: (task["shard"], task["first"]))
            | "Encode" >> beam.ParDo(EncodeTask(model_path, model_proto, output, val_fraction, num_threads))
            | "Collect" >> beam.combiners.ToList()
            | "Finalize" >> beam.Map(finalize, output, header)
        )

    result = run_pipeline(build, options, runner)
    return read_manifest(output), counters(result)


def default_threads(args: argparse.Namespace) -> int:
    """SentencePiece threads per worker: one, so `--workers N` uses N cores (more with --encode-threads)."""
    return args.encode_threads or 1


def run(args: argparse.Namespace) -> int:
    options, runner = pipeline_options(args)
    started = time.monotonic()
    manifest, counts = tokenize(
        args.shards,
        args.tokenizer,
        args.output,
        args.val_fraction,
        options,
        runner,
        num_threads=default_threads(args),
        task_documents=args.task_documents,
        overwrite=args.overwrite,
    )
    seconds = time.monotonic() - started
    total = sum(manifest["tokens"].values())
    print(
        f"tokenized {sum(manifest['documents'].values()):,} documents into {total:,} tokens "
        f"({manifest['dtype']}) in {seconds:.1f}s: train {manifest['tokens']['train']:,} tokens in "
        f"{len(manifest['splits']['train'])} shard(s), val {manifest['tokens']['val']:,} tokens in "
        f"{len(manifest['splits']['val'])} shard(s); wrote {args.output}",
        file=sys.stderr,
    )
    if manifest["skipped"]["empty_text"]:
        print(f"skipped {manifest['skipped']['empty_text']:,} documents with empty text", file=sys.stderr)
    if counts.get("tokens", total) != total:
        print(f"warning: Beam counted {counts['tokens']:,} tokens, the manifest {total:,}", file=sys.stderr)
    return 0
