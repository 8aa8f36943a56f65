"""The Streamlit pages through Streamlit's AppTest (no browser)."""

from pathlib import Path

import pytest

pytest.importorskip("streamlit", reason="the web app needs streamlit (pip install ferkit[app])")
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parent.parent / "src" / "ferkit" / "app" / "main.py"
DATA = Path(__file__).parent / "data"


@pytest.fixture()
def app(trained_run: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    import sys

    # AppTest runs the script as __main__; put pytest's back afterwards, or the worker processes
    # later tests start (spawn re-imports __main__) would run the app script.
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    monkeypatch.setenv("FERKIT_WEIGHTS", str(trained_run))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception
    return at


def test_photo_upload_shows_each_face_with_a_chart(app: AppTest):
    app.file_uploader[0].set_value(("group.jpg", (DATA / "bbt3.jpg").read_bytes(), "image/jpeg")).run()
    assert not app.exception and not app.error
    assert len(app.get("image")) == 1  # the annotated photo
    faces = [m.value for m in app.markdown if m.value.startswith("**Face ")]
    assert len(faces) == 5
    assert len(app.get("vega_lite_chart")) == 5
    assert [b.label for b in app.get("download_button")] == ["Annotated image (PNG)", "Results (JSON)"]


def test_bundled_example_and_gradcam(app: AppTest):
    app.selectbox[0].set_value("close-up.png").run()
    assert not app.exception and not app.error
    assert len([m for m in app.markdown if m.value.startswith("**Face 1:")]) == 1
    plain = app.get("image")[0].proto.imgs[0].url
    next(t for t in app.sidebar.toggle if t.label == "Grad-CAM heatmaps").set_value(True).run()
    assert not app.exception and not app.error
    assert app.get("image")[0].proto.imgs[0].url != plain  # the heatmap is drawn: another image


def test_an_upload_named_like_the_example_does_not_collide(app: AppTest):
    from ferkit.app.views.photo import EXAMPLES

    app.selectbox[0].set_value("close-up.png")
    app.file_uploader[0].set_value(("close-up.png", (EXAMPLES / "close-up.png").read_bytes(), "image/png")).run()
    assert not app.exception
    assert len([m for m in app.markdown if m.value.startswith("**Face 1:")]) == 2
    assert len(app.get("download_button")) == 4


def test_bad_uploads_show_a_message(app: AppTest):
    blank = DATA.parent / "data" / "bbt3.jpg"
    app.file_uploader[0].set_value([
        ("notes.jpg", b"this is not an image", "image/jpeg"),
        ("empty.png", b"", "image/png"),
        ("drawing.jpg", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", "image/jpeg"),
    ]).run()
    assert not app.exception
    messages = [e.value for e in app.error]
    assert messages == ["notes.jpg: this is not a picture ferkit can read. Upload a JPG, PNG, WebP or BMP image.",
                        "empty.png: the file is empty. Choose the picture again, or another one.",
                        # refused by the format allow-list: it never reaches Pillow's PostScript decoder
                        "drawing.jpg: this is not a picture ferkit can read. Upload a JPG, PNG, WebP or BMP image."]
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 200, 200)).save(buffer, "PNG")
    app.file_uploader[0].set_value(("wall.png", buffer.getvalue(), "image/png")).run()
    assert not app.exception and any(w.value.startswith("No face found") for w in app.warning)
    assert blank.is_file()


def test_video_page_processes_a_clip_within_the_length_cap(app: AppTest, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch):
    from test_video import _clip

    monkeypatch.setenv("FERKIT_MAX_VIDEO_MINUTES", str(0.6 / 60))  # 0.6 s: 6 of the clip's 12 frames
    app.switch_page(str(APP.parent / "views" / "video.py")).run()
    assert not app.exception and app.title[0].value == "Emotions over a video"
    clip = _clip(tmp_path / "clip.mp4").read_bytes()
    app.file_uploader[0].set_value(("clip.mp4", clip, "video/mp4")).run()
    assert not app.exception and not app.error
    assert app.success[0].value.startswith("6 frames,") and "in 5 tracks" in app.success[0].value
    assert any("Only the first" in i.value for i in app.info)
    assert [b.label for b in app.get("download_button")] == ["Annotated video (MP4)", "Timeline (CSV)"]


def test_model_page_describes_the_selected_model_and_prior(skewed_run: Path, monkeypatch: pytest.MonkeyPatch):
    import json

    from ferkit.app.settings import PRIOR_LABELS
    from ferkit.labels import EMOTIONS

    meta = json.loads((skewed_run / "model.json").read_text())
    monkeypatch.setenv("FERKIT_WEIGHTS", str(skewed_run))
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.run()
    app.switch_page(str(APP.parent / "views" / "model.py")).run()
    assert not app.exception and not app.error and app.title[0].value == "The model"
    for prior, temperature in (("train", meta["temperature"]), ("uniform", meta["uniform_prior"]["temperature"])):
        next(r for r in app.sidebar.radio if r.label == "Expected emotions").set_value(prior).run()
        assert app.markdown[0].value == (f"Model **{skewed_run.name}**: architecture `fernet`, labels: "
                                         f"{', '.join(EMOTIONS)}, calibration temperature {temperature:.3f}. "
                                         f"Expected emotions: {PRIOR_LABELS[prior]}. Runs on PyTorch in fp32 "
                                         "(`weights.safetensors`).")
    assert meta["temperature"] != meta["uniform_prior"]["temperature"]  # so the two lines above differ
    assert not app.metric  # a run without test metrics, not bundled: no figures


def test_broken_weights_show_a_short_message_without_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    broken = tmp_path / "secret-server-folder"
    broken.mkdir()
    (broken / "model.json").write_text("{}")
    (broken / "weights.safetensors").write_bytes(b"")
    monkeypatch.setenv("FERKIT_WEIGHTS", str(broken))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.selectbox[0].set_value("close-up.png").run()
    assert not at.exception
    messages = [e.value for e in at.error]
    assert messages == ["The model could not be loaded. The operator will find the reason in the server log."]
    shown = [*messages, *(m.value for m in at.markdown), *(o for s in at.sidebar.selectbox for o in s.options)]
    assert shown and not any(str(broken) in text for text in shown)  # the folder's name at most, never its path


def test_visitors_get_no_developer_tools():
    from streamlit import config

    from ferkit.app.limits import CLIENT_OPTIONS

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert CLIENT_OPTIONS == {"client.toolbarMode": "minimal", "client.showErrorDetails": "none"}
    assert all(config.get_option(k) == v for k, v in CLIENT_OPTIONS.items())


def test_model_page_shows_the_bundled_model(monkeypatch: pytest.MonkeyPatch):
    from ferkit.inference.bundled import bundled_models

    if not bundled_models():
        pytest.skip("this checkout has no bundled model")
    monkeypatch.delenv("FERKIT_WEIGHTS", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.switch_page(str(APP.parent / "views" / "model.py")).run()
    assert not at.exception
    assert [m.label for m in at.metric][:3] == ["Test accuracy (FER+)", "Balanced accuracy", "ECE"]
    assert len(at.get("image")) >= 4  # confusion matrix, ROC, calibration, Grad-CAM from reports/


def test_model_page_shows_the_int8_scores_of_what_runs(monkeypatch: pytest.MonkeyPatch):
    import json

    from ferkit.app.reports import SOURCE_ROOT
    from ferkit.inference.bundled import bundled_models

    if "fast" not in bundled_models():
        pytest.skip("this checkout has no bundled fast model")
    onnx = json.loads((SOURCE_ROOT / "reports" / "fast" / "onnx.json").read_text())["int8"]
    monkeypatch.delenv("FERKIT_WEIGHTS", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.switch_page(str(APP.parent / "views" / "model.py")).run()
    for prior, scores in (("train", onnx["clean"]), ("uniform", onnx["uniform"]["clean"])):
        next(r for r in at.sidebar.radio if r.label == "Expected emotions").set_value(prior).run()
        assert not at.exception
        assert "Runs on ONNX Runtime in int8 (`model.int8.onnx`)." in at.markdown[0].value
        shown = {m.label: m.value for m in at.metric}
        assert shown["Test accuracy (FER+), int8"] == f"{100 * scores['accuracy']:.2f}%"
        assert shown["Balanced accuracy, int8"] == f"{100 * scores['balanced_accuracy']:.2f}%"
        assert shown["ECE, int8"] == f"{scores['ece']:.3f}"
    assert any(s.value == "FER+ test split, torch weights" for s in at.subheader)


def test_model_page_of_an_installed_package_without_the_repositorys_reports(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch):
    import json

    import ferkit.app.reports
    from ferkit.inference.bundled import bundled_dir, bundled_models

    if "fast" not in bundled_models():
        pytest.skip("this checkout has no bundled fast model")
    monkeypatch.setattr(ferkit.app.reports, "SOURCE_ROOT", tmp_path / "site-packages")  # no reports/ beside it
    monkeypatch.delenv("FERKIT_WEIGHTS", raising=False)
    test = json.loads((bundled_dir("fast") / "model.json").read_text())["test_metrics"]
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.switch_page(str(APP.parent / "views" / "model.py")).run()
    assert not at.exception and not at.error and not at.get("image") and not at.expander
    assert [(m.label, m.value) for m in at.metric] == [("Test accuracy (FER+)", f"{100 * test['accuracy']:.2f}%"),
                                                       ("Balanced accuracy", f"{100 * test['balanced_accuracy']:.2f}%"),
                                                       ("ECE", f"{test['ece']:.3f}")]  # from model.json in the package
    assert any("onnx.json" in c.value for c in at.caption)
    assert [i.value for i in at.info] == ["The evaluation plots are not part of this install; "
                                          "see reports/ in the source repository."]


def test_sidebar_offers_the_models_and_the_prior(skewed_run: Path, monkeypatch: pytest.MonkeyPatch):
    from ferkit.inference.bundled import bundled_models

    monkeypatch.setenv("FERKIT_WEIGHTS", str(skewed_run))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    model = next(s for s in at.sidebar.selectbox if s.label == "Model")
    assert list(model.options) == [f"{skewed_run.name} (operator's weights)",
                                   *[f"{n}" for n in bundled_models()]]
    assert not [t for t in at.sidebar.text_input]  # no free path box for visitors
    at.selectbox[0].set_value("close-up.png").run()
    charts = {}
    for prior in ("train", "uniform"):
        next(r for r in at.sidebar.radio if r.label == "Expected emotions").set_value(prior).run()
        assert not at.exception
        assert next(m.value for m in at.markdown if m.value.startswith("**Face 1:"))
        charts[prior] = str(at.get("vega_lite_chart")[0].proto)  # the chart holds all 8 probabilities
    assert charts["train"] != charts["uniform"]


def test_upload_limits_are_streamlits_own(app: AppTest):
    from ferkit.app.limits import MAX_FILES_PER_UPLOAD, MAX_IMAGE_MB

    assert app.file_uploader[0].proto.max_upload_size_mb == MAX_IMAGE_MB
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 90, 90)).save(buffer, "PNG")
    files = [(f"wall{i}.png", buffer.getvalue(), "image/png") for i in range(MAX_FILES_PER_UPLOAD + 3)]
    app.file_uploader[0].set_value(files).run()
    assert not app.exception
    assert any(w.value.startswith(f"{MAX_FILES_PER_UPLOAD + 3} images uploaded") for w in app.warning)
    assert len([s for s in app.subheader if s.value.startswith("wall")]) == MAX_FILES_PER_UPLOAD


def test_model_caches_are_bounded():
    """Every visitor's choice would otherwise stay in memory for the life of the server."""
    from ferkit.app.settings import MODEL_CACHE_ENTRIES, cached_classifier, cached_detector

    assert cached_classifier._info.max_entries == MODEL_CACHE_ENTRIES == 4
    assert cached_detector._info.max_entries == 8


def _markdown_faces(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**Face ")]


def test_faces_are_numbered_left_to_right(app: AppTest, trained_run: Path):
    import ferkit

    app.file_uploader[0].set_value(("group.jpg", (DATA / "bbt3.jpg").read_bytes(), "image/jpeg")).run()
    assert not app.exception
    results = ferkit.load(trained_run).analyze(str(DATA / "bbt3.jpg"))  # largest first
    def lines(ordered):
        return [f"**Face {i + 1}: {r.emotion}** ({r.confidence:.0%})" for i, r in enumerate(ordered)]
    left_to_right = sorted(results, key=lambda r: r.box[0] + r.box[2] / 2)
    assert [r.box for r in left_to_right] != [r.box for r in results]  # the two orders differ on this photo
    shown = sorted(_markdown_faces(app), key=lambda line: int(line.split()[1].rstrip(":")))  # columns: 1, 4, 2, 5, 3
    assert shown == lines(left_to_right)
    assert app.get("image")[0].proto.imgs[0].caption == "5 face(s), numbered left to right"


def test_each_page_shows_only_the_settings_it_uses(app: AppTest, monkeypatch: pytest.MonkeyPatch):
    import types

    import streamlit_webrtc

    # streamlit-webrtc needs a real server session, which AppTest lacks (the browser tests have one)
    idle = types.SimpleNamespace(state=types.SimpleNamespace(playing=False))
    monkeypatch.setattr(streamlit_webrtc, "webrtc_streamer", lambda **_: idle)
    def shown(at: AppTest) -> set[str]:
        return {w.label for kind in ("selectbox", "slider", "toggle", "radio") for w in getattr(at.sidebar, kind)}

    common = {"Model", "Expected emotions"}
    detection = {"Face detector", "Minimum face size (px)", "Confidence threshold"}
    assert shown(app) == common | detection | {"Grad-CAM heatmaps"}  # the photo page
    for page, expected in (("webcam.py", common | detection | {"Video smoothing"}),
                           ("video.py", common | detection | {"Video smoothing"}), ("model.py", common)):
        app.switch_page(str(APP.parent / "views" / page)).run()
        assert not app.exception and shown(app) == expected, page
    assert [link.proto.label for link in app.sidebar.get("page_link")] == ["Photo", "Live webcam", "Video file", "Model"]


def test_gradcam_comes_with_its_colour_legend(app: AppTest):
    app.selectbox[0].set_value("close-up.png").run()
    assert len(app.get("image")) == 1
    next(t for t in app.sidebar.toggle if t.label == "Grad-CAM heatmaps").set_value(True).run()
    assert not app.exception
    captions = [img.proto.imgs[0].caption for img in app.get("image")]
    assert captions == ["1 face(s), numbered left to right",
                        "Grad-CAM: blue, little influence on the predicted emotion; red, the most"]


def test_an_unreadable_video_says_what_to_do(app: AppTest):
    app.switch_page(str(APP.parent / "views" / "video.py")).run()
    assert "MKV" in app.file_uploader[0].label and ".mkv" in app.file_uploader[0].proto.type
    app.file_uploader[0].set_value(("holiday.mkv", b"this is no video", "video/x-matroska")).run()
    assert not app.exception
    assert [e.value for e in app.error] == ["holiday.mkv: this video could not be opened. Try MP4 (H.264), or convert "
                                            "it with `ffmpeg -i INPUT -c:v libx264 OUTPUT.mp4`."]
    assert not app.get("progress")  # no empty progress bar left above the message


def test_model_page_shows_the_selected_priors_figures(monkeypatch: pytest.MonkeyPatch):
    import json

    from ferkit.inference.bundled import bundled_dir, bundled_models

    if not bundled_models():
        pytest.fail("this checkout has no bundled model")
    monkeypatch.delenv("FERKIT_WEIGHTS", raising=False)
    meta = json.loads((bundled_dir(bundled_models()[0]) / "model.json").read_text())
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.switch_page(str(APP.parent / "views" / "model.py")).run()
    for prior, key in (("uniform", "test_metrics_uniform"), ("train", "test_metrics")):
        next(r for r in at.sidebar.radio if r.label == "Expected emotions").set_value(prior).run()
        assert not at.exception
        test = meta[key]
        assert [m.value for m in at.metric][:3] == [f"{100 * test['accuracy']:.2f}%",
                                                    f"{100 * test['balanced_accuracy']:.2f}%", f"{test['ece']:.3f}"]
        plots = len(at.get("image"))
        assert (plots >= 4) == (prior == "train")  # the report's plots were drawn with the train prior
    model = next(s for s in at.sidebar.selectbox if s.label == "Model")
    from ferkit.inference.bundled import BUNDLED_MODELS

    assert [f"{n}:" in model.help for n in BUNDLED_MODELS] == [n in model.options for n in BUNDLED_MODELS]


def test_ferkit_app_starts_streamlit_without_developer_tools(monkeypatch: pytest.MonkeyPatch):
    """Options set while the first page runs reach only the visitors after the first: they are
    given on Streamlit's command line instead."""
    import os

    from ferkit.app.limits import CLIENT_OPTIONS
    from ferkit.cli import main

    started = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: started.append(argv))
    main(["app", "--headless"])
    command = started[0]
    for option, value in CLIENT_OPTIONS.items():
        assert command[command.index(f"--{option}") + 1] == value


def test_the_probability_chart_has_five_ticks():
    from ferkit.app.charts import probability_chart
    from ferkit.inference.recognizer import FaceResult

    chart = probability_chart(FaceResult((0, 0, 10, 10), "happiness", 1.0, {"neutral": 0.0, "happiness": 1.0}))
    assert chart.to_dict()["encoding"]["x"]["axis"]["values"] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_video_timeline_shows_probabilities_of_0_and_1_inside_the_axes():
    from ferkit.video.timeline import timeline_figure

    labels = ("neutral", "happiness")
    rows = [[i, i / 10, 1, 0, 0, 10, 10, "happiness", 1.0, 0.0, 1.0] for i in range(5)]
    low, high = timeline_figure(rows, labels).axes[0].get_ylim()
    assert low < 0 and high > 1
