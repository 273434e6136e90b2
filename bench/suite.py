"""Every benchmark in one run, and one table of their figures beside their references.

Runs each benchmark script in turn (each checks its own work before it prints),
reads the JSON it wrote to bench/results/, and writes bench/results/summary.md
and bench/results/summary.json: per figure the service's value, the reference
measured in the same run, and the ratio, with the date, machine and commit.

    .venv/bin/python bench/suite.py [--postgres URL] [--quick]

--postgres names a database the benchmarks may empty (never the test database).
--quick runs every benchmark at a small size, to try the suite in a minute or two.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deadlines import ensure_postgres_database
from engine_overhead import environment

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
Rows = list[dict[str, Any]]


def row(
    benchmark: str,
    service: float,
    reference: float | None,
    unit: str,
    reference_is: str,
    database: str = "",
) -> dict[str, Any]:
    ratio = service / reference if reference else None
    return {
        "benchmark": benchmark,
        "database": database,
        "service": service,
        "reference": reference,
        "unit": unit,
        "reference_is": reference_is,
        "ratio": ratio,
    }


def engine_rows(document: dict[str, Any]) -> Rows:
    results = {r["variant"]: r for r in document["results"]}
    bare = results["bare engine"]["ms_per_instance"]
    rows = [
        row(
            "two-task instance, in-process API (5 requests)",
            results[name]["ms_per_instance"],
            bare,
            "ms",
            "bare engine, same instance",
            database,
        )
        for name, database in (
            ("service API, SQLite file", "SQLite"),
            ("service API, PostgreSQL", "PostgreSQL"),
        )
        if name in results
    ]
    rows.append(
        row(
            "two-task instance, engine with state saved and loaded each step",
            results["bare + state-only round trip"]["ms_per_instance"],
            bare,
            "ms",
            "bare engine, same instance",
        )
    )
    return rows


def deadline_rows(document: dict[str, Any]) -> Rows:
    bare = next(r for r in document["results"] if r["variant"].startswith("bare"))
    rows = []
    for result in document["results"]:
        name = result["variant"]
        if name.startswith("bare") or "next_due_at" in name:
            continue
        database, _, what = name.partition(": ")
        database = database.removesuffix(" file")
        if result["ms_per_deadline"] is not None:
            rows.append(
                row(
                    f"deadline sweep waking {document['due']:,} of "
                    f"{document['pending']:,} pending, per deadline",
                    result["ms_per_deadline"],
                    bare["ms_per_deadline"],
                    "ms",
                    "bare engine refreshing the same timers in memory",
                    database,
                )
            )
        else:
            rows.append(
                row(
                    f"deadline {what} ({document['pending']:,} pending)",
                    result["ms"],
                    None,
                    "ms",
                    "",
                    database,
                )
            )
    return rows


def passthrough_rows(document: dict[str, Any]) -> Rows:
    return [
        row(
            r["benchmark"],
            r["service"],
            r["reference"],
            r["unit"],
            r["reference_is"],
            r["database"],
        )
        for r in document["results"]
    ]


def registry_rows(document: dict[str, Any]) -> Rows:
    return [
        row(
            f"{r['figure']} one subject in a {document['rows']:,}-row table (indexed)",
            r["index_ms"],
            r["no_index_ms"],
            "ms",
            "the same without an index (a full scan)",
            "SQLite",
        )
        for r in document["results"]
    ]


def sandbox_rows(document: dict[str, Any]) -> Rows:
    return [
        row(
            f"sandboxed {r['figure']}",
            r["sandbox_us"],
            r["stock_us"],
            "us",
            "stock eval/exec in process",
        )
        for r in document["results"]
    ]


@dataclass(frozen=True)
class Step:
    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    rows: Callable[[dict[str, Any]], Rows]
    takes_postgres: bool = True


STEPS = (
    Step(
        "engine_overhead",
        "engine_overhead.py",
        ("--instances", "150", "--rounds", "5"),
        ("--instances", "20", "--rounds", "3"),
        engine_rows,
    ),
    Step(
        "deadlines",
        "deadlines.py",
        (),
        ("--due", "100", "--pending", "5000", "--rounds", "3"),
        deadline_rows,
    ),
    Step(
        "http_service",
        "http_service.py",
        (),
        (
            "--instances",
            "10",
            "--tasks",
            "40",
            "--deliveries",
            "40",
            "--memory-instances",
            "250",
        ),
        passthrough_rows,
    ),
    Step(
        "inbox",
        "inbox.py",
        (),
        ("--large", "10000"),
        passthrough_rows,
    ),
    Step(
        "registry",
        "registry.py",
        (),
        ("--rows", "100000"),
        registry_rows,
        takes_postgres=False,
    ),
    Step("sandbox", "sandbox.py", (), (), sandbox_rows, takes_postgres=False),
)


def run(step: Step, args: argparse.Namespace) -> tuple[Rows, float]:
    command = [sys.executable, str(BENCH / step.script)]
    command += list(step.quick if args.quick else step.full)
    if args.postgres and step.takes_postgres:
        command += ["--postgres", args.postgres]
    print(f"== {step.name}: {' '.join(command[1:])}", flush=True)
    began = time.perf_counter()
    subprocess.run(command, cwd=BENCH.parent, check=True)
    seconds = time.perf_counter() - began
    document = json.loads((RESULTS / f"{step.name}.json").read_text())
    return step.rows(document), seconds


def number(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def markdown(rows: Rows, header: dict[str, Any], seconds: dict[str, float]) -> str:
    dirty = " (with uncommitted changes)" if header["dirty"] else ""
    lines = [
        f"Measured {header['date']} on {header['machine']}, commit "
        f"`{header['commit']}`{dirty}, in {sum(seconds.values()) / 60:.1f} minutes.",
        "",
        "| benchmark | database | service | reference | ratio |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        reference = ""
        if r["reference"] is not None:
            reference = f"{number(r['reference'])} {r['unit']} ({r['reference_is']})"
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else ""
        lines.append(
            f"| {r['benchmark']} | {r['database']} | {number(r['service'])} "
            f"{r['unit']} | {reference} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.partition(":")[2].strip()
            break
    memory = Path("/proc/meminfo").read_text().split()[1]
    cores = environment()["cpus"]
    return f"{platform.node()}: {cores} cores, {cpu}, {int(memory) / 2**20:.0f} GiB"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="a PostgreSQL URL the benchmarks may empty")
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--only", nargs="*", help="run only these benchmarks")
    return parser.parse_args()


def main() -> int:
    args = arguments()
    rows: Rows = []
    seconds: dict[str, float] = {}
    if args.postgres:
        ensure_postgres_database(args.postgres)
    for step in STEPS:
        if args.only and step.name not in args.only:
            continue
        step_rows, seconds[step.name] = run(step, args)
        rows += step_rows
    env = environment()
    header = {
        "date": env["date"],
        "machine": machine(),
        "commit": env["commit"],
        "dirty": env["uncommitted_changes"],
        "quick": args.quick,
        "seconds": {name: round(s, 1) for name, s in seconds.items()},
    }
    text = markdown(rows, header, seconds)
    (RESULTS / "summary.md").write_text(text)
    (RESULTS / "summary.json").write_text(
        json.dumps(header | {"rows": rows}, indent=2) + "\n"
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
