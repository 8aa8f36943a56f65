"""The service's settings: models, limits, batching and access, from arguments or FERKIT_* variables.

Each field has one environment variable (``FIELDS``) so that every worker process of
``ferkit serve --workers N`` and every Ray Serve replica builds the same settings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ferkit.detection.base import DetectorOptions
from ferkit.errors import ConfigError
from ferkit.inference.bundled import DEFAULT_MODEL


@dataclass(frozen=True)
class ServeSettings:
    """How the service runs.

    Attributes:
        model: the model answering requests that name none: a bundled model's name or a path
            (run folder, .safetensors, .onnx). Clients name models, never paths.
        prior: the default class prior ("train" or "uniform"); requests may ask for the other.
        max_upload_mb: largest request body (all files of a request together), in megabytes.
        max_image_mb: largest single uploaded file, in megabytes.
        max_pixels: images over this many pixels are refused (decompression bombs included).
        max_pixels_in_flight: decoded pixels held at once by all requests together; an upload
            that does not fit waits (at most half of ``timeout_s``), then gets 503.
        max_batch_images: most images in one /v1/analyze/batch request.
        max_classify_faces: most faces in one /v1/classify request.
        max_faces: most faces analysed per image (largest first).
        max_gradcam_faces: most faces explained per image when gradcam=true.
        queue_size: most requests admitted at once (running or waiting); beyond it the answer is
            503 with Retry-After, never an unbounded backlog.
        timeout_s: a request still unanswered after this many seconds gets 503.
        body_timeout_s: a request whose body has not fully arrived after this many seconds gets
            408; until then it waits outside the ``queue_size`` requests at work.
        batch_wait_ms: how long the classifier waits to gather faces of concurrent requests
            into one batch; 0 classifies each request on its own.
        max_batch_faces: most faces classified in one batch.
        detect_size: longer side used for face detection (smaller images are not enlarged).
        api_keys: accepted keys (``Authorization: Bearer KEY``); empty: no key needed.
        cors_origins: browser origins allowed to call the API; empty: none.
    """

    model: str = DEFAULT_MODEL
    prior: str = "train"
    max_upload_mb: float = 50.0
    max_image_mb: float = 20.0
    max_pixels: int = 25_000_000
    max_pixels_in_flight: int = 100_000_000
    max_batch_images: int = 16
    max_classify_faces: int = 1024
    max_faces: int = 30
    max_gradcam_faces: int = 10
    queue_size: int = 64
    timeout_s: float = 30.0
    body_timeout_s: float = 10.0
    batch_wait_ms: float = 5.0
    max_batch_faces: int = 64
    detect_size: int = DetectorOptions.max_side
    api_keys: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from ferkit.inference.base import check_prior

        check_prior(self.prior)
        for name in ("max_upload_mb", "max_image_mb", "max_pixels", "max_batch_images", "max_classify_faces",
                     "max_faces", "queue_size", "timeout_s", "body_timeout_s", "max_batch_faces", "detect_size"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"serve setting {name} must be positive, got {getattr(self, name)}")
        if self.batch_wait_ms < 0 or self.max_gradcam_faces < 0:
            raise ConfigError("serve settings batch_wait_ms and max_gradcam_faces must not be negative")
        if self.max_pixels_in_flight < self.max_pixels:
            raise ConfigError(f"serve setting max_pixels_in_flight ({self.max_pixels_in_flight:,}) must hold at least "
                              f"one image of max_pixels ({self.max_pixels:,})")
        if any(not key.strip() for key in self.api_keys):
            raise ConfigError("an API key must not be empty")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_image_bytes(self) -> int:
        return int(self.max_image_mb * 1024 * 1024)

    def to_env(self) -> dict[str, str]:
        """The FERKIT_* variables that rebuild these settings in another process."""
        env = {}
        for field in fields(self):
            value = getattr(self, field.name)
            env[_env_name(field.name)] = ",".join(value) if isinstance(value, tuple) else str(value)
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServeSettings:
        """Settings from FERKIT_* variables (see ``to_env``; keys also from FERKIT_API_KEYS and
        origins from FERKIT_CORS_ORIGINS, comma-separated), then ``overrides``."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = environ.get(_env_name(field.name))
            if raw is None:
                continue
            default = getattr(cls, field.name)
            try:
                if isinstance(default, tuple):
                    values[field.name] = tuple(part.strip() for part in raw.split(",") if part.strip())
                else:
                    values[field.name] = type(default)(raw)
            except ValueError as exc:
                raise ConfigError(f"{_env_name(field.name)}={raw!r}: expected {type(default).__name__}") from exc
        return replace(cls(), **{**values, **{k: v for k, v in overrides.items() if v is not None}})

    def describe(self) -> str:
        """The settings as JSON, keys masked (for the server log)."""
        shown = asdict(self)
        shown["api_keys"] = f"{len(self.api_keys)} key(s)"
        return json.dumps(shown)


def _env_name(field: str) -> str:
    # The two access settings have the names people look for; the rest are FERKIT_SERVE_*.
    return {"api_keys": "FERKIT_API_KEYS", "cors_origins": "FERKIT_CORS_ORIGINS"}.get(field, f"FERKIT_SERVE_{field.upper()}")
