"""Where model trainings run: here, one after another, or on Ray's workers.

An experiment plans its model trainings (`model_training.ModelJob`s: the
victim, the shadows, the reference models) and hands them to an executor's
`map`. `LocalExecutor` (the default) runs them in this process in order.
`RayExecutor` runs each as a Ray task with `cpus_per_model` CPUs and
`gpus_per_model` GPUs (fractions allowed), on a Ray started for the run
(`num_workers` × `cpus_per_model` CPUs) or on an existing cluster
(`address`, e.g. "auto"). Tasks get the dataset through Ray's object store
and return weights and facts, which the driver writes to its model store
(no shared file system needed; a killed driver resumes from that store). A
worker that dies is retried by Ray (`max_retries`); a task that raises
fails the call with that task's error, re-raised here as the same
exception type with its one-line message. Results come back in job order,
so nothing depends on which task finishes first.
"""

import dataclasses
import os
import signal
from typing import Any, Callable, List, Optional, Protocol, Sequence

from absl import logging

from wemem_tf import progress

# Test hook: a path that, when it exists as a task starts, is removed and
# the worker process is killed (SIGKILL), as an operator's `kill -9` would.
KILL_ONCE_ENV = "WEMEM_FAULT_KILL_WORKER_ONCE"
_WORKER_ENV = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}


class Executor(Protocol):
  """Runs `fn(shared, *args)` for each args tuple; results in order."""
  name: str
  remote: bool

  def map(self, fn: Callable[..., Any], items: Sequence[tuple],
          shared: Any = None, desc: str = "tasks") -> List[Any]:
    """`desc` names the tasks on the progress bar (`wemem_tf.progress`)."""
    ...


class LocalExecutor:
  """This process, one task after another (today's behaviour)."""
  name = "local"
  remote = False

  def map(self, fn, items, shared=None, desc="tasks"):
    return [fn(shared, *args)
            for args in progress.track(items, desc, unit="task")]

  def shutdown(self) -> None:
    pass


def _configure_worker(num_cpus: float) -> None:
  """TensorFlow's thread pools sized to the task's CPUs (once per worker,
  before TensorFlow's runtime starts; later calls are no-ops)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  threads = max(1, int(num_cpus))
  try:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
  except RuntimeError:
    pass  # the runtime already started in this worker: keep its pools


def _run_task(fn, num_cpus, shared, *args):
  """The body of every Ray task."""
  marker = os.environ.get(KILL_ONCE_ENV)
  if marker and os.path.exists(marker):
    os.remove(marker)
    os.kill(os.getpid(), signal.SIGKILL)
  _configure_worker(num_cpus)
  return fn(shared, *args)


@dataclasses.dataclass
class RayExecutor:
  """Model trainings as Ray tasks.

  Attributes:
    address: an existing cluster ("auto", "ray://host:10001", ...), or None
      to start a local Ray for this process.
    num_workers: tasks at once on a local Ray (its CPUs are num_workers ×
      cpus_per_model); ignored with `address`.
    cpus_per_model: CPUs per task (TensorFlow's threads follow).
    gpus_per_model: GPUs per task (a fraction shares a GPU).
    max_retries: retries of a task whose worker died.
  """
  address: Optional[str] = None
  num_workers: int = 2
  cpus_per_model: float = 1.0
  gpus_per_model: float = 0.0
  max_retries: int = 3
  name = "ray"
  remote = True

  def __post_init__(self):
    if self.num_workers < 1:
      raise ValueError(f"--ray_workers must be >= 1, got {self.num_workers}.")
    if not self.cpus_per_model > 0 or self.gpus_per_model < 0:
      raise ValueError("--cpus_per_model must be > 0 and --gpus_per_model "
                       f">= 0, got {self.cpus_per_model}, "
                       f"{self.gpus_per_model}.")
    if self.max_retries < 0:
      raise ValueError(f"max_retries must be >= 0, got {self.max_retries}.")
    self._started = False

  def _ray(self):
    try:
      import ray  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ValueError("--executor=ray needs Ray: pip install -e '.[ray]'."
                       ) from e
    if not ray.is_initialized():
      env = dict(_WORKER_ENV)
      if os.environ.get(KILL_ONCE_ENV):
        env[KILL_ONCE_ENV] = os.environ[KILL_ONCE_ENV]
      kwargs = dict(runtime_env={"env_vars": env}, include_dashboard=False,
                    logging_level="WARNING", log_to_driver=False)
      if self.address:
        ray.init(address=self.address, **kwargs)
      else:
        ray.init(num_cpus=self.num_workers * self.cpus_per_model,
                 num_gpus=None if self.gpus_per_model else 0, **kwargs)
      self._started = True
      logging.info("Ray: %s", ray.cluster_resources())
    return ray

  def map(self, fn, items, shared=None, desc="tasks"):
    if not items:
      return []
    ray = self._ray()
    task = ray.remote(_run_task).options(
        num_cpus=self.cpus_per_model, num_gpus=self.gpus_per_model,
        max_retries=self.max_retries, retry_exceptions=False)
    shared_ref = ray.put(shared)
    refs = [task.remote(fn, self.cpus_per_model, shared_ref, *args)
            for args in items]
    try:
      results = {}
      with progress.bar(len(refs), desc, unit="task") as bar:
        waiting = list(refs)
        while waiting:
          done, waiting = ray.wait(waiting, num_returns=1)
          # Fetched once, as it finishes: a failed task raises now.
          results.update(zip(done, ray.get(done)))
          bar.update(len(done))
      return [results[ref] for ref in refs]
    except ray.exceptions.RayTaskError as e:
      for ref in refs:
        try:
          ray.cancel(ref, force=True)
        except Exception:  # pylint: disable=broad-except  (already done)
          pass
      cause = e.cause if isinstance(e.cause, BaseException) else e
      message = " ".join(str(cause).split())
      try:
        error = type(cause)(message)
      except Exception:  # pylint: disable=broad-except  (odd constructors)
        error = RuntimeError(f"{type(cause).__name__}: {message}")
      raise error from None

  def shutdown(self) -> None:
    """Stops the local Ray this executor started (not a cluster)."""
    if self._started:
      import ray  # pylint: disable=g-import-not-at-top
      ray.shutdown()
      self._started = False


EXECUTORS = ("local", "ray")


def make_executor(name: str = "local", **ray_options) -> Any:
  """`LocalExecutor()` or `RayExecutor(**ray_options)` by name."""
  if name == "local":
    return LocalExecutor()
  if name == "ray":
    return RayExecutor(**ray_options)
  raise ValueError(f"unknown executor {name!r}; choose one of {EXECUTORS}.")
