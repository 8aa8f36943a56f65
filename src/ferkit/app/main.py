"""Entry point of the web app: `ferkit app`, or `streamlit run app.py` at the repository root."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent / "pages"


def run() -> None:
    st.set_page_config(page_title="ferkit: facial expression recognition", layout="wide")
    navigation = st.navigation([
        st.Page(PAGES / "photo.py", title="Photo", default=True),
        st.Page(PAGES / "webcam.py", title="Live webcam"),
        st.Page(PAGES / "video.py", title="Video file"),
        st.Page(PAGES / "model.py", title="Model"),
    ])
    navigation.run()


run()
