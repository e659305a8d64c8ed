"""Read the trainer and normalizer settings stored inside a SentencePiece model file.

`sentencepiece.sentencepiece_model_pb2` is generated for a newer protobuf than some environments can
install (apache-beam pins protobuf below 7, sentencepiece 0.2.1+ ships 7.x gencode, and importing it then
raises VersionError). The schema itself is stable, so this module takes the serialized file descriptor out
of that generated module without executing it and builds the message classes from it with the installed
protobuf runtime.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

from filters.options import ConfigError

MODEL_MESSAGE = "sentencepiece.ModelProto"


def _serialized_descriptor() -> bytes:
    spec = importlib.util.find_spec("sentencepiece.sentencepiece_model_pb2")
    if spec is None or spec.origin is None:
        raise ImportError("sentencepiece ships no sentencepiece_model_pb2 module")
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "AddSerializedFile":
            return node.args[0].value
    raise ImportError(f"no serialized descriptor found in {spec.origin}")


@functools.cache
def model_proto_class() -> type:
    """The `ModelProto` message class, built for the installed protobuf runtime."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(_serialized_descriptor()))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(MODEL_MESSAGE))


def load_model_proto(path: str | os.PathLike) -> Any:
    """A parsed SentencePiece model (pieces, trainer_spec, normalizer_spec)."""
    from google.protobuf.message import DecodeError

    proto = model_proto_class()()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no SentencePiece model at {path}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        proto.ParseFromString(data)
    except DecodeError:
        raise ConfigError(f"{path} is not a SentencePiece model (it does not parse)") from None
    if not data or not proto.pieces:
        raise ConfigError(f"{path} is not a SentencePiece model (it has no pieces)")
    return proto


def model_specs(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """`trainer_spec` and `normalizer_spec` of a model as dicts, defaults included."""
    proto = load_model_proto(path)
    return {
        name: json_format.MessageToDict(
            getattr(proto, name), preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        for name in ("trainer_spec", "normalizer_spec")
    }
