"""Photo page: upload images (or pick an example), see every face's emotion and probabilities."""

from __future__ import annotations

import io
import json
from pathlib import Path

import streamlit as st
from PIL import Image

from ferkit.app.charts import probability_chart
from ferkit.app.limits import MAX_FACES_SHOWN, MAX_FILES_PER_UPLOAD, MAX_IMAGE_MB
from ferkit.app.settings import recognizer, show_errors, sidebar
from ferkit.errors import FerkitError
from ferkit.extras import MissingExtraError, require
from ferkit.inference.annotate import annotate

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def png_bytes(rgb) -> bytes:  # noqa: ANN001
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


def show_image(index: int, name: str, data: bytes, settings) -> None:  # noqa: ANN001
    """One image's results; ``index`` (its position on the page) keys its widgets, so that two
    images of the same name never collide."""
    st.subheader(name)
    if len(data) > MAX_IMAGE_MB * 1024 * 1024:
        st.error(f"{name} is {len(data) / 1e6:.0f} MB; images up to {MAX_IMAGE_MB} MB are accepted.")
        return
    rec = recognizer(settings)
    try:
        analysis = rec.analyze_image(data)
    except FerkitError as exc:
        st.error(f"Cannot read {name}: {exc}")
        return
    results = analysis.results
    if not results:
        st.warning("No face found. Try a photo where faces are frontal, well lit and at least "
                   f"{settings.min_face} pixels wide, or lower the minimum face size in the sidebar.")
        st.image(analysis.image, width="stretch")
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
    drawn = annotate(base, results, bars=False, box_scale=analysis.scale)
    st.image(drawn, caption=f"{len(results)} face(s)", width="stretch")
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


def page() -> None:
    settings = sidebar()
    st.title("Emotions in a photo")
    uploads = st.file_uploader(f"Upload JPG, PNG, WebP or BMP images (up to {MAX_FILES_PER_UPLOAD}, "
                               f"{MAX_IMAGE_MB} MB each)", type=["jpg", "jpeg", "png", "webp", "bmp"],
                               accept_multiple_files=True, max_upload_size=MAX_IMAGE_MB, key="photos")
    if uploads and len(uploads) > MAX_FILES_PER_UPLOAD:
        st.warning(f"{len(uploads)} images uploaded; the first {MAX_FILES_PER_UPLOAD} are analysed.")
        uploads = uploads[:MAX_FILES_PER_UPLOAD]
    example = st.selectbox("...or try an example", ["(none)", *sorted(p.name for p in EXAMPLES.iterdir())])
    images = [(f.name, f.getvalue()) for f in uploads or []]
    if example != "(none)":
        images.append((example, (EXAMPLES / example).read_bytes()))
    if not images:
        st.caption("Faces are found with a CNN detector, cropped like FER+ faces and classified into 8 emotions.")
    for index, (name, data) in enumerate(images):
        show_image(index, name, data, settings)


show_errors(page)
