"""Photo page: upload images (or pick an example), see every face's emotion and probabilities."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ferkit.app.limits import MAX_FILES_PER_UPLOAD, MAX_IMAGE_MB
from ferkit.app.picture import show_image
from ferkit.app.settings import show_errors, sidebar

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def page() -> None:
    settings = sidebar(gradcam=True)
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
