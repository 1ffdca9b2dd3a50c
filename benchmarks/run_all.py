"""Run every ``benchmarks/bench_*.py`` and write one markdown report.

Each script runs as its own subprocess (with ``--quick`` when ``--quick`` is given and the
script accepts that flag); its output goes into the report verbatim, with its exit code and
wall time, under a header naming the machine.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only NAME ...] [--out benchmarks/REPORT.md]
        [--timeout SECONDS] [--python PYTHON]

``--only engine`` or ``--only bench_engine`` or ``--only bench_engine.py`` pick a script.
Exit status: 0 when every script exited 0, else 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class BenchResult:
    """What one benchmark script did."""

    name: str  # file name, e.g. bench_engine.py
    command: list[str]
    returncode: int | None  # None: killed after the timeout
    seconds: float
    output: str  # stdout then stderr


def discover(bench_dir: Path = BENCH_DIR) -> list[Path]:
    """The ``bench_*.py`` scripts present, sorted by name."""
    return sorted(p for p in bench_dir.glob("bench_*.py") if p.is_file())


def normalise_name(name: str) -> str:
    """``engine`` / ``bench_engine`` / ``bench_engine.py`` -> ``bench_engine.py``."""
    stem = Path(name).name
    stem = stem[:-3] if stem.endswith(".py") else stem
    return stem if stem.startswith("bench_") else f"bench_{stem}"


def select(scripts: list[Path], only: list[str] | None) -> list[Path]:
    """The scripts named by ``--only`` (all when None); unknown names raise ``SystemExit``."""
    if not only:
        return scripts
    wanted = {normalise_name(n) + ".py" for n in only}
    known = {p.name for p in scripts}
    missing = sorted(wanted - known)
    if missing:
        raise SystemExit(f"no such benchmark: {', '.join(missing)} (present: {', '.join(sorted(known)) or 'none'})")
    return [p for p in scripts if p.name in wanted]


def supports_quick(script: Path) -> bool:
    """Whether the script's argparse declares ``--quick`` (read from its source, nothing run)."""
    return re.search(r"""add_argument\(\s*["']--quick["']""", script.read_text(errors="replace")) is not None


def command_for(script: Path, python: str, quick: bool) -> list[str]:
    return [python, str(script)] + (["--quick"] if quick and supports_quick(script) else [])


def run_one(script: Path, python: str, quick: bool, timeout: float | None) -> BenchResult:
    """Run one script from the repository root; never raises for the script's own failure."""
    cmd = command_for(script, python, quick)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    tic = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=BENCH_DIR.parent, env=env)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        code = None
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = (e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or ""))
        err += f"\n[run_all] killed after {timeout:.0f} s"
    seconds = time.perf_counter() - tic
    output = out.rstrip() + (("\n--- stderr ---\n" + strip_progress(err).rstrip()) if err.strip() else "")
    return BenchResult(script.name, cmd, code, seconds, output)


def strip_progress(text: str) -> str:
    """Drop carriage-return progress-bar redraws, keeping each line's final state."""
    return "\n".join(line.split("\r")[-1] for line in text.splitlines())


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_header(python: str) -> list[str]:
    """Machine lines of the report: CPU, cores, torch and CUDA as the benchmarks' Python sees them."""
    probe = ("import torch; print(torch.__version__); "
             "print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')")
    try:
        lines = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=120).stdout.splitlines()
        torch_version, cuda = (lines + ["unknown", "unknown"])[:2]
    except (OSError, subprocess.TimeoutExpired):
        torch_version, cuda = "unknown", "unknown"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return [
        f"- date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- host: {platform.node()} ({platform.system()} {platform.release()})",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores ({usable} usable by this process)",
        f"- load average at start (1, 5, 15 min): {load}",
        f"- Python {platform.python_version()}, torch {torch_version}",
        f"- CUDA device: {cuda}",
    ]


def _shown(arg: str, position: int) -> str:
    """A command's word as the report shows it: the interpreter by name, the repository's files
    relative to its root (no machine's absolute path in the report)."""
    if position == 0:
        return Path(arg).name
    path = Path(arg)
    if path.is_absolute() and path.is_relative_to(BENCH_DIR.parent):
        return str(path.relative_to(BENCH_DIR.parent))
    return arg


def render(header: list[str], results: list[BenchResult], quick: bool) -> str:
    """The markdown report."""
    lines = ["# Benchmark report", "", *header, f"- mode: {'quick' if quick else 'full'}", "",
             "Timings on a shared machine are noisy; read the ratios each benchmark prints against its "
             "own baseline measured in the same run.", "", "| benchmark | exit code | wall time |", "|---|---|---|"]
    for r in results:
        code = "timeout" if r.returncode is None else str(r.returncode)
        lines.append(f"| {r.name} | {code} | {r.seconds:.1f} s |")
    for r in results:
        code = "killed (timeout)" if r.returncode is None else str(r.returncode)
        fence = "````" if "```" in r.output else "```"
        lines += ["", f"## {r.name}", "",
                  f"`{' '.join(_shown(c, i) for i, c in enumerate(r.command))}`: "
                  f"exit code {code}, {r.seconds:.1f} s", "", fence, r.output or "(no output)", fence]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="pass --quick to the scripts that accept it")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME", help="run only these benchmarks")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "REPORT.md")
    p.add_argument("--timeout", type=float, default=None, help="seconds per script (default: none)")
    p.add_argument("--python", default=sys.executable, help="interpreter for the scripts")
    p.add_argument("--bench-dir", type=Path, default=BENCH_DIR, help=argparse.SUPPRESS)  # tests
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scripts = select(discover(args.bench_dir), args.only)
    if not scripts:
        print(f"no bench_*.py scripts in {args.bench_dir}", file=sys.stderr)
        return 1
    header = machine_header(args.python)
    results = []
    for script in scripts:
        print(f"[run_all] {script.name} ...", flush=True)
        result = run_one(script, args.python, args.quick, args.timeout)
        print(f"[run_all] {script.name}: exit {result.returncode}, {result.seconds:.1f} s", flush=True)
        results.append(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(render(header, results, args.quick))
    tmp.replace(args.out)
    print(f"[run_all] report: {args.out}")
    return 0 if all(r.returncode == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
