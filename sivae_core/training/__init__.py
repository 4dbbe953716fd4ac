"""Training: the one loop (:class:`Trainer`), its samplers, vectorized ensembles, precision, callbacks,
checkpoints and data-parallel processes."""

from .callbacks import StopTraining, time_budget
from .checkpoint import UnsafeCheckpointError, load_checkpoint_file, save_checkpoint_file
from .distributed import Shard, init_distributed
from .ensemble import Ensemble
from .precision import AMP_CHOICES, autocast_dtype, cpu_bf16_is_fast
from .samplers import Sampler, TensorSampler
from .trainer import NonFiniteLossError, TrainConfig, Trainer

__all__ = ["Trainer", "TrainConfig", "NonFiniteLossError", "Sampler", "TensorSampler", "Ensemble", "Shard",
           "init_distributed", "StopTraining", "time_budget", "UnsafeCheckpointError", "save_checkpoint_file",
           "load_checkpoint_file", "AMP_CHOICES", "autocast_dtype", "cpu_bf16_is_fast"]
