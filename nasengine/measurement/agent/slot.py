"""A first-come-first-served turn for measurements: one at a time, because concurrent ones corrupt each other."""

from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator


class QueueTimeout(Exception):
    """The request waited longer than the agent's queue timeout without getting its turn."""


@dataclass(frozen=True)
class Turn:
    """One granted turn: its sequence number (1, 2, ... over the agent's life) and how long it queued."""

    seq: int
    wait_s: float


class MeasurementQueue:
    """A FIFO lock with a wait timeout; `busy`/`queued` are for the health endpoint."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: deque[object] = deque()
        self._busy = False
        self._seq = 0

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def queued(self) -> int:
        return len(self._waiting)

    @contextmanager
    def turn(self, timeout_s: float) -> Iterator[Turn]:
        """Hold the one measurement slot for the `with` body, after every earlier request; QueueTimeout if
        the slot is not ours within `timeout_s`."""
        ticket = object()
        start = time.monotonic()
        with self._cond:
            self._waiting.append(ticket)
            try:
                while self._busy or self._waiting[0] is not ticket:
                    left = start + timeout_s - time.monotonic()
                    if left <= 0:
                        raise QueueTimeout(f"waited {timeout_s:g}s for the measurement slot "
                                           f"({len(self._waiting) - 1} other request(s) queued or running)")
                    self._cond.wait(left)
            except BaseException:
                self._waiting.remove(ticket)
                self._cond.notify_all()  # the head may have changed
                raise
            self._waiting.popleft()
            self._busy = True
            self._seq += 1
            granted = Turn(self._seq, time.monotonic() - start)
        try:
            yield granted
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until nothing runs or queues (for a clean shutdown); False if that did not happen in time."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._busy or self._waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True
