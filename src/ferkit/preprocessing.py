"""The one definition of how a gray face becomes model input; stored with every set of weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from ferkit.errors import InputShapeError

if TYPE_CHECKING:
    import torch


#: Side of the square gray faces FER-2013 provides and ferkit's models read.
FACE_SIZE = 48


@dataclass(frozen=True)
class Preprocessing:
    """Faces are gray, ``size`` x ``size``, scaled to [0, 1], then standardised with ``mean``/``std``."""

    size: int = FACE_SIZE
    mean: float = 0.5
    std: float = 0.25

    def array(self, faces: np.ndarray) -> np.ndarray:
        """uint8 gray faces (N, H, W) -> float32 model input (N, 1, H, W), without torch."""
        faces = np.asarray(faces)
        if faces.ndim != 3:
            raise InputShapeError(f"expected gray faces of shape (N, H, W), got {faces.shape}")
        return self.normalize(faces[:, None].astype(np.float32) / np.float32(255.0)).astype(np.float32)

    @overload
    def normalize(self, faces: np.ndarray) -> np.ndarray: ...

    @overload
    def normalize(self, faces: torch.Tensor) -> torch.Tensor: ...

    def normalize(self, faces: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Standardise float faces in [0, 1] of shape (N, 1, H, W): the one formula that training
        (torch tensors) and inference (NumPy arrays, ONNX Runtime) share."""
        return (faces - self.mean) / self.std

    def to_unit(self, faces: "np.ndarray | torch.Tensor") -> "torch.Tensor":
        """uint8 gray faces (N, H, W), array or tensor on any device -> float (N, 1, H, W) in [0, 1]."""
        import torch

        tensor = faces if isinstance(faces, torch.Tensor) else torch.from_numpy(np.array(faces, dtype=np.uint8))
        if tensor.ndim != 3:
            raise InputShapeError(f"expected gray faces of shape (N, H, W), got {tuple(tensor.shape)}")
        return tensor.unsqueeze(1).float().div_(255.0)

    def __call__(self, faces: "np.ndarray | torch.Tensor") -> "torch.Tensor":
        """uint8 gray faces (N, H, W) -> normalised model input tensor (N, 1, H, W)."""
        return self.normalize(self.to_unit(faces))

    def to_dict(self) -> dict[str, object]:
        return {"color": "gray", **asdict(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Preprocessing:
        return cls(size=int(values["size"]), mean=float(values["mean"]), std=float(values["std"]))
