"""What ``paysim size --all --out DIR`` writes: platform.json, platform.csv and platform.png (cost
against each objective's metric for every configuration tried), all renamed into place together."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from paysim.outputs import write_all
from paysim.platform_sizing import PlatformSizing, to_dict


def write_platform(directory: Path, sizing: PlatformSizing) -> list[Path]:
    """The answer and its evidence as JSON, one CSV row per configuration tried, and the frontier plot."""
    directory.mkdir(parents=True, exist_ok=True)
    answer = to_dict(sizing)
    text = json.dumps(answer, indent=2, ensure_ascii=False) + "\n"
    return write_all([(directory / "platform.json", lambda path: path.write_text(text, encoding="utf-8")),
                      (directory / "platform.csv", lambda path: _csv(answer, path)),
                      (directory / "platform.png", lambda path: frontier_picture(answer, path))])


def _csv(answer: Mapping[str, Any], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["trial", "phase", *answer["stations"], "cost_per_hour",
                         *(f"{metric}{suffix}" for metric in answer["metrics"] for suffix in ("", "_ci_low", "_ci_high")),
                         "verdict", "answer", "note"])
        for number, trial in enumerate(answer["trials"], 1):
            values = []
            for slo in answer["slo"]:
                value = trial["objectives"][slo] or {"mean": None, "ci": [None, None]}
                values += ["" if x is None else repr(x) for x in (value["mean"], *value["ci"])]
            writer.writerow([number, trial["phase"], *(trial["workers"][n] for n in answer["stations"]),
                             repr(trial["cost_per_hour"]), *values, trial["verdict"],
                             trial["workers"] == answer["answer"], trial["note"]])


def frontier_picture(answer: Mapping[str, Any], path: Path) -> Path:
    """Cost per hour against each objective's estimate (95% CI bars) for every configuration tried,
    coloured by verdict, the target dashed and the answer circled."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    colours = {"holds": "tab:green", "fails": "tab:red", "unclear": "tab:orange"}
    figure, all_axes = plt.subplots(len(answer["slo"]), 1, figsize=(7, 3.6 * len(answer["slo"])), squeeze=False)
    for axes, slo, metric, target in zip(all_axes[:, 0], answer["slo"], answer["metrics"], answer["targets"],
                                         strict=True):
        scale, unit = (1000.0, "ms") if not metric.endswith("_rate") else (100.0, "%")
        shown = [(t, t["objectives"][slo]) for t in answer["trials"]
                 if t["objectives"][slo] is not None and t["objectives"][slo]["mean"] is not None]
        for trial, value in shown:
            mean = value["mean"] * scale
            low, high = (mean if x is None else x * scale for x in value["ci"])
            axes.errorbar([trial["cost_per_hour"]], [mean], yerr=[[mean - low], [high - mean]], fmt="o",
                          color=colours[trial["verdict"]], ecolor="grey", capsize=3)
            if trial["workers"] == answer["answer"]:
                axes.scatter([trial["cost_per_hour"]], [mean], s=220, facecolors="none", edgecolors="black",
                             zorder=4, label="answer: " + ", ".join(f"{n} {w}" for n, w in answer["answer"].items()))
        axes.axhline(target * scale, linestyle="--", color="black", label=f"target {slo}")
        costs = [trial["cost_per_hour"] for trial, _ in shown]
        if costs and min(costs) > 0 and max(costs) > 5 * min(costs):   # the ceiling far right of the rest
            axes.set_xscale("log")
            axes.xaxis.set_major_formatter(ScalarFormatter())
            axes.xaxis.set_minor_formatter(ScalarFormatter())
        axes.set_xlabel("cost per hour of the sized stations")
        axes.set_ylabel(f"{metric} ({unit}), CI")
        axes.set_title(f"configurations tried for {slo} (green: holds, red: fails, orange: unclear)", fontsize=10)
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    plt.close(figure)
    return path
