"""One picture's results on a page: the annotated image with numbered faces, a chart per face,
downloads. Shared by the Photo page and the webcam snapshot."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from ferkit.app.charts import probability_chart
from ferkit.app.limits import MAX_FACES_SHOWN, MAX_IMAGE_MB
from ferkit.app.settings import Settings, recognizer
from ferkit.errors import FerkitError
from ferkit.extras import MissingExtraError, require
from ferkit.inference.annotate import annotate


def png_bytes(rgb: np.ndarray) -> bytes:
    """An RGB uint8 image (H, W, 3) as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


def image_error(name: str, data: bytes) -> str | None:
    """What is wrong with an upload, in words a visitor can act on; None if it is fine to analyse."""
    if not data:
        return f"{name}: the file is empty. Choose the picture again, or another one."
    if len(data) > MAX_IMAGE_MB * 1024 * 1024:
        return f"{name} is {len(data) / 1e6:.0f} MB; pictures up to {MAX_IMAGE_MB} MB are accepted."
    return None


def gradcam_legend() -> None:
    """The Grad-CAM colour scale, under the image it colours."""
    from ferkit.explain.overlay import colorize  # the explain package needs the training extra

    st.image(colorize(np.tile(np.linspace(0.0, 1.0, 256, dtype=np.float32), (14, 1))), width=256,
             caption="Grad-CAM: blue, little influence on the predicted emotion; red, the most")


def show_image(index: int, name: str, data: bytes, settings: Settings) -> None:
    """One image's results; ``index`` (its position on the page) keys its widgets, so that two
    images of the same name never collide. Faces are numbered on the image and listed left to right."""
    st.subheader(name)
    problem = image_error(name, data)
    if problem:
        st.error(problem)
        return
    rec = recognizer(settings)
    try:
        analysis = rec.analyze_image(data)
    except FerkitError:
        st.error(f"{name}: this is not a picture ferkit can read. Upload a JPG, PNG, WebP or BMP image.")
        return
    results = analysis.results
    if not results:
        st.warning("No face found. Try a photo where faces are frontal, well lit and at least "
                   f"{settings.min_face} pixels wide, or lower the minimum face size in the sidebar.")
        st.image(analysis.image, width="content")
        return
    if len(results) > MAX_FACES_SHOWN:
        st.info(f"{len(results)} faces found; the {MAX_FACES_SHOWN} largest are shown.")
        results = results[:MAX_FACES_SHOWN]
    base = analysis.image
    if settings.gradcam:
        try:
            require("train", "Grad-CAM")
        except MissingExtraError as exc:
            st.warning(str(exc))
        else:
            from ferkit.explain.faces import gradcam_overlay

            base = gradcam_overlay(rec, analysis, max_faces=len(results))
    results = sorted(results, key=lambda r: (r.box[0] + r.box[2] / 2, r.box[1]))  # left to right
    drawn = annotate(base, results, list(range(1, len(results) + 1)), bars=False, box_scale=analysis.scale)
    st.image(drawn, caption=f"{len(results)} face(s), numbered left to right", width="content")
    if base is not analysis.image:  # Grad-CAM was drawn
        gradcam_legend()
    columns = st.columns(min(3, len(results)))
    for i, result in enumerate(results):
        with columns[i % len(columns)]:
            st.markdown(f"**Face {i + 1}: {result.emotion}** ({result.confidence:.0%})")
            st.altair_chart(probability_chart(result), width="stretch")
    stem = Path(name).stem
    left, right = st.columns(2)
    left.download_button("Annotated image (PNG)", png_bytes(drawn), f"{stem}_annotated.png", "image/png",
                         key=f"png-{index}")
    right.download_button("Results (JSON)", json.dumps({"image": name, "faces": [r.to_dict() for r in results]}, indent=2),
                          f"{stem}_emotions.json", "application/json", key=f"json-{index}")
