"""The optional extras of ``pip install ferkit``: the modules each brings, and the one-line error that
says which extra to install when a feature needs a missing one.

The core install (NumPy, Pillow, OpenCV, yuface, ONNX Runtime) runs `ferkit.load().analyze()`,
`ferkit predict` and `ferkit video`; the requirements themselves are listed in pyproject.toml.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass

from ferkit.errors import FerkitError


@dataclass(frozen=True)
class Extra:
    """One extra: its name in ``ferkit[name]``, its name in messages, the top-level modules it installs."""

    name: str
    title: str
    modules: tuple[str, ...]


_PLOT = ("matplotlib",)
_SERVE = ("fastapi", "uvicorn", "multipart", "prometheus_client")
_TRAIN = ("torch", "lightning", "torchmetrics", "sklearn", "captum", "safetensors", *_PLOT)

#: Smallest first: a missing module is reported with the first extra that installs it.
EXTRAS: dict[str, Extra] = {extra.name: extra for extra in (
    Extra("plot", "plotting extra", _PLOT),
    Extra("parquet", "Parquet extra", ("pyarrow",)),
    Extra("serve", "service extra", _SERVE),
    Extra("ray", "Ray extra", (*_SERVE, "ray")),
    Extra("app", "app extra", ("streamlit", "streamlit_webrtc", "av", "altair", *_PLOT)),
    Extra("train", "training extra", _TRAIN),
    Extra("export", "export extra", (*_TRAIN, "onnx", "onnxscript")),
)}


class MissingExtraError(FerkitError):
    """A feature needs an extra that is not installed; the message says what to install."""

    def __init__(self, feature: str, extra: str) -> None:
        self.feature, self.extra = feature, extra
        super().__init__(f"{feature} needs the {EXTRAS[extra].title}: pip install 'ferkit[{extra}]'")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return False


def require(extra: str, feature: str) -> None:
    """Raise MissingExtraError unless every module of ``extra`` is installed (nothing is imported).

    Args:
        extra: a key of EXTRAS.
        feature: what needs it, as the message names it (``'ferkit train'``, ``Grad-CAM``).
    """
    if not all(_installed(module) for module in EXTRAS[extra].modules):
        raise MissingExtraError(feature, extra)


def extra_for(error: ImportError, prefer: Sequence[str] = ()) -> str | None:
    """The extra that installs the module ``error`` did not find: the first of ``prefer`` that has
    it, else the smallest; None for a module no extra installs (a bug, not a missing extra)."""
    root = (error.name or "").split(".")[0]
    for name in (*prefer, *EXTRAS):
        if root and root in EXTRAS[name].modules:
            return name
    return None
