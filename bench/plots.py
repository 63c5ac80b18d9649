"""Draw the report's PNGs from the figures `report.py render` wrote (needs matplotlib).

    .bench/plot-venv/bin/python bench/plots.py --data .bench/plots.json --out-dir docs

Runs in the benchmark's own virtualenv (`bench/run.sh` installs matplotlib there), never the
project's; it imports nothing of the project.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

DPI = 110


def _label(target: str) -> str:
    """A target's name as the tables write it, without Markdown's code marks."""
    return target.replace("`", "")


def _save(figure: Any, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def runs_by_concurrency(data: dict[str, Any], out: Path) -> None:
    figure, axes = plt.subplots(figsize=(7.5, 4.2))
    targets = list(dict.fromkeys(row["target"] for row in data["runs_per_s"]))
    levels = sorted({row["concurrency"] for row in data["runs_per_s"]})
    width = 0.8 / max(1, len(targets))
    for index, target in enumerate(targets):
        values = {
            r["concurrency"]: r["runs_per_s"] for r in data["runs_per_s"] if r["target"] == target
        }
        xs = [i + (index - (len(targets) - 1) / 2) * width for i in range(len(levels))]
        bars = axes.bar(xs, [values.get(c, 0.0) for c in levels], width, label=_label(target))
        axes.bar_label(bars, fmt="%.0f", fontsize=7)
    axes.set_xticks(range(len(levels)), [f"{c} client{'s' if c > 1 else ''}" for c in levels])
    axes.set_ylabel("runs/s (stateless POST /runs/wait)")
    axes.set_title("Graph runs: throughput by concurrency")
    axes.legend(fontsize=8, loc="upper left")
    axes.set_ylim(top=axes.get_ylim()[1] * 1.35)  # room for the legend above the bars
    _save(figure, out / "benchmarks-runs.png")


def runs_latency(data: dict[str, Any], out: Path) -> None:
    levels = sorted({row["concurrency"] for row in data["latency"]})
    figure, panels = plt.subplots(1, len(levels), figsize=(4.0 * len(levels), 4.4), squeeze=False)
    for axes, level in zip(panels[0], levels, strict=True):
        for row in data["latency"]:
            if row["concurrency"] != level:
                continue
            points = sorted((float(p), ms) for p, ms in row["distribution_ms"].items())
            axes.plot(
                [ms for _, ms in points],
                [p for p, _ in points],
                marker="o",
                ms=3,
                label=_label(row["target"]),
            )
        axes.set_xscale("log")
        axes.set_xlabel("latency (ms, log scale)")
        axes.set_ylabel("percentile")
        axes.set_title(f"{level} client{'s' if level > 1 else ''}")
        axes.grid(alpha=0.3)
    handles, labels = panels[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    figure.suptitle("Graph runs: latency distribution")
    figure.tight_layout(rect=(0, 0.12, 1, 1))
    figure.savefig(out / "benchmarks-runs-latency.png", dpi=DPI)
    plt.close(figure)


def sse_memory(data: dict[str, Any], out: Path) -> None:
    figure, axes = plt.subplots(figsize=(7.0, 4.0))
    for row in data["memory"]:
        samples = [s for s in row["samples"] if s["streams"] > 0]
        axes.plot(
            [s["streams"] for s in samples],
            [s["rss_mib"] for s in samples],
            ".",
            label=_label(row["target"]),
        )
    axes.set_xlabel("streams open")
    axes.set_ylabel("proxy resident memory (MiB)")
    axes.set_ylim(bottom=0)
    axes.set_title("SSE: proxy memory by open streams (first round, fresh processes)")
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, out / "benchmarks-sse-memory.png")


def routing_p99(data: dict[str, Any], out: Path) -> None:
    figure, axes = plt.subplots(figsize=(7.0, 4.0))
    for target in dict.fromkeys(row["target"] for row in data["p99"]):
        rows = sorted((r["load"], r["p99_ms"]) for r in data["p99"] if r["target"] == target)
        axes.plot(
            [100 * load for load, _ in rows],
            [ms for _, ms in rows],
            marker="o",
            label=_label(target),
        )
    axes.set_xlabel("offered load (% of fleet capacity)")
    axes.set_ylabel("short-run p99 (ms)")
    axes.set_ylim(bottom=0)
    axes.set_title("Routing: short-run p99 by load, mixed workload")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    _save(figure, out / "benchmarks-routing.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out-dir", required=True)
    args = parser.parse_args()
    plots = json.loads(Path(args.data).read_text())
    out = Path(args.out_dir)
    if "runs" in plots and plots["runs"]["runs_per_s"]:
        runs_by_concurrency(plots["runs"], out)
        runs_latency(plots["runs"], out)
    if "sse" in plots and plots["sse"]["memory"]:
        sse_memory(plots["sse"], out)
    if "routing" in plots:
        routing_p99(plots["routing"], out)


if __name__ == "__main__":
    main()
