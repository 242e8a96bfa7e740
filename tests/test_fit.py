"""``paysim fit``: a JMeter file with known truth is fitted back to it; what fit writes runs;
bad files are refused with one line and exit code 2."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import special, stats
from typer.testing import CliRunner

from paysim.cli import app
from paysim.distributions import Gamma, Hyperexponential, Lognormal
from paysim.fit import fit_log, read_log
from paysim.fit.concurrency import in_flight
from paysim.fit.rates import LEVEL, bin_width, segments
from paysim.fit.service import fit_service
from paysim.fit.synthetic import Stream, write_jtl
from paysim.scenario import load_scenario

SCENARIOS = Path(__file__).parent.parent / "scenarios"
WINDOW_S, STEP_S = 600.0, 300.0
AUTHORIZE = Stream("authorize", ((STEP_S, 40.0), (WINDOW_S, 80.0)), Lognormal.from_median_p99(0.080, 0.400), 0.005)
CAPTURE = Stream("capture", ((WINDOW_S, 25.0),), Gamma.from_mean_cv(0.050, 0.6), 0.02)
TRUTH = {"authorize": (AUTHORIZE, stats.lognorm(AUTHORIZE.service.sigma, scale=math.exp(AUTHORIZE.service.mu)), 60.0),
         "capture": (CAPTURE, stats.gamma(CAPTURE.service.shape, scale=CAPTURE.service.scale), 25.0)}
RESOLUTION_S = 0.001   # JMeter's millisecond clock: quantiles can move by up to half a step


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def jtl(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fit") / "loadtest.jtl"
    write_jtl(path, [AUTHORIZE, CAPTURE], seed=20261203)
    return path


@pytest.fixture(scope="module")
def fitted(jtl):
    return fit_log(read_log(jtl))


def test_fit_recovers_rates_percentiles_errors_and_concurrency(fitted):
    # 2 labels x 5 quantities, each within z standard errors, z Bonferroni-corrected to a
    # 0.1% family-wise level (z = 3.89). The standard errors, from the true model and the
    # expected counts (36,000 and 15,000 requests): rate 1/sqrt(n); p50 and p99 those of the
    # sample quantile, sqrt(q(1-q)/n)/f(x_q), which bounds the efficient ML estimate of the right
    # family, plus half a millisecond of clock rounding; error rate sqrt(p(1-p)/n); concurrency
    # λ·E[S] relative sqrt((1 + cv²)/n). The test fails on a bias beyond: rate 2.1% and 3.2%,
    # p50 2.4% and 3.7%, p99 5.4% and 5.2%, concurrency 2.6% and 3.7% (authorize, capture); the
    # error rate, a plain proportion, beyond 0.15 and 0.45 percentage points (of 0.5% and 2%).
    z = float(special.ndtri(1 - 0.001 / (2 * 10)))
    for label, (stream, truth, mean_rate) in TRUTH.items():
        fit = fitted[label]
        n = mean_rate * WINDOW_S
        assert fit.service.dist == stream.service.__class__.__name__.lower(), label
        assert abs(fit.rate / mean_rate - 1) <= z / math.sqrt(n), (label, fit.rate)
        for q in (0.5, 0.99):
            se = math.sqrt(q * (1 - q) / n) / truth.pdf(truth.ppf(q))
            got = fit.service.fitted(f"p{round(q * 100)}")
            assert abs(got - truth.ppf(q)) <= z * se + RESOLUTION_S / 2, (label, q, got, truth.ppf(q))
        p = stream.error_rate
        assert abs(fit.error_rate - p) <= z * math.sqrt(p * (1 - p) / n), (label, fit.error_rate)
        concurrency = mean_rate * truth.mean()
        relative = math.sqrt((1 + truth.var() / truth.mean() ** 2) / n)
        assert abs(fit.concurrency / concurrency - 1) <= z * relative, (label, fit.concurrency, concurrency)
        assert fit.littles_law_holds and abs(fit.overlap.mean / fit.concurrency - 1) < 0.01, label


def test_the_rate_step_is_found_and_a_constant_rate_has_none(fitted):
    # segments are whole bins (1 s here); at 40 -> 80/s the likelihood-ratio's peak is within
    # a few arrivals of the true step, so two bins of slack fail on any real misplacement
    steps = fitted["authorize"].profile
    assert len(steps) == 2 and abs(steps[1].start_s - STEP_S) <= 2 * bin_width(WINDOW_S)
    z = float(special.ndtri(1 - 0.001 / 4))
    for part, rate in zip(steps, (40.0, 80.0)):
        assert abs(part.rate / rate - 1) <= z / math.sqrt(rate * STEP_S), (part, rate)
    assert len(fitted["capture"].profile) == 1   # a spurious split has chance below 1% by construction


def test_json_has_the_documented_keys(jtl):
    result = invoke("fit", str(jtl), "--json")
    assert result.exit_code == 0, result.output
    labels = json.loads(result.stdout)["labels"]
    assert set(labels) == {"authorize", "capture"}
    for entry in labels.values():
        assert {"count", "rate", "profile", "service", "error_rate", "concurrency"} <= set(entry)
        assert {"dist", "params", "mean", "p50", "p99", "aic", "ks"} <= set(entry["service"])
    assert labels["capture"]["profile"] is None and len(labels["authorize"]["profile"]) == 2


def test_written_scenario_validates_and_runs_with_the_fitted_rate(jtl, tmp_path):
    out = tmp_path / "fitted.yaml"
    assert invoke("fit", str(jtl), "--out", str(out), "--plot", str(tmp_path / "plots")).exit_code == 0
    assert invoke("validate", str(out)).exit_code == 0
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "authorize-hist.png", "authorize-qq.png", "capture-hist.png", "capture-qq.png"]
    text = out.read_text()
    assert "guess to edit" in text and "dist: lognormal" in text and "dist: gamma" in text
    result = invoke("run", str(out), "--horizon", "30s", "-r", "2", "-q", "--json")
    assert result.exit_code == 0, result.output
    streams = json.loads(result.stdout)["streams"]
    # 30 s lie before the step: authorize arrives at its first rate, 40/s. Over 2 x 30 s that is
    # 2,400 arrivals, relative s.e. 2%; 4 standard errors fail on a profile 8% off
    assert abs(streams["authorize"]["arrival_rate"]["mean"] / 40.0 - 1) <= 4 / math.sqrt(2400)
    assert abs(streams["capture"]["arrival_rate"]["mean"] / 25.0 - 1) <= 4 / math.sqrt(1500)


def test_weibull_becomes_a_family_paysim_has_and_a_misfit_becomes_empirical(tmp_path):
    rng = np.random.default_rng(5)
    weibull = stats.weibull_min(1.5, scale=0.1).rvs(20_000, random_state=rng)
    bimodal = np.concatenate([rng.lognormal(math.log(0.01), 0.1, 10_000), rng.lognormal(math.log(0.2), 0.1, 10_000)])
    rows = ["t,ms,op"] + [f"{1_796_300_000 + i * 0.01:.3f},{w * 1000:.4f},pay" for i, w in enumerate(weibull)] \
        + [f"{1_796_300_000 + i * 0.01:.3f},{b * 1000:.4f},Refund Batch" for i, b in enumerate(bimodal)]
    log = tmp_path / "ops.csv"
    log.write_text("\n".join(rows) + "\n")
    out = tmp_path / "ops.yaml"
    result = invoke("fit", str(log), "--time", "t", "--duration", "ms", "--label", "op", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    labels = json.loads(result.stdout)["labels"]
    assert labels["pay"]["service"]["dist"] == "weibull" and labels["Refund Batch"]["service"]["dist"] == "empirical"
    scenario = load_scenario(out)
    assert type(scenario.stations["pay"].service).__name__ != "Weibull"
    assert "paysim has no weibull" in out.read_text()
    empirical = scenario.stations["refund_batch"].service
    assert type(empirical).__name__ == "Empirical" and len(empirical.values) == 20_000
    assert empirical.mean == pytest.approx(bimodal.mean(), rel=1e-4)


def test_an_existing_scenario_is_kept_without_force(tmp_path):
    example = str(SCENARIOS / "checkout-loadtest.jtl")
    out = tmp_path / "mine.yaml"
    out.write_text("name: mine\n")
    result = invoke("fit", example, "--out", str(out))
    assert result.exit_code == 2 and "add --force" in result.stderr and out.read_text() == "name: mine\n"
    assert invoke("fit", example, "--out", str(out), "--force").exit_code == 0 and "arrivals:" in out.read_text()


def test_end_times_are_turned_into_starts(tmp_path):
    # an access log stamped at completion: starts 0 s and 1 s, each taking 2 s, overlap by 1 s
    log = tmp_path / "access.csv"
    log.write_text("done_at,took\n2.0,2\n3.0,2\n")
    result = invoke("fit", str(log), "--time", "done_at", "--duration", "took", "--unit", "s", "--time-at", "end",
                    "--time-unit", "s", "--json")
    entry = json.loads(result.stdout)["labels"]["requests"]
    assert entry["rate"] == pytest.approx(2.0) and entry["concurrency_measured"]["max"] == 2


def test_a_constant_rate_is_split_by_chance_less_than_the_stated_level():
    # 300 logs of a constant Poisson rate (2,000 arrivals over 600 s each): with the level at 1%
    # (Bonferroni, conservative) a split may appear in about 3; 10 or more has probability
    # below 0.1% under Binomial(300, 0.01), so the test fails on a level really above ~1.5%
    rng = np.random.default_rng(11)
    splits = sum(len(segments(np.sort(rng.uniform(0, 600, rng.poisson(2000))), 600.0)) > 1 for _ in range(300))
    assert stats.binom.sf(splits - 1, 300, LEVEL) > 0.001, splits


def test_weibull_fit_is_the_maximum_likelihood():
    values = np.sort(stats.weibull_min(0.7, scale=2.0).rvs(5000, random_state=np.random.default_rng(3)))
    ours = next(f for f in fit_service(values).ranking if f.dist == "weibull")
    shape, _, scale = stats.weibull_min.fit(values, floc=0)
    theirs = float(np.sum(stats.weibull_min(shape, scale=scale).logpdf(values)))
    assert ours.loglik >= theirs - 1e-6 and ours.params["shape"] == pytest.approx(shape, rel=1e-3)


def test_hyperexponential_is_chosen_for_a_highly_variable_sample():
    truth = Hyperexponential.from_mean_cv(0.02, 2.5)
    service = fit_service(truth.draw(np.random.default_rng(8), 20_000))
    assert service.dist == "hyperexponential"
    # ML on 20,000 draws: the mean's relative s.e. is cv/sqrt(n) = 1.8%; 4 s.e. fail on a 7% bias
    assert service.chosen.params["mean"] == pytest.approx(0.02, rel=4 * 2.5 / math.sqrt(20_000))


def test_in_flight_counts_overlap_exactly():
    # [0, 2] and [1, 3] over a window of 4 s: one in flight for 2 s, two for 1 s, none for 1 s
    result = in_flight(np.array([0.0, 1.0]), np.array([2.0, 2.0]), 4.0)
    assert result.mean == pytest.approx(1.0) and result.peak == 2 and result.p99 == 2


def test_a_headerless_jtl_and_jmeter_date_format(tmp_path):
    # print_field_names=false: JMeter's default column order; timestamp_format=yyyy/MM/dd HH:mm:ss.SSS
    log = tmp_path / "plain.jtl"
    log.write_text("2026/12/03 10:00:00.000,20,a,200,OK,t 1-1,text,true,,10,10,1,1,u,19,0,0\n"
                   "2026/12/03 10:00:02.000,40,a,500,Err,t 1-1,text,false,,10,10,1,1,u,39,0,0\n")
    result = invoke("fit", str(log), "--json")
    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)["labels"]["a"]
    assert entry["count"] == 2 and entry["rate"] == pytest.approx(1.0) and entry["error_rate"] == 0.5


def test_iso_timestamps_and_seconds(tmp_path):
    log = tmp_path / "access.csv"
    log.write_text("when,took\n" + "".join(f"2026-12-03T10:00:{i // 10:02d}.{i % 10}00Z,0.{i % 7 + 1}\n"
                                          for i in range(600)))
    result = invoke("fit", str(log), "--time", "when", "--duration", "took", "--unit", "s", "--json")
    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)["labels"]["requests"]
    # 600 requests, 0.1 s apart: 599 gaps over 59.9 s
    assert entry["count"] == 600 and entry["rate"] == pytest.approx(600 / 59.9) and entry["error_rate"] == 0


@pytest.mark.parametrize("content, args, words", [
    ("", [], "is empty"),
    ("timeStamp,elapsed,label,success\n", [], "has a header but no requests"),
    ("timeStamp,elapsd,label,success\n1,2,a,true\n", [], "no column 'elapsed' (did you mean 'elapsd'?)"),
    ("timeStamp,elapsed,label,success\n1796300000000,20,a,true\nyesterday,20,a,true\n", [],
     "row 2: expected a timestamp"),
    ("timeStamp,elapsed,label,success\n1796300000000,20,a,true\n1796300000001,20,,true\n", [],
     "row 2: empty label in column 'label'"),
    ("timeStamp,elapsed,label,success\n1796300000000,-3,a,true\n", [], "row 1: expected a duration in ms"),
    ("timeStamp,elapsed,label,success\n1796300000000,3,a,maybe\n", [], "expected true or false"),
    ("<?xml version=\"1.0\"?>\n<testResults/>\n", [], "is an XML .jtl"),
    ("timeStamp,elapsed,label,success\n1796300000000,3,a,true\n", [], "start at the same time"),
    ("timeStamp,elapsed,label,success\n1796300000000,3,a,true\n1796300000005\n", [], "line 3: has 1 cells"),
    ("t,d\n1,2\n", ["--time", "t"], "give both --time and --duration"),
    ("t,d\n1,2\n", ["--time", "", "--duration", "d"], "no column ''; the header has t, d"),   # was a TypeError
    ("t,d\n1,2\n", ["--time", "t", "--duration", "d", "--unit", "min"], "--unit: expected ms or s"),
])
def test_bad_files_get_one_line_and_exit_2(tmp_path, content, args, words):
    log = tmp_path / "bad.jtl"
    log.write_text(content)
    result = invoke("fit", str(log), *args)
    assert result.exit_code == 2, result.output
    assert words in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_missing_file_is_named():
    result = invoke("fit", "no-such-file.jtl")
    assert result.exit_code == 2 and "no-such-file.jtl: cannot read it" in result.stderr


def test_shipped_example_fits_to_the_shipped_scenario(tmp_path):
    # scenarios/checkout-loadtest.yaml is what `paysim fit` writes from the .jtl: it must not go stale
    out = tmp_path / "checkout-loadtest.yaml"
    result = invoke("fit", str(SCENARIOS / "checkout-loadtest.jtl"), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text() == (SCENARIOS / "checkout-loadtest.yaml").read_text()


def test_fit_has_help_and_is_documented():
    result = invoke("fit", "--help")
    assert result.exit_code == 0 and "Usage" in result.stdout
    assert "paysim fit scenarios/checkout-loadtest.jtl" in (Path(__file__).parent.parent / "README.md").read_text()


@pytest.mark.parametrize("width", [80, 120, 160, 250])
def test_the_terminal_table_never_cuts_a_number(width):
    """At 80 columns the one-row-per-label table cut every cell (``1,9…``); now a narrow
    terminal gets one table per label, and every count, rate and KS distance shows whole."""
    from rich.console import Console

    from paysim.fit.table import fit_tables

    fits = fit_log(read_log(Path(__file__).parent.parent / "scenarios" / "checkout-loadtest.jtl"))
    console = Console(width=width, record=True, file=io.StringIO())
    for table in fit_tables(fits, console):
        console.print(table)
    text = console.export_text()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    for label, fit in fits.items():
        assert label in text and f"{fit.count:,}" in text and f"{fit.rate:.4g}" in text
        assert f"{fit.service.chosen.ks:.4f}" in text
