import numpy as np
import pytest

from ferkit.evaluation.robustness import (
    CAMERA_CORRUPTIONS,
    EYES_BAND,
    brightness,
    corruptions,
    gaussian_blur,
    gaussian_noise,
    occlude_band,
    recrop,
    rotate,
)

FACES = np.random.default_rng(0).integers(0, 256, (3, 48, 48)).astype(np.uint8)


def test_every_corruption_keeps_shape_and_dtype():
    for name, corrupt in corruptions().items():
        out = corrupt(FACES)
        assert out.shape == FACES.shape and out.dtype == np.uint8, name
    assert list(corruptions())[:5] == list(CAMERA_CORRUPTIONS) == [
        "noise_std8", "blur_sigma1", "jpeg_q30", "lowres_24px", "lowres_24px_bilinear"]
    assert len(corruptions()) == 15


def test_camera_corruptions_at_their_stated_strengths():
    smooth = np.kron(np.random.default_rng(1).integers(0, 256, (3, 6, 6)), np.ones((8, 8))).astype(np.uint8)
    suite = corruptions()
    flat = np.full((1, 48, 48), 90, np.uint8)
    assert (suite["noise_std8"](flat).astype(float) - 90).std() == pytest.approx(8, rel=0.1)
    np.testing.assert_array_equal(suite["blur_sigma1"](smooth), gaussian_blur(1.0)(smooth))
    np.testing.assert_array_equal(suite["lowres_24px"](flat), flat)
    # 8x8 blocks on the JPEG grid compress almost losslessly; a 24 px face loses its fine detail
    assert np.abs(suite["jpeg_q30"](smooth).astype(int) - smooth).mean() < 3
    checker = np.indices((48, 48)).sum(axis=0) % 2 * 255
    low = suite["lowres_24px"](checker[None].astype(np.uint8))
    assert np.abs(low.astype(int) - 127).max() <= 1  # one-pixel detail averages out at 24 px
    np.testing.assert_array_equal(suite["lowres_24px_bilinear"](flat), flat)


def test_bilinear_24px_row_is_pillows_filter_both_ways():
    from PIL import Image

    face = FACES[0]
    expected = Image.fromarray(face).resize((24, 24), Image.BILINEAR).resize((48, 48), Image.BILINEAR)
    np.testing.assert_array_equal(corruptions()["lowres_24px_bilinear"](FACES)[0], np.asarray(expected))
    # a softer kernel than area averaging: the two rows differ
    assert np.abs(corruptions()["lowres_24px"](FACES).astype(int) - np.asarray(expected)).mean() > 2


def test_occlusion_zeroes_exactly_the_band():
    out = occlude_band(EYES_BAND)(FACES)
    assert (out[:, 14:24] == 0).all()  # rows 0.30*48=14.4 -> 14 .. 0.50*48 = 24
    np.testing.assert_array_equal(out[:, :14], FACES[:, :14])
    np.testing.assert_array_equal(out[:, 24:], FACES[:, 24:])


def test_brightness_scales_and_clips():
    faces = np.array([[[100, 200]]], np.uint8)
    assert brightness(0.6)(faces).tolist() == [[[60, 120]]]
    assert brightness(1.4)(faces).tolist() == [[[140, 255]]]


def test_blur_keeps_flat_images_and_noise_is_seeded():
    flat = np.full((1, 48, 48), 77, np.uint8)
    np.testing.assert_array_equal(gaussian_blur(1.5)(flat), flat)
    np.testing.assert_array_equal(gaussian_noise(15)(FACES), gaussian_noise(15)(FACES))
    assert np.abs(gaussian_noise(15)(flat).astype(int) - 77).mean() == pytest.approx(15 * np.sqrt(2 / np.pi), rel=0.1)


def test_zero_rotation_is_the_identity_and_rotation_moves_pixels():
    np.testing.assert_array_equal(rotate(0)(FACES), FACES)
    assert not np.array_equal(rotate(15)(FACES), FACES)


def test_crops_zoom_in_and_out():
    face = np.zeros((1, 48, 48), np.uint8)
    face[0, 19:29, 19:29] = 255  # a 10x10 centred square
    tight = recrop(0.8)(face)
    loose = recrop(1.2)(face)
    assert (tight > 128).sum() > (face > 128).sum() > (loose > 128).sum()
