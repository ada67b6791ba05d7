"""Importing wemem_tf makes Keras 2 effective, or says how to fix it."""

import os
import subprocess
import sys


def _run(code):
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  return subprocess.run([sys.executable, "-c", code], capture_output=True,
                        text=True, env=env, timeout=300)


def test_import_first_gives_tf_keras():
  out = _run("import wemem_tf, tensorflow as tf, tf_keras;"
             "print(tf.keras.Model is tf_keras.Model, wemem_tf.keras is tf_keras)")
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip().endswith("True True")


def test_tensorflow_imported_first_still_works_while_keras_is_unloaded():
  # tf.keras is resolved lazily, on first access.
  out = _run("import tensorflow as tf, wemem_tf, tf_keras;"
             "print(tf.keras.Model is tf_keras.Model)")
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip().endswith("True")


def test_keras_3_or_2_loaded_first_fails_with_instructions():
  out = _run("import tensorflow as tf; tf.keras.Model; import wemem_tf")
  assert out.returncode != 0
  assert "import wemem_tf` before `import tensorflow`" in out.stderr
