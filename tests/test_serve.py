"""The HTTP API over real HTTP: a `ferkit serve` child process on a free port."""

from __future__ import annotations

import base64
import io
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import png_header_only
from PIL import Image
from serve_helpers import REPO, Server, running_server
from starlette.responses import JSONResponse

import ferkit
from ferkit.serve.batching import MicroBatcher
from ferkit.serve.settings import ServeSettings

DATA = Path(__file__).parent / "data"
KEYS = ("key-one", "key-two")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server("--max-upload-mb", "3", "--max-pixels", "4000000", "--max-batch-images", "3",
                        env={"FERKIT_SERVE_MAX_IMAGE_MB": "1"}) as running:
        yield running


@pytest.fixture(scope="module")
def guarded() -> Iterator[Server]:
    """A server with API keys, room for one request at a time and a 3 s timeout."""
    with running_server("--queue-size", "1", "--timeout", "3", env={"FERKIT_API_KEYS": ",".join(KEYS)}) as running:
        yield running


@pytest.fixture(scope="module")
def local() -> ferkit.Recognizer:
    return ferkit.load()


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def test_analyze_a_real_photo_matches_the_library(server: Server, local: ferkit.Recognizer):
    photo = (DATA / "amy1.png").read_bytes()
    response = httpx.post(server.url + "/v1/analyze", files={"file": ("amy1.png", photo, "image/png")}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"], body["model"], body["prior"]) == (*Image.open(DATA / "amy1.png").size, "fast", "train")
    assert len(body["faces"]) == 1 and body["faces"][0]["emotion"] == "happiness"
    expected = local.analyze(DATA / "amy1.png")[0]
    face = body["faces"][0]
    assert tuple(face["box"]) == expected.box
    assert list(face["probabilities"]) == list(ferkit.EMOTIONS)
    for name in ferkit.EMOTIONS:
        assert face["probabilities"][name] == pytest.approx(expected.probabilities[name], abs=1e-5)
    assert len(response.headers["x-request-id"]) == 32


def test_analyze_options_and_gradcam(server: Server):
    photo = (DATA / "bbt3.jpg").read_bytes()
    files = {"file": ("bbt3.jpg", photo, "image/jpeg")}
    everyone = httpx.post(server.url + "/v1/analyze", files=files, timeout=60).json()["faces"]
    assert len(everyone) == 5
    two = httpx.post(server.url + "/v1/analyze", params={"max_faces": 2, "gradcam": "true"}, files=files, timeout=60)
    faces = two.json()["faces"]
    assert [f["box"] for f in faces] == [f["box"] for f in everyone[:2]]  # the two largest, same boxes
    overlay = Image.open(io.BytesIO(base64.b64decode(faces[0]["gradcam"])))
    x, y, w, h = faces[0]["box"]
    pad = max(w, h) // 8  # the face's region of the photo with a margin
    assert overlay.mode == "RGB" and overlay.size == (w + 2 * pad, h + 2 * pad)
    uniform = httpx.post(server.url + "/v1/analyze", params={"prior": "uniform", "min_confidence": 0.99},
                         files=files, timeout=60).json()
    assert uniform["prior"] == "uniform"
    assert uniform["faces"][0]["probabilities"] != everyone[0]["probabilities"]
    assert all(f["emotion"] == "uncertain" for f in uniform["faces"] if f["confidence"] < 0.99)


def test_batch_with_one_bad_image(server: Server, local: ferkit.Recognizer):
    files = [("files", ("amy1.png", (DATA / "amy1.png").read_bytes(), "image/png")),
             ("files", ("broken.jpg", (DATA / "bbt3.jpg").read_bytes()[:3000], "image/jpeg")),  # truncated
             ("files", ("bbt3.jpg", (DATA / "bbt3.jpg").read_bytes(), "image/jpeg"))]
    response = httpx.post(server.url + "/v1/analyze/batch", files=files, timeout=60)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["filename"] for r in results] == ["amy1.png", "broken.jpg", "bbt3.jpg"]
    assert results[0]["faces"][0]["emotion"] == "happiness"
    assert results[1]["error"]["code"] == "bad_image" and "faces" not in results[1]
    assert [tuple(f["box"]) for f in results[2]["faces"]] == [r.box for r in local.analyze(DATA / "bbt3.jpg")]


def test_classify_matches_the_library_for_both_priors(server: Server, local: ferkit.Recognizer):
    crops = np.random.default_rng(3).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    files = [("files", ("faces.npy", _npy(crops[:4]), "application/octet-stream")),
             ("files", ("five.png", _png(crops[4]), "image/png")), ("files", ("six.png", _png(crops[5]), "image/png"))]
    body = httpx.post(server.url + "/v1/classify", files=files, timeout=60).json()
    assert body["labels"] == list(ferkit.EMOTIONS)
    np.testing.assert_allclose(np.array(body["probabilities"]), local.classify(crops), atol=1e-5)
    uniform = httpx.post(server.url + "/v1/classify", params={"prior": "uniform"}, files=files, timeout=60).json()
    np.testing.assert_allclose(np.array(uniform["probabilities"]), ferkit.load(prior="uniform").classify(crops), atol=1e-5)
    assert np.abs(np.array(uniform["probabilities"]) - np.array(body["probabilities"])).max() > 1e-3


def hostile_uploads() -> list[tuple[str, str, dict, dict, int]]:
    """(name, endpoint, files, extra request arguments, expected status): 20 uploads meant to hurt."""
    jpeg = (DATA / "bbt3.jpg").read_bytes()
    small_gif = io.BytesIO()
    Image.new("L", (8, 8)).save(small_gif, "GIF")
    gif_bomb = small_gif.getvalue()[:6] + struct.pack("<HH", 65535, 65535) + small_gif.getvalue()[10:]
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n(hello) print\nshowpage\n"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>'
    big_file = b"\xff\xd8" + b"\x00" * (1024 * 1024 + 10)
    pickled = _npy(np.array([{"run": "code"}], dtype=object))
    photo = ("amy1.png", (DATA / "amy1.png").read_bytes(), "image/png")
    return [
        ("empty file", "/v1/analyze", {"file": ("e.jpg", b"", "image/jpeg")}, {}, 400),
        ("text as jpeg", "/v1/analyze", {"file": ("t.jpg", b"hello, I am text", "image/jpeg")}, {}, 415),
        ("truncated jpeg", "/v1/analyze", {"file": ("t.jpg", jpeg[: len(jpeg) // 3], "image/jpeg")}, {}, 400),
        ("png bomb 20000x20000", "/v1/analyze", {"file": ("b.png", png_header_only(20000, 20000), "image/png")}, {}, 413),
        ("png over the pixel limit", "/v1/analyze", {"file": ("b.png", png_header_only(2500, 2000), "image/png")}, {}, 413),
        ("gif bomb 65535x65535", "/v1/analyze", {"file": ("b.gif", gif_bomb, "image/gif")}, {}, 413),
        ("svg with script", "/v1/analyze", {"file": ("s.svg", svg, "image/svg+xml")}, {}, 415),
        ("postscript", "/v1/analyze", {"file": ("p.eps", eps, "image/x-eps")}, {}, 415),
        ("text type", "/v1/analyze", {"file": ("x.txt", b"hello", "text/plain")}, {}, 415),
        ("pdf type", "/v1/analyze", {"file": ("x.pdf", b"%PDF-1.4 ...", "application/pdf")}, {}, 415),
        ("json body", "/v1/analyze", {}, {"json": {"image": "http://169.254.169.254/latest"}}, 415),
        ("file over the per-file limit", "/v1/analyze", {"file": ("big.jpg", big_file, "image/jpeg")}, {}, 413),
        ("body over the upload limit", "/v1/analyze", {}, {"content": b"x" * (4 * 1024 * 1024),
                                                           "headers": {"content-type": "multipart/form-data; boundary=x"}}, 413),
        ("no file field", "/v1/analyze", {"other": ("a.png", b"abc", "image/png")}, {}, 422),
        ("path as model", "/v1/analyze", {"file": photo}, {"params": {"model": "/etc/passwd"}}, 422),
        ("traversal file name", "/v1/analyze", {"file": ("../../etc/passwd", b"root:x:0:0", "image/png")}, {}, 415),
        ("too many images", "/v1/analyze/batch", [("files", photo)] * 4, {}, 413),
        ("pickled npy", "/v1/classify", {"files": ("p.npy", pickled, "application/octet-stream")}, {}, 400),
        ("float npy", "/v1/classify", {"files": ("f.npy", _npy(np.zeros((2, 48, 48), np.float32)), "application/x-npy")}, {}, 400),
        ("npy of the wrong shape", "/v1/classify", {"files": ("s.npy", _npy(np.zeros((3, 64, 64), np.uint8)), "application/x-npy")}, {}, 400),
    ]


def test_hostile_uploads_get_clear_errors_and_the_server_keeps_answering(server: Server):
    cases = hostile_uploads()
    assert len(cases) == 20
    for name, endpoint, files, extra, status in cases:
        response = httpx.post(server.url + endpoint, files=files or None, timeout=60, **extra)
        assert response.status_code == status, (name, response.status_code, response.text)
        error = response.json()["error"]
        assert error["code"] and error["message"] and error["request_id"] == response.headers["x-request-id"], name
        text = response.text
        for leak in ("Traceback", str(REPO), "site-packages", "File \""):
            assert leak not in text, (name, leak, text)
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    good = httpx.post(server.url + "/v1/analyze", files={"file": ("amy1.png", (DATA / "amy1.png").read_bytes(), "image/png")},
                      timeout=60)
    assert good.status_code == 200 and good.json()["faces"][0]["emotion"] == "happiness"


def test_other_errors_are_json_too(server: Server):
    assert httpx.get(server.url + "/v1/analyze").status_code == 405
    missing = httpx.get(server.url + "/v2/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    bad = httpx.post(server.url + "/v1/analyze", params={"min_face": 0, "prior": "sideways"},
                     files={"file": ("a.png", b"x", "image/png")})
    assert bad.status_code == 422
    assert "min_face" in bad.json()["error"]["message"] and "prior" in bad.json()["error"]["message"]


def _counter(server: Server, sample: str) -> float:
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def test_metrics_move_and_log_lines_carry_the_request_id(server: Server):
    ok = 'ferkit_requests_total{endpoint="/v1/analyze",status="200"}'
    faces = 'ferkit_faces_per_request_count{endpoint="/v1/analyze"}'
    before = _counter(server, ok), _counter(server, faces), _counter(server, "ferkit_batch_faces_count")
    response = httpx.post(server.url + "/v1/analyze", files={"file": ("a.png", (DATA / "amy1.png").read_bytes(), "image/png")},
                          headers={"X-Request-ID": "check-log-7f3a"}, timeout=60)
    assert response.headers["x-request-id"] == "check-log-7f3a"
    after = _counter(server, ok), _counter(server, faces), _counter(server, "ferkit_batch_faces_count")
    assert after == (before[0] + 1, before[1] + 1, before[2] + 1)
    text = httpx.get(server.url + "/metrics").text
    assert "ferkit_request_seconds_bucket" in text and "ferkit_queue_depth" in text
    deadline = time.monotonic() + 5
    while "[check-log-7f3a]" not in server.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    line = next(line for line in server.log_text().splitlines() if "[check-log-7f3a]" in line)
    assert "POST /v1/analyze 200" in line


def test_models_and_health(server: Server):
    models = httpx.get(server.url + "/v1/models").json()
    assert models["default"] == "fast"
    fast = next(m for m in models["models"] if m["name"] == "fast")
    metadata = ferkit.load().classifier.metadata
    assert fast["labels"] == list(ferkit.EMOTIONS) and fast["parameters"] == 1_056_424
    assert fast["test_metrics"]["train"]["accuracy"] == metadata["test_metrics"]["accuracy"]
    assert fast["test_metrics"]["uniform"]["balanced_accuracy"] == metadata["test_metrics_uniform"]["balanced_accuracy"]
    # The default path is named, and so is what the listed test scores measured.
    assert (fast["backend"], fast["precision"], fast["test_metrics_measured_with"]) == ("onnx", "int8", "torch, fp32")
    assert httpx.get(server.url + "/readyz").json()["status"] == "ready"
    assert "/v1/analyze" in httpx.get(server.url + "/openapi.json").json()["paths"]


def test_api_keys(guarded: Server, server: Server):
    files = {"file": ("a.png", (DATA / "amy1.png").read_bytes(), "image/png")}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEYS[0]}"}):
        refused = httpx.post(guarded.url + "/v1/analyze", files=files, headers=headers, timeout=60)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", headers
        assert refused.json()["error"]["code"] == "unauthorized"
    for key in KEYS:
        accepted = httpx.post(guarded.url + "/v1/analyze", files=files, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert accepted.status_code == 200 and accepted.json()["faces"][0]["emotion"] == "happiness"
    assert httpx.get(guarded.url + "/healthz").status_code == 200  # probes need no key
    assert httpx.get(guarded.url + "/v1/models").status_code == 401
    assert httpx.get(server.url + "/v1/models").status_code == 200  # keys off: open


def _open_slow_request(url: str) -> socket.socket:
    """A request whose body never finishes arriving: it holds its place in the queue."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                 b"Content-Length: 1000\r\nAuthorization: Bearer " + KEYS[0].encode() + b"\r\n\r\n--b\r\n")
    return sock


def _read_response(sock: socket.socket) -> str:
    """One whole HTTP response (headers and a Content-Length body), however the segments arrive."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(4096)
    return (head + b"\r\n\r\n" + body).decode()


def test_a_full_queue_answers_503_with_retry_after_and_a_stuck_body_gets_408(guarded: Server):
    files = {"file": ("a.jpg", (DATA / "bbt3.jpg").read_bytes(), "image/jpeg")}
    auth = {"Authorization": f"Bearer {KEYS[0]}"}
    slow = _open_slow_request(guarded.url)
    try:
        time.sleep(0.5)  # a request still receiving its body holds no place in the queue
        assert httpx.post(guarded.url + "/v1/analyze", files=files, headers=auth, timeout=60).status_code == 200
        statuses: list[httpx.Response] = []
        threads = [threading.Thread(target=lambda: statuses.append(
            httpx.post(guarded.url + "/v1/analyze", files=files, headers=auth, timeout=60))) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        busy = [r for r in statuses if r.status_code == 503]
        assert {r.status_code for r in statuses} == {200, 503}  # one place: the others are turned away
        assert all(r.headers["retry-after"] == "1" and r.json()["error"]["code"] == "overloaded" for r in busy)
        slow.settimeout(15)
        answer = _read_response(slow)
        assert answer.startswith("HTTP/1.1 408") and "did not arrive within" in answer and "x-request-id" in answer
    finally:
        slow.close()
    assert httpx.post(guarded.url + "/v1/analyze", files=files, headers=auth, timeout=60).status_code == 200


@pytest.fixture(scope="module")
def hardened() -> Iterator[Server]:
    """Room for 2 requests at work, bodies due within 2 s, answers within 12 s, 4 megapixels decoded at once."""
    with running_server("--queue-size", "2", "--timeout", "12", "--max-pixels", "4000000",
                        env={"FERKIT_SERVE_BODY_TIMEOUT_S": "2", "FERKIT_SERVE_MAX_PIXELS_IN_FLIGHT": "4000000"}) as running:
        yield running


def _raw(url: str, head: bytes, body: bytes = b"") -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(head + body)
    return sock


def test_slow_bodies_get_408_and_do_not_starve_ready_requests(hardened: Server):
    photo = {"file": ("amy1.png", (DATA / "amy1.png").read_bytes(), "image/png")}
    started = time.monotonic()
    slow = [_raw(hardened.url, b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                               b"boundary=b\r\nContent-Length: 1000\r\n\r\n--b\r\n") for _ in range(6)]
    stalled = _raw(hardened.url, b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                                 b"boundary=b\r\nContent-Length: 41943040\r\n\r\n", b"--b\r\nConte")  # 40 MB said, 10 B sent
    try:
        time.sleep(0.3)
        for _ in range(4):  # three times the queue's places are receiving: ready requests still run
            answer = httpx.post(hardened.url + "/v1/analyze", files=photo, timeout=60)
            assert answer.status_code == 200 and answer.json()["faces"][0]["emotion"] == "happiness"
        for sock in [*slow, stalled]:
            sock.settimeout(15)
            response = _read_response(sock)
            assert response.startswith("HTTP/1.1 408") and '"code":"request_timeout"' in response
        assert time.monotonic() - started < 11  # the body deadline (2 s), not the request timeout (12 s)
    finally:
        for sock in [*slow, stalled]:
            sock.close()


def test_media_types_are_case_insensitive(hardened: Server):
    body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
            b"Content-Type: Image/PNG\r\n\r\n" + (DATA / "amy1.png").read_bytes() + b"\r\n--b--\r\n")
    answer = httpx.post(hardened.url + "/v1/analyze", content=body, timeout=60,
                        headers={"Content-Type": "Multipart/Form-Data; boundary=b"})
    assert answer.status_code == 200 and answer.json()["faces"][0]["emotion"] == "happiness"


def _image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 80, 40)).save(buffer, fmt)
    return buffer.getvalue()


def test_formats_off_the_allow_list_get_415_on_every_path(server: Server):
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n(hello) print\nshowpage\n"
    others = {"eps": (eps, "image/x-eps"), "tga": (_image_bytes("TGA"), "image/x-tga"),
              "ico": (_image_bytes("ICO"), "image/x-icon"), "pcx": (_image_bytes("PCX"), "image/x-pcx"),
              "ppm": (_image_bytes("PPM"), "image/x-portable-pixmap")}
    for name, (data, kind) in others.items():
        for endpoint, field in (("/v1/classify", "files"), ("/v1/analyze", "file")):
            answer = httpx.post(server.url + endpoint, files={field: (f"x.{name}", data, kind)}, timeout=60)
            assert answer.status_code == 415, (name, endpoint, answer.text)
            assert answer.json()["error"]["code"] == "unsupported_type" and "accepted format" in answer.text
        batch = httpx.post(server.url + "/v1/analyze/batch", files=[("files", (f"x.{name}", data, kind))], timeout=60)
        assert batch.json()["results"][0]["error"]["code"] == "unsupported_type"
    for fmt in ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"):
        answer = httpx.post(server.url + "/v1/classify", files={"files": (f"x.{fmt}", _image_bytes(fmt), "image/x")})
        assert answer.status_code == 200 and len(answer.json()["probabilities"]) == 1, fmt


def test_an_npy_header_claiming_a_huge_array_gets_413_before_any_allocation(server: Server):
    header = "{'descr': '|u1', 'fortran_order': False, 'shape': (10000000000, 48, 48), }"
    data = b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) + header.ljust(117).encode() + b"\n" + b"\x00" * 4608
    answer = httpx.post(server.url + "/v1/classify", files={"files": ("big.npy", data, "application/x-npy")},
                        headers={"X-Request-ID": "npy-bomb-1"}, timeout=60)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_many_faces"
    assert answer.headers["x-request-id"] == "npy-bomb-1" == answer.json()["error"]["request_id"]
    short = b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) + header.replace("10000000000", "3").ljust(117).encode() + b"\n"
    answer = httpx.post(server.url + "/v1/classify", files={"files": ("s.npy", short + b"\x00" * 100, "application/x-npy")})
    assert answer.status_code == 400 and "not the 6,912 its header says" in answer.text
    two = httpx.post(server.url + "/v1/classify", files={"files": ("t.npy", _npy(np.zeros((2, 48, 48), np.uint8)),
                                                                   "application/x-npy")})
    assert two.status_code == 200 and len(two.json()["probabilities"]) == 2


def test_an_unexpected_error_is_a_500_with_the_request_id(caplog: pytest.LogCaptureFixture):
    import asyncio

    from ferkit.serve.gate import Gate
    from ferkit.serve.metrics import Metrics

    async def broken(scope, receive, send) -> None:
        raise MemoryError("the app ran out of memory")

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=Gate(broken, ServeSettings(), Metrics()))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/v1/models", headers={"X-Request-ID": "boom-42"})

    answer = asyncio.run(call())
    assert answer.status_code == 500 and answer.headers["x-request-id"] == "boom-42"
    assert answer.json()["error"] == {"code": "internal", "request_id": "boom-42",
                                      "message": "the server failed on this request; it is logged under the request id"}
    assert "unexpected error on GET /v1/models" in caplog.text and "MemoryError" in caplog.text


def test_request_heads_over_the_limit_are_refused_and_the_server_keeps_answering(server: Server):
    """A head that arrives whole gets the gate's 431; one still growing past the limit gets the
    parser's 400 before it is read on (httptools, uvicorn's default, read a 200 KB header whole)."""
    import asyncio

    from ferkit.serve.gate import MAX_HEAD_BYTES, Gate
    from ferkit.serve.metrics import Metrics

    reached: list[str] = []

    async def app(scope, receive, send) -> None:
        reached.append(scope["path"])
        await JSONResponse({"ok": True})(scope, receive, send)

    async def call(size: int, query: int = 0) -> httpx.Response:
        transport = httpx.ASGITransport(app=Gate(app, ServeSettings(), Metrics()))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/v1/models", headers={"X-Big": "a" * size}, params={"q": "a" * query})

    assert asyncio.run(call(MAX_HEAD_BYTES - 200)).status_code == 200 and reached == ["/v1/models"]
    refused = asyncio.run(call(MAX_HEAD_BYTES))
    assert refused.status_code == 431 and refused.json()["error"]["code"] == "headers_too_large"
    assert asyncio.run(call(0, query=MAX_HEAD_BYTES)).status_code == 431  # the query string counts too
    assert reached == ["/v1/models"]  # the app never saw them

    host, port = server.url.removeprefix("http://").split(":")
    ok = httpx.get(server.url + "/healthz", headers={"X-Big": "a" * (MAX_HEAD_BYTES - 200)})
    assert ok.status_code == 200
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        try:  # 2 MB: more than one read of the server's socket, so the head is unfinished when refused
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2_000_000 + b"\r\n\r\n")
        except OSError:  # the server may close before the whole head is sent
            pass
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400")
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}


def test_uploads_past_the_receiving_cap_are_told_so_not_that_the_queue_is_full():
    import asyncio
    import json

    from ferkit.serve.gate import RECEIVING_PER_PLACE, Gate
    from ferkit.serve.metrics import Metrics

    async def app(scope, receive, send) -> None:
        while (await receive()).get("more_body", False):
            pass
        await JSONResponse({"ok": True})(scope, receive, send)

    async def never() -> dict:
        await asyncio.Event().wait()
        return {}

    async def run() -> list[dict]:
        gate = Gate(app, ServeSettings(queue_size=1, body_timeout_s=30), Metrics())
        scope = {"type": "http", "method": "POST", "path": "/v1/analyze", "raw_path": b"/v1/analyze",
                 "query_string": b"", "headers": [(b"content-type", b"multipart/form-data; boundary=b")]}

        async def ignore(message: dict) -> None:
            pass

        slow = [asyncio.create_task(gate(dict(scope), never, ignore)) for _ in range(RECEIVING_PER_PLACE)]
        await asyncio.sleep(0.1)
        answer: list[dict] = []

        async def keep(message: dict) -> None:
            answer.append(message)

        await gate(dict(scope), never, keep)
        for task in slow:
            task.cancel()
        await asyncio.gather(*slow, return_exceptions=True)
        return answer

    start, body = asyncio.run(run())
    error = json.loads(body["body"])["error"]
    assert start["status"] == 503 and error["code"] == "overloaded"
    assert error["message"] == f"too many uploads are arriving at once ({RECEIVING_PER_PLACE}); retry shortly"


def test_a_request_past_its_timeout_keeps_its_place_until_its_work_ends():
    """The 503 comes on time, but the endpoint's thread cannot be stopped: its place in the queue
    stays taken until the thread ends, so new work does not pile up on it, and its late answer is dropped."""
    import asyncio
    import json

    from starlette.concurrency import run_in_threadpool

    from ferkit.serve.gate import Gate
    from ferkit.serve.metrics import Metrics

    finished: list[float] = []

    def work(seconds: float) -> None:
        time.sleep(seconds)
        finished.append(time.monotonic())

    async def app(scope, receive, send) -> None:
        while (await receive()).get("more_body", False):
            pass
        await run_in_threadpool(work, float(scope["query_string"] or 0))
        await JSONResponse({"late": True})(scope, receive, send)

    async def body() -> dict:
        return {"type": "http.request", "body": b"x", "more_body": False}

    async def call(gate: Gate, seconds: float) -> tuple[list[dict], float]:
        scope = {"type": "http", "method": "POST", "path": "/v1/analyze", "raw_path": b"/v1/analyze",
                 "query_string": str(seconds).encode(),
                 "headers": [(b"content-type", b"multipart/form-data; boundary=b")]}
        sent: list[dict] = []

        async def keep(message: dict) -> None:
            sent.append({**message, "at": time.monotonic()})

        await gate(scope, body, keep)
        return sent, time.monotonic()

    async def run() -> None:
        gate = Gate(app, ServeSettings(queue_size=1, timeout_s=0.5), Metrics())
        slow = asyncio.create_task(call(gate, 2.0))
        await asyncio.sleep(0.8)  # its 503 has gone out; its thread works on
        busy, _ = await call(gate, 0)
        assert busy[0]["status"] == 503 and "busy" in json.loads(busy[1]["body"])["error"]["message"]
        sent, returned = await slow
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]  # no late answer
        assert sent[0]["status"] == 503 and b"no answer within 0.5 s" in sent[1]["body"]
        assert sent[1]["at"] < finished[0] - 1 and returned >= finished[0]  # answered on time, freed at the end
        again, _ = await call(gate, 0)
        assert again[0]["status"] == 200 and gate.in_flight == 0

    asyncio.run(run())


def test_transfer_encoding_with_content_length_is_refused_and_the_connection_closed(server: Server):
    """Both framings in one request is the shape of request smuggling: the answer must close the connection."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                     b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") and b"not both" in answer
    assert b"HTTP/1.1 200" not in answer  # the request after it on the connection was never read


def test_a_request_that_waited_for_a_thread_past_its_timeout_does_no_work(monkeypatch: pytest.MonkeyPatch):
    """The endpoints run in a pool of threads; a request still waiting for one when its 503 went
    out stops at its first step instead of decoding and analysing for nobody."""
    import asyncio

    import anyio

    import ferkit.serve.app
    from ferkit.serve.app import create_app

    decoded: list[str] = []
    decode = ferkit.serve.app._decode_photo
    monkeypatch.setattr(ferkit.serve.app, "_decode_photo", lambda data, name, *rest: (decoded.append(name),
                                                                                      decode(data, name, *rest))[1])
    photo = {"file": ("amy1.png", (DATA / "amy1.png").read_bytes(), "image/png")}

    async def run() -> tuple[httpx.Response, httpx.Response]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 1
        transport = httpx.ASGITransport(app=create_app(ServeSettings(timeout_s=1)))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            busy = asyncio.create_task(anyio.to_thread.run_sync(time.sleep, 2.5))  # the only thread, taken
            await asyncio.sleep(0.1)
            late = await client.post("/v1/analyze", files=photo, timeout=60)
            await busy
            return late, await client.post("/v1/analyze", files=photo, timeout=60)

    late, fresh = asyncio.run(run())
    assert late.status_code == 503 and "no answer within 1 s" in late.json()["error"]["message"]
    assert fresh.status_code == 200 and fresh.json()["faces"][0]["emotion"] == "happiness"
    assert decoded == ["amy1.png"]  # the fresh request's only


def test_concurrent_large_uploads_share_the_pixel_budget(hardened: Server):
    big = io.BytesIO()
    Image.new("RGB", (2000, 2000), (90, 120, 150)).save(big, "PNG")  # 4 megapixels: the whole budget
    upload = ("big.png", big.getvalue(), "image/png")
    # Two such images in one request: the second waits for pixels the first holds until the
    # request ends, so it is turned away (503) after half the timeout; the first is answered.
    first, second = httpx.post(hardened.url + "/v1/analyze/batch", files=[("files", upload)] * 2,
                               timeout=60).json()["results"]
    assert first["faces"] == [] and first["width"] == 2000 and first["height"] == 2000
    assert second["error"]["code"] == "overloaded" and "4,000,000 pixels" in second["error"]["message"]
    answers: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(
        httpx.post(hardened.url + "/v1/analyze", files={"file": upload}, timeout=60))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200, 200]  # one at a time: the second waited for the pixels


def test_the_pixel_budget_waits_then_refuses():
    from ferkit.serve.budget import PixelBudget
    from ferkit.serve.errors import ApiError

    budget = PixelBudget(100)
    with budget.lease(1.0) as first:
        first.reserve(60)
        assert budget.free == 40
        freed = threading.Timer(0.2, lambda: first.__exit__(None, None, None))
        freed.start()
        with budget.lease(2.0) as second:
            started = time.monotonic()
            second.reserve(70)  # waits until the first lease ends
            assert 0.15 < time.monotonic() - started < 1.5 and budget.free == 30
            with budget.lease(0.2) as third, pytest.raises(ApiError) as refused:
                third.reserve(31)
            assert refused.value.status == 503
        freed.join()
    assert budget.free == 100


def test_micro_batcher_shares_batches_and_keeps_answers_apart():
    calls: list[int] = []

    def classify(crops: np.ndarray) -> np.ndarray:
        calls.append(len(crops))
        time.sleep(0.02)
        return np.repeat(crops.reshape(len(crops), -1)[:, :1].astype(np.float32), 8, axis=1)

    batcher = MicroBatcher(classify, max_wait_s=0.05, max_batch=32, on_batch=lambda n: None)
    start = threading.Barrier(16)
    answers: dict[int, np.ndarray] = {}

    def client(i: int) -> None:
        crops = np.full((1 + i % 3, 48, 48), i, np.uint8)
        start.wait()
        answers[i] = batcher.submit(crops).result(timeout=10)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    batcher.close()
    for i, probs in answers.items():
        assert probs.shape == (1 + i % 3, 8) and (probs == i).all()  # each request its own rows
    assert sum(calls) == sum(1 + i % 3 for i in range(16)) and len(calls) < 16 and max(calls) <= 32


def test_micro_batcher_hands_a_failure_to_every_waiter():
    def broken(crops: np.ndarray) -> np.ndarray:
        raise RuntimeError("model failed")

    batcher = MicroBatcher(broken, max_wait_s=0.01, max_batch=8)
    with pytest.raises(RuntimeError, match="model failed"):
        batcher.submit(np.zeros((2, 48, 48), np.uint8)).result(timeout=5)
    batcher.close()


def test_settings_travel_through_the_environment():
    settings = ServeSettings(model="accurate", prior="uniform", queue_size=7, batch_wait_ms=0,
                             api_keys=("secret-key-1", "secret-key-2"), cors_origins=("https://x.example",))
    assert ServeSettings.from_env(settings.to_env()) == settings
    assert "secret-key" not in settings.describe() and '"api_keys": "2 key(s)"' in settings.describe()
    with pytest.raises(ferkit.ConfigError, match="queue_size"):
        ServeSettings(queue_size=0)
    with pytest.raises(ferkit.ConfigError, match="FERKIT_SERVE_TIMEOUT_S"):
        ServeSettings.from_env({"FERKIT_SERVE_TIMEOUT_S": "soon"})


@pytest.mark.parametrize("fmt, reserved, shape", [("PNG", 20_000_000, (1334, 1667, 3)), ("JPEG", 5_000_000, (1000, 1250, 3))])
def test_large_uploads_are_reduced_as_they_are_decoded(fmt: str, reserved: int, shape: tuple[int, int, int]):
    from ferkit.data.images import decode_rgb

    buffer = io.BytesIO()
    Image.new("RGB", (5000, 4000), (10, 20, 30)).save(buffer, fmt)
    seen: list[int] = []
    rgb, scale = decode_rgb(buffer.getvalue(), reserve=seen.append, work_pixels=1920**2)
    # A JPEG is decoded at 1/2 size (the pixels reserved), then both are reduced by a whole factor.
    assert seen == [reserved] and rgb.shape == shape and scale == pytest.approx(5000 / shape[1])


def test_listing_says_what_answers_and_claims_no_scores_a_model_lacks(monkeypatch: pytest.MonkeyPatch):
    """A run of the user's own (no test scores) is listed with its backend and precision and no
    word on how scores it lacks were measured; a model that cannot load is listed bare."""
    from types import SimpleNamespace

    from ferkit.serve.metrics import Metrics
    from ferkit.serve.models import ModelPool

    pool = ModelPool(ServeSettings(), Metrics())
    pool.sources = {"mine": "mine", "broken": "broken"}

    def load(name: str, prior: str | None) -> SimpleNamespace:
        if name == "broken":
            raise OSError("no such folder")
        classifier = SimpleNamespace(metadata={"model": "fernet", "labels": list(ferkit.EMOTIONS)},
                                     backend="torch", precision="fp32")
        return SimpleNamespace(recognizer=SimpleNamespace(classifier=classifier), batcher=None)

    monkeypatch.setattr(pool, "_load", load)
    listed = {entry["name"]: entry for entry in pool.describe()}
    assert (listed["mine"]["backend"], listed["mine"]["precision"]) == ("torch", "fp32")
    assert "test_metrics" not in listed["mine"] and "test_metrics_measured_with" not in listed["mine"]
    assert listed["broken"]["labels"] is None and "backend" not in listed["broken"]


def test_listing_models_while_other_models_load_never_fails(monkeypatch: pytest.MonkeyPatch):
    """GET /v1/models reads the loaded models while other requests add theirs; iterating the dict
    they grow raised "dictionary changed size during iteration" (a 500)."""
    import sys
    from types import SimpleNamespace

    from ferkit.serve.metrics import Metrics
    from ferkit.serve.models import ModelPool

    pool = ModelPool(ServeSettings(), Metrics())
    names = [f"m{i:03d}" for i in range(600)]
    pool.sources = {name: name for name in [*names, "target"]}
    monkeypatch.setattr(pool, "_load", lambda name, prior: SimpleNamespace(
        recognizer=SimpleNamespace(classifier=SimpleNamespace(metadata={"model": name})), batcher=None))
    for name in names[:300]:  # the model looked up sits behind 300 others
        pool.get(name, None)
    pool.get("target", None)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows every time
    errors: list[Exception] = []
    done = threading.Event()

    def list_models() -> None:
        while not done.is_set():
            try:
                assert pool._classifier("target").metadata == {"model": "target"}
            except Exception as exc:  # handed to the test's thread
                errors.append(exc)
                return

    readers = [threading.Thread(target=list_models) for _ in range(3)]
    try:
        for thread in readers:
            thread.start()
        for name in names[300:]:
            pool.get(name, None)
    finally:
        sys.setswitchinterval(interval)
        done.set()
        for thread in readers:
            thread.join()
    assert not errors, errors[0]


WORKER = """
import os, sys
from ferkit.serve.metrics import Metrics
metrics = Metrics()
metrics.requests.labels("/v1/analyze", "200").inc()
for _ in range(int(sys.argv[1])):
    metrics.queue_depth.inc()  # admitted, never answered
print("ready", flush=True)
if sys.argv[2] == "dies":
    os._exit(134)  # killed mid-request, as a crashed worker is
sys.stdin.readline()
"""


def test_a_dead_workers_admitted_requests_leave_the_queue_depth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """--workers N: a worker that dies with requests admitted never counts them down; /metrics
    (whichever worker answers) forgets its queue depth and keeps the requests it answered."""
    import subprocess
    import sys

    from ferkit.serve.metrics import Metrics

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    dead = subprocess.run([sys.executable, "-c", WORKER, "2", "dies"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert dead.returncode == 134 and "ready" in dead.stdout, dead.stderr
    alive = subprocess.Popen([sys.executable, "-c", WORKER, "3", "lives"], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert alive.stdout is not None and alive.stdout.readline().strip() == "ready"
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        lines = Metrics().exposition().decode().splitlines()
    finally:
        alive.communicate("\n", timeout=30)
    assert "ferkit_queue_depth 3.0" in lines  # the live worker's 3, not 3 + the dead one's 2
    assert 'ferkit_requests_total{endpoint="/v1/analyze",status="200"} 2.0' in lines


def test_shutdown_waits_for_requests_in_flight_as_long_as_they_may_run(monkeypatch: pytest.MonkeyPatch):
    """On SIGTERM uvicorn cancels what is still running after timeout_graceful_shutdown; shorter
    than a request's own timeout, it dropped answers (16-photo Grad-CAM batches cut off)."""
    import uvicorn

    from ferkit.serve.server import run

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    monkeypatch.setattr(os, "environ", dict(os.environ))  # run() hands its settings on through FERKIT_* variables
    for timeout in (30.0, 7.5):
        run(ServeSettings(timeout_s=timeout), "127.0.0.1", 8000)
        assert isinstance(seen["timeout_graceful_shutdown"], int) and seen["timeout_graceful_shutdown"] > timeout
