"""Memory over a long video: peak and sampled RSS of `ferkit video` on a 640x480 clip.

    python benchmarks/video_memory.py [--minutes 10] [--fps 30] [-- extra ferkit video options]

Writes a synthetic clip (a face moving over a changing background, MJPEG in .avi), runs
`ferkit video CLIP --csv timeline.csv --out annotated.mp4` in a child process and samples its
resident memory every second. Flat memory: the last minute's RSS is within a few MB of the
first minute's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

FACE = Path(__file__).resolve().parent.parent / "tests" / "data" / "amy1.png"


def write_clip(path: Path, minutes: float, fps: int) -> int:
    face = cv2.cvtColor(np.asarray(Image.open(FACE).convert("RGB").resize((160, 160))), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    frames = int(minutes * 60 * fps)
    for i in range(frames):
        frame = np.full((480, 640, 3), (60 + i % 120, 90, 140), np.uint8)
        x, y = int(240 + 200 * np.sin(i / 50)), int(160 + 120 * np.cos(i / 70))
        frame[y : y + 160, x : x + 160] = face
        writer.write(frame)
    writer.release()
    return frames


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--fps", type=int, default=30)
    args, extra = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.avi"
        frames = write_clip(clip, args.minutes, args.fps)
        command = [sys.executable, "-m", "ferkit.cli", "video", str(clip), "--csv", str(Path(tmp) / "timeline.csv"),
                   "--out", str(Path(tmp) / "annotated.mp4"), *[e for e in extra if e != "--"]]
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        samples: list[tuple[float, float]] = []
        while process.poll() is None:
            try:
                samples.append((time.monotonic() - started, rss_mb(process.pid)))
            except FileNotFoundError:
                break
            time.sleep(1)
        summary = process.stdout.read().strip() if process.stdout else ""
    seconds = time.monotonic() - started
    rss = np.array([mb for _, mb in samples if mb > 0])
    minute = max(1, len(rss) // max(1, int(seconds // 60)))
    print(f"{frames} frames ({args.minutes:g} min at {args.fps} fps, 640x480) in {seconds:.0f} s: {summary}")
    print(f"RSS peak {rss.max():.0f} MB; median of the first minute {np.median(rss[:minute]):.0f} MB, "
          f"of the last minute {np.median(rss[-minute:]):.0f} MB")


if __name__ == "__main__":
    main()
