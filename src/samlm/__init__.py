"""samlm: sharpness-aware fine-tuning of language models.

``import samlm`` (the optimizer, :mod:`samlm.optim`) needs torch only; the command line,
the Trainer, the tasks and the comparison need ``pip install 'samlm[all]'``.
"""

from .optim import SAM, SAMStats, load_checkpoint, sam_param_groups, sam_step, save_checkpoint

__version__ = "0.1.0"
__all__ = [
    "SAM",
    "SAMStats",
    "__version__",
    "load_checkpoint",
    "sam_param_groups",
    "sam_step",
    "save_checkpoint",
]
