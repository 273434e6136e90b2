"""How long, how large and how many: the limits a sandbox enforces."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SandboxLimits:
    """Per-call time, per-worker memory, per-call steps, and the pool size."""

    timeout_seconds: float = 2.0
    memory_bytes: int = 512 * 1024**2
    step_budget: int = 1_000_000
    workers: int = 2

    def __post_init__(self) -> None:
        for name in ("timeout_seconds", "memory_bytes", "step_budget", "workers"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SandboxLimits.{name} must be positive")
