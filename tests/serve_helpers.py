"""Start `ferkit serve` on a free port in a child process, for tests that speak real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Server:
    url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(url: str, process: subprocess.Popen | None, log: Path, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not become ready: {log.read_text()[-3000:]}")
        time.sleep(0.3)


@contextmanager
def running_server(*args: str, env: dict[str, str] | None = None, wait_s: float = 120) -> Iterator[Server]:
    """`ferkit serve ARGS` on 127.0.0.1:PORT; yields once /readyz answers 200."""
    port = free_port()
    command = [sys.executable, "-m", "ferkit.cli", "serve", "--port", str(port), *args]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("FERKIT_")}
    child_env.update(env or {})
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "server.log"
        with log.open("w") as handle:
            process = subprocess.Popen(command, env=child_env, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO)
            url = f"http://127.0.0.1:{port}"
            try:
                wait_until_ready(url, process, log, wait_s)
                yield Server(url, log)
            finally:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
