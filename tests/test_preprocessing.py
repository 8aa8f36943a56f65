import numpy as np
import torch

from ferkit.preprocessing import FACE_SIZE, Preprocessing


def test_numpy_and_torch_paths_give_the_same_input():
    prep = Preprocessing(mean=0.4, std=0.3)
    faces = np.random.default_rng(0).integers(0, 256, (5, FACE_SIZE, FACE_SIZE)).astype(np.uint8)
    from_numpy = prep.array(faces)
    from_torch = prep(torch.from_numpy(faces)).numpy()
    assert from_numpy.dtype == np.float32 and from_numpy.shape == (5, 1, FACE_SIZE, FACE_SIZE)
    np.testing.assert_array_equal(from_numpy, from_torch)
    assert abs(float(from_numpy[0, 0, 0, 0]) - (faces[0, 0, 0] / 255 - 0.4) / 0.3) < 1e-6
