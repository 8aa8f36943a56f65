"""Model page: the selected model's card, measured accuracy and evaluation plots, for the selected prior."""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from ferkit.app.reports import int8_test_scores, report_folder, source_file
from ferkit.app.settings import PRIOR_LABELS, cached_classifier, show_errors, sidebar
from ferkit.inference.base import BACKEND_NAMES
from ferkit.inference.bundled import BUNDLED_MODELS

PLOTS = {"confusion_matrix.png": "Confusion matrix", "roc.png": "ROC curves", "reliability.png": "Calibration",
         "gradcam_class_average.png": "Class-average Grad-CAM", "robustness.png": "Robustness"}
#: Where each prior's FER+ test metrics are stored in model.json.
TEST_METRICS = {"train": "test_metrics", "uniform": "test_metrics_uniform"}


def page() -> None:
    settings = sidebar(detection=False)
    st.title("The model")
    classifier = cached_classifier(settings.model, settings.prior)
    bundled = settings.model in BUNDLED_MODELS
    meta = classifier.metadata
    runs = (f"{BACKEND_NAMES.get(classifier.backend, classifier.backend)} in {classifier.precision} "
            f"(`{classifier.weights_file.name}`)")
    st.markdown(f"Model **{settings.model if bundled else Path(settings.model).name}**: architecture "
                f"`{meta.get('model')}`, labels: {', '.join(classifier.labels)}, calibration temperature "
                f"{classifier.temperature:.3f}. Expected emotions: {PRIOR_LABELS[settings.prior]}. Runs on {runs}.")
    test = meta.get(TEST_METRICS[settings.prior])
    if test:
        st.subheader("FER+ test split, torch weights")
        cols = st.columns(3)
        cols[0].metric("Test accuracy (FER+)", f"{100 * test['accuracy']:.2f}%")
        cols[1].metric("Balanced accuracy", f"{100 * test['balanced_accuracy']:.2f}%")
        cols[2].metric("ECE", f"{test['ece']:.3f}")
        int8 = int8_test_scores(settings.model, settings.prior) if bundled and classifier.precision == "int8" else None
        if int8:
            st.subheader("FER+ test split, int8 ONNX file (what runs)")
            cols = st.columns(3)
            cols[0].metric("Test accuracy (FER+), int8", f"{100 * int8['accuracy']:.2f}%")
            cols[1].metric("Balanced accuracy, int8", f"{100 * int8['balanced_accuracy']:.2f}%")
            cols[2].metric("ECE, int8", f"{int8['ece']:.3f}")
        elif classifier.precision == "int8":
            st.caption("The int8 file's own test scores are in reports/ of the source repository (onnx.json); "
                       "their accuracy stays within half a point of the torch weights', their balanced "
                       "accuracy (carried by a few rare faces) within two points.")
        if test.get("recall"):
            st.subheader("Recall per emotion on the FER+ test split (torch weights)")
            st.dataframe({name: {"recall": round(recall, 4), "test faces": test.get("support", {}).get(name)}
                          for name, recall in test["recall"].items()})
    else:
        st.info("These weights carry no FER+ test results for this prior.")
    card = source_file("MODEL_CARD.md")
    if card is not None and bundled:
        with st.expander("Model card", expanded=False):
            st.markdown(card.read_text())
    reports = report_folder(settings.model) if bundled else None
    if reports is not None and (reports / "metrics.json").is_file():
        metrics = json.loads((reports / "metrics.json").read_text())
        drawn_for = metrics.get("prior", "train")
        if drawn_for != settings.prior:
            st.info(f"The evaluation plots were drawn with the other prior ({PRIOR_LABELS[drawn_for]}); "
                    "choose it in the sidebar to see them.")
            return
        for name, title in PLOTS.items():
            if (reports / name).is_file():
                st.subheader(title)
                st.image(str(reports / name))
    elif bundled:
        st.info("The evaluation plots are not part of this install; see reports/ in the source repository.")


show_errors(page)
