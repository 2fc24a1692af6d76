"""SAM inside TRL's ``SFTTrainer`` (supervised fine-tuning of causal LMs): the mixin that
makes ``SAMTrainer`` out of ``Trainer``, on ``SFTTrainer``. Packing, completion-only and
assistant-only losses are TRL's own; SAM takes each micro-batch as in ``SAMTrainer``.

TRL's token metrics (``mean_token_accuracy``, ``entropy``) are recorded at every loss
computation, so on a SAM step they average the pass at ``w`` and the pass at ``w + e``.
Needs ``pip install 'samlm[trl]'``.
"""

from __future__ import annotations

try:
    from trl import SFTTrainer
except ImportError as err:  # the extra is optional
    raise ImportError(f"samlm.training.sft needs TRL ({err}): pip install 'samlm[trl]'") from err

from .trainer import SAMTrainerMixin


class SAMSFTTrainer(SAMTrainerMixin, SFTTrainer):
    """``trl.SFTTrainer`` with SAM: pass ``sam_config`` as to :class:`SAMTrainer`."""
