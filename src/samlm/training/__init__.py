"""Training on the Hugging Face stack: ``SAMTrainer`` and its ``SAMConfig``."""

from .config import SAMConfig
from .generation import CausalLMTrainer, SAMCausalLMTrainer
from .trainer import SAMSeq2SeqTrainer, SAMTrainer

__all__ = ["CausalLMTrainer", "SAMCausalLMTrainer", "SAMConfig", "SAMSeq2SeqTrainer", "SAMTrainer"]
