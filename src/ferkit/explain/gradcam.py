"""Grad-CAM (Selvaraju et al., 2017) through captum's LayerGradCam on each model's registered layer."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam
from torch import nn

from ferkit.models.base import MODULE_CALL_LOCK, FerModel
from ferkit.preprocessing import Preprocessing


def gradcam(
    model: nn.Module,
    inputs: torch.Tensor,
    target: int | list[int] | torch.Tensor | None = None,
) -> np.ndarray:
    """Grad-CAM heatmaps for normalised model inputs.

    Args:
        model: a FerModel (its ``gradcam_module()`` is the layer used).
        inputs: float tensor (N, 1, H, W), already normalised.
        target: class index per face, one index for all, or None for each face's predicted class.

    Returns:
        float32 array (N, H, W): ReLU of the class-weighted activations, upsampled bilinearly to
        the input size and scaled to [0, 1] per face (all zeros where nothing supports the class).
    """
    if not isinstance(model, FerModel):
        raise TypeError("gradcam needs a ferkit model (it names its Grad-CAM layer)")
    with MODULE_CALL_LOCK:  # captum removes its hooks in `finally`
        was_training = model.training
        model.eval()
        try:
            if target is None:
                with torch.no_grad():
                    target = model(inputs).argmax(dim=1)
            elif isinstance(target, int):
                target = torch.full((len(inputs),), target, dtype=torch.long)
            else:
                target = torch.as_tensor(target, dtype=torch.long)
            explained = model.gradcam_model()  # the model's decision, the layer's maps (see FerModel)
            maps = LayerGradCam(explained, model.gradcam_module()).attribute(inputs, target=target, relu_attributions=True)
        finally:
            model.train(was_training)
    maps = F.interpolate(maps.detach().float(), size=inputs.shape[-2:], mode="bilinear", align_corners=False)
    maps = maps.squeeze(1).clamp_min(0)
    peak = maps.flatten(1).amax(dim=1).view(-1, 1, 1)
    return torch.where(peak > 0, maps / peak.clamp_min(1e-12), torch.zeros_like(maps)).numpy()


def gradcam_faces(
    model: nn.Module, faces: np.ndarray, preprocessing: Preprocessing, target: int | list[int] | None = None
) -> np.ndarray:
    """Grad-CAM for uint8 gray faces (N, 48, 48); see gradcam()."""
    return gradcam(model, preprocessing(faces), target)
