"""Executors: Ray gives the local numbers, survives a killed worker and
fails with the task's own one-line error."""

import dataclasses
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from attacks import base as attacks_base
from wemem_eval import executor as executor_lib
from wemem_eval import model_store
from wemem_eval import model_training
from wemem_eval import report as report_lib
from wemem_eval import run as run_lib
from wemem_eval import run_test
from wemem_eval.tuning import tuner as tuner_lib
from wemem_eval.tuning import tuner_test
import wemem_tf
from wemem_tf import progress
from wemem_tf.data import splits as splits_lib


def test_local_executor_and_validation():
  local = executor_lib.make_executor("local")
  with progress.drawn_to(io.StringIO()) as stream:
    assert local.map(lambda shared, a, b: shared + a * b,
                     [(1, 2), (3, 4)], shared=10, desc="toy tasks") == [12, 22]
  assert "toy tasks" in stream.getvalue() and "2/2" in stream.getvalue()
  with pytest.raises(ValueError, match="unknown executor 'dask'"):
    executor_lib.make_executor("dask")
  with pytest.raises(ValueError, match="--ray_workers must be >= 1"):
    executor_lib.RayExecutor(num_workers=0)
  with pytest.raises(ValueError, match="--cpus_per_model must be > 0"):
    executor_lib.RayExecutor(cpus_per_model=0)


@pytest.fixture(scope="module")
def kill_marker(tmp_path_factory):
  """While this file exists, the next Ray task to start SIGKILLs its worker
  (and removes the file). Ray's workers see the path from their start, so
  a test arms the fault by creating the file, with no restart of Ray."""
  return tmp_path_factory.mktemp("fault") / "kill-once"


@pytest.fixture(scope="module")
def ray_executor(kill_marker):
  pytest.importorskip("ray")
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv(executor_lib.KILL_ONCE_ENV, str(kill_marker))
    executor = executor_lib.RayExecutor(num_workers=2)
    yield executor
    executor.shutdown()


def _ray_test_config() -> run_lib.RunConfig:
  # Shadows, victim and memorization chunks are the remote tasks; reference
  # models (rmia) would only add more of the same (and a minute).
  return run_lib.RunConfig(**{**run_test.TINY, "baselines": (),
                              "defenses": ("rsw",),
                              "attacks": ("conf", "gap")})


def _run_locally_with_one_thread(run_dir) -> dict:
  """The local run in a fresh process whose TensorFlow uses one thread, as
  a Ray task with one CPU does: float sums then happen in the same order
  (with more threads, Eigen may split a matmul's inner dimension and the
  last bits of the weights differ; the reports still agree)."""
  env = dict(os.environ, TF_NUM_INTRAOP_THREADS="1",
             TF_NUM_INTEROP_THREADS="1", TF_USE_LEGACY_KERAS="1")
  env.pop(executor_lib.KILL_ONCE_ENV, None)
  code = ("import sys; from wemem_eval import executor_test as t, run; "
          "run.run(t._ray_test_config(), sys.argv[1], log=lambda _: None)")
  subprocess.run([sys.executable, "-c", code, str(run_dir)], env=env,
                 check=True, cwd=os.path.dirname(os.path.dirname(
                     os.path.abspath(__file__))))
  with open(os.path.join(run_dir, "report.json"), encoding="utf-8") as f:
    return json.load(f)


@pytest.mark.slow  # about two minutes; the next test is its cheap part
def test_ray_run_equals_local_run_even_when_a_worker_is_killed(
    ray_executor, kill_marker, tmp_path):
  local = _run_locally_with_one_thread(tmp_path / "local")
  # The first task to start kills its worker (SIGKILL); Ray retries it.
  kill_marker.write_text("")
  remote = run_lib.run(_ray_test_config(), str(tmp_path / "ray"),
                       log=lambda _: None, executor=ray_executor)
  assert not kill_marker.exists()  # a worker was killed
  remote = json.loads(json.dumps(remote))
  assert (report_lib.without_timings(remote)
          == report_lib.without_timings(local))
  # The models the driver wrote to its store are the local run's, bit for
  # bit (the memorization chunks, the shadows and the victims all ran on
  # Ray's workers here).
  local_models = sorted(os.listdir(tmp_path / "local" / "models"))
  assert sorted(os.listdir(tmp_path / "ray" / "models")) == local_models
  for name in local_models:
    if name.endswith(".npz"):
      a = np.load(tmp_path / "local" / "models" / name)
      b = np.load(tmp_path / "ray" / "models" / name)
      assert all(np.array_equal(a[k], b[k]) for k in a.files), name


def test_ray_tasks_count_on_the_drivers_bar_in_submission_order(
    ray_executor):
  with progress.drawn_to(io.StringIO()) as stream:
    out = ray_executor.map(lambda shared, a: shared * a, [(1,), (2,), (3,)],
                           shared=5, desc="toy tasks")
  assert out == [5, 10, 15]
  assert "toy tasks" in stream.getvalue() and "3/3" in stream.getvalue()


def test_a_failing_task_fails_with_its_own_error(ray_executor):
  dataset = wemem_tf.data.load_dataset("digits")
  bad = splits_lib.ModelSplit(np.array([5000]), np.array([1]), np.array([2]))
  job = model_training.ModelJob(bad, 0, model_training.ModelRecipe())
  with pytest.raises(ValueError, match=r"^record indices must lie in "
                     r"\[0, 1797\)") as error:
    ray_executor.map(model_training.train_remotely, [(job, False, {})],
                     shared=dataset)
  assert "\n" not in str(error.value)


def test_memorization_chunks_on_ray_survive_a_killed_worker(
    ray_executor, kill_marker):
  dataset = wemem_tf.data.load_dataset("digits")
  pool = np.arange(600)
  kwargs = dict(num_models=8, epochs=2, chunk_size=3, seed=4)
  local = wemem_tf.memorization.estimate_dataset(dataset, pool, **kwargs)
  # The first chunk to start SIGKILLs its worker; Ray retries it in a fresh
  # worker, which must train the same models bit for bit.
  kill_marker.write_text("")
  remote = wemem_tf.memorization.estimate_dataset(
      dataset, pool, executor=ray_executor, **kwargs)
  assert not kill_marker.exists()  # a worker was killed
  assert local.details["path"] == "vectorized"
  for name in ("score", "included", "excluded"):
    np.testing.assert_array_equal(getattr(remote, name), getattr(local, name))


def test_a_tuning_trial_on_ray_measures_what_it_measures_here(
    ray_executor, tmp_path):
  """A trial's models (victim, rehearsal shadows and reference models) on
  Ray, with tuning's store that keeps only pre-trained models on disk."""
  dataset = wemem_tf.data.load_dataset("digits")
  n = len(dataset)
  scores = wemem_tf.memorization.MemScores(
      np.random.default_rng(1).uniform(0, 1, n), np.arange(n),
      dataset.fingerprint, np.full(n, -1), np.full(n, -1), method="test")
  choice = tuner_lib.DefenseChoice("swmr", dict(
      order="h2l", stride=1, width=20, tau=None, tau_share=0.2,
      lambda_mem=0.1))
  metrics = {}
  for name, executor in (("local", None), ("ray", ray_executor)):
    store = model_store.ModelStore(str(tmp_path / name),
                                   kinds=("pretrained",))
    setup = tuner_lib.TuningSetup(
        dataset, tuner_test.TINY_RECIPE, seed=0, attacks=("conf",),
        num_shadows=1,
        options=attacks_base.AttackOptions(max_epochs=2),
        scores_fn=lambda: scores, store=store, executor=executor)
    metrics[name] = dataclasses.replace(
        tuner_lib.evaluate_choice(setup, choice), defense_seconds=0.0)
    # Pre-trained models reached the disk; pruned ones stayed in memory.
    names = os.listdir(store.root)
    assert names and all(n.startswith("pretrained") for n in names)
  assert metrics["ray"] == metrics["local"]
