"""A thread-safe pool of persistent worker processes, each watched by a deadline."""

import atexit
import contextlib
import json
import logging
import math
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from .errors import ScriptError
from .guards import MAX_MESSAGE_BYTES
from .limits import SandboxLimits

logger = logging.getLogger(__name__)

WORKER_FILE = Path(__file__).with_name("worker.py")
STARTUP_SECONDS = 10.0
READ_CHUNK = 1 << 16

_pools: "weakref.WeakSet[WorkerPool]" = weakref.WeakSet()
_exit_hook = threading.Lock()
_exit_hook_registered = False


class _Timeout(Exception):
    """The worker gave no complete reply before the deadline."""


class _Stopped(Exception):
    """The worker closed its output, or sent something that is not a reply."""


class _Worker:
    """One worker process and the parent's end of its pipes."""

    def __init__(self, limits: SandboxLimits) -> None:
        command = [
            sys.executable,
            "-I",
            str(WORKER_FILE),
            str(limits.memory_bytes),
            str(limits.step_budget),
        ]
        # A fresh interpreter with no environment: the web process's secrets stay.
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={},
            cwd="/",
            start_new_session=True,
        )
        self._fd = self.process.stdout.fileno()
        self._poller = select.poll()
        self._poller.register(self._fd, select.POLLIN)
        self._buffer = bytearray()
        self._ready = False
        logger.debug("sandbox worker %d started", self.process.pid)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def exchange(self, payload: bytes, timeout: float) -> dict[str, Any]:
        """Send one request line and wait at most timeout seconds for the reply."""
        if not self._ready:
            self._read_line(STARTUP_SECONDS)
            self._ready = True
        self.process.stdin.write(payload)
        self.process.stdin.flush()
        reply = json.loads(self._read_line(timeout))
        if not isinstance(reply, dict):
            raise _Stopped
        return reply

    def stop(self) -> None:
        """Kill the process and release its pipes."""
        if self.alive:
            self.process.kill()
        self.process.wait()
        # Closing flushes what a dead worker never read; that may fail, harmlessly.
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        self.process.stdout.close()

    def _read_line(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while (end := self._buffer.find(b"\n")) < 0:
            self._fill(deadline)
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not self._poller.poll(math.ceil(remaining * 1000)):
            raise _Timeout
        chunk = os.read(self._fd, READ_CHUNK)
        if not chunk or len(self._buffer) + len(chunk) > MAX_MESSAGE_BYTES:
            raise _Stopped
        self._buffer += chunk


class WorkerPool:
    """Started lazily, sized by the limits, closed at exit, usable after close."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.workers)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._generation = 0
        self._pid = os.getpid()
        _pools.add(self)

    def run(self, payload: bytes) -> dict[str, Any]:
        """Send one request line to a free worker; return its reply or raise."""
        if len(payload) > MAX_MESSAGE_BYTES:
            message = f"the task data is larger than {MAX_MESSAGE_BYTES} bytes"
            raise ScriptError("size", message)
        with self._slots:
            worker, generation = self._checkout()
            reply = self._exchange(worker, generation, payload)
            if reply.get("retire"):
                self._replace(worker, generation)
            else:
                self._return(worker, generation)
        if not reply.get("ok"):
            raise ScriptError(reply.get("kind", "runtime"), *_details(reply))
        return reply

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        """Stop every idle worker; busy ones stop when their call returns."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._generation += 1
        for worker in idle:
            worker.stop()

    def _exchange(
        self, worker: _Worker, generation: int, payload: bytes
    ) -> dict[str, Any]:
        timeout = self.limits.timeout_seconds
        try:
            return worker.exchange(payload, timeout)
        except _Timeout:
            logger.warning("sandbox worker %d timed out", worker.process.pid)
            self._replace(worker, generation)
            message = f"the script ran longer than {timeout:g} s and was stopped"
            raise ScriptError("timeout", message) from None
        except (_Stopped, OSError, ValueError):
            code = worker.process.poll()
            logger.warning("sandbox worker %d stopped (%s)", worker.process.pid, code)
            self._replace(worker, generation)
            message = "the script worker stopped unexpectedly"
            raise ScriptError("runtime", message) from None
        except BaseException:
            # Interrupted mid-call (KeyboardInterrupt): the worker's state is unknown.
            worker.stop()
            raise

    def _checkout(self) -> tuple[_Worker, int]:
        while True:
            with self._lock:
                self._forget_if_forked()
                generation = self._generation
                worker = self._idle.pop() if self._idle else None
            if worker is None:
                return self._start(), generation
            # A worker that died while idle is replaced without failing the call.
            if worker.alive:
                return worker, generation
            worker.stop()

    def _replace(self, worker: _Worker, generation: int) -> None:
        worker.stop()
        if generation != self._generation:
            return
        # If no worker can start now, the next call tries again.
        with contextlib.suppress(ScriptError):
            self._return(self._start(), generation)

    def _return(self, worker: _Worker, generation: int) -> None:
        with self._lock:
            current = generation == self._generation
            if current:
                self._idle.append(worker)
        if not current:
            worker.stop()

    def _start(self) -> _Worker:
        _register_exit_hook()
        try:
            return _Worker(self.limits)
        except OSError:
            logger.exception("sandbox worker could not start")
            raise ScriptError("runtime", "the script worker could not start") from None

    def _forget_if_forked(self) -> None:
        # A forked child shares its parent's pipes: leave those workers alone.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._idle = []
            self._generation += 1


def _details(reply: dict[str, Any]) -> tuple[str, int | None]:
    message = reply.get("message") or "the script failed"
    line = reply.get("line")
    return str(message), line if isinstance(line, int) else None


def _register_exit_hook() -> None:
    global _exit_hook_registered
    with _exit_hook:
        if not _exit_hook_registered:
            atexit.register(_close_all)
            _exit_hook_registered = True


def _close_all() -> None:
    for pool in list(_pools):
        pool.close()
