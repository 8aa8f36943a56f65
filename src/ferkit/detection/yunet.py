"""libfacedetection (YuNet-style CNN with 5 landmarks), through the `yuface` wheel that ships its weights."""

from __future__ import annotations

import numpy as np

from ferkit.detection.base import Face, FaceDetector

MAX_SIDE = 960  # the library is tuned for images up to this size; larger ones are scaled down first


class YuNetDetector(FaceDetector):
    """CNN face detector with landmarks (eyes, nose, mouth corners); ~30-60 ms at 640x480 on 2 cores."""

    name = "yunet"

    def _detect(self, image_rgb: np.ndarray) -> list[Face]:
        import cv2
        import yuface

        h, w = image_rgb.shape[:2]
        scale = min(1.0, MAX_SIDE / max(h, w))
        bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
        if scale < 1.0:
            bgr = cv2.resize(bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        # The library's threshold is applied again (in [0, 1]) by FaceDetector.detect.
        confs, boxes, landmarks = yuface.detect(np.ascontiguousarray(bgr), conf=min(0.3, self.options.score_threshold))
        faces = []
        for conf, box, marks in zip(confs, boxes, landmarks):
            x, y, bw, bh = (float(v) / scale for v in box)
            points = tuple((float(marks[i]) / scale, float(marks[i + 1]) / scale) for i in range(0, 10, 2))
            faces.append(Face((round(x), round(y), round(bw), round(bh)), float(conf) / 100.0, points))
        return faces
