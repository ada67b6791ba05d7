"""Run manifests record the machine a result was computed on."""

from wemem_tf import run_manifest

CPUINFO = """processor\t: 0
model name\t: Example CPU 9000
flags\t\t: fpu sse2 avx2 fma avx512f
processor\t: 1
model name\t: Example CPU 9000
flags\t\t: fpu sse2 avx2 fma avx512f
"""


def test_machine_reads_the_cpu_model_and_float_relevant_flags(tmp_path):
  path = tmp_path / "cpuinfo"
  path.write_text(CPUINFO)
  info = run_manifest.machine(str(path))
  assert info["cpu"] == "Example CPU 9000"
  assert info["isa"] == ["avx2", "fma", "avx512f"]
  assert info["cpus"] >= 1
  # Without /proc/cpuinfo (another OS) the rest is still recorded.
  missing = run_manifest.machine(str(tmp_path / "absent"))
  assert missing["isa"] == [] and missing["cpus"] >= 1


def test_the_manifest_holds_the_machine():
  manifest = run_manifest.build_manifest(3, {"a": 1}, "f" * 64, "wemem run")
  assert manifest["machine"] == run_manifest.machine()
  assert manifest["seed"] == 3
