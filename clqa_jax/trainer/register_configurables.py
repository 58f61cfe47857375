"""Imports every module whose gin configurables the run files name (import for side effects)."""
# pylint: disable=unused-import
from clqa_jax.checkpoints import training  # noqa: F401
from clqa_jax.losses import objectives  # noqa: F401
from clqa_jax.losses import teacher  # noqa: F401
from clqa_jax.partitioning import mesh  # noqa: F401
from clqa_jax.partitioning import partitioner  # noqa: F401
from clqa_jax.trainer import loop  # noqa: F401
from clqa_jax.trainer import optimizer  # noqa: F401
from clqa_jax.trainer import state_init  # noqa: F401
from clqa_jax.trainer import synthetic_data  # noqa: F401

from clqa_jax.models import unified  # noqa: F401
