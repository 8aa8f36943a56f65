"""A bound on decoded pixels in flight across requests: what many large uploads at once may cost.

Each request takes a lease; every image it decodes first reserves its pixels (width x height, after
any reduction a JPEG gets while decoding) and holds them until the request ends. A reservation
that does not fit waits for others to finish, up to a deadline, then is answered 503.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from ferkit.serve.errors import RETRY_AFTER_S, ApiError


class PixelBudget:
    """``total`` pixels shared by every request of this process (thread-safe)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._changed = threading.Condition()

    def lease(self, wait_s: float) -> PixelLease:
        """A request's share: its reservations wait at most ``wait_s`` seconds in all."""
        return PixelLease(self, time.monotonic() + wait_s)

    def _take(self, pixels: int, deadline: float) -> bool:
        with self._changed:
            if not self._changed.wait_for(lambda: self.free >= pixels, max(0.0, deadline - time.monotonic())):
                return False
            self.free -= pixels
            return True

    def _give(self, pixels: int) -> None:
        with self._changed:
            self.free += pixels
            self._changed.notify_all()


class PixelLease:
    """The pixels one request holds (use with ``with``: they return when it ends)."""

    def __init__(self, budget: PixelBudget, deadline: float) -> None:
        self.budget, self.deadline, self.held = budget, deadline, 0

    def reserve(self, pixels: int) -> None:
        """Hold ``pixels`` more, waiting for them; ApiError 503 when they are not free by the deadline."""
        if pixels > self.budget.total or not self.budget._take(pixels, self.deadline):
            raise ApiError(503, "overloaded", f"the server is decoding {self.budget.total:,} pixels of other "
                                              "uploads; retry shortly", {"Retry-After": str(RETRY_AFTER_S)})
        self.held += pixels

    def __enter__(self) -> PixelLease:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if self.held:
            self.budget._give(self.held)
            self.held = 0
