"""Time a gateway condition and a short script: sandbox against stock eval/exec.

The reference is what SpiffWorkflow's stock engine does on every call: eval or
exec of the source text, with full builtins and no isolation, in this process.
"""

import datetime
import json
import time
from collections.abc import Callable
from pathlib import Path

from engine_overhead import environment

from app.engine.sandbox import Sandbox

RESULTS = Path(__file__).parent / "results" / "sandbox.json"

CONDITION = "amount > 100 and country in ('NL', 'BE') and not restricted"
SCRIPT = """\
total = 0
for item in items:
    total += item['amount']
category = 'high' if total > 100 else 'low'
due = (datetime.fromisoformat(received_at) + timedelta(days=30)).date()
"""
CONTEXT = {
    "amount": 150,
    "country": "NL",
    "restricted": False,
    "items": [{"amount": n} for n in range(5)],
    "received_at": "2024-05-03T10:00:00+02:00",
}
CALLS = 5_000


def per_call_us(run: Callable[[], object], calls: int = CALLS) -> float:
    """Best of three runs, in microseconds per call."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            run()
        best = min(best, time.perf_counter() - started)
    return best / calls * 1e6


STOCK_GLOBALS = {"datetime": datetime.datetime, "timedelta": datetime.timedelta}


def stock_exec() -> dict:
    context = dict(CONTEXT)
    exec(SCRIPT, dict(STOCK_GLOBALS), context)
    return context


def report(name: str, sandboxed: float, stock: float) -> None:
    ratio = sandboxed / stock
    print(f"{name:<18} {sandboxed:9.1f} us {stock:9.1f} us {ratio:8.1f}x")


def main() -> None:
    sandbox = Sandbox()
    sandbox.evaluate("0", {})
    try:
        condition = per_call_us(lambda: sandbox.evaluate(CONDITION, CONTEXT))
        script = per_call_us(lambda: sandbox.execute(SCRIPT, CONTEXT))
    finally:
        sandbox.close()
    stock_condition = per_call_us(lambda: eval(CONDITION, {}, dict(CONTEXT)))
    stock_script = per_call_us(stock_exec)

    print(f"{'':<18} {'sandbox':>12} {'stock':>12} {'ratio':>9}")
    report("1-line condition", condition, stock_condition)
    report("5-line script", script, stock_script)
    results = [
        {
            "figure": "1-line condition",
            "sandbox_us": condition,
            "stock_us": stock_condition,
        },
        {"figure": "5-line script", "sandbox_us": script, "stock_us": stock_script},
    ]
    document = environment() | {"calls": CALLS, "results": results}
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
