"""Entry point of the web app: `ferkit app`, or `streamlit run app.py` at the repository root."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ferkit.app.limits import CLIENT_OPTIONS

VIEWS = Path(__file__).resolve().parent / "views"  # not "pages": Streamlit would list that folder itself


def run() -> None:
    st.set_page_config(page_title="ferkit: facial expression recognition", layout="wide")
    for option, value in CLIENT_OPTIONS.items():
        st.set_option(option, value)
    navigation = st.navigation([
        st.Page(VIEWS / "photo.py", title="Photo", url_path="photo", default=True),
        st.Page(VIEWS / "webcam.py", title="Live webcam", url_path="webcam"),
        st.Page(VIEWS / "video.py", title="Video file", url_path="video"),
        st.Page(VIEWS / "model.py", title="Model", url_path="model"),
    ])
    navigation.run()


run()
