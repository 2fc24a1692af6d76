"""samlm: sharpness-aware fine-tuning of language models."""

from .optim import SAM, SAMStats, sam_param_groups, sam_step

__version__ = "0.1.0"
__all__ = ["SAM", "SAMStats", "__version__", "sam_param_groups", "sam_step"]
