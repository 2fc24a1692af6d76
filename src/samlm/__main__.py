"""``python -m samlm`` (and ``torchrun -m samlm``): the ``samlm`` command line."""

from .cli import entry

entry()
