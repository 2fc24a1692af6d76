"""The SAM optimizer family: SAM, ASAM, their schedules and the step helper."""

from .groups import sam_param_groups
from .sam import SAM
from .stats import SAMStats
from .step import sam_step

__all__ = ["SAM", "SAMStats", "sam_param_groups", "sam_step"]
