"""Peak memory of `ferkit serve` under many large uploads at once: 64 concurrent POST /v1/analyze
of one 5000x5000 PNG (84 KB on the wire, 25 megapixels decoded, just under the default pixel limit).

    python benchmarks/serve_memory.py                 # default settings, 64 clients
    python benchmarks/serve_memory.py --clients 64 --serve-args "--queue-size 64"

Prints the server's resident memory once ready, its peak (VmHWM, Linux) after the burst, and the
answers by status: 200, or 503 for uploads that waited past half the timeout for the decoded
pixel budget (FERKIT_SERVE_MAX_PIXELS_IN_FLIGHT, default 100 megapixels).
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from ferkit.serve.server import free_port, wait_until_ready


def big_png(side: int = 5000) -> bytes:
    """A side x side RGB PNG that compresses to tens of kilobytes (smooth gradients)."""
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    rgb = np.stack([np.broadcast_to(ramp[None, :], (side, side)), np.broadcast_to(ramp[:, None], (side, side)),
                    np.full((side, side), 128, np.float32)], axis=2).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def memory_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--side", type=int, default=5000)
    parser.add_argument("--serve-args", default="", help="extra `ferkit serve` options")
    args = parser.parse_args()
    data = big_png(args.side)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERKIT_") or k == "FERKIT_SERVE_MAX_PIXELS_IN_FLIGHT"}
    server = subprocess.Popen([sys.executable, "-m", "ferkit.cli", "serve", "--port", str(port),
                               *shlex.split(args.serve_args)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, 180, server)
        ready = memory_mb(server.pid, "VmRSS")
        statuses: Counter[int] = Counter()
        lock = threading.Lock()

        def client() -> None:
            answer = httpx.post(url + "/v1/analyze", files={"file": ("big.png", data, "image/png")}, timeout=120)
            with lock:
                statuses[answer.status_code] += 1

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        peak = memory_mb(server.pid, "VmHWM")
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"{args.clients} concurrent uploads of a {args.side}x{args.side} PNG ({len(data) / 1024:.0f} KB) "
          f"in {elapsed:.1f} s: {dict(sorted(statuses.items()))}")
    print(f"server RSS when ready {ready:.0f} MB, peak {peak:.0f} MB")


if __name__ == "__main__":
    main()
