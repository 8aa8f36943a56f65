"""What the web app accepts from visitors, in one place. The operator can change the video length
cap with $FERKIT_MAX_VIDEO_MINUTES; the rest are fixed here and in `ferkit app`'s server options."""

from __future__ import annotations

import os

MAX_IMAGE_MB = 20
MAX_VIDEO_MB = 200
MAX_FILES_PER_UPLOAD = 10
MAX_FACES_SHOWN = 30
DEFAULT_VIDEO_MINUTES = 10.0

#: Streamlit client options for visitors: no "Deploy" button or developer menu, no tracebacks.
CLIENT_OPTIONS = {"client.toolbarMode": "minimal", "client.showErrorDetails": "none"}


def max_video_minutes() -> float:
    """The longest stretch of an uploaded video that is analysed ($FERKIT_MAX_VIDEO_MINUTES, default 10)."""
    raw = os.environ.get("FERKIT_MAX_VIDEO_MINUTES", "").strip()
    try:
        minutes = float(raw) if raw else DEFAULT_VIDEO_MINUTES
    except ValueError:
        minutes = DEFAULT_VIDEO_MINUTES
    return minutes if minutes > 0 else DEFAULT_VIDEO_MINUTES
