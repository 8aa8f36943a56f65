"""Print, for each detector, the faces found and the time taken on every photo of a folder.

    python benchmarks/detection.py [../shared/data/photos]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ferkit.detection import DETECTOR_NAMES, create_detector
from ferkit.inference.images import load_image


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data" / "photos")
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    images = {p.name: load_image(p) for p in photos}
    print(f"{'photo':<14}{'size':>10}" + "".join(f"{name + ' faces':>14}{'ms':>8}" for name in DETECTOR_NAMES))
    for name, image in images.items():
        row = f"{name:<14}{image.shape[1]:>5}x{image.shape[0]:<4}"
        for detector_name in DETECTOR_NAMES:
            detector = create_detector(detector_name)
            detector.detect(image)
            times = []
            for _ in range(5):
                start = time.perf_counter()
                faces = detector.detect(image)
                times.append(time.perf_counter() - start)
            row += f"{len(faces):>14}{1000 * float(np.median(times)):>8.1f}"
        print(row)


if __name__ == "__main__":
    main()
