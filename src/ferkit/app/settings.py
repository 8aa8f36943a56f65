"""Sidebar settings and the cached, shared model objects."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import streamlit as st

from ferkit.detection import DETECTOR_NAMES, DetectorOptions, FaceDetector, create_detector
from ferkit.errors import FerkitError
from ferkit.inference.base import Classifier
from ferkit.inference.recognizer import Recognizer

MAX_IMAGE_MB = 20
MAX_VIDEO_MB = 200
MAX_FACES_SHOWN = 30


@dataclass(frozen=True)
class Settings:
    weights: str
    detector: str
    min_face: int
    min_confidence: float
    smoothing: float
    gradcam: bool


@st.cache_resource(show_spinner="Loading the model...")
def cached_classifier(weights: str) -> Classifier:
    """One classifier per weights file for the whole server process, shared by every session."""
    from ferkit.inference.recognizer import load

    return load(weights or None).classifier


@st.cache_resource
def cached_detector(name: str, min_face: int) -> FaceDetector:
    return create_detector(name, DetectorOptions(min_size=min_face))


def recognizer(settings: Settings) -> Recognizer:
    """A Recognizer for this session's settings, built on the shared classifier and detector."""
    return Recognizer(cached_classifier(settings.weights), cached_detector(settings.detector, settings.min_face),
                      min_confidence=settings.min_confidence or None)


def ice_servers() -> list[dict[str, object]]:
    """STUN/TURN servers for WebRTC from $FERKIT_ICE_SERVERS (JSON list); none by default (localhost, LAN)."""
    raw = os.environ.get("FERKIT_ICE_SERVERS", "").strip()
    if not raw:
        return []
    try:
        servers = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FerkitError(f"FERKIT_ICE_SERVERS is not valid JSON: {exc}") from exc
    if not isinstance(servers, list):
        raise FerkitError('FERKIT_ICE_SERVERS must be a JSON list, e.g. [{"urls": ["stun:stun.example.org:3478"]}]')
    return servers


def sidebar() -> Settings:
    """Draw the sidebar and return the chosen settings."""
    bar = st.sidebar
    bar.header("Settings")
    detector = bar.selectbox("Face detector", DETECTOR_NAMES, help="yunet: CNN with landmarks; haar: OpenCV cascade")
    min_face = bar.slider("Minimum face size (px)", 10, 200, 20)
    min_confidence = bar.slider("Confidence threshold", 0.0, 0.9, 0.0, 0.05,
                                help="below it a face is shown as 'uncertain'")
    smoothing = bar.slider("Video smoothing", 0.0, 0.95, 0.6, 0.05, help="weight of the past in the moving average")
    gradcam = bar.toggle("Grad-CAM heatmaps", value=False)
    weights = bar.text_input("Weights file (empty: bundled model)", value=os.environ.get("FERKIT_WEIGHTS", ""))
    return Settings(weights.strip(), detector, min_face, min_confidence, smoothing, gradcam)
