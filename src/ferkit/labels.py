"""The emotion names ferkit predicts, in FER+ order."""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)

#: One colour per emotion (RGB), in EMOTIONS order: boxes, bars, charts and plots all use it.
EMOTION_COLORS: dict[str, tuple[int, int, int]] = dict(zip(EMOTIONS, [
    (160, 160, 160), (44, 160, 44), (255, 127, 14), (31, 119, 180),
    (214, 39, 40), (140, 86, 75), (148, 103, 189), (227, 119, 194),
]))


def emotion_hex(name: str) -> str:
    """An emotion's colour as "#rrggbb" (gray for names outside EMOTIONS)."""
    return "#%02x%02x%02x" % EMOTION_COLORS.get(name, (127, 127, 127))


#: The 10 FER+ vote columns: the 8 emotions, then "unknown" and "NF" (not a face).
VOTE_COLUMNS: tuple[str, ...] = EMOTIONS + ("unknown", "NF")

#: The 7 FER-2013 classes by their original integer code (0=Angry ... 6=Neutral).
FER2013_CODES: tuple[str, ...] = (
    "anger",
    "disgust",
    "fear",
    "happiness",
    "sadness",
    "surprise",
    "neutral",
)

#: Common spellings of emotion names (Kaggle folders, other data sets) mapped onto ferkit's names.
ALIASES: dict[str, str] = {
    **{name: name for name in EMOTIONS},
    "happy": "happiness",
    "joy": "happiness",
    "surprised": "surprise",
    "surprize": "surprise",
    "sad": "sadness",
    "angry": "anger",
    "disgusted": "disgust",
    "disgusting": "disgust",
    "fearful": "fear",
    "scared": "fear",
    "afraid": "fear",
    "contemptuous": "contempt",
    "calm": "neutral",
}


def canonical_emotion(name: str) -> str | None:
    """Return ferkit's name for an emotion spelling (case-insensitive), or None if unknown."""
    return ALIASES.get(name.strip().lower())
