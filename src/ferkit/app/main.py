"""Entry point of the web app: `ferkit app`, or `streamlit run app.py` at the repository root."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ferkit.app.limits import CLIENT_OPTIONS

VIEWS = Path(__file__).resolve().parent / "views"  # not "pages": Streamlit would list that folder itself
#: The pages as the menu lists them: (script, title, URL path).
PAGES = (("photo.py", "Photo", "photo"), ("webcam.py", "Live webcam", "webcam"), ("video.py", "Video file", "video"),
         ("model.py", "Model", "model"))


def run() -> None:
    st.set_page_config(page_title="ferkit: facial expression recognition", layout="wide")
    for option, value in CLIENT_OPTIONS.items():  # `ferkit app` passes them at start already
        st.set_option(option, value)
    pages = [(st.Page(VIEWS / script, title=title, url_path=path), title) for script, title, path in PAGES]
    # The photo page opens at "/" and at /photo alike; the menu lists it once.
    home = st.Page(VIEWS / "photo.py", title="Photo", url_path="home", default=True)
    navigation = st.navigation([home, *(page for page, _ in pages)], position="hidden")
    for page, title in pages:
        st.sidebar.page_link(page, label=title)
    navigation.run()


run()
