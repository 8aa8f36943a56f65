"""A small model registry: register_model, list_models, create_model."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

from ferkit.errors import ConfigError, ModelNotFoundError

M = TypeVar("M", bound=Callable[..., nn.Module])
_MODELS: dict[str, Callable[..., nn.Module]] = {}
#: Models built from other models (an ensemble of trained members), not architectures to train.
_COMPOSITE: set[str] = set()


def register_model(name: str, composite: bool = False) -> Callable[[M], M]:
    """Decorator that registers a model class or builder under ``name``; ``composite`` for models
    made of other models, which need arguments to be built and are left out of list_models()."""

    def wrapper(builder: M) -> M:
        if name in _MODELS:
            raise ValueError(f"a model is already registered as '{name}'")
        _MODELS[name] = builder
        if composite:
            _COMPOSITE.add(name)
        return builder

    return wrapper


def list_models() -> list[str]:
    """Return the registered architectures (every model but the composite ones), sorted."""
    return sorted(set(_MODELS) - _COMPOSITE)


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build the model registered as ``name`` with keyword arguments ``kwargs``."""
    if name not in _MODELS:
        raise ModelNotFoundError(f"unknown model '{name}'; available models: {', '.join(list_models())}")
    try:
        return _MODELS[name](**kwargs)
    except TypeError as exc:
        raise ConfigError(f"model '{name}' does not accept these arguments {kwargs}: {exc}") from exc
