"""libfacedetection (YuNet-style CNN with 5 landmarks), the library shipped in the `yuface` wheel.

ferkit calls the library's ``facedetect_cnn`` directly through ctypes instead of ``yuface.detect``:
that wrapper allocates the library's 36 KB result buffer on every call and never frees it (a
10-minute video grew by 1.8 MB a second). Here each thread reuses one buffer; the boxes and
landmarks are the wrapper's, as signed values (a face cut by the image edge keeps its negative x).
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import numpy as np

from ferkit.detection.base import Face, FaceDetector

#: The result buffer size libfacedetection documents (DETECT_BUFFER_SIZE): a count, then 16
#: shorts per face (confidence, x, y, w, h, five landmark points, reserved).
BUFFER_BYTES = 0x9000
_FIELDS = 16
#: Images up to this many pixels (a tracking region) are detected on one thread: the library's
#: OpenMP threads cost more to wake and join than they save there, and far more on a busy machine
#: (160x160 on a loaded 2-core machine: 23 ms median on 2 threads, 6 ms on one).
ONE_THREAD_PIXELS = 256 * 256


class _Library:
    """The shared library and one result buffer per thread (the call is thread-safe once the library is set up)."""

    def __init__(self) -> None:
        import yuface

        library = ctypes.CDLL(str(Path(yuface.__file__).resolve().parent / "libfacedetection.so"))
        self.detect_cnn = library._Z14facedetect_cnnPhS_iii  # facedetect_cnn(uchar*, uchar*, int, int, int)
        self.detect_cnn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.detect_cnn.restype = ctypes.POINTER(ctypes.c_int)
        self.local = threading.local()
        gomp = sorted((Path(yuface.__file__).resolve().parent.parent / "yuface.libs").glob("libgomp*.so*"))
        self.openmp = ctypes.CDLL(str(gomp[0])) if gomp else None  # the library's own OpenMP runtime

    def detect(self, bgr: np.ndarray) -> np.ndarray:
        """Raw detections (N, 16) int16 of a contiguous BGR uint8 image."""
        buffer = getattr(self.local, "buffer", None)
        if buffer is None:
            buffer = self.local.buffer = np.zeros(BUFFER_BYTES, np.uint8)
        # A small image runs on one thread, set per calling thread: other threads' detections are not affected.
        one_thread = self.openmp if bgr.shape[0] * bgr.shape[1] <= ONE_THREAD_PIXELS else None
        threads = one_thread.omp_get_max_threads() if one_thread is not None else 1
        if one_thread is not None:
            one_thread.omp_set_num_threads(1)
        try:
            result = self.detect_cnn(buffer.ctypes.data, bgr.ctypes.data, bgr.shape[1], bgr.shape[0], bgr.strides[0])
        finally:
            if one_thread is not None:
                one_thread.omp_set_num_threads(threads)
        count = result[0] if result else 0
        count = min(count, (BUFFER_BYTES - 4) // (2 * _FIELDS))
        return buffer[4 : 4 + count * 2 * _FIELDS].view(np.int16).reshape(count, _FIELDS).copy()


_LIBRARY: _Library | None = None
_LOCK = threading.Lock()


def _library() -> _Library:
    global _LIBRARY
    with _LOCK:
        if _LIBRARY is None:
            library = _Library()
            # The library fills its network's weights on its first call, unguarded: first calls from
            # several threads at once corrupt the heap ("double free or corruption") or fail inside
            # it. One call on a blank image here, under the lock, does that once.
            library.detect(np.zeros((32, 32, 3), np.uint8))
            _LIBRARY = library
        return _LIBRARY


class YuNetDetector(FaceDetector):
    """CNN face detector with landmarks (eyes, nose, mouth corners). The library is tuned for images
    up to 960 pixels, the default DetectorOptions.max_side."""

    name = "yunet"

    def _detect(self, image_rgb: np.ndarray, min_size: int) -> list[Face]:
        import cv2

        bgr = np.ascontiguousarray(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
        floor = 100 * min(0.3, self.options.score_threshold)  # the threshold is applied again by detect()
        faces = []
        for row in _library().detect(bgr):
            if row[0] <= floor:
                continue
            points = tuple((float(row[5 + i]), float(row[6 + i])) for i in range(0, 10, 2))
            faces.append(Face((int(row[1]), int(row[2]), int(row[3]), int(row[4])), float(row[0]) / 100.0, points))
        return faces
