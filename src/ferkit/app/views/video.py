"""Video file page: process an upload with a progress bar, show the timeline, offer the outputs."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import streamlit as st

from ferkit.app.limits import MAX_VIDEO_MB, max_video_minutes
from ferkit.app.settings import recognizer, show_errors, sidebar
from ferkit.errors import VideoError
from ferkit.video.process import run_video

logger = logging.getLogger(__name__)
VIDEO_TYPES = ("mp4", "webm", "avi", "mov", "mkv")


def page() -> None:
    settings = sidebar(smoothing=True)
    st.title("Emotions over a video")
    minutes = max_video_minutes()
    upload = st.file_uploader(f"Upload an MP4, WebM, AVI, MOV or MKV video (up to {MAX_VIDEO_MB} MB; the first "
                              f"{minutes:g} minutes are analysed)", type=list(VIDEO_TYPES),
                              max_upload_size=MAX_VIDEO_MB, key="video")
    every = st.number_input("Analyse every N-th frame", 1, 30, 2)
    if upload is None:
        return
    if upload.size > MAX_VIDEO_MB * 1024 * 1024:
        st.error(f"The video is {upload.size / 1e6:.0f} MB; videos up to {MAX_VIDEO_MB} MB are accepted.")
        return
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / f"input{Path(upload.name).suffix.lower()}"
        source.write_bytes(upload.getvalue())
        out_video, out_csv, out_plot = Path(tmp) / "annotated.mp4", Path(tmp) / "timeline.csv", Path(tmp) / "timeline.png"
        bar = st.progress(0.0, text="Processing...")

        def progress(done: int, total: int | None) -> None:
            if total:
                bar.progress(min(1.0, done / total), text=f"Processing frame {done} of {total}")

        try:
            summary = run_video(recognizer(settings), str(source), out_video, out_csv, out_plot, every=int(every),
                                smoothing=settings.smoothing, progress=False, on_frame=progress,
                                max_seconds=minutes * 60)
        except VideoError as exc:
            logger.info("video page: %s", exc)
            bar.empty()
            st.error(f"{upload.name}: this video could not be opened. Try MP4 (H.264), or convert it with "
                     "`ffmpeg -i INPUT -c:v libx264 OUTPUT.mp4`.")
            return
        bar.progress(1.0, text="Done")
        if summary.truncated:
            st.info(f"Only the first {minutes:g} minutes were analysed.")
        st.success(f"{summary.frames} frames, {summary.faces} faces in {len(summary.tracks)} tracks "
                   f"({summary.unreadable} unreadable frames skipped), {summary.fps:.1f} frames/s")
        st.image(str(out_plot), width="stretch")
        stem = Path(upload.name).stem
        left, right = st.columns(2)
        left.download_button("Annotated video (MP4)", out_video.read_bytes(), f"{stem}_annotated.mp4", "video/mp4")
        right.download_button("Timeline (CSV)", out_csv.read_bytes(), f"{stem}_emotions.csv", "text/csv")


show_errors(page)
