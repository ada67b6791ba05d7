"""Flags of where model trainings run (`wemem_eval.executor`): run, attack,
audit, memscore, tune."""

import contextlib
from typing import Iterator

from absl import flags

from wemem_eval import executor as executor_lib

EXECUTOR = flags.DEFINE_enum(
    "executor", "local", list(executor_lib.EXECUTORS), "Where models train: "
    "local = this process, one after another; ray = Ray tasks (a local Ray "
    "with --ray_workers, or the cluster at --ray_address). Same numbers.")
RAY_ADDRESS = flags.DEFINE_string(
    "ray_address", None, "An existing Ray cluster to use (e.g. 'auto' on a "
    "node of it, or ray://HOST:10001); default: start a local Ray.")
RAY_WORKERS = flags.DEFINE_integer(
    "ray_workers", 2, "Models training at once on the local Ray "
    "(--executor=ray without --ray_address).")
CPUS_PER_MODEL = flags.DEFINE_float(
    "cpus_per_model", 1.0, "CPUs per model-training task (Ray); "
    "TensorFlow's thread pools follow.")
GPUS_PER_MODEL = flags.DEFINE_float(
    "gpus_per_model", 0.0, "GPUs per model-training task (Ray); a fraction "
    "puts several small models on one GPU.")


@contextlib.contextmanager
def executor_from_flags() -> Iterator[executor_lib.Executor]:
  """The executor the flags describe; a local Ray it started is stopped
  on exit."""
  executor = executor_lib.make_executor(
      EXECUTOR.value, **({} if EXECUTOR.value == "local" else dict(
          address=RAY_ADDRESS.value, num_workers=RAY_WORKERS.value,
          cpus_per_model=CPUS_PER_MODEL.value,
          gpus_per_model=GPUS_PER_MODEL.value)))
  try:
    yield executor
  finally:
    executor.shutdown()
