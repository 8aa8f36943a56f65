"""Start `ferkit serve` on a free port in a child process, for tests that speak real HTTP."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ferkit.serve.server import background

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Server:
    url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_server(*args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """`ferkit serve ARGS` on 127.0.0.1:PORT, its log kept for the test; yields once /readyz answers."""
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "server.log"
        with background(*args, env=env, log=log) as url:
            yield Server(url, log)
