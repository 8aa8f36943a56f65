"""`streamlit run app.py` starts the ferkit web app (the same as `ferkit app`)."""

import runpy

runpy.run_module("ferkit.app.main", run_name="__main__")
