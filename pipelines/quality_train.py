"""`llamaprep quality train` and `llamaprep quality eval`: build and measure the fastText quality model.

Training reads positives and negatives from any input `prepare` reads, trains with
`filters.quality_training` and prints the held-out report. `eval` scores labelled documents with a model
exactly as the `quality` stage does (same preprocessing, same positive label) and prints the same report,
e.g. on the DCLM human labels: `--labeled dclm.jsonl.gz --label-field label`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from apache_beam.io.filesystems import FileSystems

from filters.classifier_metrics import binary_report
from filters.document import Document
from filters.fasttext_model import CHECKSUM_SUFFIX, model_checksum_line
from filters.model_files import is_url
from filters.options import ConfigError, build_config, given_values
from filters.quality import QualityClassifier, QualityConfig
from filters.quality_training import TrainingParams, train_quality_model
from pipelines import model_staging
from pipelines.arrow_files import check_writable, split_path, write_bytes
from pipelines.readers import iter_documents_from


def _texts(inputs: list[str], fmt: str | None) -> Iterator[str]:
    for doc in iter_documents_from(inputs, fmt):
        yield doc.text


def _label(doc: Document, field: str) -> int:
    value = doc.metadata.get(field)
    if value in (1, "1", True, "true", "positive"):
        return 1
    if value in (0, "0", False, "false", "negative"):
        return 0
    raise ConfigError(f"document {doc.id}: label field {field!r} is {value!r}, expected 0/1")


def run_train(args: argparse.Namespace) -> int:
    params = build_config(TrainingParams, given_values(args, TrainingParams), "quality train")
    check_writable(split_path(args.output)[0] or ".")
    with tempfile.TemporaryDirectory(prefix="llamaprep-quality-") as tmp:
        local_output = os.path.join(tmp, "quality.bin") if is_url(args.output) else args.output
        try:
            result = train_quality_model(
                _texts(args.positive, args.format), _texts(args.negative, args.format), local_output, params
            )
        except ValueError as error:
            raise ConfigError(str(error)) from None
        digest = hashlib.sha256(Path(local_output).read_bytes()).hexdigest()
        if local_output != args.output:
            with open(local_output, "rb") as src, FileSystems.create(args.output) as out:
                shutil.copyfileobj(src, out, length=1 << 20)
        write_bytes(args.output + CHECKSUM_SUFFIX, model_checksum_line(args.output, digest).encode())
    print(result.format())
    print(f"model written to {args.output}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    labels: list[int] = []
    texts: list[str] = []
    if args.labeled:
        for doc in iter_documents_from(args.labeled, args.format):
            labels.append(_label(doc, args.label_field))
            texts.append(doc.text)
    for label, inputs in ((1, args.positive or []), (0, args.negative or [])):
        for text in _texts(inputs, args.format):
            labels.append(label)
            texts.append(text)
    if not texts:
        raise ConfigError("nothing to evaluate: give --labeled, or --positive and --negative")
    model_staging.install()
    classifier = QualityClassifier(QualityConfig(model_path=args.model, positive_label=args.positive_label))
    report = binary_report(labels, classifier.score(texts), args.threshold)
    print(report.format(f"evaluation of {args.model}"))
    return 0
