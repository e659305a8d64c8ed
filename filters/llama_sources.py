"""LLaMA's pre-training data (Touvron et al. 2023, Table 1): the seven sources, their sampling proportion,
the epochs the paper made over each for 1.4T tokens, and their size on disk. One table, used by the
loader's `--mixture llama` and by `llamaprep stats` to set a user's data against the paper's mixture."""

from __future__ import annotations

from dataclasses import dataclass

LLAMA_TOKENS = 1.4e12  # tokens the 33B and 65B models were trained on (the 7B and 13B: 1.0T)


@dataclass(frozen=True)
class SourceShare:
    """One row of Table 1."""

    proportion: float  # sampling proportion of the mixture
    epochs: float  # passes over the source during training on LLAMA_TOKENS
    disk_gb: float  # size of the prepared source


LLAMA_TABLE1: dict[str, SourceShare] = {
    "commoncrawl": SourceShare(0.670, 1.10, 3300),
    "c4": SourceShare(0.150, 1.06, 783),
    "github": SourceShare(0.045, 0.64, 328),
    "wikipedia": SourceShare(0.045, 2.45, 83),
    "books": SourceShare(0.045, 2.23, 85),
    "arxiv": SourceShare(0.025, 1.06, 92),
    "stackexchange": SourceShare(0.020, 1.03, 78),
}

LLAMA_MIXTURE: dict[str, float] = {name: row.proportion for name, row in LLAMA_TABLE1.items()}
MAX_PAPER_EPOCHS = max(row.epochs for row in LLAMA_TABLE1.values())  # Wikipedia's 2.45
