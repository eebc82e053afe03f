"""wavezoo: a model zoo for traveling-wave working memory (Karuvally, Sejnowski, Siegelmann, ICML 2024)."""

from wavezoo import models  # noqa: F401  (registers the model families)
from wavezoo.errors import ChecksumError, ConfigError
from wavezoo.factory import create_model
from wavezoo.pretrained import (
    from_pretrained,
    list_pretrained,
    load_pretrained,
    pretrained_info,
    push_to_hub,
    save_pretrained,
)
from wavezoo.registry import is_model, list_models, register_model
from wavezoo.version import __version__

__all__ = [
    "ChecksumError",
    "ConfigError",
    "create_model",
    "from_pretrained",
    "is_model",
    "list_models",
    "list_pretrained",
    "load_pretrained",
    "pretrained_info",
    "push_to_hub",
    "register_model",
    "save_pretrained",
    "__version__",
]
