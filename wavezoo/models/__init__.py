"""Model families of the zoo, one per module; importing this package registers them all."""

from wavezoo.models import rnn, sbc, ssm, transformer, twm, wave_rnn  # noqa: F401  (registration side effects)
from wavezoo.models.base import SequenceModel
from wavezoo.models.rnn import RecurrentBaseline
from wavezoo.models.transformer import CausalTransformer

__all__ = ["SequenceModel", "RecurrentBaseline", "CausalTransformer"]
