"""Sidebar settings and the cached, shared model objects."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import streamlit as st

from ferkit.detection import DETECTOR_NAMES, DetectorOptions, FaceDetector, create_detector
from ferkit.errors import CheckpointError, ConfigError, FerkitError
from ferkit.inference.base import PRIORS, Classifier
from ferkit.inference.bundled import BUNDLED_MODELS, bundled_models
from ferkit.inference.recognizer import Recognizer

logger = logging.getLogger(__name__)
MODEL_CACHE_ENTRIES = 4  # classifiers kept in memory at once (each bundled model, each prior)
PRIOR_LABELS = {"train": "as in everyday photos (mostly neutral, happy)", "uniform": "every emotion equally likely"}
#: The model menu's help, for the bundled models this install holds.
MODEL_HELP = {"fast": "fast: the default, under 2 ms per face", "accurate": "accurate: a ResNet and three small networks, 5-7 times the time, more accurate and balanced"}


@dataclass(frozen=True)
class Settings:
    """One session's choices; the defaults are what a setting is when its page does not show it."""

    model: str
    prior: str
    detector: str = DETECTOR_NAMES[0]
    min_face: int = 20
    min_confidence: float = 0.0
    smoothing: float = 0.6
    gradcam: bool = False


@st.cache_resource(show_spinner="Loading the model...", max_entries=MODEL_CACHE_ENTRIES)
def cached_classifier(model: str, prior: str = "train") -> Classifier:
    """One classifier per model and prior for the whole server process, shared by every session."""
    from ferkit.inference.recognizer import load

    return load(model or None, prior=prior).classifier


@st.cache_resource(max_entries=8)
def cached_detector(name: str, min_face: int) -> FaceDetector:
    return create_detector(name, DetectorOptions(min_size=min_face))


def recognizer(settings: Settings) -> Recognizer:
    """A Recognizer for this session's settings, built on the shared classifier and detector."""
    return Recognizer(cached_classifier(settings.model, settings.prior), cached_detector(settings.detector, settings.min_face),
                      min_confidence=settings.min_confidence or None)


def ice_servers() -> list[dict[str, object]]:
    """STUN/TURN servers for WebRTC from $FERKIT_ICE_SERVERS (JSON list); none by default (localhost, LAN)."""
    raw = os.environ.get("FERKIT_ICE_SERVERS", "").strip()
    if not raw:
        return []
    try:
        servers = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"FERKIT_ICE_SERVERS is not valid JSON: {exc}") from exc
    if not isinstance(servers, list):
        raise ConfigError('FERKIT_ICE_SERVERS must be a JSON list, e.g. [{"urls": ["stun:stun.example.org:3478"]}]')
    return servers


def sidebar(detection: bool = True, smoothing: bool = False, gradcam: bool = False) -> Settings:
    """Draw the sidebar with the settings this page uses (model and prior always; face detection,
    video smoothing, Grad-CAM where asked) and return them all, the others at their defaults."""
    bar = st.sidebar
    bar.header("Settings")
    defaults = chosen = Settings(model=model_choice(bar), prior=prior_choice(bar))
    if detection:
        chosen = replace(
            chosen,
            detector=bar.selectbox("Face detector", DETECTOR_NAMES, help="yunet: CNN with landmarks; haar: OpenCV cascade"),
            min_face=bar.slider("Minimum face size (px)", 10, 200, defaults.min_face),
            min_confidence=bar.slider("Confidence threshold", 0.0, 0.9, defaults.min_confidence, 0.05,
                                      help="below it a face is shown as 'uncertain'"),
        )
    if smoothing:
        chosen = replace(chosen, smoothing=bar.slider("Video smoothing", 0.0, 0.95, defaults.smoothing, 0.05,
                                                      help="weight of the past in each face's moving average"))
    if gradcam:
        chosen = replace(chosen, gradcam=bar.toggle("Grad-CAM heatmaps", value=defaults.gradcam,
                                                    help="colour each face by how much each part drove the predicted emotion"))
    return chosen


def model_choice(bar: Any) -> str:
    """The bundled models, plus the operator's $FERKIT_WEIGHTS (set by `ferkit app --model PATH`)."""
    options = list(bundled_models())
    operator = os.environ.get("FERKIT_WEIGHTS", "").strip()
    if operator and operator not in options:
        options.insert(0, operator)
    if not options:
        raise FerkitError("this install has no bundled model; start the app with `ferkit app --model RUN_FOLDER`")
    described = [MODEL_HELP[name] for name in options if name in MODEL_HELP]
    return bar.selectbox("Model", options, format_func=_model_label, help="; ".join(described) or None)


def _model_label(model: str) -> str:
    return model if model in BUNDLED_MODELS else f"{Path(model).name} (operator's weights)"


def prior_choice(bar: Any) -> str:
    """The class prior the answers assume."""
    return bar.radio("Expected emotions", PRIORS, format_func=PRIOR_LABELS.__getitem__,
                     help="Use 'every emotion equally likely' for posed or acted expressions and emotion studies; "
                          "the default suits everyday photos and video, where most faces are neutral or happy.")


def show_errors(page: Callable[[], None]) -> None:
    """Run a page; a FerkitError becomes a short message, never a traceback. Errors about the
    model or the configuration may name server paths: visitors get a generic line, the log the detail."""
    try:
        page()
    except (CheckpointError, ConfigError) as exc:
        logger.error("ferkit app: %s", exc)
        st.error("The model could not be loaded. The operator will find the reason in the server log.")
    except FerkitError as exc:
        st.error(str(exc))
