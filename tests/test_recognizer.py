import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import png_header_only
from PIL import Image

import ferkit
from ferkit.cli import main
from ferkit.data import images as images_module
from ferkit.inference.images import ImageError, load_image
from ferkit.labels import EMOTIONS

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def recognizer(trained_run: Path) -> ferkit.Recognizer:
    return ferkit.load(trained_run)


def test_public_api_contract(recognizer: ferkit.Recognizer):
    assert ferkit.EMOTIONS == ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
    crops = np.random.default_rng(0).integers(0, 256, (300, 48, 48), dtype=np.uint8)
    probs = recognizer.classify(crops)
    assert probs.shape == (300, 8) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert recognizer.classify(crops[:0]).shape == (0, 8)
    faces = recognizer.analyze(DATA / "bbt3.jpg")
    assert len(faces) == 5
    for face in faces:
        assert len(face.box) == 4 and face.emotion in EMOTIONS
        assert list(face.probabilities) == list(EMOTIONS)
        assert face.confidence == pytest.approx(max(face.probabilities.values()))
    rgb = np.asarray(Image.open(DATA / "bbt3.jpg"))
    assert [f.box for f in recognizer.analyze(rgb)] == [f.box for f in faces]
    assert [f.box for f in recognizer.analyze(Image.open(DATA / "bbt3.jpg"))] == [f.box for f in faces]


def test_analyze_many_matches_analyze(recognizer: ferkit.Recognizer):
    many = recognizer.analyze_many([DATA / "bbt3.jpg", DATA / "amy1.png", np.zeros((100, 100, 3), np.uint8)])
    assert [len(r) for r in many] == [5, 1, 0]
    single = recognizer.analyze(DATA / "amy1.png")
    assert many[1][0].probabilities == pytest.approx(single[0].probabilities, abs=1e-5)


def test_min_confidence_marks_the_faces_below_it_uncertain_and_keeps_their_numbers(trained_run: Path):
    plain = ferkit.load(trained_run).analyze(DATA / "bbt3.jpg")
    confidences = sorted({f.confidence for f in plain})
    assert len(confidences) >= 3
    threshold = confidences[len(confidences) // 2]  # one face exactly at it: at the threshold is confident
    faces = ferkit.load(trained_run, min_confidence=threshold).analyze(DATA / "bbt3.jpg")
    assert [f.box for f in faces] == [f.box for f in plain]
    for face, seen in zip(faces, plain):
        assert (face.confidence, face.probabilities) == (seen.confidence, seen.probabilities)
        assert face.emotion == (seen.emotion if seen.confidence >= threshold else "uncertain")
        assert face.to_dict()["emotion"] == face.emotion
    assert sum(f.emotion == "uncertain" for f in faces) == sum(c < threshold for c in (f.confidence for f in plain)) >= 1
    assert max(confidences) < 1.0  # so a threshold of 1.0 leaves every face uncertain
    assert {f.emotion for f in ferkit.load(trained_run, min_confidence=1.0).analyze(DATA / "bbt3.jpg")} == {"uncertain"}


def test_onnx_backend_matches_torch(recognizer: ferkit.Recognizer, tmp_path: Path):
    onnx_file = tmp_path / "model.onnx"
    assert main(["export", str(onnx_file), "--format", "onnx", "--weights", str(recognizer.classifier.weights_path)]) == 0
    rec = ferkit.load(onnx_file)
    assert type(rec.classifier).__name__ == "OnnxClassifier" and rec.labels == recognizer.labels
    crops = np.random.default_rng(1).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    assert np.abs(rec.classify(crops) - recognizer.classify(crops)).max() < 1e-4
    assert np.abs(rec.classifier.logits(crops[:1]) - recognizer.classifier.logits(crops[:1])).max() < 1e-4


def test_bad_files_are_clear_errors(tmp_path: Path):
    cases = {
        "missing.jpg": (None, "no such file"),
        "empty.jpg": (b"", "empty file"),
        "text.jpg": (b"hello, I am text", "not an image file"),
        "huge.png": (png_header_only(20000, 20000), "over the 40,000,000-pixel limit"),
    }
    jpeg = (DATA / "bbt3.jpg").read_bytes()
    cases["truncated.jpg"] = (jpeg[: len(jpeg) // 3], "broken or truncated")
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(ImageError, match=message):
            load_image(path)
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_huge_jpeg_boxes_are_in_original_pixels(recognizer: ferkit.Recognizer, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch):
    photo = Image.open(DATA / "bbt3.jpg")
    big = tmp_path / "big.jpg"
    photo.resize((photo.width * 4, photo.height * 4), Image.Resampling.BICUBIC).save(big, quality=95)
    full = sorted(f.box for f in recognizer.analyze(big))
    monkeypatch.setattr(images_module, "MAX_PIXELS", 1_000_000)  # 2376x1532 is now decoded at half size
    analysis = recognizer.analyze_image(big)
    assert analysis.scale == 2.0 and analysis.image.shape[:2] == (766, 1188)
    reduced = sorted(r.box for r in analysis.results)
    assert len(reduced) == len(full) == 5
    for a, b in zip(full, reduced):
        assert np.allclose(a, b, atol=12), (a, b)  # original pixels, not the half-size frame's


def test_decoding_never_switches_off_the_global_bomb_guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    seen = []
    original = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: seen.append(Image.MAX_IMAGE_PIXELS) or original(*a, **k))
    before = Image.MAX_IMAGE_PIXELS
    load_image(DATA / "bbt3.jpg")
    load_image((DATA / "amy1.png").read_bytes())
    assert seen == [before, before] and Image.MAX_IMAGE_PIXELS == before


def test_decoding_from_many_threads_leaves_the_warning_filters_as_they_were():
    """Decoding silences PIL's bomb warning for its own call only; save-and-restore of the one
    filter list from 8 threads at once left that warning silenced for the whole process."""
    import threading
    import warnings

    data = (DATA / "amy1.png").read_bytes()
    before = list(warnings.filters)
    start = threading.Barrier(8)

    def decode() -> None:
        start.wait()
        for _ in range(300):
            load_image(data)

    threads = [threading.Thread(target=decode) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert warnings.filters == before


def test_large_jpeg_is_decoded_at_reduced_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(images_module, "MAX_PIXELS", 100_000)
    Image.new("RGB", (1000, 800), (10, 200, 30)).save(tmp_path / "big.jpg")
    rgb = load_image(tmp_path / "big.jpg")
    assert rgb.shape[0] * rgb.shape[1] <= 100_000 and rgb.shape[1] / rgb.shape[0] == pytest.approx(1.25, abs=0.02)


def _save(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def test_colour_modes_and_exif_rotation(recognizer: ferkit.Recognizer):
    photo = Image.open(DATA / "bbt3.jpg").convert("RGB")
    gray = photo.convert("L")
    sixteen = Image.fromarray(np.asarray(gray).astype(np.uint16) * 257)
    variants = {
        "cmyk": _save(photo.convert("CMYK"), "JPEG"),
        "rgba": _save(photo.convert("RGBA"), "PNG"),
        "palette": _save(photo.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        "gray": _save(gray, "PNG"),
        "16-bit": _save(sixteen, "PNG"),
    }
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    variants["exif-rotated"] = _save(photo.rotate(90, expand=True), "JPEG", exif=exif.tobytes(), quality=95)
    for name, data in variants.items():
        rgb = load_image(data)
        assert rgb.dtype == np.uint8 and rgb.shape == (383, 594, 3), name
        assert len(recognizer.analyze(data)) >= 4, name  # upright faces found in every mode
    np.testing.assert_array_equal(load_image(variants["16-bit"]), load_image(variants["gray"]))


def test_predict_cli_json_csv_and_errors(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "broken.jpg").write_text("not an image")
    (tmp_path / "empty_dir").mkdir()
    Image.new("RGB", (200, 200), (120, 120, 120)).save(tmp_path / "no_face.png")
    inputs = [str(DATA / "bbt3.jpg"), str(tmp_path / "broken.jpg"), str(tmp_path / "empty_dir"),
              str(tmp_path / "no_face.png"), str(tmp_path / "missing.png")]
    code = main(["predict", *inputs, "--weights", str(trained_run), "--annotate", str(tmp_path / "ann")])
    assert code == 0  # errors are reported per file; only --strict fails the run
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [len(r["faces"]) for r in lines] == [5, 0, 0, 0, 0]
    assert [("error" in r) for r in lines] == [False, True, True, False, True]
    assert "not an image" in lines[1]["error"] and "no images" in lines[2]["error"]
    assert (tmp_path / "ann" / "bbt3_annotated.png").is_file()
    for folder in ("a", "b"):  # two inputs with the same name do not overwrite each other
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.jpg").write_bytes((DATA / "bbt3.jpg").read_bytes())
    assert main(["predict", str(tmp_path / "a" / "x.jpg"), str(tmp_path / "b" / "x.jpg"), "--weights",
                 str(trained_run), "--annotate", str(tmp_path / "same")]) == 0
    assert sorted(p.name for p in (tmp_path / "same").iterdir()) == ["a_x_annotated.png", "b_x_annotated.png"]
    assert main(["predict", *inputs, "--weights", str(trained_run), "--strict"]) == 2
    capsys.readouterr()
    assert main(["predict", str(DATA / "bbt3.jpg"), str(tmp_path / "broken.jpg"), "--format", "csv",
                 "--weights", str(trained_run)]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("path,face,x,y,w,h,emotion,confidence,p_neutral")
    assert len(rows) == 1 + 5 + 1 and rows[-1].endswith('not an image file in an accepted format (JPEG, PNG, WebP, BMP, GIF, TIFF)"')


def test_gradcam_overlay_explains_only_the_faces_asked(trained_run: Path, monkeypatch: pytest.MonkeyPatch):
    rec = ferkit.load(trained_run)
    analysis = rec.analyze_image(DATA / "bbt3.jpg")
    from ferkit.explain import faces as explain_faces

    explained = []
    original = explain_faces.explain_crops
    monkeypatch.setattr(explain_faces, "explain_crops", lambda classifier, crops, targets=None:
                        explained.append(len(crops)) or original(classifier, crops, targets))
    two = explain_faces.gradcam_overlay(rec, analysis, max_faces=2)
    everyone = explain_faces.gradcam_overlay(rec, analysis)
    assert explained == [2, 5]
    changed = np.abs(two.astype(int) - analysis.image.astype(int)).sum(axis=2) > 0
    for k, face in enumerate(analysis.faces):
        x, y, w, h = face.box
        assert changed[y + h // 2, x + w // 2] == (k < 2)  # the centre of each face: painted only for the two largest
    assert (everyone != analysis.image).any()


def test_analyze_decoded_classifies_the_faces_of_every_image_in_one_call(trained_run: Path):
    from ferkit.inference.images import load_image_scaled

    rec = ferkit.load(trained_run)
    decoded = [load_image_scaled(DATA / name) for name in ("bbt3.jpg", "amy1.png")]
    calls = []

    def classify(faces: np.ndarray) -> np.ndarray:
        calls.append(len(faces))
        return rec.classify(faces)

    analysed = rec.analyze_decoded(decoded, classify=classify)
    assert calls == [sum(len(a.faces) for a in analysed)] and calls[0] >= 6
    for analysis, name in zip(analysed, ("bbt3.jpg", "amy1.png")):
        together, alone = analysis.results, rec.analyze(DATA / name)
        assert [(r.box, r.emotion) for r in together] == [(r.box, r.emotion) for r in alone]
        # one batch or one image's faces: the same numbers up to float rounding of the batched kernels
        np.testing.assert_allclose([list(r.probabilities.values()) for r in together],
                                   [list(r.probabilities.values()) for r in alone], atol=1e-5)
    strict = rec.with_settings(rec.detector, min_confidence=1.01)
    assert strict.classifier is rec.classifier
    assert {r.emotion for r in strict.analyze(DATA / "bbt3.jpg")} == {"uncertain"}
    assert "uncertain" not in {r.emotion for r in rec.analyze(DATA / "bbt3.jpg")}
