"""Model page: the bundled model's card, measured accuracy and evaluation plots."""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from ferkit.app.settings import cached_classifier, show_errors, sidebar

from ferkit.inference.bundled import BUNDLED_MODELS

REPORTS = Path(__file__).resolve().parents[4] / "reports"
PLOTS = {"confusion_matrix.png": "Confusion matrix", "roc.png": "ROC curves", "reliability.png": "Calibration",
         "gradcam_class_average.png": "Class-average Grad-CAM", "robustness.png": "Robustness"}


def page() -> None:
    settings = sidebar()
    st.title("The model")
    classifier = cached_classifier(settings.model, settings.prior)
    bundled = settings.model in BUNDLED_MODELS
    reports = REPORTS / settings.model
    meta = classifier.metadata
    st.markdown(f"Architecture `{meta.get('model')}`, labels: {', '.join(classifier.labels)}, "
                f"calibration temperature {classifier.temperature:.3f}.")
    test = meta.get("test_metrics")
    if test:
        cols = st.columns(3)
        cols[0].metric("Test accuracy (FER+)", f"{100 * test['accuracy']:.2f}%")
        cols[1].metric("Balanced accuracy", f"{100 * test['balanced_accuracy']:.2f}%")
        cols[2].metric("ECE", f"{test['ece']:.3f}")
    card = REPORTS.parent / "MODEL_CARD.md"
    if card.is_file() and bundled:
        with st.expander("Model card", expanded=False):
            st.markdown(card.read_text())
    metrics_file = reports / "metrics.json"
    if metrics_file.is_file() and bundled:
        metrics = json.loads(metrics_file.read_text())
        st.subheader("Per-emotion results on the FER+ test split")
        st.dataframe({name: {k: v for k, v in row.items()} for name, row in metrics["per_class"].items()})
        for name, title in PLOTS.items():
            if (reports / name).is_file():
                st.subheader(title)
                st.image(str(reports / name))
    elif bundled:
        st.info("The evaluation report is not part of this install; see reports/ in the source repository.")


show_errors(page)
