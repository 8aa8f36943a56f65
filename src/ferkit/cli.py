"""The `ferkit` command line: train, evaluate, calibrate, export and explain models; predict on
images and videos; build data sets from photos and fine-tune on them; the web app and the HTTP
service. `ferkit --help` lists the commands, `ferkit COMMAND --help` their options."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ferkit.detection import DEFAULT_DETECTOR, DETECTOR_NAMES, DetectorOptions
from ferkit.errors import ConfigError, FerkitError
from ferkit.extras import MissingExtraError, extra_for, require
from ferkit.inference.base import PRIORS
from ferkit.inference.bundled import PRECISIONS
from ferkit.serve.settings import ServeSettings

if TYPE_CHECKING:
    from ferkit.inference.recognizer import Recognizer

logger = logging.getLogger("ferkit")
DETECTION_DEFAULTS = DetectorOptions()
SERVE_DEFAULTS = ServeSettings()
MODEL_HELP = "bundled model (fast, accurate) or a run folder, .safetensors or .onnx file (default: fast)"
BACKENDS = ("auto", "torch", "onnx")
BACKEND_HELP = "auto: ONNX Runtime where the model has an ONNX file (the bundled models), torch otherwise"
PRECISION_HELP = ("with ONNX Runtime: fp32, int8, or auto: the precision ferkit.load() runs (int8 for the bundled "
                  "models, fp32 for other models)")
PRIOR_HELP = ("class prior: train (faces as frequent as in FER+, mostly neutral and happy) or uniform "
              "(every emotion equally likely: posed or elicited expressions)")


def _cmd_models(args: argparse.Namespace) -> None:
    from ferkit.models import count_parameters, create_model, list_models, macs_per_face

    print(f"{'model':<14}{'parameters':>12}{'trainable':>12}{'non-train.':>12}{'MACs/face':>14}")
    for name in list_models():
        model = create_model(name)
        counts = count_parameters(model)
        print(f"{name:<14}{counts.total:>12,}{counts.trainable:>12,}{counts.non_trainable:>12,}"
              f"{macs_per_face(model):>14,}")


def _cmd_data_info(args: argparse.Namespace) -> None:
    from ferkit.data import apply_protocol, load_dataset

    data = load_dataset(args.path, args.votes, use_cache=not args.no_cache)
    classes = data.classes
    print(f"source: {data.source} ({data.kind}), label mode: {args.mode}")
    print(f"{'split':<8}{'faces':>8}{'kept':>8}  " + " ".join(f"{c[:9]:>9}" for c in classes))
    for split, raw in data.splits.items():
        labelled = apply_protocol(raw, args.mode, len(classes))
        counts = labelled.class_counts(len(classes))
        print(f"{split:<8}{len(raw):>8,}{len(labelled):>8,}  " + " ".join(f"{int(n):>9,}" for n in counts))


def _cmd_dataset_build(args: argparse.Namespace) -> None:
    from ferkit.finetune.dataset import build_dataset

    summary = build_dataset(args.photos, args.out, crops=args.crops, all_faces=args.all_faces, seed=args.seed,
                            detector=args.detector, progress=not args.no_progress)
    print(summary.text())


def _cmd_finetune(args: argparse.Namespace) -> None:
    from ferkit.finetune.options import FinetuneOptions
    from ferkit.finetune.recipe import finetune

    options = FinetuneOptions(start=args.start, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                              patience=args.patience, degrade=args.degrade, l2sp=args.l2sp, blend=args.blend,
                              head_only=args.head_only, seed=args.seed, ferplus=args.ferplus,
                              progress=not args.no_progress)
    run = finetune(args.dataset, args.out, options)
    print(f"run folder: {run}\nreport: {run / 'report.md'}")


def _cmd_train(args: argparse.Namespace) -> None:
    from ferkit.training import build_config, fit
    from ferkit.training.config import config_fields

    overrides = {name: getattr(args, name) for name in config_fields() if hasattr(args, name)}
    config = build_config(args.config, overrides)
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    run_dir = fit(config, resume=args.resume)
    rank_zero_only(print)(f"run folder: {run_dir}")  # once, not once per process


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from ferkit.data import load_dataset
    from ferkit.evaluation.evaluate import EvalOptions, run_evaluation
    from ferkit.inference.bundled import resolve_model

    weights = [resolve_model(m) for m in args.model or [None]]
    options = EvalOptions(split=args.split, tta=args.tta == "hflip", min_confidence=args.min_confidence,
                          robustness=args.robustness, gradcam=args.gradcam, prior=args.prior, backend=args.backend,
                          precision=args.precision)
    data = load_dataset(args.data, args.votes)
    report = run_evaluation(weights, data, args.out, options)
    print(f"report: {report}")


def _cmd_calibrate(args: argparse.Namespace) -> None:
    from ferkit.data import load_dataset
    from ferkit.data.datamodule import FerDataModule
    from ferkit.inference.checkpoint import load_model
    from ferkit.training.calibrate import calibrate_weights

    metadata = load_model(args.weights).metadata
    data = load_dataset(args.data, args.votes)
    if metadata.get("data", {}).get("fingerprint") not in (None, data.fingerprint):
        logger.warning("these are not the data the weights were trained on; the class prior comes from their train split")
    module = FerDataModule(data, metadata.get("label_mode", "majority"))
    prior = module.class_prior() if args.logit_adjust else None
    limit = {} if args.max_accuracy_drop is None else {"max_accuracy_drop": args.max_accuracy_drop}
    record = calibrate_weights(args.weights, module.valid, prior, **limit)
    print(json.dumps(record, indent=2))


def _cmd_ensemble(args: argparse.Namespace) -> None:
    from ferkit.data import load_dataset
    from ferkit.inference.checkpoint import resolve_weights
    from ferkit.training.ensemble import build_ensemble

    limit = {} if args.max_accuracy_drop is None else {"max_accuracy_drop": args.max_accuracy_drop}
    out = build_ensemble(args.members, args.out, load_dataset(args.data, args.votes), mirror=args.mirror,
                         weights=args.weights, **limit)
    networks = json.loads(resolve_weights(out)[1].read_text())["members"]  # build_ensemble has loaded it once
    print(f"ensemble of {len(networks)} networks: {out}")


def _cmd_explain(args: argparse.Namespace) -> None:
    from ferkit.explain.files import explain_files
    from ferkit.inference.recognizer import load

    rec = load(args.model, backend="torch", detector=args.detector, prior=args.prior)
    failures = 0
    for done in explain_files(rec, args.images, args.out, all_classes=args.all_classes):
        if done.error is not None:
            print(f"ferkit: skipped {done.path}: {done.error}", file=sys.stderr)
            failures += 1
        elif not done.faces:
            print(f"{done.path}: no face found", file=sys.stderr)
        for i, (emotion, probability) in enumerate(done.faces):
            print(f"{done.path} face {i + 1}: {emotion} {probability:.2f} -> {done.target}")
    if failures:
        raise FerkitError(f"{failures} of {len(args.images)} images could not be read")


def _recognizer(args: argparse.Namespace) -> Recognizer:
    from ferkit.detection import DetectorOptions
    from ferkit.inference.recognizer import load

    options = DetectorOptions(min_size=args.min_face, score_threshold=args.score_threshold,
                              max_faces=args.max_faces, largest_only=args.largest_only, max_side=args.detect_size)
    return load(args.model, backend=args.backend, prior=args.prior, detector=args.detector, detector_options=options,
                min_confidence=args.min_confidence, tta=args.tta)


def _add_recognizer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "--weights", dest="model", help=MODEL_HELP)
    parser.add_argument("--prior", default="train", choices=PRIORS, help=PRIOR_HELP)
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help=BACKEND_HELP)
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, choices=DETECTOR_NAMES)
    parser.add_argument("--min-face", type=int, default=DETECTION_DEFAULTS.min_size, help="smallest face side in pixels")
    parser.add_argument("--score-threshold", type=float, default=DETECTION_DEFAULTS.score_threshold,
                        help="lowest face detection score")
    parser.add_argument("--max-faces", type=int, help="keep at most this many faces per image (largest first)")
    parser.add_argument("--largest-only", action="store_true", help="keep only the largest face")
    parser.add_argument("--detect-size", type=int, default=DETECTION_DEFAULTS.max_side,
                        help="scale images down to this longer side for detection (smaller: faster, misses small faces)")
    parser.add_argument("--min-confidence", type=float, help="report 'uncertain' below this probability")
    parser.add_argument("--tta", action="store_true", help="also classify the mirror image (twice the time)")


def _cmd_predict(args: argparse.Namespace) -> None:
    from ferkit.batch.predict import predict_files

    recognizer = _recognizer(args)
    failures = predict_files(recognizer, args.paths, recursive=args.recursive, fmt=args.format,
                             annotate_dir=args.annotate, stream=sys.stdout, output=args.output, resume=args.resume,
                             workers=args.workers, engine=args.engine, address=args.address)
    if failures and args.strict:
        raise FerkitError(f"{failures} input(s) could not be read")


def _cmd_video(args: argparse.Namespace) -> None:
    from ferkit.video.process import run_video

    if args.plot:
        require("plot", "'ferkit video --plot'")  # before the video is read, not after
    recognizer = _recognizer(args)
    summary = run_video(recognizer, args.input, args.out, args.csv, args.plot, every=args.every,
                        smoothing=args.smoothing, max_frames=args.max_frames, full_every=args.full_every)
    print(f"{summary.frames} frames ({summary.unreadable} unreadable skipped), {summary.faces} faces in "
          f"{len(summary.tracks)} tracks, {summary.fps:.1f} frames/s, {summary.full_detections} full-frame detections")


def _cmd_export(args: argparse.Namespace) -> None:
    from ferkit.inference.bundled import resolve_model
    from ferkit.inference.onnx_backend import export_onnx

    if not args.int8:
        print(f"wrote {export_onnx(resolve_model(args.model), args.output)}")
        return
    import tempfile

    from ferkit.inference.onnx_backend import quantize_int8, valid_calibration_faces

    if not args.data:
        raise ConfigError("--int8 calibrates on the validation faces: pass --data (the data set the model was trained on)")
    faces = valid_calibration_faces(args.data, args.calibration_faces)
    with tempfile.TemporaryDirectory() as folder:
        fp32 = export_onnx(resolve_model(args.model), Path(folder) / "fp32.onnx")
        print(f"wrote {quantize_int8(fp32, args.output, faces)} (int8, calibrated on {len(faces)} validation faces)")


def _cmd_app(args: argparse.Namespace) -> None:
    import os

    from ferkit.app.limits import CLIENT_OPTIONS, MAX_VIDEO_MB

    main_script = Path(__file__).resolve().parent / "app" / "main.py"
    env = dict(os.environ)
    if args.model:
        from ferkit.inference.bundled import BUNDLED_MODELS

        env["FERKIT_WEIGHTS"] = args.model if args.model in BUNDLED_MODELS else str(Path(args.model).resolve())
    command = [sys.executable, "-m", "streamlit", "run", str(main_script), "--server.port", str(args.port),
               "--server.address", args.address, "--server.maxUploadSize", str(MAX_VIDEO_MB), "--server.headless",
               "true" if args.headless else "false", "--server.showEmailPrompt", "false",
               "--browser.gatherUsageStats", "false",
               *(arg for option, value in CLIENT_OPTIONS.items() for arg in (f"--{option}", value))]
    # Become the Streamlit process (no child left behind when this one is stopped).
    os.execve(sys.executable, command, env)


def _cmd_serve(args: argparse.Namespace) -> None:
    from ferkit.inference.recognizer import load
    from ferkit.serve.server import run

    settings = ServeSettings.from_env(
        model=args.model, prior=args.prior, max_upload_mb=args.max_upload_mb, max_pixels=args.max_pixels,
        max_batch_images=args.max_batch_images, queue_size=args.queue_size, timeout_s=args.timeout,
        batch_wait_ms=args.batch_wait_ms, max_batch_faces=args.max_batch_faces, detect_size=args.detect_size,
        cors_origins=tuple(args.cors_origin) if args.cors_origin else None)
    # Every worker loads the default model as it starts; one that cannot load (a wrong path,
    # tampered weights) is refused here in one line, not in a traceback from each worker. On a
    # Ray cluster given by --address the model is loaded by the nodes, and its path may be theirs.
    if not (args.ray and args.address):
        load(settings.model, prior=settings.prior)
    if args.ray:
        from ferkit.serve.ray_serve import run_ray

        run_ray(settings, host=args.host, port=args.port, address=args.address,
                min_replicas=args.min_replicas, max_replicas=args.max_replicas or args.workers)
    else:
        run(settings, host=args.host, port=args.port, workers=args.workers)


def _yaml_value(text: str) -> Any:
    """Parse a YAML/JSON value given on the command line (for dict options such as model_kwargs)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise argparse.ArgumentTypeError(f"not a YAML value: {text} ({exc})") from exc


def _weights_list(text: str) -> list[float]:
    """``3,1,1,1`` as numbers; whether they suit the ensemble is checked where it is built."""
    try:
        return [float(w) for w in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated numbers: {text}") from None


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    """One --option per TrainConfig field; values given here override the --config file."""
    from ferkit.training.config import TrainConfig, config_fields

    defaults = TrainConfig()
    for name in config_fields():
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        kind: Any
        if name == "augment":
            parser.add_argument(flag, dest=name, type=_yaml_value, default=None, help=_augment_help())
            continue
        if isinstance(default, bool):
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                                help=f"(default: {default})")
            continue
        if isinstance(default, dict):
            kind = _yaml_value
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            kind = float if isinstance(default, float) or name.startswith("limit_") else int
        else:
            kind = str
        parser.add_argument(flag, dest=name, type=kind, default=None, help=f"{_TRAIN_HELP.get(name, '')} (default: {default!r})".lstrip())


def _augment_help() -> str:
    from ferkit.data.augment import AugmentConfig

    keys = ", ".join(f"{k} ({v})" for k, v in AugmentConfig().to_dict().items())
    return (f"YAML mapping of augmentation strengths, 0 turns one off; keys (default): {keys}. 'degrade' is the "
            "share of faces given camera degradations: gamma (largest |ln gamma|), blur (largest sigma, px), "
            "low_res (smallest side, px), noise (largest std, gray levels), shot_noise (signal-dependent gain), "
            "jpeg (lowest quality)")


_TRAIN_HELP = {
    "init_weights": "start from these weights (run folder, .safetensors, or a bundled model: fast, accurate) "
                    "to fine-tune them; the architecture must match",
    "teacher": "distil from this trained model (run folder, .safetensors, or a bundled model): the loss mixes its "
               "softened outputs with the labels (--distill-weight, --distill-temperature)",
    "distill_weight": "share of the teacher's term in the distillation loss, 0-1",
    "distill_temperature": "softmax temperature of the distillation term",
    "l2sp": "fine-tuning: add l2sp/2 x the squared distance of the conv and dense weights from their starting "
            "values (--init-weights) to the loss, in place of weight decay toward zero (L2-SP; 0 is off)",
    "mixup": "mixup's alpha: each batch is blended with a shuffled copy of itself, images and labels with one "
             "share drawn from Beta(alpha, alpha) (0 is off; 0.2 is usual)",
}


def default_workers() -> int:
    """Decode-and-detect processes for `ferkit predict`: the cores this process may use, at most 8."""
    import os

    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def _add_finetune_commands(commands: Any) -> None:
    """`ferkit dataset build` and `ferkit finetune`."""
    from ferkit.finetune.options import FinetuneOptions

    defaults = FinetuneOptions()
    dataset = commands.add_parser("dataset", help="build a fine-tuning data set from your labelled photos")
    dataset_commands = dataset.add_subparsers(dest="dataset_command", required=True)
    build = dataset_commands.add_parser(
        "build", help="detect and crop faces as at inference, split train/valid/test, write an image folder")
    build.add_argument("photos", help="folder PHOTOS/<emotion>/* or a CSV of path,emotion[,subject]")
    build.add_argument("out", help="new folder for OUT/<split>/<emotion>/*.png, summary, rejections, contact sheet")
    build.add_argument("--crops", action="store_true", help="the images already are face crops (no detection)")
    build.add_argument("--all-faces", action="store_true",
                       help="keep every face of a photo with several (default: reject such photos)")
    build.add_argument("--detector", default=DEFAULT_DETECTOR, choices=DETECTOR_NAMES)
    build.add_argument("--seed", type=int, default=0, help="seed of the split draw")
    build.add_argument("--no-progress", action="store_true")
    build.set_defaults(func=_cmd_dataset_build)

    finetune = commands.add_parser("finetune", help="fine-tune a model on a data set from `ferkit dataset build`")
    finetune.add_argument("dataset", help="DATASET/<split>/<emotion>/*.png with train and valid (and test) splits")
    finetune.add_argument("--from", dest="start", default=defaults.start,
                          help="starting model: fast, accurate, a run folder or .safetensors (default: fast)")
    finetune.add_argument("--out", required=True, help="the run folder to create")
    finetune.add_argument("--epochs", type=int, default=defaults.epochs, help=f"most epochs (default {defaults.epochs})")
    finetune.add_argument("--lr", type=float, default=defaults.lr, help=f"learning rate (default {defaults.lr})")
    finetune.add_argument("--batch-size", type=int, default=defaults.batch_size)
    finetune.add_argument("--patience", type=int, default=defaults.patience,
                          help=f"epochs without a lower valid loss before stopping (default {defaults.patience})")
    finetune.add_argument("--degrade", type=float, default=defaults.degrade,
                          help=f"share of faces given camera degradations (default {defaults.degrade})")
    finetune.add_argument("--l2sp", type=float, default=defaults.l2sp,
                          help="pull of the weights toward the starting model's (L2-SP), 0 turns it off "
                               f"(default {defaults.l2sp})")
    finetune.add_argument("--blend", type=float, default=defaults.blend,
                          help="share of the fine-tuning's change kept: the weights end at start + BLEND x "
                               "(fine-tuned - start), which keeps more of the starting model's general accuracy; "
                               f"1 keeps the fine-tuned weights (default {defaults.blend})")
    finetune.add_argument("--head-only", action="store_true", help="train the last layer only (very small data sets)")
    finetune.add_argument("--seed", type=int, default=defaults.seed)
    finetune.add_argument("--ferplus", help="FER+ folder or .tar.gz: the report also scores both models on FER+ test")
    finetune.add_argument("--no-progress", action="store_true")
    finetune.set_defaults(func=_cmd_finetune)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `ferkit` command."""
    parser = argparse.ArgumentParser(prog="ferkit", description="Facial expression recognition trained on FER+.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True)

    models = commands.add_parser("models", help="list the registered models with parameters and MACs per face")
    models.set_defaults(func=_cmd_models)

    data = commands.add_parser("data", help="data set tools")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    info = data_commands.add_parser("info", help="faces per split and class under a label mode")
    info.add_argument("path", help="FER+ folder or .tar.gz, fer2013.csv, or image folder root/<split>/<emotion>/")
    info.add_argument("--votes", help="fer2013new.csv, to read fer2013.csv with FER+ votes")
    info.add_argument("--mode", default="majority", choices=("majority", "soft", "probability"))
    info.add_argument("--no-cache", action="store_true", help="neither read nor write the decoded-data cache")
    info.set_defaults(func=_cmd_data_info)

    _add_finetune_commands(commands)

    evaluate = commands.add_parser("evaluate", help="metrics, plots and a report for trained weights")
    evaluate.add_argument("--model", "--weights", dest="model", action="append",
                          help="bundled model (fast, accurate), run folder, .safetensors or .onnx file; repeat to "
                               "compare (default: fast)")
    evaluate.add_argument("--prior", default="train", choices=PRIORS, help=PRIOR_HELP)
    evaluate.add_argument("--backend", default="auto", choices=BACKENDS, help=BACKEND_HELP)
    evaluate.add_argument("--precision", default="auto", choices=("auto", *PRECISIONS), help=PRECISION_HELP)
    evaluate.add_argument("--data", required=True, help="data set path (as for train)")
    evaluate.add_argument("--votes", help="fer2013new.csv, with --data fer2013.csv")
    evaluate.add_argument("--split", default="test", choices=("train", "valid", "test"))
    evaluate.add_argument("--tta", default="none", choices=("none", "hflip"), help="test-time augmentation")
    evaluate.add_argument("--min-confidence", type=float, help="faces below it count as uncertain")
    evaluate.add_argument("--robustness", action="store_true", help="re-score under occlusion, light, blur, noise, rotation, crops")
    evaluate.add_argument("--gradcam", action="store_true", help="class-average Grad-CAM and example grids")
    evaluate.add_argument("--out", default="evaluation", help="output folder")
    evaluate.set_defaults(func=_cmd_evaluate)

    calibrate = commands.add_parser("calibrate", help="fit logit adjustment and temperature on the validation split")
    calibrate.add_argument("--weights", required=True, help="run folder or .safetensors (its JSON is updated)")
    calibrate.add_argument("--data", required=True, help="the data set the weights were trained on")
    calibrate.add_argument("--votes", help="fer2013new.csv, with --data fer2013.csv")
    calibrate.add_argument("--no-logit-adjust", dest="logit_adjust", action="store_false",
                           help="fit the temperature only")
    calibrate.add_argument("--max-accuracy-drop", type=float,
                           help="most validation accuracy the logit adjustment may cost (default 0.005: half a point)")
    calibrate.set_defaults(func=_cmd_calibrate)

    ensemble = commands.add_parser("ensemble", help="join trained models into one ensemble model, calibrated on valid")
    ensemble.add_argument("members", nargs="+", help="bundled models (fast, accurate), run folders or .safetensors files; an ensemble adds its "
                          "members, SOURCE:1,3 only its first and third")
    ensemble.add_argument("--out", required=True, help="new folder for the ensemble's weights (loadable like a run folder)")
    ensemble.add_argument("--data", required=True, help="the data set the members were trained on (its valid split calibrates)")
    ensemble.add_argument("--votes", help="fer2013new.csv, with --data fer2013.csv")
    ensemble.add_argument("--no-mirror", dest="mirror", action="store_false",
                          help="do not average each face with its mirror image inside the model")
    ensemble.add_argument("--weights", type=_weights_list, metavar="W1,W2,...",
                          help="each network's weight in the average, in order (e.g. 3,1,1,1: the first counts half); default alike")
    ensemble.add_argument("--max-accuracy-drop", type=float,
                          help="most validation accuracy the logit adjustment may cost (default: as ferkit calibrate)")
    ensemble.set_defaults(func=_cmd_ensemble)

    explain = commands.add_parser("explain", help="Grad-CAM overlays for face images")
    explain.add_argument("images", nargs="+", help="photos (faces are detected) or 48x48 face crops")
    explain.add_argument("--model", "--weights", dest="model",
                         help="bundled model (fast, accurate), run folder or .safetensors (default: fast)")
    explain.add_argument("--prior", default="train", choices=PRIORS, help=PRIOR_HELP)
    explain.add_argument("--detector", default=DEFAULT_DETECTOR, choices=DETECTOR_NAMES)
    explain.add_argument("--all-classes", action="store_true", help="one panel per emotion")
    explain.add_argument("--out", default="explanations", help="output folder")
    explain.set_defaults(func=_cmd_explain)

    predict = commands.add_parser("predict", help="emotions of every face in images, as JSON lines, CSV or Parquet")
    predict.add_argument("paths", nargs="+", help="image files, folders or glob patterns")
    predict.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    predict.add_argument("--format", choices=("json", "csv", "parquet"),
                         help="default: from --output's suffix (.jsonl, .csv, .parquet), else JSON lines")
    predict.add_argument("--output", help="write here instead of standard output (Parquet needs a file)")
    predict.add_argument("--resume", action="store_true",
                         help="skip the inputs already in --output and append the rest (after an interruption)")
    predict.add_argument("--workers", type=int, default=default_workers(),
                         help=f"processes that decode and detect (default {default_workers()}: this machine's cores)")
    predict.add_argument("--engine", default="local", choices=("local", "ray"),
                         help="ray: a Ray Data pipeline (pip install 'ferkit[ray]')")
    predict.add_argument("--address", help="with --engine ray: the Ray cluster (default $RAY_ADDRESS, else a local Ray)")
    predict.add_argument("--annotate", help="folder for copies of the images with boxes, labels and bars")
    predict.add_argument("--strict", action="store_true", help="exit non-zero if any input could not be read")
    _add_recognizer_options(predict)
    predict.set_defaults(func=_cmd_predict)

    from ferkit.video.follow import FULL_DETECTION_SECONDS

    video = commands.add_parser("video", help="emotions over a video file or webcam, with tracking and smoothing")
    video.add_argument("input", help="video file, or webcam index (0, 1, ...)")
    video.add_argument("--out", help="annotated video (.mp4)")
    video.add_argument("--csv", help="timeline CSV: one row per analysed frame per face")
    video.add_argument("--plot", help="timeline plot (.png)")
    video.add_argument("--every", type=int, default=1, help="analyse every N-th frame")
    video.add_argument("--smoothing", type=float, default=0.6, help="EMA weight of the past, 0 to 1")
    video.add_argument("--full-every", type=float, default=FULL_DETECTION_SECONDS, metavar="SECONDS",
                       help="detect faces in the whole frame this often (new faces), following them in small "
                            "regions in between; 0: the whole frame every frame (slower)")
    video.add_argument("--max-frames", type=int, help="stop after this many frames (webcams run until stopped)")
    _add_recognizer_options(video)
    video.set_defaults(func=_cmd_video)

    export = commands.add_parser("export", help="export weights to ONNX")
    export.add_argument("output", help="the .onnx file to write")
    export.add_argument("--format", default="onnx", choices=("onnx",))
    export.add_argument("--int8", action="store_true", help="static int8 quantization (QDQ, per-channel weights)")
    export.add_argument("--data", help="with --int8: the data set whose validation faces calibrate the ranges")
    export.add_argument("--calibration-faces", type=int, default=2000, help="with --int8: how many validation faces")
    export.add_argument("--model", "--weights", dest="model",
                        help="bundled model (fast, accurate), run folder or .safetensors (default: fast)")
    export.set_defaults(func=_cmd_export)

    app = commands.add_parser("app", help="start the Streamlit web app")
    app.add_argument("--port", type=int, default=8501)
    app.add_argument("--address", default="localhost", help="address to listen on (0.0.0.0 for the LAN)")
    app.add_argument("--model", "--weights", dest="model", help=MODEL_HELP)
    app.add_argument("--headless", action="store_true", help="do not open a browser")
    app.set_defaults(func=_cmd_app)

    serve = commands.add_parser("serve", help="the HTTP API (FastAPI): analyze, classify, models, metrics",
                                description="Serve the HTTP API; docs at /docs. Every option also reads a "
                                            "FERKIT_SERVE_* variable; API keys come from FERKIT_API_KEYS (comma-separated).")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="processes on this machine (each loads its models)")
    # No argparse defaults: an option not given leaves its FERKIT_SERVE_* variable, else ServeSettings' default.
    defaults = SERVE_DEFAULTS
    serve.add_argument("--model", "--weights", dest="model", help=MODEL_HELP)
    serve.add_argument("--prior", choices=PRIORS, help=f"{PRIOR_HELP} (default: {defaults.prior})")
    serve.add_argument("--max-upload-mb", type=float, help=f"largest request body (default {defaults.max_upload_mb:g})")
    serve.add_argument("--max-pixels", type=int, help=f"largest image in pixels (default {defaults.max_pixels:,})")
    serve.add_argument("--max-batch-images", type=int,
                       help=f"most images per /v1/analyze/batch request (default {defaults.max_batch_images})")
    serve.add_argument("--queue-size", type=int,
                       help=f"most requests in progress; more get 503 (default {defaults.queue_size})")
    serve.add_argument("--timeout", type=float,
                       help=f"seconds before an unanswered request gets 503 (default {defaults.timeout_s:g})")
    serve.add_argument("--batch-wait-ms", type=float,
                       help="wait for concurrent requests' faces to classify them together; 0: off "
                            f"(default {defaults.batch_wait_ms:g})")
    serve.add_argument("--max-batch-faces", type=int,
                       help=f"most faces per classifier batch (default {defaults.max_batch_faces})")
    serve.add_argument("--detect-size", type=int,
                       help=f"longer side used for face detection (default {defaults.detect_size})")
    serve.add_argument("--cors-origin", action="append", help="browser origin allowed to call the API (repeat)")
    serve.add_argument("--ray", action="store_true", help="deploy on Ray Serve (pip install 'ferkit[ray]')")
    serve.add_argument("--address", help="with --ray: the Ray cluster (default $RAY_ADDRESS, else a local Ray)")
    serve.add_argument("--min-replicas", type=int, default=1, help="with --ray: autoscaling lower bound")
    serve.add_argument("--max-replicas", type=int, help="with --ray: autoscaling upper bound (default --workers)")
    serve.set_defaults(func=_cmd_serve)

    train = commands.add_parser("train", help="train a model; writes a run folder")
    train.add_argument("--config", help="YAML file of options; command-line options override it")
    train.add_argument("--resume", action="store_true", help="continue the run --name from its last checkpoint")
    try:
        _add_train_options(train)
    except ImportError as exc:  # without the training extra the options are unknown: `ferkit train` says what to install
        if extra_for(exc) is None:
            raise
        train.set_defaults(unknown_options_ok=True)
    train.set_defaults(func=_cmd_train)
    return parser


#: The extra each command needs whatever its options (predict and video need one for some options only).
COMMAND_EXTRAS = {"models": "train", "train": "train", "evaluate": "train", "calibrate": "train", "ensemble": "train",
                  "explain": "train",
                  "export": "export", "app": "app", "serve": "serve"}


def _run_command(args: argparse.Namespace) -> None:
    """Run the parsed command; a missing optional module becomes a MissingExtraError naming its extra."""
    feature = f"'ferkit {args.command}'"
    needed = COMMAND_EXTRAS.get(args.command)
    if needed:
        require(needed, feature)
    try:
        args.func(args)
    except ImportError as exc:
        extra = extra_for(exc, prefer=[needed] if needed else [])
        if extra is None:
            raise
        raise MissingExtraError(feature, extra) from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `ferkit` command; returns the exit status."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "unknown_options_ok", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if not logger.handlers:  # ferkit's own messages only; other libraries keep their defaults
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    warnings.filterwarnings("ignore", message=".*on_after_batch_transfer.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    try:
        _run_command(args)
    except FerkitError as exc:
        print(f"ferkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ferkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`ferkit predict ... | head -1`): stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the final flush must not fail again
        return 141  # as a shell reports a program ended by SIGPIPE
    return 0


if __name__ == "__main__":
    sys.exit(main())
