"""The SAM optimizer family: SAM, ASAM, their schedules, the step helper and checkpoints."""

from .checkpoint import load_checkpoint, save_checkpoint
from .groups import head_parameters, sam_param_groups
from .sam import SAM
from .stats import SAMStats
from .step import sam_step

__all__ = [
    "SAM",
    "SAMStats",
    "head_parameters",
    "load_checkpoint",
    "sam_param_groups",
    "sam_step",
    "save_checkpoint",
]
