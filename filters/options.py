"""One way to turn configuration dataclasses into options, for every layer and command.

A field documents itself where it is declared (the way torchtitan's `job_config.py` puts each field's help
under the field):

    min_score: float = option(0.5, "drop documents whose top-language probability is lower (CCNet: 0.5)")

From there:
- `build_config(cls, mapping, where)` turns a TOML/YAML table or `--set key=value` strings into the
  dataclass: unknown keys and mistyped values are a `ConfigError` naming them, types come from the
  annotations, then the dataclass's `validate()` runs;
- `add_arguments(parser, cls)` adds one `--flag` per documented field (`option(..., flag=...)` renames it),
  typed from the annotation, booleans as `--x/--no-x`, every default None so that only what the user
  typed is taken;
- `given_values(args, cls)` collects those flags as a mapping for `build_config`.

Nothing here imports anything heavy: every command's parser is built from it in well under a second.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

ConfigT = TypeVar("ConfigT")
HELP = "help"
FLAG = "flag"


class ConfigError(ValueError):
    """A user's mistake (a bad option, value, input, model or checkpoint file), with a message that names the
    thing and says what to do. The CLI prints it as one line and exits 2."""


# What the command line reports as the user's mistake, in one line with exit status 2; anything else is a bug
# in llamaprep and keeps its traceback (exit 1).
USER_ERRORS = (ConfigError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (argparse prints the whole usage first), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command (`args.func`) under the command line's rules: logging at WARNING, or INFO with
    `--verbose`; a user's mistake (USER_ERRORS) is one line and exit status 2, anything else a traceback.
    The one place this rule is applied, for `llamaprep` and for `python -m model.cli` alike."""
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as error:
        print(f"llamaprep {args.command}: error: {error}", file=sys.stderr)
        return 2


def option(
    default: Any = dataclasses.MISSING, help: str = "", *, factory: Any = dataclasses.MISSING, flag: str | None = None
) -> Any:
    """A dataclass field with its help (and, if it differs from `--field-name`, its command-line flag)."""
    metadata = {HELP: help, **({FLAG: flag} if flag else {})}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a config value (from TOML, YAML or a `--set k=v` string) to the annotated type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(value, non_none[0], where)
    if origin in (list, tuple, Sequence) or annotation in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [_coerce(v, item, where) for v in value]
        return tuple(items) if origin is tuple or annotation is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table/mapping, got {value!r}")
        return dict(value)
    try:
        if annotation is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            if not isinstance(value, bool):
                raise ValueError(value)
            return value
        if annotation in (int, float, str):
            if annotation is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            if annotation is not str and isinstance(value, bool):
                raise ValueError(value)
            if annotation is str and not isinstance(value, str):
                raise ValueError(value)
            return annotation(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}") from None
    return value


def build_config(config_cls: type[ConfigT], values: Mapping[str, Any] | None, where: str) -> ConfigT:
    """Build a config dataclass from a mapping, rejecting unknown keys and mistyped values clearly."""
    if values is not None and not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a table of options, got {values!r}")
    values = dict(values or {})
    hints = typing.get_type_hints(config_cls)
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()}
    config = config_cls(**kwargs)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def documented_fields(config_cls: type, names: Iterable[str] | None = None) -> list[dataclasses.Field]:
    """The fields of `config_cls` that carry help, all or those in `names` (in that order)."""
    fields = {f.name: f for f in dataclasses.fields(config_cls) if f.metadata.get(HELP)}
    if names is None:
        return list(fields.values())
    missing = [name for name in names if name not in fields]
    if missing:
        raise AssertionError(f"{config_cls.__name__} has no documented field(s) {missing}")
    return [fields[name] for name in names]


def flag_of(field: dataclasses.Field) -> str:
    return field.metadata.get(FLAG) or "--" + field.name.replace("_", "-")


def _dest(field: dataclasses.Field) -> str:
    return flag_of(field).lstrip("-").replace("-", "_")


def add_arguments(parser: Any, config_cls: type, names: Iterable[str] | None = None) -> None:
    """One flag per documented field of `config_cls` (all, or those in `names`), its help the field's."""
    hints = typing.get_type_hints(config_cls)
    for field in documented_fields(config_cls, names):
        annotation = hints[field.name]
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        help_text = field.metadata[HELP].replace("%", "%%")
        if annotation is bool:
            action = argparse.BooleanOptionalAction
            parser.add_argument(flag_of(field), dest=_dest(field), action=action, default=None, help=help_text)
        elif annotation in (int, float):
            parser.add_argument(flag_of(field), dest=_dest(field), type=annotation, default=None, help=help_text)
        else:  # strings, and lists given comma-separated (build_config splits them)
            parser.add_argument(flag_of(field), dest=_dest(field), default=None, help=help_text)


def given_values(args: argparse.Namespace, config_cls: type, names: Iterable[str] | None = None) -> dict[str, Any]:
    """The documented fields of `config_cls` (all, or those in `names`) whose flags were given."""
    values = {}
    for field in documented_fields(config_cls, names):
        value = getattr(args, _dest(field), None)
        if value is not None:
            values[field.name] = value
    return values
