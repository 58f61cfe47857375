"""The metric package imports no JAX (nor TensorFlow): ``clqa metrics`` stays light, and the
metric code cannot depend on the model."""
import os
import pkgutil
import subprocess
import sys

import clqa_jax.eval


def test_eval_modules_import_neither_jax_nor_tensorflow():
  modules = sorted(f"clqa_jax.eval.{m.name}" for m in pkgutil.iter_modules(clqa_jax.eval.__path__))
  assert "clqa_jax.eval.xor_retrieve" in modules and len(modules) >= 10
  code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
          + "heavy = sorted(m for m in ('jax', 'flax', 'tensorflow') if m in sys.modules)\n"
          + "print(','.join(heavy))\n")
  env = dict(os.environ)
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       check=True, timeout=300)
  assert out.stdout.strip() == "", f"clqa_jax.eval imports {out.stdout.strip()}"
