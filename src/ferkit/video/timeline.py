"""The emotion timeline plot: each track's probabilities over time."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ferkit.labels import emotion_hex

#: Space below 0 and above 1 on the probability axes.
Y_PAD = 0.05


def timeline_figure(rows: Sequence[Sequence[float | str]], labels: Sequence[str]) -> Figure:
    """One panel per track: probability of each emotion against time (rows as in the video CSV)."""
    tracks = sorted({int(row[2]) for row in rows})
    fig = Figure(figsize=(11, 2.6 * max(1, len(tracks)) + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(max(1, len(tracks)), 1, sharex=True))
    if not tracks:
        axes[0].text(0.5, 0.5, "no faces found", ha="center", va="center")
    for ax, track in zip(axes, tracks):
        mine = [row for row in rows if row[2] == track]
        times = [float(row[1]) for row in mine]
        for k, name in enumerate(labels):
            ax.plot(times, [float(row[9 + k]) for row in mine], label=name, color=emotion_hex(name))
        ax.set_ylim(-Y_PAD, 1 + Y_PAD)  # a probability of 0 or 1 stays in view, off the frame
        ax.set_ylabel(f"track #{track}")
    axes[-1].set_xlabel("time (s)")
    axes[0].legend(ncol=len(labels), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 1.35))
    fig.suptitle("Emotion probabilities per tracked face (smoothed)")
    return fig
