"""`llamaprep stats DIR DIR ...`: the tokens of each source across several prepared or tokenized
directories, set against LLaMA's Table 1 mixture, and for a token budget the epochs each source would need.

Token directories give counted tokens; prepared directories an estimate (text bytes / 4) until they are
tokenized. A source is short when the budget asks for more passes over it than the paper ever made over
any source (Wikipedia's 2.45 epochs) or `--max-epochs`: repeating a small source that often risks
memorising it, so the report says so rather than letting training find out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from filters.llama_sources import LLAMA_TABLE1, LLAMA_TOKENS, MAX_PAPER_EPOCHS
from filters.options import ConfigError
from filters.prepared import read_manifest


def directory_source_tokens(directory: str) -> tuple[dict[str, int], bool]:
    """(tokens per source, counted?) of one prepared or token directory."""
    if read_manifest(directory).get("kind") == "tokens":
        from tokenizer.stats import token_stats

        stats = token_stats(directory)
        return {name: counts["tokens"] for name, counts in stats["by_source"].items()}, True
    from pipelines.stats import BYTES_PER_TOKEN_ESTIMATE, source_bytes

    return {name: int(size / BYTES_PER_TOKEN_ESTIMATE) for name, size in source_bytes(directory).items()}, False


def parse_count(text: str) -> float:
    """A token count such as 1.4T, 200B, 350M or 5e9."""
    scale = {"K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
    value = text.strip().upper()
    try:
        if value and value[-1] in scale:
            return float(value[:-1]) * scale[value[-1]]
        return float(value)
    except ValueError:
        raise ConfigError(f"--token-budget {text!r}: expected a count such as 1.4T, 200B or 5e9") from None


def mixture_report(
    directories: Sequence[str], token_budget: float | None = None, max_epochs: float = MAX_PAPER_EPOCHS
) -> dict[str, Any]:
    """Per source: tokens (summed over the directories), their share, LLaMA's proportion and epochs, and
    with a budget the tokens and epochs the mixture needs from it, with a warning for each short source."""
    if token_budget is not None and not 0 < token_budget < math.inf:
        raise ConfigError("--token-budget must be a positive number")
    if not 0 < max_epochs < math.inf:
        raise ConfigError("--max-epochs must be a positive number")
    tokens: dict[str, int] = {}
    counted = True
    for directory in directories:
        found, exact = directory_source_tokens(directory)
        counted = counted and exact
        for name, count in found.items():
            tokens[name] = tokens.get(name, 0) + count
    total = sum(tokens.values())
    rows: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for name in [*LLAMA_TABLE1, *sorted(set(tokens) - set(LLAMA_TABLE1))]:
        paper = LLAMA_TABLE1.get(name)
        have = tokens.get(name, 0)
        row: dict[str, Any] = {
            "tokens": have,
            "share": have / total if total else 0.0,
            "llama_proportion": paper.proportion if paper else None,
            "llama_epochs": paper.epochs if paper else None,
        }
        if token_budget is not None and paper is not None:
            needed = token_budget * paper.proportion
            row["tokens_needed"] = needed
            row["epochs"] = needed / have if have else None
            if not have:
                warnings.append(f"{name}: no tokens, but the mixture takes {paper.proportion:.1%} of the budget")
            elif needed / have > max_epochs:
                warnings.append(
                    f"{name}: short, the budget needs {needed / have:.2f} epochs over its {have:,} tokens "
                    f"(more than {max_epochs:.2f}); add {needed / max_epochs - have:,.0f} tokens or lower its weight"
                )
        rows[name] = row
    return {
        "directories": list(directories),
        "tokens": total,
        "counted": counted,
        "token_budget": token_budget,
        "max_epochs": max_epochs,
        "sources": rows,
        "warnings": warnings,
    }


def render_mixture(report: dict[str, Any]) -> str:
    """The report as a terminal table."""
    kind = "counted" if report["counted"] else "estimated as text bytes / 4 where not tokenized"
    lines = [f"Sources of {', '.join(report['directories'])}: {report['tokens']:,} tokens ({kind})", ""]
    budget = report["token_budget"]
    header = f"{'source':<14} {'tokens':>14} {'share':>7} {'LLaMA':>7} {'LLaMA ep':>8}"
    if budget is not None:
        header += f" {'needed':>16} {'epochs':>8}"
    lines.append(header)
    for name, row in report["sources"].items():
        paper = row["llama_proportion"]
        proportion = f"{paper:.1%}" if paper is not None else "-"
        paper_epochs = f"{row['llama_epochs']:.2f}" if paper is not None else "-"
        line = f"{name:<14} {row['tokens']:>14,} {row['share']:>7.1%} {proportion:>7} {paper_epochs:>8}"
        if budget is not None:
            needed, epochs = row.get("tokens_needed"), row.get("epochs")
            needed_text = f"{needed:,.0f}" if needed is not None else "-"
            epochs_text = f"{epochs:.2f}" if epochs is not None else ("-" if needed is None else "none")
            line += f" {needed_text:>16} {epochs_text:>8}"
        lines.append(line)
    if budget is not None:
        trained = f"LLaMA trained {LLAMA_TOKENS / 1e12:.1f}T tokens (Table 1 epochs are for that)"
        lines += ["", f"token budget {budget:,.0f}; {trained}"]
    lines += [f"WARNING: {warning}" for warning in report["warnings"]]
    return "\n".join(lines) + "\n"
