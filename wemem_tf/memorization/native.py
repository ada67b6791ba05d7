"""Optional native kernels for the vectorized ensemble (built on first use).

TensorFlow's CPU kernels for sparse inputs (`tf.sparse.sparse_dense_matmul`,
`tf.sparse.segment_sum`) and its random number generators are single-threaded
and slow here (on Location they are no faster than the dense matmul, ~8 ns
per random number). Three small custom ops do what the ensemble needs:

* `row_sum(weights, cols, splits, idx)`: the first layer of K members for
  binary inputs given as CSR, as the sum of the weight rows of each record's
  active features; out[k, b] = sum_{f in row idx[k, b]} weights[k, f].
  Its gradient (`row_sum_grad`) scatters the output gradient back onto the
  rows and adds `decay * weights` (the L2 term), in one pass.
* `dropout_mask(like, seed, rate)`: a float mask of 0 and 1 / (1 - rate) from
  a counter-based hash (two rounds of a 32-bit integer finalizer), ~0.3 ns per
  element.

The C++ source below is compiled once per machine with the system's C++
compiler and TensorFlow's flags into a cache folder
($WEMEM_TF_CACHE, default ~/.cache/wemem_tf) and loaded with
`tf.load_op_library`. Where no compiler is available, the build fails, or
WEMEM_TF_NATIVE=0 is set, `load()` returns None and callers use plain
TensorFlow ops (same results up to float rounding; slower).
"""

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from typing import Optional

import tensorflow as tf

_SOURCE = r"""
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

using namespace tensorflow;  // NOLINT

namespace {

using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

// dst[0:H] += src[0:H] (no overlap).
inline void AddRow(float* __restrict dst, const float* __restrict src,
                   int64_t H) {
  for (int64_t h = 0; h < H; ++h) dst[h] += src[h];
}

// Checks shapes shared by both row-sum kernels.
Status CheckRowSumInputs(const Tensor& weights, const Tensor& cols,
                         const Tensor& splits, const Tensor& idx) {
  if (weights.dims() != 3)
    return errors::InvalidArgument("weights must be (K, F, H)");
  if (cols.dims() != 1 || splits.dims() != 1 || splits.dim_size(0) < 1)
    return errors::InvalidArgument("cols and splits must be vectors");
  if (idx.dims() != 2 || idx.dim_size(0) != weights.dim_size(0))
    return errors::InvalidArgument("idx must be (K, B) with K members");
  return OkStatus();
}

class RowSumOp : public OpKernel {
 public:
  explicit RowSumOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& weights = ctx->input(0);
    const Tensor& cols = ctx->input(1);
    const Tensor& splits = ctx->input(2);
    const Tensor& idx = ctx->input(3);
    OP_REQUIRES_OK(ctx, CheckRowSumInputs(weights, cols, splits, idx));
    const int64_t K = weights.dim_size(0), F = weights.dim_size(1),
                  H = weights.dim_size(2), B = idx.dim_size(1),
                  n = splits.dim_size(0) - 1, nnz = cols.dim_size(0);
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({K, B, H}), &out));
    const float* w = weights.flat<float>().data();
    const int32_t* c = cols.flat<int32_t>().data();
    const int64_t* s = splits.flat<int64_t>().data();
    const int32_t* id = idx.flat<int32_t>().data();
    float* o = out->flat<float>().data();
    std::atomic<bool> bad(false);
    auto work = [&](int64_t begin, int64_t end) {
      for (int64_t u = begin; u < end; ++u) {
        float* __restrict orow = o + u * H;
        std::memset(orow, 0, sizeof(float) * H);
        const int64_t r = id[u];
        if (r < 0 || r >= n || s[r] < 0 || s[r + 1] > nnz || s[r] > s[r + 1]) {
          bad = true;
          continue;
        }
        const float* __restrict wk = w + (u / B) * F * H;
        for (int64_t j = s[r]; j < s[r + 1]; ++j) {
          const int64_t f = c[j];
          if (f < 0 || f >= F) { bad = true; continue; }
          AddRow(orow, wk + f * H, H);
        }
      }
    };
    const int64_t cost = 60 * H;  // ~50 rows of H adds per record.
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
        K * B, cost, work);
    OP_REQUIRES(ctx, !bad, errors::InvalidArgument(
        "row_sum: a record index or a column lies out of range"));
  }
};

class RowSumGradOp : public OpKernel {
 public:
  explicit RowSumGradOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& grad = ctx->input(0);
    const Tensor& weights = ctx->input(1);
    const Tensor& cols = ctx->input(2);
    const Tensor& splits = ctx->input(3);
    const Tensor& idx = ctx->input(4);
    const Tensor& decay_t = ctx->input(5);
    OP_REQUIRES_OK(ctx, CheckRowSumInputs(weights, cols, splits, idx));
    const int64_t K = weights.dim_size(0), F = weights.dim_size(1),
                  H = weights.dim_size(2), B = idx.dim_size(1),
                  n = splits.dim_size(0) - 1, nnz = cols.dim_size(0);
    OP_REQUIRES(ctx, grad.dims() == 3 && grad.dim_size(0) == K &&
                     grad.dim_size(1) == B && grad.dim_size(2) == H,
                errors::InvalidArgument("grad must be (K, B, H)"));
    OP_REQUIRES(ctx, decay_t.NumElements() == 1,
                errors::InvalidArgument("decay must be a scalar"));
    const float decay = decay_t.flat<float>()(0);
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, weights.shape(), &out));
    const float* g = grad.flat<float>().data();
    const float* w = weights.flat<float>().data();
    const int32_t* c = cols.flat<int32_t>().data();
    const int64_t* s = splits.flat<int64_t>().data();
    const int32_t* id = idx.flat<int32_t>().data();
    float* o = out->flat<float>().data();
    std::atomic<bool> bad(false);
    // Members are independent: one member per work unit, no races.
    auto work = [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        float* __restrict ok = o + k * F * H;
        const float* __restrict wk = w + k * F * H;
        for (int64_t i = 0; i < F * H; ++i) ok[i] = decay * wk[i];
        for (int64_t b = 0; b < B; ++b) {
          const int64_t r = id[k * B + b];
          if (r < 0 || r >= n || s[r] < 0 || s[r + 1] > nnz ||
              s[r] > s[r + 1]) {
            bad = true;
            continue;
          }
          const float* grow = g + (k * B + b) * H;
          for (int64_t j = s[r]; j < s[r + 1]; ++j) {
            const int64_t f = c[j];
            if (f < 0 || f >= F) { bad = true; continue; }
            AddRow(ok + f * H, grow, H);
          }
        }
      }
    };
    const int64_t cost = F * H + B * 60 * H;
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
        K, cost, work);
    OP_REQUIRES(ctx, !bad, errors::InvalidArgument(
        "row_sum_grad: a record index or a column lies out of range"));
  }
};

inline uint32_t Mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

class DropoutMaskOp : public OpKernel {
 public:
  explicit DropoutMaskOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("rate", &rate_));
    OP_REQUIRES(c, rate_ >= 0.f && rate_ < 1.f,
                errors::InvalidArgument("rate must lie in [0, 1)"));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& like = ctx->input(0);
    const Tensor& seed_t = ctx->input(1);
    OP_REQUIRES(ctx, seed_t.NumElements() == 1,
                errors::InvalidArgument("seed must be a scalar"));
    const uint64_t seed = static_cast<uint64_t>(seed_t.flat<int64_t>()(0));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, like.shape(), &out));
    float* o = out->flat<float>().data();
    const int64_t total = like.NumElements();
    const uint32_t k1 = Mix32(static_cast<uint32_t>(seed) ^ 0x9e3779b9U);
    const uint32_t k2 = Mix32(static_cast<uint32_t>(seed >> 32) + k1);
    // keep iff the 24-bit uniform u >= rate * 2^24.
    const uint32_t threshold =
        static_cast<uint32_t>(static_cast<double>(rate_) * 16777216.0 + 0.5);
    const float scale = 1.f / (1.f - rate_);
    // Work units are blocks of 4096 elements (a vectorizable inner loop).
    constexpr int64_t kBlock = 4096;
    auto work = [&](int64_t begin, int64_t end) {
      for (int64_t blk = begin; blk < end; ++blk) {
        const int64_t lo = blk * kBlock;
        const int64_t hi = std::min(total, lo + kBlock);
        float* __restrict ob = o + lo;
        const uint32_t base = static_cast<uint32_t>(lo);
        for (int64_t i = 0; i < hi - lo; ++i) {
          const uint32_t h =
              Mix32(Mix32((base + static_cast<uint32_t>(i)) ^ k1) + k2);
          ob[i] = (h >> 8) >= threshold ? scale : 0.f;
        }
      }
    };
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
        (total + kBlock - 1) / kBlock, kBlock * 8, work);
  }

 private:
  float rate_;
};

}  // namespace

REGISTER_OP("WememRowSum")
    .Input("weights: float")
    .Input("cols: int32")
    .Input("splits: int64")
    .Input("idx: int32")
    .Output("out: float")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle w, idx;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &w));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 2, &idx));
      c->set_output(0, c->MakeShape({c->Dim(w, 0), c->Dim(idx, 1),
                                     c->Dim(w, 2)}));
      return OkStatus();
    });

REGISTER_OP("WememRowSumGrad")
    .Input("grad: float")
    .Input("weights: float")
    .Input("cols: int32")
    .Input("splits: int64")
    .Input("idx: int32")
    .Input("decay: float")
    .Output("dweights: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      return OkStatus();
    });

REGISTER_OP("WememDropoutMask")
    .Input("like: float")
    .Input("seed: int64")
    .Attr("rate: float")
    .Output("mask: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      return OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("WememRowSum").Device(DEVICE_CPU), RowSumOp);
REGISTER_KERNEL_BUILDER(Name("WememRowSumGrad").Device(DEVICE_CPU),
                        RowSumGradOp);
REGISTER_KERNEL_BUILDER(Name("WememDropoutMask").Device(DEVICE_CPU),
                        DropoutMaskOp);
"""

_lock = threading.Lock()
_module = None
_tried = False
_error = None


def _cpu_tag() -> str:
  """Identifies the instruction set the build used (-march=native)."""
  flags = ""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith(("flags", "model name")):
          flags += line
  except OSError:
    flags = platform.processor()
  return flags


def cache_dir() -> str:
  return os.environ.get("WEMEM_TF_CACHE") or os.path.join(
      os.path.expanduser("~"), ".cache", "wemem_tf")


def _library_path() -> str:
  key = hashlib.sha256("\n".join([
      _SOURCE, tf.__version__, " ".join(tf.sysconfig.get_compile_flags()),
      " ".join(tf.sysconfig.get_link_flags()), _cpu_tag()]).encode())
  return os.path.join(cache_dir(), f"wemem_kernels_{key.hexdigest()[:16]}.so")


def _build(path: str) -> None:
  compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which(
      "c++")
  if not compiler:
    raise RuntimeError("no C++ compiler (g++) found")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with tempfile.TemporaryDirectory(dir=os.path.dirname(path)) as tmp:
    src = os.path.join(tmp, "kernels.cc")
    with open(src, "w") as f:
      f.write(_SOURCE)
    out = os.path.join(tmp, "kernels.so")
    cmd = [compiler, "-shared", "-fPIC", "-O3", "-march=native",
           "-ffp-contract=off", src, "-o", out,
           *tf.sysconfig.get_compile_flags(), *tf.sysconfig.get_link_flags()]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
      raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    os.replace(out, path)  # Atomic: concurrent builders are harmless.


def load():
  """The compiled op module, or None (with one warning) when unavailable."""
  global _module, _tried, _error
  with _lock:
    if _tried:
      return _module
    _tried = True
    if os.environ.get("WEMEM_TF_NATIVE", "1") == "0":
      _error = "disabled by WEMEM_TF_NATIVE=0"
      return None
    try:
      path = _library_path()
      if not os.path.isfile(path):
        _build(path)
      _module = tf.load_op_library(path)
    except Exception as e:  # pylint: disable=broad-except
      _error = str(e)
      warnings.warn(
          "wemem_tf: native ensemble kernels unavailable, using plain "
          f"TensorFlow ops (slower): {e}", RuntimeWarning, stacklevel=2)
      _module = None
    return _module


def unavailable_reason() -> Optional[str]:
  """Why `load()` returned None, or None when it did not (or was not run)."""
  return _error


def row_sum(module, weights: tf.Tensor, cols: tf.Tensor, splits: tf.Tensor,
            idx: tf.Tensor, decay: tf.Tensor) -> tf.Tensor:
  """out (K, B, H) = sum of weights[k, f] over the ones f of record idx[k, b].

  The gradient with respect to `weights` includes `decay * weights` (the L2
  term of the optimizer), so callers must not add it again.
  """

  @tf.custom_gradient
  def forward(w):
    out = module.wemem_row_sum(w, cols, splits, idx)

    def grad(dy):
      return module.wemem_row_sum_grad(dy, w, cols, splits, idx, decay)

    return out, grad

  return forward(weights)
