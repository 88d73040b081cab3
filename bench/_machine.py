"""What a benchmark prints about the machine, the process counters it reads, and the
fresh worker process each of its cases runs in.

Figures mean little without the machine they came from, so every bench script prints
`facts()` first. CPU and memory are read from /proc (Linux only), which works for our own
process and for the separate simulator and blackbox_exporter processes alike.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def facts() -> dict[str, str]:
    return {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "aiohttp": version("aiohttp"),
        "prometheus_client": version("prometheus_client"),
        "kernel": platform.release(),
    }


def process_cpu_seconds(pid: int | str = "self") -> float:
    """User plus system CPU time of a process, all its threads included (/proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; the fields after its closing paren are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time all cores spent busy since boot (/proc/stat), to tell how loaded the machine was.

    Subtracting our own and the simulator's CPU from its growth over a sweep leaves what
    other processes on the (shared) machine took meanwhile.
    """
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size now (VmRSS), not the peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS")


def print_table(rows: list[list[str]], header: list[str]) -> str:
    """A GitHub-flavoured Markdown table, so the output pastes into RESULTS.md as is."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    text = "\n".join(
        [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]
    )
    print(text)
    return text


def facts_text() -> str:
    return "\n".join(f"- {k}: {v}" for k, v in facts().items())


def print_header(title: str, setup: str) -> None:
    """A run's title with the time (UTC), the machine's facts and how the run was set up,
    so every pasted figure says where and how it was taken."""
    print(f"# {title} ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    print(facts_text())
    print(f"- {setup}\n")


def healthd_command(*args: str, tree: Path | None = None) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of `python -m healthd <args>`, its healthd imported
    from `tree` (a checkout: `--before`) when given, else the installed one.

    `-P`: `python -m` puts the working directory first on sys.path, so a bench started
    from the repository ran the repository's healthd whatever `tree` said, and `--before`
    measured the new code twice (until session 6).
    """
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    return [sys.executable, "-P", "-m", "healthd", *args], env


def stop(proc: subprocess.Popen[Any], grace: float = 15.0) -> None:
    """Stops a helper process (the simulator) with SIGTERM, so it removes its temporary
    directory, and kills it only if it has not exited within `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def run_worker(script: str, spec: str, timeout: float) -> Any:
    """`python <script> --worker <spec>` in a fresh process; the JSON on its last line.

    A fresh process per case, so one case's memory and warm caches do not flatter the next.
    """
    out = subprocess.run(
        [sys.executable, script, "--worker", spec],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"worker {spec} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])
