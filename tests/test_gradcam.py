"""Grad-CAM on a tiny 1-channel net with fixed weights, whose maps are known exactly."""

import numpy as np
import pytest
import torch
from torch import nn

from ferkit.detection import Face
from ferkit.explain import gradcam, gradcam_faces, overlay, overlay_on_image
from ferkit.models import FerModel, create_model


class TinyNet(FerModel):
    """features: identity 1x1 conv; head: global mean -> logits (+mean, -mean)."""

    gradcam_layer = "features"

    def __init__(self) -> None:
        super().__init__(num_classes=2)
        self.features = nn.Conv2d(1, 1, 1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 2, bias=False))
        with torch.no_grad():
            self.features.weight.fill_(1.0)
            self.features.bias.zero_()
            self.head[2].weight.copy_(torch.tensor([[1.0], [-1.0]]))


INPUT = torch.tensor([[[[0.0, 1.0, 2.0, 4.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0]]]])


def test_exact_map_for_the_supported_class():
    # dlogit0/dA = 1/16 everywhere -> weight 1/16 -> cam = A/16 -> scaled by its max (4/16): A/4
    maps = gradcam(TinyNet(), INPUT, target=0)
    np.testing.assert_allclose(maps[0], INPUT[0, 0].numpy() / 4, rtol=1e-6)


def test_opposed_class_gives_an_all_zero_map():
    np.testing.assert_array_equal(gradcam(TinyNet(), INPUT, target=1)[0], np.zeros((4, 4), np.float32))


def test_default_target_is_the_predicted_class():
    np.testing.assert_allclose(gradcam(TinyNet(), INPUT)[0], gradcam(TinyNet(), INPUT, target=0)[0])
    np.testing.assert_allclose(gradcam(TinyNet(), -INPUT)[0], gradcam(TinyNet(), -INPUT, target=1)[0])


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


@pytest.mark.parametrize("name", ["fernet", "deep_cnn"])
def test_real_models_maps_are_in_range_and_hooks_are_removed(name: str):
    torch.manual_seed(0)
    model = create_model(name).train()
    maps = gradcam(model, torch.randn(3, 1, 48, 48), target=[0, 3, 7])
    assert maps.shape == (3, 48, 48) and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() <= 1
    assert _hook_count(model) == 0
    assert model.training  # mode restored


def test_hooks_are_removed_when_the_call_fails():
    model = TinyNet()
    with pytest.raises(IndexError, match="index 5 is out of bounds"):
        gradcam(model, torch.zeros(1, 1, 4, 4), target=5)  # no class 5
    assert _hook_count(model) == 0


def test_overlay_shapes_and_blend():
    face = np.full((48, 48), 100, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    out = overlay(face, heat, alpha=0.5)
    assert out.shape == (48, 48, 3) and out.dtype == np.uint8
    # jet(0) is dark blue (0, 0, 127.5): half of it blended onto gray 100
    np.testing.assert_array_equal(out[0, 0], np.round(np.array([50, 50, 50 + 127.5 / 2])).astype(np.uint8))
    photo = np.zeros((100, 120, 3), np.uint8)
    painted = overlay_on_image(photo, Face((10, 20, 30, 40), 1.0), np.ones((48, 48), np.float32))
    # the crop is the square of the longer side (40) about the box centre (x 5-45, y 20-60), coloured
    # only inside the box: x 10-40, y 20-60
    assert painted[:19].sum() == 0 and painted[21:59, 11:39].sum(axis=2).min() > 0 and painted[61:].sum() == 0
    assert painted[:, :10].sum() == 0 and painted[:, 40:].sum() == 0
    edge = overlay_on_image(photo, Face((100, 80, 50, 50), 1.0), np.ones((48, 48), np.float32))  # leaves the image
    assert edge[80:, 100:].sum() > 0 and edge.shape == photo.shape


def test_heatmap_lands_on_a_tilted_face_where_the_crop_saw_it():
    from ferkit.detection.crop import crop_matrix

    face = Face((40, 40, 80, 80), 1.0, ((60.0, 60.0), (100.0, 100.0)))  # eyes on a 45-degree line
    left_eye = crop_matrix(face) @ np.array([60.0, 60.0, 1.0])
    heat = np.zeros((48, 48), np.float32)
    r, c = int(round(left_eye[1])), int(round(left_eye[0]))
    heat[r - 1 : r + 2, c - 1 : c + 2] = 1.0
    painted = overlay_on_image(np.zeros((160, 160, 3), np.uint8), face, heat)
    red = painted[..., 0].astype(int)  # jet(1) is red; jet(0) has none
    y, x = np.unravel_index(red.argmax(), red.shape)
    assert abs(x - 60) <= 3 and abs(y - 60) <= 3


def test_gradcam_and_torch_inference_hold_while_another_thread_loads_a_model():
    """Loading a torch model traces it with torch.fx, which swaps torch.nn.Module.__call__ for the
    whole process: Grad-CAM or a torch forward pass on another thread meanwhile failed
    ("module is not installed as a submodule"; the service's first concurrent Grad-CAM requests
    for two models answered 500)."""
    import sys
    import threading

    from ferkit.inference.bundled import bundled_weights
    from ferkit.inference.classifier import FaceClassifier

    weights = bundled_weights("fast")
    explained = FaceClassifier.from_path(weights)
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    expected_maps, expected_probs = gradcam_faces(explained.model, faces, explained.preprocessing), explained.probabilities(faces)
    errors: list[Exception] = []
    loading = threading.Event()

    def load_models() -> None:
        try:
            for _ in range(20):
                FaceClassifier.from_path(weights)
        finally:
            loading.set()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows nearly every time
    loader = threading.Thread(target=load_models)
    loader.start()
    while not loading.is_set():
        try:
            np.testing.assert_allclose(gradcam_faces(explained.model, faces, explained.preprocessing), expected_maps,
                                       atol=1e-5)
            np.testing.assert_allclose(explained.probabilities(faces), expected_probs, atol=1e-6)
        except Exception as exc:  # the first failure is enough
            errors.append(exc)
            break
    loader.join()
    sys.setswitchinterval(interval)
    assert not errors, errors[0]
