"""report.html: one self-contained page a planner can mail, for a run, a sweep or a sizing.

Everything comes from files in the output directory, so ``paysim report DIR`` rebuilds the
page from them alone: ``report.json`` (written here: the command, the scenario file as
written, the version, the wall time, and what the other files lack: theory beside the
run, the Little's-law verdicts of a sweep's points, the sizing's settings), plus what the
command wrote anyway (``results.json`` of a run, ``results.csv`` and ``sweep.json`` of a
sweep, ``sizing.json`` of a sizing) and every PNG picture in the directory, embedded as
base64. No network is needed to read it: no scripts, fonts or style sheets are fetched.
User text (names, descriptions, the scenario itself) is escaped by Jinja2's autoescape.
"""

from __future__ import annotations

import base64
import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, UndefinedError

from paysim import __version__
from paysim.errors import PaysimError
from paysim.outputs import write_all
from paysim.report import LAW_KEYS, TIME_METRICS, estimate_leaves
from paysim.runner import RunResult
from paysim.scenario import Scenario
from paysim.sizing import Sizing, _with_workers, to_dict as sizing_dict
from paysim.sweep.grid import Sweep
from paysim.units import format_duration

REPORT = "report.html"
DATA = "report.json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# the pictures a reader looks at first, then any other PNG in the directory
FIRST_PICTURES = ("timeseries", "sizing", "latency", "throughput", "utilization", "queue", "losses", "heatmap")
SCOPE_METRICS = ("arrival_rate", "throughput", "goodput", "utilization", "workers", "cost", "W", "Wq", "S", "latency.p50", "latency.p95",
                 "latency.p99", "latency.p999", "L", "Lq", "failure_rate", "rejection_rate", "timeout_rate",
                 "error_rate", "rate_limited_rate", "background_failed", "cache_hit_rate", "retry_amplification",
                 "drain_time", "not_drained", "recovery_time", "not_recovered")
WHEN_NONZERO = {"rate_limited_rate", "background_failed"}   # rows shown only where a scenario has them
VERDICTS = ("met", "missed", "uncertain")
SWEEP_METRICS = ("system.throughput", "system.W", "system.latency.p99", "system.failure_rate", "system.cost")


class ReportError(PaysimError):
    """The directory does not hold what a report is built from."""


# ---- formatting (Jinja2 filters) ----------------------------------------------------------

def kind_of(metric: str) -> str:
    """time, percent, rate or number, from a (dotted) metric or SLO objective name."""
    last = metric.rsplit(".", 1)[-1]
    if last in TIME_METRICS or last.endswith("_latency") or last in ("drain_time", "recovery_time"):
        return "time"
    if last in ("arrival_rate", "throughput", "goodput", "entry_rate"):
        return "rate"
    if last in ("not_drained", "not_recovered") or last.endswith(("utilization", "_rate")):
        return "percent"
    return "number"


def show(value: Any, kind: str = "number") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if kind == "time":
        return format_duration(value)
    if kind == "percent":
        return f"{100 * value:.3g}%"
    if kind == "rate":
        return f"{value:,.4g}/s"
    return f"{value:,.4g}" if isinstance(value, float) else str(value)


def show_estimate(value: Mapping[str, Any] | None, kind: str = "number") -> str:
    """``mean [low, high]`` from {"mean", "ci95"}."""
    if not value or value.get("mean") is None:
        return "–"
    low, high = (value.get("ci95") or [None, None])
    interval = f" [{show(low, kind)}, {show(high, kind)}]" if low is not None and high is not None else ""
    return show(value["mean"], kind) + interval


def _environment() -> Environment:
    environment = Environment(loader=PackageLoader("paysim", "templates"), autoescape=True,
                              undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(show=show, estimate=show_estimate, kind=kind_of)
    return environment


# ---- what the page shows --------------------------------------------------------------------

@dataclass(frozen=True)
class Picture:
    name: str
    data: str    # base64 PNG


def pictures(directory: Path) -> list[Picture]:
    """Every PNG in ``directory`` (the known ones first), checked and encoded."""
    files = sorted(directory.glob("*.png"), key=lambda p: (FIRST_PICTURES.index(p.stem) if p.stem in FIRST_PICTURES
                                                            else len(FIRST_PICTURES), p.name))
    shown = []
    for path in files:
        if not path.is_file():   # a pipe could block the read; a directory is no picture
            continue
        raw = path.read_bytes()
        if raw.startswith(PNG_SIGNATURE):
            shown.append(Picture(path.stem, base64.b64encode(raw).decode("ascii")))
    return shown


def _read_json(path: Path) -> Any:
    if path.exists() and not path.is_file():   # a pipe could block the read forever
        raise ReportError(f"{path}: not a regular file; a report is built from the files that run, sweep or size "
                          "wrote with --out")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: not found; a report is built from the files that run, sweep or size "
                          "wrote with --out") from None
    except (OSError, ValueError) as error:
        raise ReportError(f"{path}: cannot read it as JSON: {error}") from None


def _run_context(directory: Path, data: dict[str, Any]) -> dict[str, Any]:
    results = _read_json(directory / "results.json")
    scopes = [("system", results["system"])] + \
        [(f"station {n}", v) for n, v in results["stations"].items()] + \
        [(f"stream {n}", v) for n, v in results["streams"].items()]
    flat = [(label, estimate_leaves(values)) for label, values in scopes]
    rows = [(metric, [values.get(metric) for _, values in flat]) for metric in SCOPE_METRICS
            if any(values.get(metric) and values[metric]["mean"] is not None
                   and (metric not in WHEN_NONZERO or values[metric]["mean"] != 0) for _, values in flat)]
    laws = {key: law for law, key in LAW_KEYS.items()}
    little = [(label, laws.get(law, law), check) for label, values in scopes
              for law, check in (values.get("littles_law") or {}).items()]
    refused = [(name, part["reason"]) for name, part in (data.get("theory") or {}).get("stations", {}).items()
               if isinstance(part, dict) and part.get("reason")]
    return {"title": results["run"]["scenario"], "refused": refused, "results": results, "scope_labels": [label for label, _ in flat], "metric_rows": rows,
            "little": little, "slo": results.get("slo") or [],
            "verdict": overall_verdict([check["verdict"] for check in results.get("slo") or []])}


def overall_verdict(verdicts: Sequence[str]) -> str:
    """missed if one objective is surely missed, uncertain if one cannot be told yet, else met ('' without SLO)."""
    if not verdicts:
        return ""
    return "missed" if "missed" in verdicts else "uncertain" if "uncertain" in verdicts else "met"


def _sweep_context(directory: Path, data: dict[str, Any]) -> dict[str, Any]:
    from paysim.sweep.storage import estimates, read_description, read_results
    from paysim.sweep.summary import slo_verdict

    description = read_description(directory)
    _, rows = read_results(directory / "results.csv")
    parameters = list(description["vary"])
    slo = description.get("slo") or {}
    points: list[dict[str, Any]] = []
    for row in sorted(rows, key=lambda row: int(row["point"])):
        metrics = estimates(row)
        cells = {name: {"mean": metrics[name].mean, "ci95": [metrics[name].low, metrics[name].high]}
                 for name in SWEEP_METRICS if name in metrics}
        busiest = max(((metrics[f"stations.{s}.utilization"].mean, s) for s in description.get("stations") or []
                       if f"stations.{s}.utilization" in metrics
                       and math.isfinite(metrics[f"stations.{s}.utilization"].mean)), default=None)
        theory = (data.get("theory") or {}).get(row["point"]) or {}
        points.append({"point": int(row["point"]), "params": [row[p] for p in parameters], "metrics": cells,
                       "theory": theory, "busiest": busiest, "verdict": slo_verdict(slo, metrics) if slo else ""})
    by_verdict: dict[str, list[int]] = {}
    for point in points:
        by_verdict.setdefault(point["verdict"], []).append(point["point"])
    formulas = sorted({f"{t['formula']}{'' if t['exact'] else ' (approximate)'}" for point in points
                       for t in point["theory"].values()})
    return {"title": f"sweep of {description.get('scenario_name', '')}", "formulas": formulas,
            "description": description, "parameters": parameters, "points": points, "slo_targets": slo,
            "by_verdict": by_verdict, "little_fails": data.get("little_fails") or [],
            "has_cost": any("system.cost" in point["metrics"] for point in points),
            "verdict": overall_verdict([point["verdict"] for point in points if point["verdict"] in VERDICTS])}


def _size_context(directory: Path, data: dict[str, Any]) -> dict[str, Any]:
    sizing = _read_json(directory / "sizing.json")
    return {"title": f"sizing {sizing['station']} for {sizing['slo']}", "sizing": sizing,
            "metric_kind": kind_of(sizing["metric"]), "verdict": "met" if sizing["workers"] is not None else "missed"}


CONTEXTS = {"run": _run_context, "sweep": _sweep_context, "size": _size_context}
SOURCES = {"run": ("report.json", "results.json"), "sweep": ("report.json", "results.csv", "sweep.json"),
           "size": ("report.json", "sizing.json")}


def render(directory: str | Path) -> Path:
    """(Re)build ``DIR/report.html`` from the files in ``DIR``; returns its path."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ReportError(f"{directory}: expected a directory written by run, sweep or size with --out")
    data = _read_json(directory / DATA)
    command = data.get("command") if isinstance(data, dict) else None
    if command not in CONTEXTS:
        raise ReportError(f"{directory / DATA}: command: expected one of {', '.join(CONTEXTS)}, got {command!r}")
    try:
        context = {"data": data, "command": command, "pictures": pictures(directory),
                   **CONTEXTS[command](directory, data)}
        html = _environment().get_template("report.html.j2").render(**context)
    except (KeyError, IndexError, TypeError, AttributeError, UndefinedError) as error:   # files of another shape
        raise ReportError(f"{directory}: {', '.join(SOURCES[command])} do not hold what {command} --out writes "
                          f"({type(error).__name__}: {error}); run the command again with --out") from None
    return _write_text(directory / REPORT, html)


def _write_text(path: Path, text: str) -> Path:
    """Write through a temporary file renamed into place: a failed write leaves the earlier file."""
    return write_all([(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))])[0]


# ---- what each command records ------------------------------------------------------------------

def _source(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as error:
        text = f"(could not be read when the report was written: {error})"
    return {"file": str(path), "text": text}


def _record(directory: Path, command: str, sources: list[Path], **fields: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return _write_text(directory / DATA, _record_text(command, sources, **fields))


def _record_text(command: str, sources: list[Path], **fields: Any) -> str:
    data = {"command": command, "paysim_version": __version__,
            "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "sources": [_source(path) for path in sources], **fields}
    return json.dumps(data, indent=1, ensure_ascii=False, default=_plain) + "\n"


def _plain(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else str(value)


def for_run(directory: Path, scenario_file: Path, result: RunResult) -> list[Path]:
    """report.json and report.html beside a run's results.json (which write_outputs wrote)."""
    from paysim.compare import compare, comparisons_to_json
    from paysim.theory import analyse, theory_to_dict

    theory = analyse(result.scenario)
    record = _record(directory, "run", [scenario_file], description=result.scenario.description,
                     comparisons=comparisons_to_json(compare(result, theory)), theory=theory_to_dict(theory))
    return [record, render(directory)]


def theory_of(scenario: Scenario, metrics: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Queueing theory's value of each (dotted) metric where it has one: {metric: {value, formula, exact}}."""
    from paysim.theory import analyse

    theory = analyse(scenario)
    scopes, values = theory.scopes(), theory.flat()
    found = {}
    for metric in metrics:
        scope = "system" if metric.startswith("system.") else ".".join(metric.split(".")[:2])
        if metric in values and math.isfinite(values[metric]):
            found[metric] = {"value": values[metric], "formula": scopes[scope].formula, "exact": scopes[scope].exact}
    return found


def for_sweep(directory: Path, sweep: Sweep, little_fails: Sequence[int], wall_s: float,
              notes: Sequence[str]) -> list[Path]:
    """report.json and report.html beside a sweep's results.csv; the Little's-law failures (and
    notes (which engine ran) of points run before (a resumed sweep) are kept."""
    try:   # the record of a resumed sweep's earlier points; anything unreadable is rewritten anew
        previous = _read_json(directory / DATA) if (directory / DATA).exists() else {}
    except ReportError:
        previous = {}
    if not isinstance(previous, dict) or previous.get("command") != "sweep":
        previous = {}
    fails = sorted(set(previous.get("little_fails") or []) | set(little_fails))
    theory = {point.index: theory_of(point.scenario, SWEEP_METRICS) for point in sweep.points}
    record = _record(directory, "sweep", [sweep.file, sweep.scenario_file], little_fails=fails, wall_s=wall_s,
                     notes=list(notes) or previous.get("notes") or [],
                     description=sweep.points[0].scenario.description, theory=theory)
    return [record, render(directory)]


def for_size(directory: Path, scenario_file: Path, scenario: Scenario, sizing: Sizing, *, seed: int,
             replications: int, wall_s: float) -> list[Path]:
    """sizing.json, sizing.csv, sizing.png, report.json and report.html."""
    directory.mkdir(parents=True, exist_ok=True)
    answer = sizing_dict(sizing)
    for trial in answer["trials"]:   # theory beside each count tried, where it has an answer
        trial["theory"] = theory_of(_with_workers(scenario, sizing.station, trial["workers"]),
                                    [answer["metric"]]).get(answer["metric"])
    answer_text = json.dumps(answer, indent=2, ensure_ascii=False) + "\n"
    record_text = _record_text("size", [scenario_file], description=scenario.description, seed=seed,
                               replications=replications, wall_s=wall_s, engine="auto (per worker count)")
    # all four renamed into place together, then the page built from them: a failed write replaces nothing
    written = write_all([(directory / "sizing.json", lambda path: path.write_text(answer_text, encoding="utf-8")),
                         (directory / "sizing.csv", lambda path: _sizing_csv(answer, path)),
                         (directory / "sizing.png", lambda path: sizing_picture(answer, path)),
                         (directory / DATA, lambda path: path.write_text(record_text, encoding="utf-8"))])
    return written + [render(directory)]


def _sizing_csv(answer: Mapping[str, Any], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["workers", "mean", "ci95_low", "ci95_high", "holds", "note"])
        for trial in sorted(answer["trials"], key=lambda t: t["workers"]):
            low, high = trial.get("ci95") or [None, None]
            writer.writerow([trial["workers"], *("" if x is None else repr(x) for x in (trial.get("mean"), low, high)),
                             trial["holds"], trial["note"] or ""])


def sizing_picture(answer: Mapping[str, Any], path: Path) -> Path:
    """The objective's estimate and 95% CI at each worker count tried, against the target."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    scale, unit = (1000.0, "ms") if kind_of(answer["metric"]) == "time" else (100.0, "%")
    trials = sorted((t for t in answer["trials"] if t.get("mean") is not None), key=lambda t: t["workers"])
    figure, axes = plt.subplots(figsize=(7, 4))
    if trials:
        xs = [t["workers"] for t in trials]
        means = [t["mean"] * scale for t in trials]
        lows = [(t["mean"] - (t["ci95"][0] if t["ci95"][0] is not None else t["mean"])) * scale for t in trials]
        highs = [((t["ci95"][1] if t["ci95"][1] is not None else t["mean"]) - t["mean"]) * scale for t in trials]
        colours = ["tab:green" if t["holds"] else "tab:red" for t in trials]
        axes.errorbar(xs, means, yerr=[lows, highs], fmt="none", ecolor="grey", capsize=4)
        axes.scatter(xs, means, c=colours, zorder=3)
        theory = [(t["workers"], t["theory"]["value"] * scale) for t in trials if t.get("theory")]
        if theory:
            axes.scatter(*zip(*theory), marker="x", color="black", zorder=4, label="queueing theory")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.axhline(answer["target"] * scale, linestyle="--", color="black", label=f"target {answer['slo']}")
    if answer["workers"] is not None:
        axes.axvline(answer["workers"], color="tab:green", alpha=0.4, label=f"answer: {answer['workers']} workers")
    axes.set_xlabel(f"workers at {answer['station']}")
    axes.set_ylabel(f"{answer['metric']} ({unit}), 95% CI")
    axes.set_title(f"sizing {answer['station']} for {answer['slo']} (green: holds, red: fails)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    plt.close(figure)
    return path
