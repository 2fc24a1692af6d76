"""The SAM optimizer family: SAM, ASAM, their schedules and the step helper."""

from .groups import head_parameters, sam_param_groups
from .sam import SAM
from .stats import SAMStats
from .step import sam_step

__all__ = ["SAM", "SAMStats", "head_parameters", "sam_param_groups", "sam_step"]
