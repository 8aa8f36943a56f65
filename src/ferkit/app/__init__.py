"""The Streamlit web app (UI only: every computation calls the library)."""
