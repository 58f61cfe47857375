"""What a checkpoint directory holds, told from its files: the one place that tells kinds apart.

    kind = checkpoint_kind(path)          # one of KINDS, else CheckpointKindError
    where = locate_training(path, kind)   # training kinds: checkpoints dir, step, run dir
"""
from __future__ import annotations

import dataclasses

from clqa_jax import fileio
from clqa_jax.checkpoints import exported
from clqa_jax.checkpoints import hf_mt5
from clqa_jax.checkpoints import t5x_reader
from clqa_jax.checkpoints import training

KINDS = {
    "exported": f"an exported checkpoint (clqa export, clqa import): {exported.MANIFEST}",
    "training_run": f"a training run directory (MODEL_DIR): {training.CHECKPOINTS_SUBDIR}/ "
                    "with numbered step directories",
    "training_checkpoints": "a training run's checkpoints directory: numbered step directories "
                            f"holding {training.PARAMS}/",
    "training_step": f"one step directory of a training run: {training.PARAMS}/",
    "hf_mt5": "a Hugging Face mT5 directory: config.json and model.safetensors or "
              "pytorch_model.bin",
    "class": "the official CLASS layout: a Hugging Face mT5 directory with the retriever head "
             "tensors (encoder.block.R.layer.0.SelfAttention.query_proj.weight, ...)",
    "t5x": f"a T5X checkpoint directory (checkpoint_N): a '{t5x_reader.CHECKPOINT_FILE}' "
           "msgpack file and target.* arrays, no orbax metadata",
}
TRAINING_KINDS = ("training_run", "training_checkpoints", "training_step")
# The kinds ``clqa import`` reads, and the source argument that imports each as a unified model.
IMPORT_AS_UNIFIED = {"hf_mt5": "hf_mt5 --unified", "class": "class", "t5x": "t5x --unified"}


class CheckpointKindError(ValueError):
  """A directory that is no checkpoint this codebase reads, or one that does not fit the model."""


def checkpoint_kind(path: str, role: str = "checkpoint") -> str:
  """The kind (a key of ``KINDS``) of the checkpoint directory ``path``.

  Raises:
    CheckpointKindError: ``path`` is missing or none of ``KINDS`` (the message lists what it
      found and what each kind holds), or holds the orbax layout older ``clqa import`` wrote.
    exported.ExportFormatError: a manifest of another format or a newer version.
  """
  path = path.rstrip("/")
  if not fileio.isdir(path):
    raise CheckpointKindError(f"{role} {path!r} does not exist or is not a directory")
  names = [n for n in fileio.listdir(path) if not fileio.is_tmp_name(n)]
  if exported.MANIFEST in names:
    exported.read_manifest(path)  # a typed error naming the field when it is not ours
    return "exported"
  if training.is_step_dir(path):
    return "training_step"
  run_checkpoints = training.run_checkpoints_dir(path)
  if fileio.isdir(run_checkpoints) and training.list_steps(run_checkpoints):
    return "training_run"
  if "config.json" in names:
    if any(n in names for n in hf_mt5.HF_WEIGHT_FILES):
      return "class" if hf_mt5.has_class_retriever_head(path) else "hf_mt5"
    if any(n.isdigit() for n in names):
      raise CheckpointKindError(
          f"{role} {path!r} holds orbax steps and config.json, the layout older versions of "
          "`clqa import` wrote; import the source again (clqa import writes an exported "
          "checkpoint now)")
  if training.list_steps(path):
    return "training_checkpoints"
  if t5x_reader.is_t5x_checkpoint(names):
    return "t5x"
  shown = ", ".join(names[:12]) + (f", ... ({len(names)} entries)" if len(names) > 12 else "")
  expected = "; ".join(f"{kind}: {what}" for kind, what in KINDS.items())
  raise CheckpointKindError(f"{role} {path!r} is no checkpoint: found [{shown or 'nothing'}]; "
                            f"expected one of: {expected}")


@dataclasses.dataclass(frozen=True)
class TrainingLocation:
  """Where a training checkpoint lives: its orbax directory, the step a path names (None: any)
  and the run directory (``model_config.json``, ``config.gin``) when the layout tells it."""
  checkpoints_dir: str
  step: int | None
  run_dir: str | None


def import_hint(kind: str, path: str) -> str:
  """The command that turns a checkpoint of an importable kind into a unified export."""
  return f"clqa import {IMPORT_AS_UNIFIED[kind]} --src {path} --out DIR"


def locate_training(path: str, kind: str) -> TrainingLocation:
  """The ``TrainingLocation`` of a path of one of ``TRAINING_KINDS``."""
  path = fileio.abspath(path.rstrip("/"))
  if kind == "training_run":
    return TrainingLocation(training.run_checkpoints_dir(path), None, path)
  if kind == "training_step":
    checkpoints_dir = fileio.dirname(path)
    return TrainingLocation(checkpoints_dir, int(fileio.basename(path)),
                            _run_dir_of(checkpoints_dir))
  if kind == "training_checkpoints":
    return TrainingLocation(path, None, _run_dir_of(path))
  raise ValueError(f"{path}: kind {kind!r} is not one of {TRAINING_KINDS}")


def _run_dir_of(checkpoints_dir: str) -> str | None:
  if fileio.basename(checkpoints_dir) == training.CHECKPOINTS_SUBDIR:
    return fileio.dirname(checkpoints_dir)
  return None
