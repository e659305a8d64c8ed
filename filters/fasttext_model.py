"""Loading fastText models once per process and predicting on batches of texts.

Every model-backed stage goes through here so that (1) a worker process loads each model file once, even
when several DoFn instances or stages use it (a shared, locked cache keyed by path), and (2) prediction
always goes through fastText's list API: fasttext 0.9.3 with numpy 2 raises "Unable to avoid copy" in
single-string `predict` (it calls `np.array(..., copy=False)`), while the list path returns plain Python
lists and is also faster. No fork of fastText is needed.

Label handling assumes only fastText's `__label__` prefix, never a label set: lid.176 (`__label__en`) and
other supervised models (e.g. `__label__zh-hans`) work alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import pathlib
import threading
from collections.abc import Sequence
from importlib import resources
from typing import Any

from filters.model_files import is_url
from filters.options import ConfigError

LABEL_PREFIX = "__label__"
LID_MODEL_NAME = "lid.176.ftz"

_models: dict[tuple[str, int, int], Any] = {}
_models_lock = threading.Lock()
_resource_files = contextlib.ExitStack()


def packaged_lid_model_path() -> str:
    """Path of the lid.176.ftz shipped as package data (extracted to a temp file if installed zipped)."""
    resource = resources.files("filters").joinpath("models", LID_MODEL_NAME)
    if isinstance(resource, pathlib.Path):
        path = resource
    else:
        path = _resource_files.enter_context(resources.as_file(resource))
    if not path.is_file():
        raise FileNotFoundError(f"the packaged language-ID model {LID_MODEL_NAME} is missing at {path}")
    return str(path)


FASTTEXT_MAGIC = (793712314).to_bytes(4, "little")  # the first four bytes of every .bin/.ftz fastText model


CHECKSUM_SUFFIX = ".sha256"  # `quality train` writes MODEL.sha256 (sha256sum's format) next to its model


def model_checksum_line(path: str, digest: str) -> str:
    return f"{digest}  {pathlib.Path(path).name}\n"


def check_model_file(path: str) -> None:
    """Fail with one line, before any work, when a local model file is missing, empty, not fastText, or
    differs from the checksum written next to it (fastText itself loads a truncated model without a word)."""
    file = pathlib.Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"fastText model not found: {path}")
    with open(file, "rb") as f:
        head = f.read(4)
    if head != FASTTEXT_MAGIC:
        what = "empty" if not head else "not a fastText model (.bin or .ftz)"
        raise ConfigError(f"{path} is {what}")
    checksum = pathlib.Path(path + CHECKSUM_SUFFIX)
    if checksum.is_file():
        expected = (checksum.read_text().split() or [""])[0]
        if hashlib.sha256(file.read_bytes()).hexdigest() != expected:
            raise ConfigError(f"{path} is damaged: its sha256 differs from {checksum.name}; train or copy it again")


def check_fasttext_model(path: str) -> None:
    """Before any work: a local model's file checks, then a load, so that a corrupt model fails in one line
    (the load is cached, so stages set up in this process reuse it). Remote models are fetched by workers."""
    if is_url(path):
        return
    check_model_file(path)
    load_fasttext_model(path)


def load_fasttext_model(path: str) -> Any:
    """The fastText model at a local `path`, loaded once per process and shared afterwards (a file
    rewritten in place, e.g. by retraining, is loaded again)."""
    file = pathlib.Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"fastText model not found: {path}")
    stat = file.stat()
    key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            import fasttext

            try:
                model = fasttext.load_model(path)
            except ValueError as error:
                raise ConfigError(f"{path} is not a fastText model: {error}") from None
            _models[key] = model
        return model


def strip_label(label: str) -> str:
    """`__label__en` -> `en`; a name without the prefix is returned as is."""
    return label[len(LABEL_PREFIX) :] if label.startswith(LABEL_PREFIX) else label


def single_line(text: str) -> str:
    """fastText predicts one line at a time: join the document's lines with spaces, as CCNet does."""
    return text.replace("\r", " ").replace("\n", " ")


def model_labels(model: Any) -> list[str]:
    """The model's labels without the `__label__` prefix."""
    return [strip_label(label) for label in model.get_labels()]


def predict_top(model: Any, lines: Sequence[str]) -> list[tuple[str, float]]:
    """Top label (without prefix) and its probability for each single-line text."""
    if not lines:
        return []
    labels, probabilities = model.predict(list(lines), k=1)
    return [(strip_label(lab[0]), min(float(prob[0]), 1.0)) for lab, prob in zip(labels, probabilities, strict=True)]


def predict_label_probability(model: Any, lines: Sequence[str], label: str) -> list[float]:
    """Probability of one `label` (with or without prefix) for each single-line text."""
    if not lines:
        return []
    wanted = LABEL_PREFIX + strip_label(label)
    labels, probabilities = model.predict(list(lines), k=-1)
    out = []
    for labs, probs in zip(labels, probabilities, strict=True):
        scores = dict(zip(labs, probs, strict=True))
        out.append(min(float(scores.get(wanted, 0.0)), 1.0))
    return out
