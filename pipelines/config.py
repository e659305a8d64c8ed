"""The one configuration of `llamaprep prepare`: a TOML or YAML file plus CLI overrides.

    stages = ["normalize", "langid", "gopher_quality"]   # order of application
    [reader]            # pipelines.formats.ReaderConfig fields
    [shards]            # ShardConfig fields
    [gopher_quality]    # one table per stage: the fields of that stage's Config dataclass
    min_doc_words = 50

Defaults live in the dataclasses (each citing its source); `llamaprep prepare --print-config` prints the
effective configuration. `--set section.key=value` overrides any field.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from filters.options import ConfigError, build_config, option
from pipelines.formats import ReaderConfig

# LLaMA's CommonCrawl recipe without a trained quality model (add "quality" with --quality-model): exact and
# CCNet line dedup first (CCNet dedups before language ID), fastText language ID, the Gopher and C4
# heuristics (Gopher before C4, whose line filter rejoins paragraphs), then near-duplicate removal.
DEFAULT_STAGES: tuple[str, ...] = (
    "normalize",
    "exact_dedup",
    "line_dedup",
    "langid",
    "gopher_repetition",
    "gopher_quality",
    "c4",
    "minhash_dedup",
)
RESERVED_SECTIONS = ("stages", "reader", "shards")
DEFAULT_TARGET_SHARD_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class ShardConfig:
    target_bytes: int = DEFAULT_TARGET_SHARD_BYTES  # text bytes per shard before compression
    compression: str = "zstd"  # Arrow IPC buffer compression: zstd, lz4 or none
    split_by_language: bool = option(False, "one shard set per language (documents/<lang>/), as CCNet's split_by_lang")

    def validate(self) -> None:
        if self.target_bytes <= 0:
            raise ConfigError("shards.target_bytes must be positive")
        if self.compression not in ("zstd", "lz4", "none"):
            raise ConfigError("shards.compression must be zstd, lz4 or none")


@dataclass
class PrepareConfig:
    stages: list[str] = field(default_factory=lambda: list(DEFAULT_STAGES))
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    shards: ShardConfig = field(default_factory=ShardConfig)
    stage_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The effective configuration, every stage's options filled with defaults (for the manifest)."""
        from pipelines.stages import stage_config_class

        out: dict[str, Any] = {"stages": list(self.stages)}
        out["reader"] = _plain(dataclasses.asdict(self.reader))
        out["shards"] = dataclasses.asdict(self.shards)
        for name in self.stages:
            config = build_config(stage_config_class(name), self.stage_options.get(name), name)
            out[name] = _plain(dataclasses.asdict(config))
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def read_config_file(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = file.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if file.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot parse {path}: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of sections")
    return data


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply `section.key=value` strings (values are typed later by the section's dataclass)."""
    data = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        if key == "stages":
            data["stages"] = [s.strip() for s in value.split(",") if s.strip()]
            continue
        section, dot, name = key.partition(".")
        if not dot or not name:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        data.setdefault(section, {})[name] = value
    return data


def build_prepare_config(data: Mapping[str, Any]) -> PrepareConfig:
    """Validate a config mapping: stage names, every section's fields and types."""
    from pipelines.stages import stage_config_class

    stages = data.get("stages", DEFAULT_STAGES)
    if not isinstance(stages, list | tuple) or not all(isinstance(name, str) for name in stages):
        raise ConfigError(
            f'stages must be a list of stage names, e.g. stages = ["normalize", "langid"]; got {stages!r}'
        )
    stages = list(stages)
    if len(set(stages)) != len(stages):
        raise ConfigError(f"stages lists a stage twice: {stages}")
    stage_options: dict[str, dict[str, Any]] = {}
    for section, values in data.items():
        if section in RESERVED_SECTIONS:
            continue
        if not isinstance(values, Mapping):
            raise ConfigError(f"section {section!r} must be a table of options")
        stage_config_class(section)  # unknown section names fail here
        stage_options[section] = dict(values)
    for name in stages:
        build_config(stage_config_class(name), stage_options.get(name), name)
    return PrepareConfig(
        stages=stages,
        reader=build_config(ReaderConfig, data.get("reader"), "reader"),
        shards=build_config(ShardConfig, data.get("shards"), "shards"),
        stage_options=stage_options,
    )


RECIPES_DIR = Path(__file__).with_name("recipes")


def recipe_names() -> list[str]:
    """The recipes shipped with the package (pipelines/recipes/*.toml)."""
    return sorted(path.stem for path in RECIPES_DIR.glob("*.toml"))


def recipe_path(name: str) -> Path:
    """The file of a shipped recipe; an unknown name is a user mistake that lists the known ones."""
    path = RECIPES_DIR / f"{name}.toml"
    if not path.is_file():
        raise ConfigError(f"unknown recipe {name!r}; known: {', '.join(recipe_names())}")
    return path


def merge_sections(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """`top` over `base`, table by table (a recipe's [reader] keeps the fields a config file does not set)."""
    merged = dict(base)
    for section, values in top.items():
        below = merged.get(section)
        if isinstance(values, Mapping) and isinstance(below, Mapping):
            merged[section] = {**below, **values}
        else:
            merged[section] = values
    return merged


def load_prepare_config(
    path: str | None,
    overrides: Sequence[str] = (),
    flags: Mapping[str, Mapping[str, Any]] | None = None,
    stages: str | None = None,
    recipe: str | None = None,
) -> PrepareConfig:
    """The recipe, then the config file, then the command's config flags ({section: {field: value}}),
    then `--stages`, then `--set section.key=value` overrides, each winning over the ones before."""
    data = read_config_file(str(recipe_path(recipe))) if recipe else {}
    if path:
        data = merge_sections(data, read_config_file(path))
    data = merge_sections(data, flags or {})
    if stages is not None:
        overrides = [f"stages={stages}", *overrides]
    return build_prepare_config(apply_overrides(data, overrides))


def dump_config(config: PrepareConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True)
