"""The one place samlm touches ``torch.optim.Optimizer``'s private machinery.

:class:`samlm.SAM` is a ``torch.optim.Optimizer`` (LR schedulers and GradScaler check
``isinstance``) whose ``param_groups``, ``state`` and ``defaults`` are the base
optimizer's, so it cannot run ``Optimizer.__init__`` (which builds new groups). What
that ``__init__`` sets besides those three is set here: the hook dictionaries behind
``register_step_pre_hook`` and its kin, and the step wrapper that runs those hooks.
``tests/optim/test_torch_compat.py`` fails when torch's ``__init__`` sets anything else.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

HOOK_DICTS = (
    "_optimizer_step_pre_hooks",
    "_optimizer_step_post_hooks",
    "_optimizer_state_dict_pre_hooks",
    "_optimizer_state_dict_post_hooks",
    "_optimizer_load_state_dict_pre_hooks",
    "_optimizer_load_state_dict_post_hooks",
)
# set by Optimizer.__init__ (or the step patch it calls), besides defaults/state/param_groups
OTHER_ATTRIBUTES = ("_zero_grad_profile_name", "_warned_capturable_if_run_uncaptured")


def init_optimizer_machinery(optimizer: torch.optim.Optimizer) -> None:
    """What ``torch.optim.Optimizer.__init__`` sets up, apart from the parameter groups."""
    for name in HOOK_DICTS:
        setattr(optimizer, name, OrderedDict())
    optimizer._patch_step_function()  # wraps the class's step to run the hooks (once)
    optimizer._warned_capturable_if_run_uncaptured = True
