"""`llamaprep quality train` and `llamaprep quality eval`: build and measure the fastText quality model.

Training reads positives and negatives from any input `prepare` reads, trains with
`filters.quality_training` and prints the held-out report. `eval` scores labelled documents with a model
exactly as the `quality` stage does (same preprocessing, same positive label) and prints the same report,
e.g. on the DCLM human labels: `--labeled dclm.jsonl.gz --label-field label`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Iterator

from apache_beam.io.filesystems import FileSystems

from filters.base import ConfigError
from filters.classifier_metrics import binary_report
from filters.document import Document
from filters.model_files import is_url
from filters.quality import QualityClassifier, QualityConfig
from filters.quality_training import TrainingParams, train_quality_model
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
    params = TrainingParams(
        seed=args.seed,
        valid_fraction=args.valid_fraction,
        max_per_class=args.max_per_class,
        epoch=args.epoch,
        lr=args.lr,
        word_ngrams=args.word_ngrams,
        dim=args.dim,
        min_count=args.min_count,
        bucket=args.bucket,
        threshold=args.threshold,
    )
    with tempfile.TemporaryDirectory(prefix="llamaprep-quality-") as tmp:
        local_output = os.path.join(tmp, "quality.bin") if is_url(args.output) else args.output
        try:
            result = train_quality_model(
                _texts(args.positive, args.format), _texts(args.negative, args.format), local_output, params
            )
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if local_output != args.output:
            with open(local_output, "rb") as src, FileSystems.create(args.output) as out:
                shutil.copyfileobj(src, out, length=1 << 20)
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
    classifier = QualityClassifier(QualityConfig(model_path=args.model, positive_label=args.positive_label))
    classifier.setup()
    report = binary_report(labels, classifier.score(texts), args.threshold)
    print(report.format(f"evaluation of {args.model}"))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    quality = subparsers.add_parser("quality", help="train and evaluate the fastText quality classifier")
    commands = quality.add_subparsers(dest="quality_command", required=True, metavar="SUBCOMMAND")
    defaults = TrainingParams()

    train = commands.add_parser(
        "train",
        help="train a reference-vs-random-page classifier (LLaMA section 2.1)",
        description="Positives: reference-quality pages (e.g. pages cited by Wikipedia); negatives: random "
        "crawl pages. Classes are balanced by downsampling, a held-out split is reported.",
    )
    train.add_argument("--positive", nargs="+", required=True, help="inputs of positive documents")
    train.add_argument("--negative", nargs="+", required=True, help="inputs of negative documents")
    train.add_argument("--output", required=True, help="where to write the fastText model (.bin; local or URL)")
    train.add_argument("--format", default=None, help="input format when it cannot be told from the file names")
    train.add_argument("--seed", type=int, default=defaults.seed, help="sampling and fastText seed")
    train.add_argument("--valid-fraction", type=float, default=defaults.valid_fraction, help="held-out share")
    train.add_argument("--max-per-class", type=int, default=None, help="cap on documents per class")
    train.add_argument("--epoch", type=int, default=defaults.epoch)
    train.add_argument("--lr", type=float, default=defaults.lr)
    train.add_argument("--word-ngrams", type=int, default=defaults.word_ngrams)
    train.add_argument("--dim", type=int, default=defaults.dim)
    train.add_argument("--min-count", type=int, default=defaults.min_count)
    train.add_argument("--bucket", type=int, default=defaults.bucket, help="hash buckets of word n-grams")
    train.add_argument("--threshold", type=float, default=defaults.threshold, help="threshold of the report")
    train.set_defaults(func=run_train)

    evaluate = commands.add_parser("eval", help="report precision/recall/F1/ROC-AUC of a model on labelled data")
    evaluate.add_argument("--model", required=True, help="fastText quality model")
    evaluate.add_argument("--labeled", nargs="+", help="inputs whose documents carry a 0/1 label field")
    evaluate.add_argument("--label-field", default="label", help="metadata field holding the label")
    evaluate.add_argument("--positive", nargs="+", help="inputs of positive documents")
    evaluate.add_argument("--negative", nargs="+", help="inputs of negative documents")
    evaluate.add_argument("--format", default=None)
    evaluate.add_argument("--positive-label", default=QualityConfig.positive_label)
    evaluate.add_argument("--threshold", type=float, default=defaults.threshold)
    evaluate.set_defaults(func=run_eval)
