"""The SAM optimizer family, on torch alone.

:class:`SAM` (sam.py) is the ``torch.optim.Optimizer`` facade: options, parameter groups,
the versioned state dict. Its step runs on the engine (engine.py: the step's state and
primitives: perturb, restore, finish) in the order of a step plan (plan.py: which passes
run on which examples, the decision after the ascent, skip, settle), which
:func:`sam_step` (step.py: ascent fraction, m-sharpness, accumulation, GradScaler, DDP)
and ``samlm.training.SAMTrainer`` execute with their own passes. Around them: the rho
schedules (schedule.py), the variants GSAM, LookSAM, AE-SAM and Eigen-SAM (variants.py;
Eigen-SAM's Hessian-vector products and power iteration in hessian.py), the foreach
kernels (functional.py), collectives (comm.py), parameter groups (groups.py), checkpoints
(checkpoint.py) and per-step statistics (stats.py).
"""

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
