"""The HTTP API: analyze photos, classify face crops, list models, health and metrics.

Every CPU-bound step runs in FastAPI's thread pool (the endpoints are plain functions); the
classifier step of concurrent requests is shared through the micro-batcher (see batching.py).
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST

from ferkit import __version__
from ferkit.data.images import decode_face, decode_rgb
from ferkit.errors import FerkitError, ImageFormatError, ImageTooLargeError
from ferkit.extras import MissingExtraError, require
from ferkit.inference.recognizer import Analysis
from ferkit.preprocessing import FACE_SIZE
from ferkit.serve.budget import PixelBudget, PixelLease
from ferkit.serve.errors import ApiError, error_response, install_error_handlers
from ferkit.serve.gate import Gate, abandoned
from ferkit.serve.metrics import Metrics
from ferkit.serve.models import ModelPool, ServedModel
from ferkit.serve.settings import ServeSettings

logger = logging.getLogger(__name__)
NPY_MAGIC = b"\x93NUMPY"
NPY_TYPES = ("application/octet-stream", "application/x-npy", "application/npy")


@dataclass(frozen=True)
class AnalyzeOptions:
    min_face: int
    max_faces: int | None
    min_confidence: float | None
    prior: str | None
    model: str | None
    gradcam: bool


def analyze_options(
    min_face: Annotated[int, Query(ge=1, le=10_000, description="smallest face side in pixels")] = 20,
    max_faces: Annotated[int | None, Query(ge=1, description="analyse at most this many faces (largest first)")] = None,
    min_confidence: Annotated[float | None, Query(ge=0, le=1, description="below it the emotion is 'uncertain'")] = None,
    prior: Annotated[Literal["train", "uniform"] | None, Query(description="class prior (default: the server's)")] = None,
    model: Annotated[str | None, Query(max_length=64, description="a model named by GET /v1/models")] = None,
    gradcam: Annotated[bool, Query(description="add a Grad-CAM overlay (base64 PNG) per face")] = False,
) -> AnalyzeOptions:
    return AnalyzeOptions(min_face, max_faces, min_confidence, prior, model, gradcam)


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """The ferkit API as an ASGI app (settings from FERKIT_* variables when None)."""
    settings = settings or ServeSettings.from_env()
    metrics = Metrics()
    pool = ModelPool(settings, metrics)
    budget = PixelBudget(settings.max_pixels_in_flight)

    def lease() -> PixelLease:
        return budget.lease(settings.timeout_s / 2)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from starlette.concurrency import run_in_threadpool

        await run_in_threadpool(pool.warm)
        logger.info("ferkit serve ready: %s", settings.describe())
        yield
        pool.close()

    bearer = [Depends(HTTPBearer(auto_error=False))] if settings.api_keys else []  # the docs' "Authorize" button
    app = FastAPI(title="ferkit", version=__version__, lifespan=lifespan,
                  description="Facial expression recognition: 8 emotions of every face in a photo.")
    app.state.settings, app.state.pool, app.state.metrics = settings, pool, metrics
    install_error_handlers(app)

    @app.post("/v1/analyze", dependencies=bearer, summary="emotions of every face in one photo")
    def analyze(file: Annotated[UploadFile, File(description="a photo: JPEG, PNG, WebP, BMP, GIF or TIFF")],
                options: Annotated[AnalyzeOptions, Depends(analyze_options)], request: Request) -> dict[str, Any]:
        go_on = _go_on(request)
        go_on()
        served = pool.get(options.model, options.prior)
        with lease() as pixels:
            rgb, scale = _decode_photo(_read(file, settings), _name(file), settings, pixels)
            result = _analyze_images(pool, served, [(rgb, scale)], options, settings, go_on)[0]
        return {**result, "model": served.name, "prior": served.prior}

    @app.post("/v1/analyze/batch", dependencies=bearer, summary="emotions of every face in several photos")
    def analyze_batch(files: Annotated[list[UploadFile], File(description="photos, one result each in order")],
                      options: Annotated[AnalyzeOptions, Depends(analyze_options)], request: Request) -> dict[str, Any]:
        go_on = _go_on(request)
        go_on()
        if len(files) > settings.max_batch_images:
            raise ApiError(413, "too_many_images", f"{len(files)} images; at most {settings.max_batch_images} per request")
        served = pool.get(options.model, options.prior)
        decoded: list[tuple[np.ndarray, float] | dict[str, Any]] = []
        with lease() as pixels:
            for upload in files:
                go_on()
                try:
                    decoded.append(_decode_photo(_read(upload, settings), _name(upload), settings, pixels))
                except ApiError as exc:  # one bad image fails alone
                    decoded.append({"error": {"code": exc.code, "message": exc.message}})
            images = [item for item in decoded if isinstance(item, tuple)]
            analysed = iter(_analyze_images(pool, served, images, options, settings, go_on))
        results = [item if isinstance(item, dict) else next(analysed) for item in decoded]
        for upload, result in zip(files, results):
            result["filename"] = _name(upload)
        return {"results": results, "model": served.name, "prior": served.prior}

    @app.post("/v1/classify", dependencies=bearer, summary="emotion probabilities of face crops")
    def classify(
        files: Annotated[list[UploadFile], File(description="face crops (PNG, JPEG, ...: any size, made 48x48 gray) "
                                                            "or one .npy of uint8 (N, 48, 48)")],
        request: Request,
        prior: Annotated[Literal["train", "uniform"] | None, Query()] = None,
        model: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        go_on = _go_on(request)
        go_on()
        served = pool.get(model, prior)
        with lease() as pixels:
            faces = np.concatenate([_decode_faces(_read(upload, settings, NPY_TYPES), _name(upload), settings, pixels)
                                    for upload in files])
        if len(faces) > settings.max_classify_faces:
            raise ApiError(413, "too_many_faces", f"{len(faces)} faces; at most {settings.max_classify_faces} per request")
        go_on()
        probs = served.classify(faces, settings.timeout_s)
        metrics.faces.labels("/v1/classify").observe(len(faces))
        return {"labels": list(served.recognizer.labels), "probabilities": probs.tolist(),
                "model": served.name, "prior": served.prior}

    @app.get("/v1/models", dependencies=bearer, summary="the models this server answers with")
    def models() -> dict[str, Any]:
        return {"default": pool.default, "models": pool.describe()}

    @app.get("/healthz", summary="the process is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="the default model is loaded")
    def readyz() -> Response:
        if not pool.ready:
            return error_response(503, "not_ready", "the model is still loading")
        return JSONResponse({"status": "ready", "model": pool.default})

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(Gate, settings=settings, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                           expose_headers=["X-Request-ID", "Retry-After"])
    return app


def _go_on(request: Request) -> Callable[[], None]:
    """A check for the endpoint's thread to call between its steps: it stops the work once the gate
    has given up on the request (its 503 is out; the answer would be dropped). A thread cannot be
    stopped from outside, and without this a request that waited for a free thread past its
    timeout still ran all its work."""

    def go_on() -> None:
        if abandoned(request.scope):
            raise ApiError(503, "overloaded", "the request was given up: it ran past its timeout")

    return go_on


def _name(upload: UploadFile) -> str:
    return (upload.filename or "upload")[:100]


def _read(upload: UploadFile, settings: ServeSettings, also: tuple[str, ...] = ("application/octet-stream",)) -> bytes:
    """The bytes of one uploaded file, after its declared type and size are checked."""
    declared = (upload.content_type or "application/octet-stream").split(";")[0].strip().lower()
    if not declared.startswith("image/") and declared not in also:
        raise ApiError(415, "unsupported_type", f"{_name(upload)}: type '{declared[:60]}' is not an image")
    data = upload.file.read(settings.max_image_bytes + 1)
    if len(data) > settings.max_image_bytes:
        raise ApiError(413, "too_large", f"{_name(upload)}: over the {settings.max_image_mb:g} MB limit per file")
    if not data:
        raise ApiError(400, "bad_image", f"{_name(upload)}: empty file")
    return data


def _decode_photo(data: bytes, name: str, settings: ServeSettings, pixels: PixelLease) -> tuple[np.ndarray, float]:
    """RGB uint8 of an uploaded photo, its pixels reserved from ``pixels`` and reduced to what
    detection and cropping use; 415 for a format off the allow-list, 400 when unreadable, 413
    when over the pixel limit."""
    work = (2 * settings.detect_size) ** 2
    with _image_errors():
        return decode_rgb(data, name, settings.max_pixels, reserve=pixels.reserve, work_pixels=work)


@contextmanager
def _image_errors() -> Iterator[None]:
    """The ferkit image errors as API errors."""
    try:
        yield
    except ImageTooLargeError as exc:
        raise ApiError(413, "too_large", str(exc)) from exc
    except ImageFormatError as exc:
        raise ApiError(415, "unsupported_type", str(exc)) from exc
    except FerkitError as exc:
        raise ApiError(400, "bad_image", str(exc)) from exc


def _decode_faces(data: bytes, name: str, settings: ServeSettings, pixels: PixelLease) -> np.ndarray:
    """uint8 gray faces (N, 48, 48) from a face image or a .npy array."""
    if not data.startswith(NPY_MAGIC):
        with _image_errors():
            return decode_face(data, name, resize=True, max_pixels=settings.max_pixels, reserve=pixels.reserve)[None]
    return _npy_faces(data, name, settings.max_classify_faces)


def _npy_faces(data: bytes, name: str, max_faces: int) -> np.ndarray:
    """The faces of a .npy upload, its header checked before anything is allocated: uint8
    (N, 48, 48) or (48, 48), N at most ``max_faces``, exactly as many bytes as the header says."""
    from numpy.lib import format as npy

    buffer = io.BytesIO(data)
    try:
        version = npy.read_magic(buffer)
        read = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}.get(version)
        if read is None:
            raise ValueError(f"version {version}")
        shape, fortran, dtype = read(buffer)
    except (ValueError, OSError, EOFError) as exc:  # never unpickled: only the header is parsed
        raise ApiError(400, "bad_request", f"{name}: not a readable .npy array of faces") from exc
    faces_shape = (1, *shape) if len(shape) == 2 else shape
    if dtype != np.uint8 or len(faces_shape) != 3 or faces_shape[1:] != (FACE_SIZE, FACE_SIZE):
        raise ApiError(400, "bad_request", f"{name}: expected uint8 faces (N, {FACE_SIZE}, {FACE_SIZE}), got {dtype} {shape}")
    if faces_shape[0] > max_faces:
        raise ApiError(413, "too_many_faces", f"{name}: {faces_shape[0]:,} faces; at most {max_faces} per request")
    if len(data) - buffer.tell() != int(np.prod(faces_shape)):
        raise ApiError(400, "bad_request", f"{name}: the array holds {len(data) - buffer.tell():,} bytes, "
                                           f"not the {int(np.prod(faces_shape)):,} its header says")
    faces = np.frombuffer(data, np.uint8, offset=buffer.tell())
    return faces.reshape(faces_shape, order="F" if fortran else "C")


def _analyze_images(pool: ModelPool, served: ServedModel, images: list[tuple[np.ndarray, float]],
                    options: AnalyzeOptions, settings: ServeSettings, go_on: Callable[[], None]) -> list[dict[str, Any]]:
    """Detect per image, classify every face of every image in one (shared) batch."""
    go_on()
    detector = pool.detector(options.min_face, options.max_faces or settings.max_faces)
    recognizer = served.recognizer.with_settings(detector, options.min_confidence)

    def classify(faces: np.ndarray) -> np.ndarray:
        go_on()  # detection is done: the step between it and the forward pass
        return served.classify(faces, settings.timeout_s)

    analysed = recognizer.analyze_decoded(images, classify=classify)
    out = []
    for analysis in analysed:
        rgb, scale = analysis.image, analysis.scale
        body = {"faces": [r.to_dict() for r in analysis.results], "width": round(rgb.shape[1] * scale),
                "height": round(rgb.shape[0] * scale)}
        if options.gradcam:
            go_on()
            for face, overlay in zip(body["faces"], _gradcam(served, analysis, settings.max_gradcam_faces)):
                face["gradcam"] = overlay
        pool.metrics.faces.labels("/v1/analyze").observe(len(analysis.results))
        out.append(body)
    return out


def _gradcam(served: ServedModel, analysis: Analysis, max_faces: int) -> list[str | None]:
    """A base64 PNG per face: the face's region of the photo with its Grad-CAM blended in (None
    past ``max_faces``)."""
    try:
        require("train", "Grad-CAM")
    except MissingExtraError as exc:
        raise ApiError(501, "not_installed", f"{exc} on the server") from exc
    if not served.recognizer.classifier.can_explain:  # a bare .onnx file has no torch weights to explain with
        raise ApiError(422, "invalid_parameter", f"gradcam needs the model's torch weights; '{served.name}' "
                                                 "is served from an ONNX file only")
    from ferkit.explain.faces import gradcam_overlay

    blended = gradcam_overlay(served.recognizer, analysis, max_faces=max_faces)
    height, width = blended.shape[:2]
    out: list[str | None] = []
    for i, face in enumerate(analysis.faces):
        if i >= max_faces:
            out.append(None)
            continue
        x, y, w, h = face.box
        pad = max(w, h) // 8
        region = blended[max(0, y - pad) : min(height, y + h + pad), max(0, x - pad) : min(width, x + w + pad)]
        buffer = io.BytesIO()
        Image.fromarray(region).save(buffer, "PNG")
        out.append(base64.b64encode(buffer.getvalue()).decode())
    return out
