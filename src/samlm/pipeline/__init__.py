"""The ``samlm train`` pipeline: options, models, features and the run itself."""

from .config import TrainConfig
from .run import train

__all__ = ["TrainConfig", "train"]
