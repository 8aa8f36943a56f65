"""Load on the HTTP API: concurrent clients sending 640x480 one-face JPEGs to `ferkit serve`.

    python benchmarks/load_api.py                       # 32 clients, 60 s per run, three runs
    python benchmarks/load_api.py --clients 32 --seconds 60 --runs analyze,analyze-unbatched,overload

Runs (each on a fresh server on this machine; clients share its cores):
  analyze             POST /v1/analyze, micro-batching on (--batch-wait-ms 5, the default), queue of 64
  analyze-unbatched   the same with each request classified on its own (--batch-wait-ms 0)
  classify            POST /v1/classify with one 48x48 face crop per request, micro-batching on
  classify-unbatched  the same, --batch-wait-ms 0
  overload            /v1/analyze with a queue of 4 for the same clients: the excess must get 503
                      with Retry-After
Every answer is checked against its own request: each JPEG has the face pasted at a different
place and the returned box must lie there; each crop is classified alone beforehand and the
answer must match it (no lost or mixed-up answer). Prints throughput, p50/p95/p99 latency of the
answered requests, and counts by status.
"""

from __future__ import annotations

import argparse
import io
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from ferkit.serve.server import background

FACE = Path(__file__).resolve().parent.parent / "tests" / "data" / "amy1.png"
RUNS = {
    "analyze": ("/v1/analyze", ("--batch-wait-ms", "5")),
    "analyze-unbatched": ("/v1/analyze", ("--batch-wait-ms", "0")),
    "classify": ("/v1/classify", ("--batch-wait-ms", "5")),
    "classify-unbatched": ("/v1/classify", ("--batch-wait-ms", "0")),
    "overload": ("/v1/analyze", ("--batch-wait-ms", "5", "--queue-size", "4")),
}


def frames(count: int = 12) -> list[tuple[bytes, tuple[int, int]]]:
    """640x480 JPEGs with one face (120 to 200 px) at a different place each; with the face centre."""
    face = Image.open(FACE).convert("RGB")
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        size = 120 + (i * 7) % 80
        x, y = int(rng.integers(0, 640 - size)), int(rng.integers(0, 480 - size))
        frame = Image.new("RGB", (640, 480), tuple(int(v) for v in rng.integers(40, 200, 3)))
        frame.paste(face.resize((size, size), Image.Resampling.BICUBIC), (x, y))
        buffer = io.BytesIO()
        frame.save(buffer, "JPEG", quality=85)
        out.append((buffer.getvalue(), (x + size // 2, y + size // 2)))
    return out


def crops(count: int = 64) -> list[tuple[bytes, np.ndarray]]:
    """48x48 gray PNG crops (the face, shifted and brightened) with their probabilities from the
    library in this process, to check each answer against."""
    import ferkit

    face = np.asarray(Image.open(FACE).convert("L").resize((64, 64), Image.Resampling.BILINEAR))
    faces = np.stack([np.clip(face[i % 9 : i % 9 + 48, (i // 9) % 9 : (i // 9) % 9 + 48].astype(int) + i, 0, 255)
                      for i in range(count)]).astype(np.uint8)
    expected = ferkit.load().classify(faces)
    out = []
    for crop, probs in zip(faces, expected):
        buffer = io.BytesIO()
        Image.fromarray(crop).save(buffer, "PNG")
        out.append((buffer.getvalue(), probs))
    return out


def matches(body: dict, expected: object) -> bool:
    if isinstance(expected, np.ndarray):
        return np.abs(np.array(body["probabilities"][0]) - expected).max() < 1e-4
    centre = expected
    if len(body.get("faces", [])) != 1:
        return False
    x, y, w, h = body["faces"][0]["box"]
    return abs(x + w / 2 - centre[0]) < w / 3 and abs(y + h / 2 - centre[1]) < h / 3


def load(url: str, endpoint: str, clients: int, seconds: float) -> dict[str, object]:
    images: list = crops() if endpoint == "/v1/classify" else frames()
    field = "files" if endpoint == "/v1/classify" else "file"
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(k: int) -> None:
        with httpx.Client(timeout=60) as session:
            i = k
            while time.monotonic() < stop:
                data, expected = images[i % len(images)]
                i += clients
                started = time.perf_counter()
                try:
                    answer = session.post(url + endpoint, files={field: ("image.jpg", data, "image/jpeg")})
                except httpx.HTTPError:
                    with lock:
                        statuses["connection error"] += 1
                    continue
                elapsed = time.perf_counter() - started
                with lock:
                    if answer.status_code == 200:
                        ok = matches(answer.json(), expected)
                        statuses["200" if ok else "200 but wrong answer"] += 1
                        latencies.append(elapsed)
                    elif answer.status_code == 503:
                        statuses["503 with Retry-After" if answer.headers.get("retry-after") else "503 without"] += 1
                    else:
                        statuses[str(answer.status_code)] += 1
                if answer.status_code == 503:
                    time.sleep(float(answer.headers.get("retry-after", "1")) * 0.1)  # back off a little

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    begun = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - begun
    ms = np.array(latencies) * 1000 if latencies else np.zeros(1)
    return {"answered/s": len(latencies) / wall, "p50 ms": np.percentile(ms, 50), "p95 ms": np.percentile(ms, 95),
            "p99 ms": np.percentile(ms, 99), "statuses": dict(statuses)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--runs", default=",".join(RUNS))
    args = parser.parse_args()
    print(f"{args.clients} clients, {args.seconds:g} s per run; analyze: 640x480 JPEGs with one face, "
          "classify: one 48x48 PNG crop per request")
    print(f"{'run':<19} {'answered/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  statuses")
    for name in args.runs.split(","):
        endpoint, server_args = RUNS[name]
        with background(*server_args) as url:
            result = load(url, endpoint, args.clients, args.seconds)
        print(f"{name:<19} {result['answered/s']:>10.1f} {result['p50 ms']:>8.0f} {result['p95 ms']:>8.0f} "
              f"{result['p99 ms']:>8.0f}  {result['statuses']}", flush=True)


if __name__ == "__main__":
    main()
