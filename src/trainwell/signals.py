"""SIGINT and SIGTERM as a request: the loop stops after the current step and writes last.pt.

A compare's worker calls `remember_interrupts(stop)` as it starts: a Ctrl-C it receives later, or
the compare's shared `stop` event (set when the compare itself is interrupted, which covers a
Ctrl-C the worker missed while still starting up), means: start no further run, and stop a
running one after its current step. So the compare exits 130 promptly."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any, Callable, Iterator

_remembered = threading.Event()  # this worker was interrupted (set only after remember_interrupts())
_worker: dict[str, Any] = {}  # in a compare's worker: "stop", the compare's shared stop event


def remember_interrupts(stop: Any = None) -> None:
    """In a compare's worker, from its first moment: SIGINT is recorded, not raised or ignored;
    `stop` (a multiprocessing Event the compare sets when it is interrupted) counts as one too."""
    _worker["stop"] = stop
    signal.signal(signal.SIGINT, lambda *_: _remembered.set())


def interrupted_before() -> bool:
    """Whether this worker, or the compare it works for, was interrupted (then it starts no run)."""
    stop = _worker.get("stop")
    return _remembered.is_set() or (stop is not None and stop.is_set())


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Callable[[], bool]]:
    """SIGINT/SIGTERM ask the loop to stop after the current step (it then writes last.pt); in a
    worker that was already interrupted, the loop stops at its first step."""
    flag = threading.Event()
    in_worker = "stop" in _worker

    def stop_requested() -> bool:
        return flag.is_set() or (in_worker and interrupted_before())

    if threading.current_thread() is not threading.main_thread():
        yield stop_requested
        return

    def requested(*_: object) -> None:
        flag.set()
        if in_worker:  # a worker keeps it for the runs it would start next
            _remembered.set()

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, requested)
    try:
        yield stop_requested
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def interrupts_noticed() -> Iterator[Callable[[], bool]]:
    """For the command's duration: SIGTERM interrupts like Ctrl-C (KeyboardInterrupt), and
    `noticed()` says whether SIGINT or SIGTERM arrived at all. Training installs its own handlers
    (finish the step, write last.pt), and a signal they take can end up unacted on (one during the
    last epoch's evaluation); the wakeup fd records every signal at the C level whichever Python
    handler runs, so the command still exits 130."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    os.set_blocking(read_end, False)
    previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    previous_term = signal.signal(signal.SIGTERM, signal.default_int_handler)
    seen: set[int] = set()

    def noticed() -> bool:
        with contextlib.suppress(BlockingIOError):
            seen.update(os.read(read_end, 512))
        return bool(seen & {signal.SIGINT, signal.SIGTERM})

    try:
        yield noticed
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.set_wakeup_fd(previous_fd)
        os.close(read_end)
        os.close(write_end)
