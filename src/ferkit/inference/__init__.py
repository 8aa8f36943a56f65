"""Inference: weights I/O (safetensors + JSON)."""

from ferkit.inference.checkpoint import LoadedModel, load_model, save_weights

__all__ = ["LoadedModel", "load_model", "save_weights"]
