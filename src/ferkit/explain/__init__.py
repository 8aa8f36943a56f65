"""Explanations: Grad-CAM heatmaps and overlays."""

from ferkit.explain.gradcam import gradcam, gradcam_faces
from ferkit.explain.overlay import colorize, overlay, overlay_on_image

__all__ = ["colorize", "gradcam", "gradcam_faces", "overlay", "overlay_on_image"]
