"""Pictures of a service-time fit per label: a QQ plot (fitted quantiles against the sample's)
and a histogram of the durations with the fitted density over it (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after matplotlib.use: the backend must be chosen first

from paysim.fit.model import LabelFit
from paysim.fit.scenario_writer import station_names

QQ_POINTS = 200


def plot_fits(directory: Path, fits: dict[str, LabelFit]) -> list[Path]:
    """``DIR/<label>-qq.png`` and ``DIR/<label>-hist.png`` per label; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for label, name in station_names(list(fits)).items():
        fit = fits[label]
        for kind, draw in (("qq", _qq), ("hist", _histogram)):
            figure, axes = plt.subplots(figsize=(5.5, 4.5))
            draw(axes, fit)
            axes.set_title(f"{label}: {fit.service.dist}", fontsize=10)
            figure.tight_layout()
            path = directory / f"{name}-{kind}.png"
            figure.savefig(path, dpi=110)
            plt.close(figure)
            written.append(path)
    return written


def _qq(axes, fit: LabelFit) -> None:
    sample = fit.service.sample * 1000
    probabilities = (np.arange(QQ_POINTS) + 0.5) / QQ_POINTS
    observed = np.quantile(sample, probabilities)
    for candidate in fit.service.ranking[:3]:
        axes.plot(candidate.frozen.ppf(probabilities) * 1000, observed, ".", markersize=3,
                  label=f"{candidate.dist} (AIC {candidate.aic:.4g})")
    low, high = observed[0], observed[-1]
    axes.plot([low, high], [low, high], "k--", linewidth=0.8, label="y = x")
    axes.set_xlabel("fitted quantile (ms)")
    axes.set_ylabel("sample quantile (ms)")
    axes.legend(fontsize=8)


def _histogram(axes, fit: LabelFit) -> None:
    sample = fit.service.sample * 1000
    top = np.quantile(sample, 0.995)
    axes.hist(sample[sample <= top], bins=80, density=True, color="0.8", label="measured (to p99.5)")
    grid = np.linspace(max(sample[0], 1e-9), top, 400)
    chosen = fit.service.chosen or (fit.service.ranking[0] if fit.service.ranking else None)
    if chosen is not None:
        axes.plot(grid, chosen.frozen.pdf(grid / 1000) / 1000, "C0", label=f"{chosen.dist} fit")
    axes.set_xlabel("duration (ms)")
    axes.set_ylabel("density (per ms)")
    axes.legend(fontsize=8)
