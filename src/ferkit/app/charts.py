"""The probability bar chart: 8 emotions in fixed order, one colour each, the top one highlighted."""

from __future__ import annotations

import altair as alt
import pandas as pd

from ferkit.inference.recognizer import FaceResult
from ferkit.labels import emotion_hex

#: The probability axis's ticks: five, whatever the chart's width.
PROBABILITY_TICKS = [0.0, 0.25, 0.5, 0.75, 1.0]


def probability_chart(result: FaceResult) -> alt.Chart:
    """A horizontal bar chart of a face's probabilities."""
    names = list(result.probabilities)
    top = max(result.probabilities, key=result.probabilities.__getitem__)
    frame = pd.DataFrame({"emotion": names, "probability": [result.probabilities[n] for n in names],
                          "top": [n == top for n in names]})
    colours = [emotion_hex(n) for n in names]
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]),
                    axis=alt.Axis(values=PROBABILITY_TICKS, format=".0%")),
            y=alt.Y("emotion:N", sort=names, title=None, axis=alt.Axis(labelOverlap=False)),
            color=alt.Color("emotion:N", scale=alt.Scale(domain=names, range=colours), legend=None),
            opacity=alt.condition("datum.top", alt.value(1.0), alt.value(0.45)),
            tooltip=["emotion", alt.Tooltip("probability:Q", format=".3f")],
        )
        .properties(height=240)
    )
