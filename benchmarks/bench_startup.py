"""Start-up cost of the CLI and of the core import: the median wall time of fresh subprocesses.

Run: ``.venv/bin/python benchmarks/bench_startup.py [--runs N]``. Every command runs ``N`` times, the
commands interleaved round-robin (so a burst of noise on the machine spreads over all of them), each a
new interpreter of this virtualenv started in the repository root. Prints the machine and a Markdown
table: the median wall time, the overhead over a bare ``python -c pass`` and the ratio to it, and the
median CPU time (user + system) of the child, which other work on a shared machine disturbs far less.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
VERIFIER = str(Path(PYTHON).with_name("verifier"))

COMMANDS: list[tuple[str, list[str]]] = [
    ("python -c pass", [PYTHON, "-c", "pass"]),
    ("verifier --version", [VERIFIER, "--version"]),
    ("verifier --help", [VERIFIER, "--help"]),
    ("verifier policy check policies/default.toml", [VERIFIER, "policy", "check", "policies/default.toml"]),
    ("verifier verify-bundle --help", [VERIFIER, "verify-bundle", "--help"]),
    ('python -c "import verifier.engine.evaluate"', [PYTHON, "-c", "import verifier.engine.evaluate"]),
]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(runs: int) -> dict[str, tuple[list[float], list[float]]]:
    """label -> (wall seconds, CPU seconds) of each run."""
    times: dict[str, tuple[list[float], list[float]]] = {label: ([], []) for label, _ in COMMANDS}
    for _label, argv in COMMANDS:  # one warm-up each: page cache, .pyc files
        subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    for _ in range(runs):
        for label, argv in COMMANDS:
            cpu0, t0 = _children_cpu(), time.perf_counter()
            subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            times[label][0].append(time.perf_counter() - t0)
            times[label][1].append(_children_cpu() - cpu0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="subprocess runs per command (default 30)")
    args = parser.parse_args()
    times = measure(args.runs)
    base = statistics.median(times[COMMANDS[0][0]][0])
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"Machine: nproc={os.cpu_count()}, {cpu_model()}, Python {platform.python_version()}; "
        f"median of {args.runs} runs per command; load average at the end {load}"
    )
    print()
    print("| command | median wall ms | overhead over bare python ms | ratio | median CPU ms |")
    print("|---|---:|---:|---:|---:|")
    for label, _ in COMMANDS:
        wall, cpu = (statistics.median(xs) for xs in times[label])
        print(f"| `{label}` | {wall * 1e3:.1f} | {(wall - base) * 1e3:+.1f} | {wall / base:.2f} | {cpu * 1e3:.1f} |")


if __name__ == "__main__":
    main()
