"""`llamaprep stats DIR`: what a prepared directory holds, as a terminal table, JSON or an HTML report.

Counts and drop reasons come from the manifest (written from the job's metrics); everything about the
kept documents (lengths, languages, sources, quality scores) is computed from the shards' columns with
pyarrow compute, one record batch at a time, so memory stays flat whatever the dataset size.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.prepared import DOCUMENTS_DIR, iter_texts, read_manifest, shard_paths

BYTES_PER_TOKEN_ESTIMATE = 4.0  # rough average for English BPE vocabularies (~32k); an estimate only
PERCENTILES = (5, 25, 50, 75, 95, 99)
QUALITY_BINS = 20
LENGTH_BINS = 40


def _counter_add(counter: Counter, column: pa.ChunkedArray, weights: pa.ChunkedArray | None = None) -> None:
    if weights is None:
        for item in pc.value_counts(column.combine_chunks()).to_pylist():
            counter[item["values"] if item["values"] is not None else "(none)"] += item["counts"]
        return
    keys = column.to_pylist()
    for key, weight in zip(keys, weights.to_pylist(), strict=True):
        counter[key if key is not None else "(none)"] += weight


class LengthSketch:
    """Document lengths in constant memory: exact count, sum and maximum; percentiles and the histogram
    from log-spaced bins 0.5% wide (a billion documents cost the same few kilobytes as a hundred)."""

    LOG_RATIO = np.log(1.005)

    def __init__(self) -> None:
        self.counts = np.zeros(0, dtype=np.int64)
        self.count = self.total = self.max = 0

    def add(self, lengths: np.ndarray) -> None:
        if not len(lengths):
            return
        bins = np.floor(np.log1p(lengths) / self.LOG_RATIO).astype(np.int64)
        added = np.bincount(bins)
        if len(added) > len(self.counts):
            self.counts = np.pad(self.counts, (0, len(added) - len(self.counts)))
        self.counts[: len(added)] += added
        self.count += len(lengths)
        self.total += int(lengths.sum())
        self.max = max(self.max, int(lengths.max()))

    def _values(self) -> np.ndarray:
        """A representative length per bin (its geometric middle, never above the maximum)."""
        return np.minimum(np.expm1((np.arange(len(self.counts)) + 0.5) * self.LOG_RATIO), self.max)

    def percentile(self, p: float) -> float:
        if not self.count:
            return 0.0
        index = int(np.searchsorted(np.cumsum(self.counts), p / 100.0 * self.count))
        return float(self._values()[min(index, len(self.counts) - 1)])

    def histogram(self) -> dict[str, list]:
        if not self.count:
            return {"edges": [], "counts": []}
        edges = np.unique(np.logspace(0, np.log10(max(10, self.max + 1)), LENGTH_BINS).round())
        counts, edges = np.histogram(np.maximum(self._values(), 1), bins=edges, weights=self.counts)
        return {"edges": edges.tolist(), "counts": counts.astype(np.int64).tolist()}


def source_bytes(directory: str) -> Counter:
    """Text bytes of the kept documents per source, reading only the `text` and `source` columns."""
    found: Counter = Counter()
    for batch in iter_texts(shard_paths(directory, DOCUMENTS_DIR), columns=["text", "source"]):
        _counter_add(found, batch.column("source"), pc.binary_length(batch.column("text")))
    return found


def document_stats(directory: str) -> dict[str, Any]:
    """Statistics of the kept documents of a prepared directory, plus the manifest's accounting; read one
    record batch at a time."""
    manifest = read_manifest(directory)
    lengths = LengthSketch()
    byte_total = 0
    languages: Counter = Counter()
    language_bytes: Counter = Counter()
    sources: Counter = Counter()
    source_bytes: Counter = Counter()
    quality_hist = np.zeros(QUALITY_BINS, dtype=np.int64)
    quality_count = 0
    columns = ["text", "source", "language", "quality_score"]
    for batch in iter_texts(shard_paths(directory, DOCUMENTS_DIR), columns=columns):
        table = pa.Table.from_batches([batch])
        nbytes = pc.binary_length(table.column("text"))
        lengths.add(pc.utf8_length(table.column("text")).to_numpy())
        byte_total += int(pc.sum(nbytes).as_py() or 0)
        _counter_add(languages, table.column("language"))
        _counter_add(language_bytes, table.column("language"), nbytes)
        _counter_add(sources, table.column("source"))
        _counter_add(source_bytes, table.column("source"), nbytes)
        quality = table.column("quality_score").drop_null().to_numpy()
        if len(quality):
            quality_hist += np.histogram(quality, bins=QUALITY_BINS, range=(0.0, 1.0))[0]
            quality_count += len(quality)
    counts = manifest["counts"]
    return {
        "directory": directory,
        "documents": lengths.count,
        "characters": lengths.total,
        "bytes": byte_total,
        "tokens_estimate": int(byte_total / BYTES_PER_TOKEN_ESTIMATE),
        "shards": len(manifest[DOCUMENTS_DIR]["shards"]),
        "shard_bytes": manifest[DOCUMENTS_DIR]["bytes"],
        "length_chars": {
            "mean": lengths.total / lengths.count if lengths.count else 0.0,
            "max": lengths.max,
            **{f"p{p}": lengths.percentile(p) for p in PERCENTILES},
        },
        "length_histogram": lengths.histogram(),
        "languages": dict(languages.most_common()),
        "language_bytes": dict(language_bytes.most_common()),
        "sources": dict(sources.most_common()),
        "source_bytes": dict(source_bytes.most_common()),
        "quality_histogram": {"bins": QUALITY_BINS, "counts": quality_hist.tolist(), "documents": quality_count},
        "accounting": counts,
        "shuffle": manifest.get("shuffle"),
    }


def _table(rows: list[tuple[str, str]], title: str) -> str:
    width = max((len(k) for k, _ in rows), default=0)
    lines = [title, "-" * len(title)]
    lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
    return "\n".join(lines)


def _share(part: int, total: int) -> str:
    return f"{part:>10,}  {100.0 * part / total:5.1f}%" if total else f"{part:>10,}"


def render_text(stats: dict[str, Any], top: int = 15) -> str:
    acc = stats["accounting"]
    length = stats["length_chars"]
    blocks = [
        _table(
            [
                ("records seen", f"{acc.get('seen', acc['read']):>10,}"),
                ("records skipped (not documents)", f"{acc.get('skipped_total', 0):>10,}"),
                ("documents read", f"{acc['read']:>10,}"),
                ("documents kept", _share(acc["kept"], acc["read"])),
                ("documents dropped", _share(acc["dropped_total"], acc["read"])),
                ("read = kept + dropped", f"{'yes' if acc['balanced'] else 'NO':>10}"),
                ("files read", f"{acc['files']:>10,}"),
                ("text bytes (kept)", f"{stats['bytes']:>10,}"),
                ("tokens (estimate, bytes/4)", f"{stats['tokens_estimate']:>10,}"),
                ("shards", f"{stats['shards']:>10,}  ({stats['shard_bytes']:,} bytes on disk)"),
            ],
            f"Prepared data in {stats['directory']}",
        ),
        _table(
            [
                ("mean", f"{length['mean']:>10,.0f}"),
                *((f"p{p}", f"{length[f'p{p}']:>10,.0f}") for p in PERCENTILES),
                ("max", f"{length['max']:>10,}"),
            ],
            "Document length (characters)",
        ),
    ]
    shuffle = stats.get("shuffle")
    if shuffle and shuffle["stages"]:
        text = shuffle["input_text_bytes"]
        rows = [("input text bytes", f"{text:>14,}")]
        for name, stage in shuffle["stages"].items():
            rows.append((name, f"{stage['bytes']:>14,}  {100.0 * stage['bytes'] / text if text else 0:5.1f}% of input"))
        blocks.append(_table(rows, "Dedup keys exchanged between tasks (documents never are)"))
    if acc["dropped"]:
        rows = sorted(acc["dropped"].items(), key=lambda kv: -kv[1])
        blocks.append(_table([(k, _share(v, acc["read"])) for k, v in rows], "Dropped, by reason"))
    if acc["skipped"] or acc["repaired"]:
        rows = [(f"skipped {k}", f"{v:>10,}") for k, v in acc["skipped"].items()]
        rows += [(f"repaired {k}", f"{v:>10,}") for k, v in acc["repaired"].items()]
        blocks.append(_table(rows, "Records that were not documents / repairs"))
    for key, title in (("languages", "Languages (kept documents)"), ("sources", "Sources (kept documents)")):
        items = list(stats[key].items())
        rows = [(k, _share(v, stats["documents"])) for k, v in items[:top]]
        if len(items) > top:
            rows.append((f"{len(items) - top} others", _share(sum(v for _, v in items[top:]), stats["documents"])))
        blocks.append(_table(rows, title))
    quality = stats["quality_histogram"]
    if quality["documents"]:
        step = 1.0 / quality["bins"]
        rows = [(f"{i * step:.2f}-{(i + 1) * step:.2f}", f"{c:>10,}") for i, c in enumerate(quality["counts"])]
        blocks.append(_table(rows, f"Quality score ({quality['documents']:,} scored documents)"))
    return "\n\n".join(blocks) + "\n"


def _figure_png(draw: Any) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    draw(ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _bar(items: dict[str, int], title: str, top: int = 20) -> Any:
    def draw(ax: Any) -> None:
        pairs = list(items.items())[:top][::-1]
        ax.barh([k for k, _ in pairs], [v for _, v in pairs], color="#4878a8")
        ax.set_title(title)
        ax.tick_params(axis="y", labelsize=8)

    return draw


def render_html(stats: dict[str, Any]) -> str:
    """A self-contained HTML report (plots embedded as PNG), readable offline."""
    plots: list[tuple[str, Any]] = []
    hist = stats["length_histogram"]
    if hist["counts"]:

        def lengths(ax: Any) -> None:
            edges = hist["edges"]
            ax.stairs(hist["counts"], edges, fill=True, color="#4878a8")
            ax.set_xscale("log")
            ax.set_xlabel("characters")
            ax.set_ylabel("documents")
            ax.set_title("Document length")

        plots.append(("Document length", lengths))
    acc = stats["accounting"]
    if acc["dropped"]:
        plots.append(
            (
                "Drops by reason",
                _bar(dict(sorted(acc["dropped"].items(), key=lambda kv: -kv[1])), "Dropped documents by reason"),
            )
        )
    plots.append(("Sources", _bar(stats["sources"], "Kept documents per source")))
    plots.append(("Languages", _bar(stats["languages"], "Kept documents per language")))
    quality = stats["quality_histogram"]
    if quality["documents"]:

        def quality_plot(ax: Any) -> None:
            edges = np.linspace(0, 1, quality["bins"] + 1)
            ax.stairs(quality["counts"], edges, fill=True, color="#5a9a5a")
            ax.set_xlabel("quality score (probability of the positive label)")
            ax.set_ylabel("documents")
            ax.set_title("Quality score")

        plots.append(("Quality score", quality_plot))
    images = "\n".join(
        f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{_figure_png(d)}"></figure>' for t, d in plots
    )
    return _report_page(stats["directory"], render_text(stats), images)


def _report_page(title: str, text: str, images: str = "") -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>llamaprep stats</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}pre{background:#f4f4f4;padding:1em}"
        "figure{margin:1em 0}</style></head><body>"
        f"<h1>llamaprep stats: {html.escape(title)}</h1><pre>{html.escape(text)}</pre>{images}</body></html>"
    )


def run_mixture(args: argparse.Namespace) -> int:
    from pipelines.mixture_stats import mixture_report, parse_count, render_mixture

    budget = parse_count(args.token_budget) if args.token_budget else None
    report = mixture_report(args.directories, budget, args.max_epochs)
    text = render_mixture(report)
    return _emit(args, report, text, lambda: _report_page(", ".join(args.directories), text))


def run_stats(args: argparse.Namespace) -> int:
    """Document stats for a prepared directory, token stats for a token directory (by manifest kind); with
    several directories or a token budget, the mixture report."""
    if len(args.directories) > 1 or args.token_budget:
        return run_mixture(args)
    directory = args.directories[0]
    if read_manifest(directory).get("kind") == "tokens":
        from tokenizer.stats import render, token_stats

        stats = token_stats(directory)
        text = render(stats)
        return _emit(args, stats, text, lambda: _report_page(directory, text))
    stats = document_stats(directory)
    return _emit(args, stats, render_text(stats), lambda: render_html(stats))


def _emit(args: argparse.Namespace, stats: dict[str, Any], text: str, page: Callable[[], str]) -> int:
    """The statistics as JSON (`--json`) or the table, and the HTML page when `--html` asks for it."""
    if args.json:
        json.dump(stats, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text)
    if args.html:
        with open(args.html, "w", encoding="utf-8") as f:
            f.write(page())
        print(f"wrote {args.html}", file=sys.stderr)
    return 0
