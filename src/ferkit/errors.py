"""Exceptions raised by ferkit; every message says what to do about it."""

from __future__ import annotations


class FerkitError(Exception):
    """Base class of every error ferkit raises on purpose."""


class DataError(FerkitError):
    """A data set file or folder is missing, malformed or inconsistent."""


class ImageError(DataError):
    """An image cannot be read: missing, not an image, truncated or too large."""


class ImageFormatError(ImageError):
    """A file is not in one of the image formats ferkit decodes (JPEG, PNG, WebP, BMP, GIF, TIFF)."""


class ImageTooLargeError(ImageError):
    """An image has more pixels than the limit allows (a decompression bomb, or just too big)."""


class ModelNotFoundError(FerkitError, KeyError):
    """An unknown model name was asked of the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class CheckpointError(FerkitError):
    """A weights file or its metadata is missing, corrupt or does not match the model."""


class ConfigError(FerkitError):
    """A configuration value or option is unknown or invalid (training, a model's arguments, a command's options)."""


class InputShapeError(DataError, ValueError):
    """An array passed to ferkit has the wrong shape or type (e.g. faces that are not (N, 48, 48) gray)."""


class VideoError(FerkitError):
    """A video file or camera cannot be opened, read or written."""


class ExplainUnavailableError(FerkitError):
    """These weights cannot be explained with Grad-CAM (an ONNX file without its torch weights)."""
