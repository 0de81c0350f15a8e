"""Progress reporting: a tqdm bar on a terminal, a plain line every few seconds otherwise (logs, CI)."""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm import tqdm


class Progress:
    """`update(n, **status)` advances; `write(text)` prints without breaking the bar; use as a context manager."""

    def __init__(self, total: int, desc: str, unit: str = "it", enabled: bool = True, interval_s: float = 10.0):
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.tty = enabled and sys.stderr.isatty()
        self.bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=True) if self.tty else None
        self.count, self.interval_s = 0, interval_s
        self.started = self._last = time.monotonic()

    def update(self, n: int = 1, **status: Any) -> None:
        self.count += n
        if self.bar is not None:
            if status:
                self.bar.set_postfix(status, refresh=False)
            self.bar.update(n)
        elif self.enabled and (time.monotonic() - self._last >= self.interval_s or self.count >= self.total):
            self._last = time.monotonic()
            extra = " ".join(f"{k}={v}" for k, v in status.items())
            print(f"{self.desc}: {self.count}/{self.total} {self.unit} "
                  f"[{time.monotonic() - self.started:.0f}s] {extra}".rstrip(), file=sys.stderr, flush=True)

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        elif self.enabled:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
