"""Live webcam page: recognition on the browser's camera stream (WebRTC), with a snapshot fallback."""

from __future__ import annotations

import queue
import threading
import time

import av
import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from ferkit.app.charts import probability_chart
from ferkit.app.picture import show_image
from ferkit.app.settings import ice_servers, recognizer, show_errors, sidebar
from ferkit.errors import FerkitError
from ferkit.inference.annotate import annotate
from ferkit.inference.recognizer import Recognizer
from ferkit.video.process import TrackingSession


class LiveProcessor:
    """Runs in streamlit-webrtc's frame thread; hands the latest results to the page through a queue."""

    def __init__(self, rec: Recognizer, smoothing: float) -> None:
        self.session = TrackingSession(rec, smoothing)
        self.lock = threading.Lock()
        self.results: queue.Queue = queue.Queue(maxsize=1)
        self.frame = 0
        self.started = time.perf_counter()

    def __call__(self, frame: av.VideoFrame) -> av.VideoFrame:
        rgb = frame.to_ndarray(format="rgb24")
        with self.lock:
            self.frame += 1
            tracked = self.session.step(self.frame, rgb, time.perf_counter() - self.started)
            smoothed = [t.result for t in tracked]
            ids = [t.track_id for t in tracked]
            fps = self.frame / max(time.perf_counter() - self.started, 1e-9)
        if self.results.full():
            try:
                self.results.get_nowait()
            except queue.Empty:
                pass
        self.results.put((ids, smoothed, fps))
        return av.VideoFrame.from_ndarray(annotate(rgb, smoothed, ids), format="rgb24")


def page() -> None:
    settings = sidebar(smoothing=True)
    st.title("Live webcam")
    rec = recognizer(settings)
    live, snapshot = st.tabs(["Live (WebRTC)", "Snapshot"])
    with live:
        try:
            servers = ice_servers()
        except FerkitError as exc:
            st.error(str(exc))
            servers = []
        processor = LiveProcessor(rec, settings.smoothing)
        ctx = webrtc_streamer(
            key="ferkit-live",
            mode=WebRtcMode.SENDRECV,
            rtc_configuration={"iceServers": servers},
            media_stream_constraints={"video": True, "audio": False},
            video_frame_callback=processor,
            async_processing=True,
        )
        st.caption("No STUN/TURN server is used by default (localhost and LAN). Behind NAT, set "
                   "FERKIT_ICE_SERVERS, e.g. '[{\"urls\": [\"stun:stun.example.org:3478\"]}]'. "
                   "If the stream does not connect, use the Snapshot tab.")
        status, chart = st.empty(), st.empty()
        while ctx.state.playing:
            try:
                ids, results, fps = processor.results.get(timeout=1.0)
            except queue.Empty:
                continue
            if results:
                status.markdown(f"**#{ids[0]} {results[0].emotion}** ({results[0].confidence:.0%}) - {fps:.1f} frames/s, "
                                f"{len(results)} face(s)")
                chart.altair_chart(probability_chart(results[0]), width="stretch")
            else:
                status.markdown(f"No face in view - {fps:.1f} frames/s")
            time.sleep(0.25)
    with snapshot:
        shot = st.camera_input("Take a photo")
        if shot is not None:  # the same path, and settings, as a photo on the Photo page
            show_image(0, "Snapshot", shot.getvalue(), settings)


show_errors(page)
