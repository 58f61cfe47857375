"""clqa_jax.checkpoints: every checkpoint this codebase writes or reads.

* ``training``: the orbax training-checkpoint manager (``Checkpointer``, ``CheckpointConfig``,
  ``list_steps``, ``load_params``) the training loop saves and resumes with.
* ``exported``: the exported checkpoint format, its one writer (``write_exported``) and
  reader (``load_exported``); ``clqa export`` (``export.export_checkpoint``) and ``clqa import``
  (``import_hf.import_checkpoint``) both write it.
* ``kinds``: ``checkpoint_kind(path)`` tells a training run / checkpoints dir / step dir, an
  export, a Hugging Face mT5, an official CLASS and a T5X directory apart.
* ``hf_mt5`` reads Hugging Face mT5 and official CLASS directories (``load_hf_mt5``,
  ``load_class_checkpoint``, ``load_hf_mt5_as_unified``); ``hf_export.export_hf`` writes one.
* ``t5x_mt5`` reads T5X mT5 checkpoint directories (``load_t5x_mt5``,
  ``load_t5x_mt5_as_unified``); ``t5x_reader`` reads T5X's msgpack + tensorstore format.
* ``unified_params.load_unified_params`` loads a unified model's params from an export or a
  training run (teacher, init checkpoint).
This package imports nothing from ``clqa_jax.trainer`` or ``clqa_jax.losses``.
"""
from clqa_jax.checkpoints.export import export_checkpoint
from clqa_jax.checkpoints.exported import ExportFormatError, load_exported, write_exported
from clqa_jax.checkpoints.hf_export import export_hf
from clqa_jax.checkpoints.hf_mt5 import (CheckpointFormatError, config_from_hf,
                                         load_class_checkpoint, load_hf_mt5,
                                         load_hf_mt5_as_unified, read_hf_tensors)
from clqa_jax.checkpoints.import_hf import import_checkpoint
from clqa_jax.checkpoints.kinds import CheckpointKindError, checkpoint_kind
from clqa_jax.checkpoints.param_mapping import CheckpointMappingError
from clqa_jax.checkpoints.t5x_mt5 import load_t5x_mt5, load_t5x_mt5_as_unified

__all__ = ["CheckpointFormatError", "CheckpointKindError", "CheckpointMappingError",
           "ExportFormatError", "checkpoint_kind", "config_from_hf", "export_checkpoint",
           "export_hf", "import_checkpoint", "load_class_checkpoint", "load_exported",
           "load_hf_mt5", "load_hf_mt5_as_unified", "load_t5x_mt5", "load_t5x_mt5_as_unified",
           "read_hf_tensors", "write_exported"]
