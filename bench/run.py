"""paysim's benchmark, in one run: ``python bench/run.py`` (``--quick`` for a smoke run).

On the same M/M/10 at 90% load it times, in customers per second:
  * a plain hand-written SimPy model (a process per customer, a Resource for the workers);
  * Ciw, if installed (``pip install -e '.[bench]'``);
  * paysim's SimPy engine and compiled engine, called as a library;
  * ``paysim run --json`` as a user runs it (default options), imports included, on ~20M arrivals;
then the card-checkout and retry-storm commands on both engines, the retry storms,
card-checkout and async-executor per replication in-process on both engines, peak memory
at 10^5 and 10^7 customers, and a sweep with --jobs 1 against --jobs 2. It prints every number and the ratios the speed issue
sets as targets. Nothing here is a unit test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import simpy

ROOT = Path(__file__).resolve().parent.parent
RATE, MEAN_SERVICE, WORKERS = 450.0, 0.02, 10          # rho = 0.9


def plain_simpy(customers: int, seed: int = 1) -> float:
    """The M/M/10 as a SimPy user would write it (random.expovariate: numpy's scalar draws
    are several times slower); returns customers per second."""
    rng = random.Random(seed)
    env = simpy.Environment()
    workers = simpy.Resource(env, WORKERS)
    waits = []

    def customer(env):
        arrived = env.now
        with workers.request() as request:
            yield request
            waits.append(env.now - arrived)
            yield env.timeout(rng.expovariate(1 / MEAN_SERVICE))

    def source(env):
        for _ in range(customers):
            yield env.timeout(rng.expovariate(RATE))
            env.process(customer(env))

    started = time.perf_counter()
    env.process(source(env))
    env.run()
    return customers / (time.perf_counter() - started)


def ciw_rate(customers: int, seed: int = 1) -> float | None:
    try:
        import ciw
    except ImportError:
        return None
    ciw.seed(seed)
    network = ciw.create_network(arrival_distributions=[ciw.dists.Exponential(RATE)],
                                 service_distributions=[ciw.dists.Exponential(1 / MEAN_SERVICE)],
                                 number_of_servers=[WORKERS])
    started = time.perf_counter()
    simulation = ciw.Simulation(network)
    simulation.simulate_until_max_time(customers / RATE)
    served = len(simulation.get_all_records())
    return served / (time.perf_counter() - started)


def _scenario_yaml(horizon_s: float, replications: int = 1) -> str:
    return (f"name: bench-mmc\nhorizon: {horizon_s}\nwarmup: 0\nreplications: {replications}\nseed: 1\n"
            f"arrivals: {{requests: {{rate: {RATE}}}}}\n"
            f"stations: {{pool: {{workers: {WORKERS}, service: {{dist: exponential, mean: {MEAN_SERVICE}}}}}}}\n")


def paysim_library(engine: str, customers: int) -> float:
    from paysim.runner import simulate
    from paysim.scenario import scenario_from_data
    from paysim.yamlio import parse_yaml

    data, lines = parse_yaml(_scenario_yaml(customers / RATE), "bench.yaml")
    model = scenario_from_data(data, "bench.yaml", lines)
    simulate(model, jobs=1, engine=engine, replications=1)            # compile / warm caches
    started = time.perf_counter()
    simulate(model, jobs=1, engine=engine, replications=1)
    return customers / (time.perf_counter() - started)


def paysim_command(customers: int, replications: int) -> tuple[float, dict]:
    """``paysim run FILE --json`` in a fresh process with the default options (engine auto, a
    job per core): customers per second of wall time, imports included."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(_scenario_yaml(customers / RATE / replications, replications))
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "paysim", "run", str(path), "--json", "-q"],
                             capture_output=True, text=True, check=True).stdout
        return customers / (time.perf_counter() - started), json.loads(out)


def peak_memory_mb(engine: str, customers: int) -> float:
    """Peak RSS of a process simulating ``customers`` arrivals (statistics only, no trace)."""
    code = (
        "import resource, sys\n"
        "from paysim.runner import simulate\nfrom paysim.scenario import scenario_from_data\n"
        "from paysim.yamlio import parse_yaml\n"
        f"data, lines = parse_yaml({_scenario_yaml(customers / RATE)!r}, 'bench.yaml')\n"
        f"simulate(scenario_from_data(data, 'bench.yaml', lines), jobs=1, engine={engine!r})\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1]) / 1024


def card_checkout_seconds(engine: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "paysim", "run", str(ROOT / "scenarios" / "card-checkout.yaml"),
                    "--json", "-q", "-r", "2", "--horizon", "5m", "--warmup", "30s", "-j", "1", "--engine", engine],
                   capture_output=True, text=True, check=True)
    return time.perf_counter() - started


def retry_storm(engine: str, horizon: str) -> tuple[float, dict]:
    """``paysim run scenarios/retry-storm.yaml -r 2`` cut to ``horizon``: seconds, and the system's metrics."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "paysim", "run", str(ROOT / "scenarios" / "retry-storm.yaml"),
                           "--json", "-q", "-r", "2", "--horizon", horizon, "-j", "1", "--engine", engine],
                          capture_output=True, text=True, check=True)
    return time.perf_counter() - started, json.loads(done.stdout)["system"]


def per_replication(scenario: str, engine: str, replications: int, horizon: str,
                    warmup: str | None = None) -> tuple[float, dict]:
    """``scenarios/<scenario>.yaml`` in-process on one engine (a warm-up run first, so the compiled
    engine's cache load is not timed): CPU seconds per replication (the process's, its threads
    included: steadier than wall time on a shared machine), and the headline means."""
    from paysim.runner import simulate
    from paysim.scenario import load_scenario

    overrides = {"horizon": horizon} | ({"warmup": warmup} if warmup else {})
    model = load_scenario(ROOT / "scenarios" / f"{scenario}.yaml", overrides)
    simulate(model, jobs=1, engine=engine, replications=1)
    started = time.process_time()
    result = simulate(model, jobs=1, engine=engine, replications=replications)
    seconds = (time.process_time() - started) / replications
    return seconds, {name: result.summary[name].mean for name in
                     ("system.goodput", "system.retry_amplification", "system.W", "system.latency.p99")}


def sweep_seconds(jobs: int, engine: str, points: int, horizon: str) -> float:
    """Wall seconds of ``paysim sweep`` over the M/M/10 from 20% to 90% load (``points`` x 10
    replications), without plots: the simulation work is what scales with --jobs."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "mmc.yaml").write_text(_scenario_yaml(60))
        sweep = Path(folder) / "sweep.yaml"
        sweep.write_text("sweep:\n  scenario: mmc.yaml\n  vary:\n    arrivals.requests.rate: {from: 100/s, to: 450/s, steps: "
                         f"{points}}}\n"
                         f"  replications: 10\n  horizon: {horizon}\n  warmup: 30s\n")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "paysim", "sweep", str(sweep), "--out", str(Path(folder) / "out"), "-q",
                        "--no-plots", "--jobs", str(jobs), "--engine", engine], capture_output=True, text=True, check=True)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the benchmark runs, not the machine")
    quick = parser.parse_args().quick
    scale = 0.02 if quick else 1.0
    print(f"paysim benchmark, {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"M/M/{WORKERS} at rho = {RATE * MEAN_SERVICE / WORKERS:.2f}; customers per second (higher is better)\n")

    results: dict[str, float | None] = {
        "plain SimPy": plain_simpy(int(1_000_000 * scale)),
        "Ciw": ciw_rate(int(200_000 * scale)),
        "paysim SimPy engine": paysim_library("simpy", int(1_000_000 * scale)),
        "paysim fast engine": paysim_library("fast", int(20_000_000 * scale)),
    }
    replications = 4
    command_rate, data = paysim_command(int(20_000_000 * scale), replications)
    results[f"paysim run --json ({data['run']['engine']}, {replications} replications, imports included)"] = command_rate
    for name, rate in results.items():
        print(f"  {name:<58} {'-' if rate is None else f'{rate:>14,.0f}/s'}")

    simpy_rate, ciw = results["plain SimPy"], results["Ciw"]
    print("\nratios (targets from the speed issue)")
    print(f"  paysim run (default engine) / plain SimPy   {command_rate / simpy_rate:8.1f}x   (target >= 40x)")
    if ciw:
        print(f"  paysim run (default engine) / Ciw           {command_rate / ciw:8.1f}x   (target >= 100x)")
    print(f"  paysim SimPy engine / plain SimPy           {results['paysim SimPy engine'] / simpy_rate:8.2f}x   "
          "(target >= 0.8x)")

    print("\ncard-checkout scenario (2 replications x 5 min, about 270k arrivals)")
    for engine in ("simpy", "auto"):
        print(f"  --engine {engine:<6} {card_checkout_seconds(engine):8.1f} s")

    horizon = "90s" if quick else "4m"
    print(f"\nretry-storm scenario (2 replications x {horizon}: the slowdown at 1m and the collapse after it)")
    storm = {engine: retry_storm(engine, horizon) for engine in ("simpy", "auto")}
    for engine, (seconds, system) in storm.items():
        print(f"  --engine {engine:<6} {seconds:8.1f} s   goodput {system['goodput']['mean']:6.1f}/s, "
              f"retry amplification {system['retry_amplification']['mean']:.3f}")
    print(f"  speed-up {storm['simpy'][0] / storm['auto'][0]:.1f}x (imports and compilation cache load included)")

    replications = 2 if quick else 4
    print(f"\nCPU seconds per replication, in-process, {replications} replications (the same seed gives the same "
          "numbers on both engines)")
    for scenario, horizon in (("retry-storm", "4m"), ("retry-storm-backoff", "4m"), ("card-checkout", "5m"),
                              ("async-executor", "20m")):
        horizon, warmup = ("90s", "15s") if quick else (horizon, None)
        timed = {engine: per_replication(scenario, engine, replications, horizon, warmup)
                 for engine in ("simpy", "fast")}
        (slow, means), (fast, _) = timed["simpy"], timed["fast"]
        print(f"  {scenario:<20} {horizon:>4}: simpy {slow:7.2f} s, compiled {fast:6.3f} s: {slow / fast:5.1f}x "
              f"(target >= 20x)   goodput {means['system.goodput']:6.1f}/s, amplification "
              f"{means['system.retry_amplification']:.3f}, W {means['system.W'] * 1000:6.1f} ms, "
              f"p99 {means['system.latency.p99'] * 1000:6.0f} ms")

    small, large = int(1e5), int(1e7 * scale)
    fast_small, fast_large = peak_memory_mb("fast", small), peak_memory_mb("fast", large)
    print(f"\npeak memory (RSS), compiled engine: {small:,} customers {fast_small:.0f} MB, "
          f"{large:,} customers {fast_large:.0f} MB: ratio {fast_large / fast_small:.2f} (target <= 1.5)")
    simpy_small, simpy_large = peak_memory_mb("simpy", small), peak_memory_mb("simpy", int(1e6 * scale))
    print(f"peak memory (RSS), SimPy engine:    {small:,} customers {simpy_small:.0f} MB, "
          f"{int(1e6 * scale):,} customers {simpy_large:.0f} MB: ratio {simpy_large / simpy_small:.2f}")

    # the speed issue's example sweep: 20 points x 10 replications of an hour at up to 450/s (~200M
    # arrivals); the SimPy engine on a much smaller one
    print("\nsweep: M/M/10 from 20% to 90% load, 10 replications per point, no plots")
    for engine, points, horizon in (("auto", 20, "20m" if quick else "1h"), ("simpy", 8, "1m" if quick else "2m")):
        one, two = sweep_seconds(1, engine, points, horizon), sweep_seconds(2, engine, points, horizon)
        target = "   (target >= 1.8x)" if engine == "auto" else ""
        print(f"  --engine {engine:<5} {points} points x {horizon:>3}: --jobs 1 {one:6.1f} s, --jobs 2 {two:6.1f} s: "
              f"speed-up {one / two:.2f}x{target}")


if __name__ == "__main__":
    main()
