"""Training on the Hugging Face stack: ``SAMTrainer`` and its ``SAMConfig``."""

from .config import SAMConfig
from .trainer import SAMSeq2SeqTrainer, SAMTrainer

__all__ = ["SAMConfig", "SAMSeq2SeqTrainer", "SAMTrainer"]
