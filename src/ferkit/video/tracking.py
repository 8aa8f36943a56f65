"""Track faces across frames (optimal IoU assignment) and smooth their probabilities (EMA)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ferkit.video.assignment import max_weight_matching


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    """A face followed over frames."""

    track_id: int
    box: tuple[int, int, int, int]
    probabilities: np.ndarray
    last_frame: int
    hits: int = 1


@dataclass
class FaceTracker:
    """Assign a stable id to each face and smooth its probabilities over time.

    Attributes:
        smoothing: EMA weight of the past (0 = no smoothing; 0.6 keeps 60% of the previous estimate).
        min_iou: least overlap with a track's last box to continue it.
        max_missing: frames a track survives without a matching face.
    """

    smoothing: float = 0.6
    min_iou: float = 0.3
    max_missing: int = 10
    tracks: list[Track] = field(default_factory=list)
    _next_id: int = 1

    def _assign(self, boxes: list[tuple[int, int, int, int]]) -> dict[int, int]:
        """Face index -> track index, maximising the total overlap (the Hungarian method);
        pairs overlapping less than min_iou stay apart."""
        if not self.tracks or not boxes:
            return {}
        overlap = np.array([[iou(t.box, b) for b in boxes] for t in self.tracks])
        return {bi: ti for ti, bi in max_weight_matching(overlap) if overlap[ti, bi] >= self.min_iou}

    def update(self, frame: int, boxes: list[tuple[int, int, int, int]], probs: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Match this frame's faces to tracks; returns (track id, smoothed probabilities) per face, in input order."""
        assigned = self._assign(boxes)
        out: list[tuple[int, np.ndarray]] = []
        for bi, box in enumerate(boxes):
            if bi in assigned:
                track = self.tracks[assigned[bi]]
                track.probabilities = self.smoothing * track.probabilities + (1 - self.smoothing) * probs[bi]
                track.box, track.last_frame, track.hits = box, frame, track.hits + 1
            else:
                track = Track(self._next_id, box, probs[bi].astype(np.float64), frame)
                self._next_id += 1
                self.tracks.append(track)
            out.append((track.track_id, track.probabilities.copy()))
        self.tracks = [t for t in self.tracks if frame - t.last_frame <= self.max_missing]
        return out
