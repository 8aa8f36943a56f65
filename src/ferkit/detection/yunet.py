"""libfacedetection (YuNet-style CNN with 5 landmarks), through the `yuface` wheel that ships its weights."""

from __future__ import annotations

import numpy as np

from ferkit.detection.base import Face, FaceDetector


class YuNetDetector(FaceDetector):
    """CNN face detector with landmarks (eyes, nose, mouth corners). The library is tuned for images
    up to 960 pixels, the default DetectorOptions.max_side."""

    name = "yunet"

    def _detect(self, image_rgb: np.ndarray, min_size: int) -> list[Face]:
        import cv2
        import yuface

        bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
        # The library's threshold is applied again (in [0, 1]) by FaceDetector.detect.
        confs, boxes, landmarks = yuface.detect(np.ascontiguousarray(bgr), conf=min(0.3, self.options.score_threshold))
        faces = []
        for conf, box, marks in zip(confs, boxes, landmarks):
            points = tuple((float(marks[i]), float(marks[i + 1])) for i in range(0, 10, 2))
            faces.append(Face(tuple(int(v) for v in box), float(conf) / 100.0, points))  # type: ignore[arg-type]
        return faces
