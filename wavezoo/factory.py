"""``create_model``: a registered model with fresh or published weights (timm's ``create_model``).

The registry (:mod:`wavezoo.registry`) builds models and knows nothing of checkpoints; the published weights
(:mod:`wavezoo.pretrained.loading`) build through the registry. This module sits above both, so neither imports the
other's caller.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from wavezoo.errors import ConfigError
from wavezoo.pretrained.loading import pretrained_model
from wavezoo.registry import build_model, is_model, list_models


def create_model(
    name: str,
    input_size: int | None = None,
    output_size: int | None = None,
    hidden_size: int | None = None,
    pretrained: bool | str = False,
    **family_kwargs: Any,
) -> nn.Module:
    """Build a registered model.

    Every model obeys the zoo contract: a plain batch-first ``nn.Module`` with
    ``forward(x: [batch, time, input_size]) -> [batch, time, output_size]`` and the streaming form
    ``initial_state`` / ``step`` (:class:`~wavezoo.models.base.SequenceModel`). ``hidden_size`` is the number of
    recurrent state units; left out, the family's own default is used (see ``help(wavezoo.models.<family>)``).
    Only the arguments given are passed to the family's builder.

    ``pretrained=True`` loads the one published checkpoint of this family (``wavezoo.list_pretrained()``),
    ``pretrained="<checkpoint name>"`` a named one, in eval mode; sizes and keywords then come from the checkpoint
    (any also given must agree with it). The model's ``wavezoo_config`` attribute records how it was built.
    """
    if not is_model(name):
        raise ConfigError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    if pretrained:
        given = {"input_size": input_size, "output_size": output_size, "hidden_size": hidden_size}
        given = {k: v for k, v in given.items() if v is not None}
        return pretrained_model(name, pretrained, {**given, **family_kwargs})
    return build_model(name, input_size, output_size, hidden_size, **family_kwargs)
