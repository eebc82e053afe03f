"""wavezoo: a model zoo for traveling-wave working memory (Karuvally, Sejnowski, Siegelmann, ICML 2024)."""

from wavezoo import models  # noqa: F401  (registers the model families)
from wavezoo.errors import ConfigError
from wavezoo.registry import create_model, is_model, list_models, register_model

__version__ = "0.1.0"

__all__ = ["ConfigError", "create_model", "is_model", "list_models", "register_model", "__version__"]
