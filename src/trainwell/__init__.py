"""trainwell: train PyTorch networks with the modern production recipe, and measure what each
ingredient is worth."""

from .config import RunConfig, load_config
from .errors import CheckpointError, ConfigError, DataError, TrainwellError
from .inference import evaluate_run, predict_run
from .runner import RunResult, train
from .api import fit, load_weights, register_model, resume
from .lr_find import lr_find

__version__ = "0.1.0"
__all__ = [
    "RunConfig", "load_config", "train", "resume", "evaluate_run", "predict_run", "RunResult",
    "fit", "load_weights", "register_model", "lr_find",
    "TrainwellError", "ConfigError", "DataError", "CheckpointError",
]
