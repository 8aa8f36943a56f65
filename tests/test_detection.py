from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferkit.detection import CROP_SCALE, DetectorOptions, Face, create_detector, crop_face
from ferkit.detection.crop import eye_angle
from ferkit.errors import FerkitError

DATA = Path(__file__).parent / "data"


def _rgb(name: str) -> np.ndarray:
    return np.asarray(Image.open(DATA / name).convert("RGB"))


@pytest.mark.parametrize("name", ["yunet", "haar"])
def test_group_photo_has_five_faces(name: str):
    faces = create_detector(name).detect(_rgb("bbt3.jpg"))
    assert len(faces) == 5
    assert all(0 <= f.score <= 1 for f in faces)
    assert [f.area for f in faces] == sorted((f.area for f in faces), reverse=True)


def test_yunet_gives_landmarks_and_finds_the_close_up():
    faces = create_detector("yunet").detect(_rgb("amy1.png"))
    assert len(faces) == 1 and faces[0].landmarks is not None and len(faces[0].landmarks) == 5
    (rx, ry), (lx, ly) = faces[0].landmarks[:2]
    x, y, w, h = faces[0].box
    assert x <= rx < lx <= x + w and y <= ry <= y + h / 2  # eyes in the upper half of the box


def test_options_filter_faces():
    image = _rgb("bbt3.jpg")
    assert len(create_detector("yunet", DetectorOptions(max_faces=2)).detect(image)) == 2
    largest = create_detector("yunet", DetectorOptions(largest_only=True)).detect(image)
    everyone = create_detector("yunet").detect(image)
    assert largest == everyone[:1]
    assert create_detector("yunet", DetectorOptions(min_size=500)).detect(image) == []
    assert create_detector("yunet", DetectorOptions(score_threshold=0.999)).detect(image) == []


def test_blank_image_has_no_face_and_bad_arrays_are_refused():
    assert create_detector("yunet").detect(np.zeros((240, 320, 3), np.uint8)) == []
    with pytest.raises(ValueError, match="RGB uint8"):
        create_detector("yunet").detect(np.zeros((240, 320), np.uint8))
    with pytest.raises(FerkitError, match="unknown detector 'mtcnn'"):
        create_detector("mtcnn")


@pytest.mark.parametrize("name", ["yunet", "haar"])
@pytest.mark.parametrize("shape", [(8000, 1), (1, 8000), (1921, 1), (5000, 3)])
def test_a_sliver_of_an_image_has_no_face_and_no_error(name: str, shape: tuple[int, int]):
    """Scaled for detection, 1 x 8000 pixels became 0 x 960: OpenCV raised (a 500 in the service,
    the whole batch with it)."""
    assert create_detector(name).detect(np.zeros((*shape, 3), np.uint8)) == []


def test_large_images_are_scaled_for_detection_and_boxes_scaled_back():
    image = _rgb("bbt3.jpg")
    big = np.asarray(Image.fromarray(image).resize((image.shape[1] * 3, image.shape[0] * 3)))
    small_faces = create_detector("yunet").detect(image)
    big_faces = create_detector("yunet").detect(big)
    assert len(big_faces) == 5
    for a, b in zip(sorted(f.box for f in small_faces), sorted(f.box for f in big_faces)):
        assert np.allclose(np.array(b) / 3, a, atol=6)


def test_crop_geometry():
    assert CROP_SCALE == 1.0
    gray = np.zeros((100, 100), np.uint8)
    gray[40:60, 30:50] = 255  # a bright 20x20 square
    crop = crop_face(gray, Face((30, 40, 20, 20), 1.0))
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    assert crop[2:-2, 2:-2].min() > 200  # the box fills the crop
    level = Face((0, 0, 10, 10), 1.0, ((0.0, 5.0), (10.0, 5.0)))
    tilted = Face((0, 0, 10, 10), 1.0, ((0.0, 0.0), (10.0, 10.0)))
    assert eye_angle(level) == 0 and eye_angle(tilted) == pytest.approx(45)


def test_crop_levels_tilted_eyes():
    gray = np.zeros((200, 200), np.uint8)
    import cv2

    cv2.line(gray, (60, 60), (140, 140), 255, 9)  # a stripe along the eye line, tilted 45 degrees
    face = Face((50, 50, 100, 100), 1.0, ((60.0, 60.0), (140.0, 140.0)))
    crop = crop_face(gray, face)
    rows = crop.astype(int).sum(axis=1)
    assert rows.argmax() in range(20, 28) and rows.max() > 40 * 200  # now one horizontal stripe


def _whole_image_crop(gray: np.ndarray, face: Face, size: int = 48) -> np.ndarray:
    """The crop computed the long way, on the whole image (what crop_face must reproduce)."""
    import cv2

    x, y, w, h = face.box
    centre, side = (x + w / 2.0, y + h / 2.0), max(w, h) * CROP_SCALE
    matrix = cv2.getRotationMatrix2D(centre, eye_angle(face), size / side)
    matrix[:, 2] += (size / 2.0 - centre[0], size / 2.0 - centre[1])
    return cv2.warpAffine(gray, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@pytest.mark.parametrize("box", [(100, 80, 60, 60), (0, 0, 50, 70), (570, 400, 70, 80), (-20, 300, 60, 60)])
def test_crop_cuts_the_face_region_only_and_matches_a_whole_image_warp(box):
    rng = np.random.default_rng(0)
    gray = cv2_blur(rng.integers(0, 256, (480, 640)).astype(np.uint8))
    tilted = Face(box, 1.0, ((box[0] + 10.0, box[1] + 20.0), (box[0] + 50.0, box[1] + 30.0)))
    for face in (Face(box, 1.0), tilted):
        np.testing.assert_allclose(crop_face(gray, face).astype(int), _whole_image_crop(gray, face).astype(int), atol=1)


def test_crop_of_a_large_face_resizes_only_its_neighbourhood(monkeypatch: pytest.MonkeyPatch):
    import cv2

    resized = []
    original = cv2.resize
    monkeypatch.setattr(cv2, "resize", lambda image, *a, **k: resized.append(image.shape) or original(image, *a, **k))
    gray = np.zeros((3000, 3000), np.uint8)
    gray[1000:1400, 1000:1400] = 200  # the face
    crop = crop_face(gray, Face((1000, 1000, 400, 400), 1.0))
    assert crop.shape == (48, 48) and crop[4:-4, 4:-4].min() == 200
    assert resized and all(max(shape) <= 2 * (0.75 * 400 + 2) for shape in resized)  # not the 3000 px image


def cv2_blur(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(image, (0, 0), 3)


def test_haar_minimum_face_size_is_in_original_pixels():
    image = _rgb("bbt3.jpg")
    big = np.asarray(Image.fromarray(image).resize((image.shape[1] * 3, image.shape[0] * 3)))  # detected at ~1/2 size
    everyone = create_detector("haar", DetectorOptions(min_size=20)).detect(big)
    smallest = min(min(f.box[2], f.box[3]) for f in everyone)
    kept = create_detector("haar", DetectorOptions(min_size=int(smallest * 0.9))).detect(big)
    assert len(everyone) >= 4 and len(kept) == len(everyone)


def test_yunet_does_not_leak_memory_per_call():
    """yuface.detect leaked its 36 KB result buffer on every call; ferkit's own call must not."""
    import os

    def rss_kb() -> int:
        return int(Path(f"/proc/{os.getpid()}/status").read_text().split("VmRSS:")[1].split()[0])

    detector = create_detector("yunet")
    image = _rgb("amy1.png")
    for _ in range(50):
        detector.detect(image)
    before = rss_kb()
    for _ in range(400):
        assert len(detector.detect(image)) == 1
    assert rss_kb() - before < 4000  # 400 leaked buffers would be 14,400 KB


FIRST_CALLS_AT_ONCE = """
import ctypes, sys, threading
import numpy as np
from PIL import Image
import yuface
from ferkit.detection import create_detector
from ferkit.detection.yunet import _library
so = ctypes.CDLL(yuface.__file__.rsplit("/", 1)[0] + "/libfacedetection.so")
set_up = ctypes.c_bool.in_dll(so, "param_initialized")  # the library's own flag of its one-time set-up
assert not set_up.value, "set up before ferkit asked for the library"
_library()
assert set_up.value, "the library is handed out before its one-time set-up ran"
image = np.asarray(Image.open(sys.argv[1]).convert("RGB"))
detector = create_detector("yunet")
start = threading.Barrier(16)
boxes = []
def first_call():
    start.wait()
    boxes.append([f.box for f in detector.detect(image)])
threads = [threading.Thread(target=first_call) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
print(len(boxes), len({str(b) for b in boxes}), boxes[0])
"""


def test_yunet_first_calls_from_many_threads_at_once_agree_and_do_not_crash():
    """The library sets its weights up on its first call, unguarded: 16 threads making the first
    call together corrupted the heap in one fresh process in 5 to 25 (a crashed service worker).
    Its own flag shows the set-up done before any thread gets the library; the threads then agree."""
    import subprocess
    import sys

    for _ in range(30):  # each try is a fresh process: the set-up happens once per process
        run = subprocess.run([sys.executable, "-c", FIRST_CALLS_AT_ONCE, str(DATA / "amy1.png")],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        calls, distinct, box = run.stdout.split(maxsplit=2)
        assert (calls, distinct) == ("16", "1") and box.startswith("[("), run.stdout
