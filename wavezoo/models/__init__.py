"""Model families of the zoo, one per module; importing this package imports every module in it, which registers
them all (adding a family is adding its module: nothing here lists the families)."""

import importlib
import pkgutil

from wavezoo.models.base import SequenceModel
from wavezoo.models.rnn import RecurrentBaseline
from wavezoo.models.transformer import CausalTransformer

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")  # registration side effects (@register_model)

__all__ = ["SequenceModel", "RecurrentBaseline", "CausalTransformer"]
