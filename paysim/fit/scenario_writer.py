"""A commented scenario YAML from fitted labels: an arrival stream and a station per label.

Each station's service time is the duration the log measured (the system under test seen
from the client, its own queueing included), so the station gets enough workers that it
adds little waiting of its own; that count is a guess, said so in the file. Families the
scenario language lacks (Weibull) become the best-ranked family it has that still passes
the KS check, else the measured durations in a CSV file next to the scenario (empirical).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from paysim.fit.logs import LogError
from paysim.fit.model import LabelFit
from paysim.fit.rates import LEVEL
from paysim.fit.service import SEED, Fit, ks_limit
from paysim.outputs import write_all

HEADROOM = 1.5            # workers over the peak concurrency by Little's law
EMPIRICAL_LIMIT = 100_000  # durations written to an empirical file (fixed-seed subsample above)
WRITABLE = ("exponential", "lognormal", "gamma", "hyperexponential")


def write_scenario(path: Path, fits: dict[str, LabelFit], source: str, overwrite: bool = False) -> list[Path]:
    """Write the scenario (and any empirical CSV files beside it); returns the files written.
    An existing file is kept unless ``overwrite``: nothing a user wrote is lost."""
    names = station_names(list(fits))
    targets = [path, *(_empirical_file(path, names[label]) for label, fit in fits.items() if _needs_file(fit))]
    existing = [str(target) for target in targets if target.exists()]
    if existing and not overwrite:
        raise LogError(f"{existing[0]}: exists; choose another --out or add --force to overwrite it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _write(path, fits, source, names)
    except OSError as error:
        raise LogError(f"{path}: cannot write it: {error.strerror or error}") from None


def _write(path: Path, fits: dict[str, LabelFit], source: str, names: dict[str, str]) -> list[Path]:
    window = max(fit.window_s for fit in fits.values())
    written: list[Path] = []
    lines = [(f"# Written by `paysim fit {Path(source).name}` from {sum(f.count for f in fits.values()):,} requests "
              f"over {window:,.1f} s."),
             ("# Rates, profiles, service times and error rates are measured or fitted; the worker counts are a "
              "guess to edit."),
             ("# A station per label: its service time is the response time the log measured (the tested system's "
              "own queueing included)."),
             f"name: {json.dumps(_slug(Path(source).stem) or 'fitted')}",
             f"description: {json.dumps(f'Fitted from {Path(source).name} by paysim fit.')}",
             f"horizon: {_seconds(math.ceil(window))}      # the log's span, first to last request",
             "warmup: 0s             # the log starts with the test; set a warm-up if its ramp-up is not of interest",
             "replications: 5",
             "seed: 1",
             "", "arrivals:"]
    for label, fit in fits.items():
        lines += _arrival(names[label], fit)
    lines += ["", "stations:"]
    for label, fit in fits.items():
        station, extra = _station(names[label], fit, path)
        lines += station
        written += extra
    text = "\n".join(lines) + "\n"   # atomic; a link at --out is replaced, never written through
    write_all([(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))])
    return [path, *written]


def station_names(labels: list[str]) -> dict[str, str]:
    """A short unique identifier per label ('POST /checkout' -> post_checkout); never 'done'."""
    names: dict[str, str] = {}
    for label in labels:
        base = _slug(label) or "label"
        base = f"l_{base}" if base[0].isdigit() or base == "done" else base
        name, k = base, 2
        while name in names.values():
            name, k = f"{base}_{k}", k + 1
        names[label] = name
    return names


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40]


def _seconds(value: float) -> str:
    return f"{value:.6g}s"


def _ms(value_s: float) -> str:
    return f"{value_s * 1000:.6g}ms"


def _arrival(name: str, fit: LabelFit) -> list[str]:
    lines = [f"  # label {json.dumps(fit.label)}: {fit.count:,} requests, {fit.rate:.4g}/s over the log."]
    if len(fit.profile) > 1:
        steps = ", ".join(f"{p.rate:.4g}/s from {p.start_s:g}s" for p in fit.profile)
        lines.append(f"  # The rate changes (binary segmentation, Poisson likelihood ratio at {LEVEL:g}): {steps}.")
    else:
        lines.append(f"  # No change of rate found (Poisson likelihood ratio at {LEVEL:g}).")
    if math.isfinite(fit.interarrival_cv):
        lines.append(f"  # Gaps between arrivals have cv {fit.interarrival_cv:.2f} within each step (Poisson: 1; "
                     "a load generator's threads pace it lower).")
    lines += [f"  {name}:", f"    rate: {fit.rate:.6g}/s", "    process: poisson"]
    if len(fit.profile) > 1:
        lines.append("    profile:                # multiples of the rate above")
        lines += [f"      - {{at: {_seconds(p.start_s)}, x: {p.rate / fit.rate:.5g}}}" for p in fit.profile]
    lines.append(f"    enter: {name}")
    return lines


def _station(name: str, fit: LabelFit, path: Path) -> tuple[list[str], list[Path]]:
    service, comments, written = _service(name, fit, path)
    peak = fit.peak_rate * fit.service.mean
    workers = max(1, math.ceil(HEADROOM * peak - 1e-9), math.ceil(fit.overlap.p99))
    lines = [f"  # label {json.dumps(fit.label)}: " + comments[0], *(f"  # {c}" for c in comments[1:]),
             (f"  # workers is a guess to edit: {HEADROOM:g} x the peak concurrency by Little's law "
              f"({fit.peak_rate:.4g}/s x {_ms(fit.service.mean)} = {peak:.2f}),"),
             (f"  # at least the p99 of requests in flight in the log ({fit.overlap.p99:g}); the log cannot show how "
              "many workers served them."),
             f"  #   paysim size {path.name} --station {name} --slo \"p99<...\" finds the fewest for a target.",
             f"  {name}:", f"    workers: {workers}", f"    service: {service}"]
    if fit.error_rate > 0:
        lines.append(f"    errors: {fit.error_rate:.6g}         # share of requests that failed in the log")
    return lines, written


def _service(name: str, fit: LabelFit, path: Path) -> tuple[str, list[str], list[Path]]:
    result = fit.service
    measured = f"measured mean {_ms(result.mean)}, p50 {_ms(result.p50)}, p99 {_ms(result.p99)}"
    chosen = _writable(fit)
    comments = []
    if result.chosen is not None and result.chosen.dist not in WRITABLE:
        comments.append(f"{result.chosen.dist} fitted best ({_params(result.chosen)}, AIC {result.chosen.aic:.6g}), "
                        f"but paysim has no {result.chosen.dist} distribution;")
        comments.append(f"the closest it has, {chosen.dist}, is used (KS distance {chosen.ks:.4f})." if chosen else
                        "no family paysim has passes the KS check, so the measured durations are resampled.")
    elif chosen is not None:
        comments.append(f"{chosen.dist} fitted best by AIC ({_params(chosen)}, KS distance {chosen.ks:.4f}).")
    else:
        comments.append(f"no family fits ({result.notes[-1]}); the measured durations are resampled.")
    if chosen is None:
        file = _empirical_file(path, name)
        _write_durations(file, fit.duration_s)
        return (f"{{dist: empirical, file: {json.dumps(file.name)}, column: ms, unit: ms}}",
                comments + [measured + "."], [file])
    fitted = f"fitted mean {_ms(chosen.mean)}, p50 {_ms(chosen.quantile(0.5))}, p99 {_ms(chosen.quantile(0.99))}"
    return _syntax(chosen), comments + [fitted + ";", measured + "."], []


def _writable(fit: LabelFit) -> Fit | None:
    """The family to write: the chosen one if paysim has it, else the best-ranked one it has that
    passes the KS check; None: the durations go to an empirical file."""
    chosen = fit.service.chosen
    if chosen is None or chosen.dist in WRITABLE:
        return chosen
    return next((f for f in fit.service.ranking if f.dist in WRITABLE and f.ks <= ks_limit()), None)


def _needs_file(fit: LabelFit) -> bool:
    return _writable(fit) is None


def _empirical_file(path: Path, station: str) -> Path:
    return path.with_name(f"{path.stem}-{station}.csv")


def _params(fit: Fit) -> str:
    return ", ".join(f"{key} {value:.4g}" for key, value in fit.params.items())


def _syntax(fit: Fit) -> str:
    """The fitted family in the scenario language: mean and coefficient of variation."""
    mean = fit.mean
    cv = math.sqrt(float(fit.frozen.var())) / mean
    if fit.dist == "exponential":
        return f"{{dist: exponential, mean: {_ms(mean)}}}"
    return f"{{dist: {fit.dist}, mean: {_ms(mean)}, cv: {cv:.6g}}}"


def _write_durations(file: Path, durations: np.ndarray) -> None:
    """The measured durations in ms under a header ``ms`` (a fixed-seed subsample above EMPIRICAL_LIMIT)."""
    values = durations
    if len(values) > EMPIRICAL_LIMIT:
        values = np.random.default_rng(SEED).choice(values, EMPIRICAL_LIMIT, replace=False)
    write_all([(file, lambda temporary: np.savetxt(temporary, values * 1000, fmt="%.6g", header="ms", comments=""))])
