"""Optional native kernels for the vectorized ensemble (built on first use).

TensorFlow's CPU kernels for sparse inputs (`tf.sparse.sparse_dense_matmul`,
`tf.sparse.segment_sum`) are single-threaded and, on Location, no faster than
the dense matmul; its random number generators cost ~8 ns per number here;
and its Adam needs the L2 term as a separate pass. These custom CPU ops do
what the ensemble needs (K members, binary inputs as CSR, batch positions idx
(K, B)):

* `WememRowSumReluDropout`: the first layer, h1 = dropout(relu(x @ W + b)),
  with x @ W computed as the sum of the weight rows of each record's active
  features (the record's ~54 ones of 446 on Location), accumulated in
  registers.
* `WememRowSumReluDropoutAdam`: that layer's backward pass and Adam step in
  one kernel: from dh1 it forms, feature row by feature row, the gradient
  decay * W + X^T dpre (and the bias gradient) and applies Adam at once; the
  gradient is never stored.
* `WememAdam`: Keras' Adam with the L2 term, one pass, for the other layers.
* `WememDropoutMask`: a float mask of 0 and 1 / (1 - rate) from a counter-
  based hash (two rounds of a 32-bit integer finalizer), ~0.6 ns/element.
* `WememRowSum` / `WememRowSumGrad`: the plain first-layer product and its
  gradient (`row_sum`, differentiable).
* `WememMlpEpoch`: a whole epoch of K plain-MLP members (sparse binary
  first layer, then Dense layers): each member runs all its steps back to
  back, one member a task on TensorFlow's CPU threads. A step is what the
  ops above and TensorFlow's matmuls do in the per-step graph (the same
  dropout masks, Adam step counts and L2 terms); the dense layers' products
  use Eigen's matrix product.

Adam here is Keras' (`keras.optimizers.Adam`: epsilon 1e-7 outside the
square root, bias correction folded into the step size); tests check that
members follow `TrainingLoop` step for step.

The C++ source below is compiled once per machine with the system's C++
compiler and TensorFlow's flags into a cache folder ($WEMEM_TF_CACHE,
default ~/.cache/wemem_tf; ~35 s of CPU) and loaded with
`tf.load_op_library`.
Where no compiler is available, the build fails, or WEMEM_TF_NATIVE=0 is
set, `load()` returns None (warning once) and callers use plain TensorFlow
ops: the same results up to float rounding, about 2-3x slower.
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
#define EIGEN_USE_THREADS

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/kernels/training_op_helpers.h"
#include "Eigen/Core"

using namespace tensorflow;  // NOLINT
typedef Eigen::ThreadPoolDevice CPUDevice;

namespace {

using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

// 16 floats; unaligned access allowed. Compiles to whatever SIMD the
// machine has (-march=native).
typedef float V16 __attribute__((vector_size(64), aligned(4)));
constexpr int64_t kBlock = 64;  // Floats accumulated in registers at once.

inline V16 Load(const float* p) { return *reinterpret_cast<const V16*>(p); }
inline void Store(float* p, V16 v) { *reinterpret_cast<V16*>(p) = v; }

// out[0:H] = scale * init[0:H] (or 0 when init is null) + sum of the rows
// base + list[i] * stride, i < count.
template <typename Index>
inline void SumRows(float* __restrict out, const float* __restrict init,
                    float scale, const float* __restrict base,
                    const Index* __restrict list, int64_t count,
                    int64_t stride, int64_t H) {
  int64_t h0 = 0;
  const V16 vs = {scale, scale, scale, scale, scale, scale, scale, scale,
                  scale, scale, scale, scale, scale, scale, scale, scale};
  for (; h0 + kBlock <= H; h0 += kBlock) {
    V16 a0 = {}, a1 = {}, a2 = {}, a3 = {};
    if (init != nullptr) {
      a0 = vs * Load(init + h0);
      a1 = vs * Load(init + h0 + 16);
      a2 = vs * Load(init + h0 + 32);
      a3 = vs * Load(init + h0 + 48);
    }
    for (int64_t i = 0; i < count; ++i) {
      const float* src = base + static_cast<int64_t>(list[i]) * stride + h0;
      a0 += Load(src);
      a1 += Load(src + 16);
      a2 += Load(src + 32);
      a3 += Load(src + 48);
    }
    Store(out + h0, a0);
    Store(out + h0 + 16, a1);
    Store(out + h0 + 32, a2);
    Store(out + h0 + 48, a3);
  }
  for (; h0 < H; ++h0) {  // Tail (H not a multiple of kBlock).
    float a = init != nullptr ? scale * init[h0] : 0.f;
    for (int64_t i = 0; i < count; ++i)
      a += base[static_cast<int64_t>(list[i]) * stride + h0];
    out[h0] = a;
  }
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

// True when record r's CSR row and its columns are valid.
inline bool ValidRow(int64_t r, int64_t n, const int64_t* s, int64_t nnz,
                     const int32_t* c, int64_t F) {
  if (r < 0 || r >= n || s[r] < 0 || s[r + 1] > nnz || s[r] > s[r + 1])
    return false;
  for (int64_t j = s[r]; j < s[r + 1]; ++j)
    if (c[j] < 0 || c[j] >= F) return false;
  return true;
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
    auto work = [&, K, F, H, B, n, nnz, w, c, s, id, o](int64_t begin,
                                                         int64_t end) {
      for (int64_t u = begin; u < end; ++u) {
        const int64_t r = id[u];
        if (!ValidRow(r, n, s, nnz, c, F)) {
          bad = true;
          std::memset(o + u * H, 0, sizeof(float) * H);
          continue;
        }
        SumRows(o + u * H, nullptr, 0.f, w + (u / B) * F * H, c + s[r],
                s[r + 1] - s[r], H, H);
      }
    };
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
        K * B, 50 * H, work);
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
    // One member per work unit (no races). For member k the batch's ones are
    // bucketed by feature (counting sort), then each output row is
    // decay * weights[k, f] + the sum of the gradient rows of the records
    // that have feature f, accumulated in registers.
    auto work = [&, K, F, H, B, n, nnz, g, w, c, s, id, o, decay](
                    int64_t begin, int64_t end) {
      std::vector<int32_t> start(F + 1), fill(F), rows;
      for (int64_t k = begin; k < end; ++k) {
        const int32_t* ik = id + k * B;
        std::fill(start.begin(), start.end(), 0);
        bool ok = true;
        for (int64_t b = 0; b < B; ++b) {
          const int64_t r = ik[b];
          if (!ValidRow(r, n, s, nnz, c, F)) { ok = false; break; }
          for (int64_t j = s[r]; j < s[r + 1]; ++j) ++start[c[j] + 1];
        }
        if (!ok) {
          bad = true;
          std::memset(o + k * F * H, 0, sizeof(float) * F * H);
          continue;
        }
        for (int64_t f = 0; f < F; ++f) start[f + 1] += start[f];
        rows.resize(start[F]);
        std::copy(start.begin(), start.begin() + F, fill.begin());
        for (int64_t b = 0; b < B; ++b) {
          const int64_t r = ik[b];
          for (int64_t j = s[r]; j < s[r + 1]; ++j)
            rows[fill[c[j]]++] = static_cast<int32_t>(b);
        }
        const float* gk = g + k * B * H;
        const float* wk = w + k * F * H;
        float* ok_out = o + k * F * H;
        for (int64_t f = 0; f < F; ++f) {
          SumRows(ok_out + f * H, wk + f * H, decay, gk,
                  rows.data() + start[f], start[f + 1] - start[f], H, H);
        }
      }
    };
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
        K, F * H + B * 50 * H, work);
    OP_REQUIRES(ctx, !bad, errors::InvalidArgument(
        "row_sum_grad: a record index or a column lies out of range"));
  }
};


// Keras' Adam (epsilon outside the square root) on n contiguous floats, with
// the gradient g given. alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t).
struct AdamCoefs {
  float alpha, one_minus_b1, one_minus_b2, epsilon;
};

inline void AdamUpdate(float* __restrict var, float* __restrict m,
                       float* __restrict v, const float* __restrict g,
                       int64_t n, const AdamCoefs& a) {
  const float alpha = a.alpha, c1 = a.one_minus_b1, c2 = a.one_minus_b2,
              eps = a.epsilon;
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float mi = m[i] + (gi - m[i]) * c1;
    const float vi = v[i] + (gi * gi - v[i]) * c2;
    m[i] = mi;
    v[i] = vi;
    var[i] -= (mi * alpha) / (std::sqrt(vi) + eps);
  }
}

Status ReadAdamInputs(OpKernelContext* ctx, int first_scalar, float beta1,
                      float beta2, float epsilon, AdamCoefs* coefs,
                      float* decay) {
  float vals[4];
  for (int i = 0; i < 4; ++i) {
    const Tensor& t = ctx->input(first_scalar + i);
    if (t.NumElements() != 1 || t.dtype() != DT_FLOAT)
      return errors::InvalidArgument("lr, beta1_power, beta2_power and decay "
                                     "must be float scalars");
    vals[i] = t.flat<float>()(0);
  }
  const float lr = vals[0], b1p = vals[1], b2p = vals[2];
  coefs->alpha = lr * std::sqrt(1.f - b2p) / (1.f - b1p);
  coefs->one_minus_b1 = 1.f - beta1;
  coefs->one_minus_b2 = 1.f - beta2;
  coefs->epsilon = epsilon;
  *decay = vals[3];
  return OkStatus();
}

class AdamOpBase : public OpKernel {
 public:
  explicit AdamOpBase(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("beta1", &beta1_));
    OP_REQUIRES_OK(c, c->GetAttr("beta2", &beta2_));
    OP_REQUIRES_OK(c, c->GetAttr("epsilon", &epsilon_));
  }

 protected:
  // The tensors of variables var, m, v at inputs first..first+2 (locked by
  // the caller).
  Status Variables(OpKernelContext* ctx, int first, Tensor* var, Tensor* m,
                   Tensor* v) {
    TF_RETURN_IF_ERROR(GetInputTensorFromVariable<CPUDevice, float>(
        ctx, first, true, false, var));
    TF_RETURN_IF_ERROR(GetInputTensorFromVariable<CPUDevice, float>(
        ctx, first + 1, true, false, m));
    TF_RETURN_IF_ERROR(GetInputTensorFromVariable<CPUDevice, float>(
        ctx, first + 2, true, false, v));
    if (!var->IsInitialized() || !m->IsInitialized() || !v->IsInitialized())
      return errors::FailedPrecondition("uninitialized variable");
    if (var->shape() != m->shape() || var->shape() != v->shape())
      return errors::InvalidArgument("var, m and v differ in shape");
    return OkStatus();
  }
  float beta1_, beta2_, epsilon_;
};

// var, m, v <- Adam(var, m, v, grad + decay * var), in one pass.
class AdamOp : public AdamOpBase {
 public:
  using AdamOpBase::AdamOpBase;
  void Compute(OpKernelContext* ctx) override {
    auto locks = MaybeLockVariableInputMutexesInOrder<CPUDevice, float>(
        ctx, true, false, {0, 1, 2});
    Tensor var, m, v;
    OP_REQUIRES_OK(ctx, Variables(ctx, 0, &var, &m, &v));
    const Tensor& grad = ctx->input(3);
    OP_REQUIRES(ctx, grad.shape() == var.shape(),
                errors::InvalidArgument("grad and var differ in shape"));
    AdamCoefs coefs;
    float decay;
    OP_REQUIRES_OK(ctx, ReadAdamInputs(ctx, 4, beta1_, beta2_, epsilon_,
                                       &coefs, &decay));
    float* pw = var.flat<float>().data();
    float* pm = m.flat<float>().data();
    float* pv = v.flat<float>().data();
    const float* pg = grad.flat<float>().data();
    const int64_t total = var.NumElements();
    constexpr int64_t kChunk = 1024;
    auto work = [=](int64_t begin, int64_t end) {
      float g[kChunk];
      for (int64_t blk = begin; blk < end; ++blk) {
        const int64_t lo = blk * kChunk;
        const int64_t len = std::min(total, lo + kChunk) - lo;
        const float d = decay;
        for (int64_t i = 0; i < len; ++i) g[i] = pg[lo + i] + d * pw[lo + i];
        AdamUpdate(pw + lo, pm + lo, pv + lo, g, len, coefs);
      }
    };
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
        (total + kChunk - 1) / kChunk, kChunk * 12, work);
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
    // Keep iff the 24-bit uniform u >= rate * 2^24.
    const uint32_t threshold =
        static_cast<uint32_t>(static_cast<double>(rate_) * 16777216.0 + 0.5);
    const float scale = 1.f / (1.f - rate_);
    constexpr int64_t kChunk = 4096;
    auto work = [o, total, k1, k2, threshold, scale](int64_t begin,
                                                     int64_t end) {
      for (int64_t blk = begin; blk < end; ++blk) {
        const int64_t lo = blk * kChunk;
        const int64_t len = std::min(total, lo + kChunk) - lo;
        float* __restrict ob = o + lo;
        // Locals (not lambda members) so that the loop vectorizes.
        const uint32_t base = static_cast<uint32_t>(lo), key1 = k1, key2 = k2,
                       thresh = threshold;
        const float keep = scale;
        for (int64_t i = 0; i < len; ++i) {
          const uint32_t h =
              Mix32(Mix32((base + static_cast<uint32_t>(i)) ^ key1) + key2);
          ob[i] = static_cast<float>((h >> 8) >= thresh) * keep;
        }
      }
    };
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
        (total + kChunk - 1) / kChunk, kChunk * 8, work);
  }

 private:
  float rate_;
};


// The dropout keep factor of element i (same stream as DropoutMaskOp).
struct DropoutStream {
  uint32_t k1, k2, threshold;
  float scale;
  DropoutStream(uint64_t seed, float rate) {
    k1 = Mix32(static_cast<uint32_t>(seed) ^ 0x9e3779b9U);
    k2 = Mix32(static_cast<uint32_t>(seed >> 32) + k1);
    threshold =
        static_cast<uint32_t>(static_cast<double>(rate) * 16777216.0 + 0.5);
    scale = 1.f / (1.f - rate);
  }
};

// row[0:H] = dropout(relu(row + bias)) (no bias when it is null), the keep
// factor of element h being the one DropoutMaskOp draws for flat index
// base + h (no dropout when use_dropout is false).
inline void BiasReluDropoutRow(float* __restrict row,
                               const float* __restrict bias, int64_t H,
                               uint32_t base, const DropoutStream& drop,
                               bool use_dropout) {
  const uint32_t key1 = drop.k1, key2 = drop.k2, thresh = drop.threshold;
  const float keep = drop.scale;
  if (use_dropout) {
    for (int64_t h = 0; h < H; ++h) {
      const uint32_t hv =
          Mix32(Mix32((base + static_cast<uint32_t>(h)) ^ key1) + key2);
      const float m = static_cast<float>((hv >> 8) >= thresh) * keep;
      const float x = bias != nullptr ? row[h] + bias[h] : row[h];
      row[h] = std::max(x, 0.f) * m;
    }
  } else if (bias != nullptr) {
    for (int64_t h = 0; h < H; ++h) row[h] = std::max(row[h] + bias[h], 0.f);
  } else {
    for (int64_t h = 0; h < H; ++h) row[h] = std::max(row[h], 0.f);
  }
}

// The gradient through relu and dropout, in place: d[i] = d[i] * scale where
// the layer's output h[i] > 0, else 0 (branch-free, so it vectorizes).
inline void ReluDropoutGrad(float* __restrict d, const float* __restrict h,
                            float scale, int64_t n) {
  const float sc = scale;
  for (int64_t i = 0; i < n; ++i) {
    const float x = d[i] * sc;
    d[i] = h[i] > 0.f ? x : 0.f;
  }
}

// out[0:H] = scale * init (0 when init is null) + the sum of the B rows of
// d (B, H): a bias gradient, with its L2 term when init is the bias.
inline void ColumnSum(float* __restrict out, const float* __restrict init,
                      float scale, const float* __restrict d, int64_t B,
                      int64_t H) {
  const float sc = scale;
  if (init != nullptr) {
    for (int64_t h = 0; h < H; ++h) out[h] = sc * init[h];
  } else {
    std::fill(out, out + H, 0.f);
  }
  for (int64_t b = 0; b < B; ++b) {
    const float* __restrict row = d + b * H;
    for (int64_t h = 0; h < H; ++h) out[h] += row[h];
  }
}

// h1 = dropout(relu(row_sum(weights, idx) + bias)) for all members:
// weights (K, F, H), bias (K, 1, H) -> (K, B, H). The dropout mask of
// element i = (k * B + b) * H + h is the one DropoutMaskOp draws for i.
class RowSumReluDropoutOp : public OpKernel {
 public:
  explicit RowSumReluDropoutOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("rate", &rate_));
    OP_REQUIRES(c, rate_ >= 0.f && rate_ < 1.f,
                errors::InvalidArgument("rate must lie in [0, 1)"));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& weights = ctx->input(0);
    const Tensor& bias = ctx->input(1);
    const Tensor& cols = ctx->input(2);
    const Tensor& splits = ctx->input(3);
    const Tensor& idx = ctx->input(4);
    const Tensor& seed_t = ctx->input(5);
    OP_REQUIRES_OK(ctx, CheckRowSumInputs(weights, cols, splits, idx));
    const int64_t K = weights.dim_size(0), F = weights.dim_size(1),
                  H = weights.dim_size(2), B = idx.dim_size(1),
                  n = splits.dim_size(0) - 1, nnz = cols.dim_size(0);
    OP_REQUIRES(ctx, bias.NumElements() == K * H,
                errors::InvalidArgument("bias must be (K, 1, H)"));
    OP_REQUIRES(ctx, seed_t.NumElements() == 1,
                errors::InvalidArgument("seed must be a scalar"));
    const DropoutStream drop(static_cast<uint64_t>(seed_t.flat<int64_t>()(0)),
                             rate_);
    const bool use_dropout = rate_ > 0.f;
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({K, B, H}), &out));
    const float* w = weights.flat<float>().data();
    const float* bs = bias.flat<float>().data();
    const int32_t* c = cols.flat<int32_t>().data();
    const int64_t* s = splits.flat<int64_t>().data();
    const int32_t* id = idx.flat<int32_t>().data();
    float* o = out->flat<float>().data();
    std::atomic<bool> bad(false);
    auto work = [&, K, F, H, B, n, nnz, w, bs, c, s, id, o, drop,
                 use_dropout](int64_t begin, int64_t end) {
      for (int64_t u = begin; u < end; ++u) {
        const int64_t r = id[u];
        float* __restrict orow = o + u * H;
        if (!ValidRow(r, n, s, nnz, c, F)) {
          bad = true;
          std::memset(orow, 0, sizeof(float) * H);
          continue;
        }
        const int64_t k = u / B;
        SumRows(orow, nullptr, 0.f, w + k * F * H, c + s[r], s[r + 1] - s[r],
                H, H);
        BiasReluDropoutRow(orow, bs + k * H, H, static_cast<uint32_t>(u * H),
                           drop, use_dropout);
      }
    };
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
        K * B, 60 * H, work);
    OP_REQUIRES(ctx, !bad, errors::InvalidArgument(
        "row_sum_relu_dropout: a record index or a column lies out of range"));
  }

 private:
  float rate_;
};

// Buckets a batch's ones by feature, given start[f + 1] = the count of
// feature f (start[0] = 0): afterwards rows[start[f]:start[f + 1]] are the
// batch positions b (ascending) whose record ik[b] has feature f.
inline void FinishBuckets(const int32_t* ik, int64_t B, const int64_t* s,
                          const int32_t* c, int64_t F,
                          std::vector<int32_t>* start,
                          std::vector<int32_t>* fill,
                          std::vector<int32_t>* rows) {
  int32_t* st = start->data();
  for (int64_t f = 0; f < F; ++f) st[f + 1] += st[f];
  rows->resize(st[F]);
  std::copy(st, st + F, fill->begin());
  int32_t* fl = fill->data();
  int32_t* rw = rows->data();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t r = ik[b];
    for (int64_t j = s[r]; j < s[r + 1]; ++j)
      rw[fl[c[j]]++] = static_cast<int32_t>(b);
  }
}

// Adam on a sparse-input layer's kernel w (F, H): row f's gradient is
// decay * w[f] + the sum of the rows of dpre (B, H) listed for feature f
// (FinishBuckets), formed in grow (H) and applied at once.
inline void SparseLayerAdam(float* w, float* m, float* v, const float* dpre,
                            const int32_t* rows, const int32_t* start,
                            int64_t F, int64_t H, float decay,
                            const AdamCoefs& coefs, float* grow) {
  for (int64_t f = 0; f < F; ++f) {
    const int64_t off = f * H;
    SumRows(grow, w + off, decay, dpre, rows + start[f],
            start[f + 1] - start[f], H, H);
    AdamUpdate(w + off, m + off, v + off, grow, H, coefs);
  }
}

// The Adam step of the fused first layer (RowSumReluDropoutOp) from the loss
// gradient dh1 of its output h1: dpre = dh1 * dh1/dpre, where dh1/dpre is
// the dropout scale where h1 > 0 and 0 elsewhere (relu and dropout both zero
// the output there). Then, per member k, the kernel (inputs 0..2) gets
// decay * W + X_k^T dpre and the bias (inputs 3..5) decay * b + sum_b dpre,
// each applied with Adam in place.
class RowSumReluDropoutAdamOp : public AdamOpBase {
 public:
  explicit RowSumReluDropoutAdamOp(OpKernelConstruction* c) : AdamOpBase(c) {
    OP_REQUIRES_OK(c, c->GetAttr("rate", &rate_));
  }
  void Compute(OpKernelContext* ctx) override {
    auto locks = MaybeLockVariableInputMutexesInOrder<CPUDevice, float>(
        ctx, true, false, {0, 1, 2, 3, 4, 5});
    Tensor var, m, v, bvar, bm, bv;
    OP_REQUIRES_OK(ctx, Variables(ctx, 0, &var, &m, &v));
    OP_REQUIRES_OK(ctx, Variables(ctx, 3, &bvar, &bm, &bv));
    const Tensor& h1 = ctx->input(6);
    const Tensor& dh1 = ctx->input(7);
    const Tensor& cols = ctx->input(8);
    const Tensor& splits = ctx->input(9);
    const Tensor& idx = ctx->input(10);
    OP_REQUIRES_OK(ctx, CheckRowSumInputs(var, cols, splits, idx));
    const int64_t K = var.dim_size(0), F = var.dim_size(1),
                  H = var.dim_size(2), B = idx.dim_size(1),
                  n = splits.dim_size(0) - 1, nnz = cols.dim_size(0);
    OP_REQUIRES(ctx, bvar.NumElements() == K * H,
                errors::InvalidArgument("bias must be (K, 1, H)"));
    for (const Tensor* t : {&h1, &dh1})
      OP_REQUIRES(ctx, t->dims() == 3 && t->dim_size(0) == K &&
                       t->dim_size(1) == B && t->dim_size(2) == H,
                  errors::InvalidArgument("h1 and dh1 must be (K, B, H)"));
    AdamCoefs coefs;
    float decay;
    OP_REQUIRES_OK(ctx, ReadAdamInputs(ctx, 11, beta1_, beta2_, epsilon_,
                                       &coefs, &decay));
    const float scale = 1.f / (1.f - rate_);
    const float* ph = h1.flat<float>().data();
    const float* pd = dh1.flat<float>().data();
    float* pw = var.flat<float>().data();
    float* pm = m.flat<float>().data();
    float* pv = v.flat<float>().data();
    float* pbw = bvar.flat<float>().data();
    float* pbm = bm.flat<float>().data();
    float* pbv = bv.flat<float>().data();
    const int32_t* c = cols.flat<int32_t>().data();
    const int64_t* s = splits.flat<int64_t>().data();
    const int32_t* id = idx.flat<int32_t>().data();
    std::atomic<bool> bad(false);
    auto work = [&, K, F, H, B, n, nnz, ph, pd, pw, pm, pv, pbw, pbm, pbv, c,
                 s, id, decay, coefs, scale](int64_t begin, int64_t end) {
      std::vector<int32_t> start(F + 1), fill(F), rows;
      std::vector<float> grow(H), dpre(B * H);
      for (int64_t k = begin; k < end; ++k) {
        const int32_t* ik = id + k * B;
        std::fill(start.begin(), start.end(), 0);
        bool ok = true;
        for (int64_t b = 0; b < B; ++b) {
          const int64_t r = ik[b];
          if (!ValidRow(r, n, s, nnz, c, F)) { ok = false; break; }
          for (int64_t j = s[r]; j < s[r + 1]; ++j) ++start[c[j] + 1];
        }
        if (!ok) { bad = true; continue; }  // Leaves member k unchanged.
        // dpre and the bias gradient.
        std::copy(pd + k * B * H, pd + (k + 1) * B * H, dpre.begin());
        ReluDropoutGrad(dpre.data(), ph + k * B * H, scale, B * H);
        ColumnSum(grow.data(), pbw + k * H, decay, dpre.data(), B, H);
        AdamUpdate(pbw + k * H, pbm + k * H, pbv + k * H, grow.data(), H,
                   coefs);
        FinishBuckets(ik, B, s, c, F, &start, &fill, &rows);
        SparseLayerAdam(pw + k * F * H, pm + k * F * H, pv + k * F * H,
                        dpre.data(), rows.data(), start.data(), F, H, decay,
                        coefs, grow.data());
      }
    };
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
        K, F * H * 4 + B * 60 * H, work);
    OP_REQUIRES(ctx, !bad, errors::InvalidArgument(
        "row_sum_relu_dropout_adam: a record index or a column lies out of "
        "range"));
  }

 private:
  float rate_;
};

// Keras' Adam on n floats with the gradient grad + decay * var.
inline void AdamL2Update(float* __restrict var, float* __restrict m,
                         float* __restrict v, const float* __restrict grad,
                         float decay, int64_t n, const AdamCoefs& a) {
  const float alpha = a.alpha, c1 = a.one_minus_b1, c2 = a.one_minus_b2,
              eps = a.epsilon, d = decay;
  for (int64_t i = 0; i < n; ++i) {
    const float gi = grad[i] + d * var[i];
    const float mi = m[i] + (gi - m[i]) * c1;
    const float vi = v[i] + (gi * gi - v[i]) * c2;
    m[i] = mi;
    v[i] = vi;
    var[i] -= (mi * alpha) / (std::sqrt(vi) + eps);
  }
}

typedef Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>
    RowMatrix;
typedef Eigen::Map<RowMatrix> MatrixMap;
typedef Eigen::Map<const RowMatrix> ConstMatrixMap;

// One epoch of K plain-MLP members, each member's steps back to back (its
// weights and optimizer state reused from the caches, no synchronization
// between steps); members in parallel.
// A member's step is what the per-step graph does (RowSumReluDropoutOp,
// matmuls, DropoutMaskOp, softmax cross-entropy, RowSumReluDropoutAdamOp,
// AdamOp), with the same dropout masks, Adam step counts and L2 terms:
// * layer 0 (sparse binary input): h1 = dropout(relu(row_sum + b0));
// * hidden layers i >= 1: h = dropout(relu(h @ W_i + b_i)); the output
//   layer is linear; dropout element (k, b, h) of a layer with seed z is
//   the one DropoutMaskOp draws for flat index (k * B + b) * H + h;
// * loss: per member, the weight-weighted mean over the batch of the softmax
//   cross-entropy;
// * the gradients of all layers come from the weights before the step, then
//   every variable takes Keras' Adam step with the L2 term decay * var.
// Dropout seeds: step s of the epoch uses seed0 + s * P + 1 for layer 0 and
// the next ones for the hidden layers i >= 1 with rate > 0 (P seeds a step),
// as the per-step graph draws them; the Adam step count of step s is
// step0 + s + 1. Output: every member's mean over steps of its batch loss.
class MlpEpochOp : public OpKernel {
 public:
  explicit MlpEpochOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("num_vars", &num_vars_));
    OP_REQUIRES_OK(c, c->GetAttr("rates", &rates_));
    OP_REQUIRES_OK(c, c->GetAttr("batch_size", &batch_size_));
    OP_REQUIRES_OK(c, c->GetAttr("beta1", &beta1_));
    OP_REQUIRES_OK(c, c->GetAttr("beta2", &beta2_));
    OP_REQUIRES_OK(c, c->GetAttr("epsilon", &epsilon_));
    OP_REQUIRES(c, num_vars_ % 2 == 0 && num_vars_ >= 4,
                errors::InvalidArgument("num_vars: a kernel and a bias per "
                                        "layer, two layers or more"));
    OP_REQUIRES(c, static_cast<int>(rates_.size()) == num_vars_ / 2 - 1,
                errors::InvalidArgument("rates: one per hidden layer"));
    for (float r : rates_)
      OP_REQUIRES(c, r >= 0.f && r < 1.f,
                  errors::InvalidArgument("rates must lie in [0, 1)"));
  }

  void Compute(OpKernelContext* ctx) override {
    const int N = num_vars_, L = num_vars_ / 2;
    std::vector<int> ids(3 * N);
    for (int i = 0; i < 3 * N; ++i) ids[i] = i;
    auto locks =
        MaybeLockVariableInputMutexesInOrder<CPUDevice, float>(ctx, true,
                                                               false, ids);
    std::vector<Tensor> tensors(3 * N);
    for (int i = 0; i < 3 * N; ++i) {
      OP_REQUIRES_OK(ctx, GetInputTensorFromVariable<CPUDevice, float>(
                              ctx, i, true, false, &tensors[i]));
      OP_REQUIRES(ctx, tensors[i].IsInitialized(),
                  errors::FailedPrecondition("uninitialized variable"));
      OP_REQUIRES(ctx, tensors[i].shape() == tensors[i % N].shape(),
                  errors::InvalidArgument("var, m and v differ in shape"));
    }
    const Tensor& labels = ctx->input(3 * N);
    const Tensor& cols = ctx->input(3 * N + 1);
    const Tensor& splits = ctx->input(3 * N + 2);
    const Tensor& order = ctx->input(3 * N + 3);
    const Tensor& weight = ctx->input(3 * N + 4);
    float scalars[2];
    for (int i = 0; i < 2; ++i) {
      const Tensor& t = ctx->input(3 * N + 5 + i);
      OP_REQUIRES(ctx, t.NumElements() == 1,
                  errors::InvalidArgument("lr and decay must be scalars"));
      scalars[i] = t.flat<float>()(0);
    }
    const float lr = scalars[0], decay = scalars[1];
    const Tensor& step_t = ctx->input(3 * N + 7);
    const Tensor& seed_t = ctx->input(3 * N + 8);
    OP_REQUIRES(ctx, step_t.NumElements() == 1 && seed_t.NumElements() == 1,
                errors::InvalidArgument("step and seed must be scalars"));
    const int64_t step0 = step_t.flat<int64_t>()(0);
    const int64_t seed0 = seed_t.flat<int64_t>()(0);

    // Layer shapes: kernel i (K, din_i, dout_i), bias i (K, 1, dout_i).
    const Tensor& w0 = tensors[0];
    OP_REQUIRES(ctx, w0.dims() == 3,
                errors::InvalidArgument("kernels must be (K, fan_in, "
                                        "fan_out)"));
    const int64_t K = w0.dim_size(0);
    std::vector<int64_t> din(L), dout(L);
    for (int i = 0; i < L; ++i) {
      const Tensor& w = tensors[2 * i];
      const Tensor& b = tensors[2 * i + 1];
      OP_REQUIRES(ctx, w.dims() == 3 && w.dim_size(0) == K &&
                       b.NumElements() == K * w.dim_size(2) &&
                       (i == 0 || w.dim_size(1) == dout[i - 1]),
                  errors::InvalidArgument("layer shapes do not chain"));
      din[i] = w.dim_size(1);
      dout[i] = w.dim_size(2);
    }
    const int64_t F = din[0], C = dout[L - 1], B = batch_size_;
    OP_REQUIRES(ctx, cols.dims() == 1 && splits.dims() == 1 &&
                     splits.dim_size(0) >= 1 && labels.dims() == 1 &&
                     labels.dim_size(0) == splits.dim_size(0) - 1,
                errors::InvalidArgument("cols, splits and labels must be "
                                        "vectors for the same records"));
    OP_REQUIRES(ctx, order.dims() == 2 && order.dim_size(0) == K &&
                     order.dim_size(1) % B == 0 &&
                     weight.shape() == order.shape(),
                errors::InvalidArgument("order and weight must be (K, S * "
                                        "batch_size)"));
    const int64_t n = splits.dim_size(0) - 1, nnz = cols.dim_size(0),
                  SB = order.dim_size(1), S = SB / B;
    const int64_t* s = splits.flat<int64_t>().data();
    const int32_t* c = cols.flat<int32_t>().data();
    const int64_t* y = labels.flat<int64_t>().data();
    const int32_t* ord = order.flat<int32_t>().data();
    const float* wt = weight.flat<float>().data();
    // Everything is checked before any variable changes.
    for (int64_t r = 0; r < n; ++r) {
      OP_REQUIRES(ctx, ValidRow(r, n, s, nnz, c, F),
                  errors::InvalidArgument("mlp_epoch: a column lies out of "
                                          "range"));
      OP_REQUIRES(ctx, y[r] >= 0 && y[r] < C,
                  errors::InvalidArgument("mlp_epoch: a label lies out of "
                                          "range"));
    }
    for (int64_t i = 0; i < K * SB; ++i)
      OP_REQUIRES(ctx, ord[i] >= 0 && ord[i] < n,
                  errors::InvalidArgument("mlp_epoch: a record index lies "
                                          "out of range"));
    Tensor* loss_t = nullptr;
    OP_REQUIRES_OK(ctx,
                   ctx->allocate_output(0, TensorShape({K}), &loss_t));
    float* loss_out = loss_t->flat<float>().data();

    std::vector<float*> var(N), mom(N), vel(N);
    for (int i = 0; i < N; ++i) {
      var[i] = tensors[i].flat<float>().data();
      mom[i] = tensors[N + i].flat<float>().data();
      vel[i] = tensors[2 * N + i].flat<float>().data();
    }
    // Seeds per step: layer 0 always (as the per-step graph), then the
    // hidden layers i >= 1 with dropout.
    int64_t seeds_per_step = 1;
    for (int i = 1; i < L - 1; ++i) seeds_per_step += rates_[i] > 0.f;
    int64_t max_width = 0, max_kernel = 0;
    for (int i = 0; i < L; ++i) {
      max_width = std::max(max_width, dout[i]);
      if (i > 0) max_kernel = std::max(max_kernel, din[i] * dout[i]);
    }
    const std::vector<float>& rates = rates_;
    const float beta1 = beta1_, beta2 = beta2_, epsilon = epsilon_;

    // Buffers of one worker thread (allocated at its first member).
    struct Scratch {
      // acts[i] (B, din[i]): the input of layer i >= 1; logits (B, C).
      std::vector<std::vector<float>> acts;
      std::vector<float> logits, delta, dinput, gw, gb;
      std::vector<int32_t> start, fill, rows;
    };
    thread::ThreadPool* pool =
        ctx->device()->tensorflow_cpu_worker_threads()->workers;
    std::vector<Scratch> scratch(pool->NumThreads() + 1);
    auto work = [&](int64_t begin, int64_t end, int worker) {
      Scratch& sc = scratch[worker];
      if (sc.acts.empty()) {
        sc.acts.resize(L);
        for (int i = 1; i < L; ++i) sc.acts[i].resize(B * din[i]);
        sc.logits.resize(B * C);
        sc.delta.resize(B * max_width);
        sc.dinput.resize(B * max_width);
        sc.gw.resize(max_kernel);
        sc.gb.resize(max_width);
        sc.start.resize(F + 1);
        sc.fill.resize(F);
      }
      std::vector<std::vector<float>>& acts = sc.acts;
      std::vector<float>& logits = sc.logits;
      std::vector<float>& delta = sc.delta;
      std::vector<float>& dinput = sc.dinput;
      std::vector<float>& gw = sc.gw;
      std::vector<float>& gb = sc.gb;
      std::vector<int32_t>& start = sc.start;
      std::vector<int32_t>& fill = sc.fill;
      std::vector<int32_t>& rows = sc.rows;
      for (int64_t k = begin; k < end; ++k) {
        double loss_sum = 0.0;
        for (int64_t st = 0; st < S; ++st) {
          const int32_t* ik = ord + k * SB + st * B;
          const float* wk = wt + k * SB + st * B;
          int64_t seed = seed0 + st * seeds_per_step;
          // Layer 0.
          {
            const int64_t H = dout[0];
            const DropoutStream drop(static_cast<uint64_t>(++seed), rates[0]);
            const float* w = var[0] + k * F * H;
            const float* bias = var[1] + k * H;
            float* h1 = acts[1].data();
            for (int64_t b = 0; b < B; ++b) {
              const int64_t r = ik[b];
              SumRows(h1 + b * H, nullptr, 0.f, w, c + s[r], s[r + 1] - s[r],
                      H, H);
              BiasReluDropoutRow(h1 + b * H, bias, H,
                                 static_cast<uint32_t>((k * B + b) * H), drop,
                                 rates[0] > 0.f);
            }
          }
          // Layers 1..L-1.
          for (int i = 1; i < L; ++i) {
            const int64_t Hi = din[i], Ho = dout[i];
            ConstMatrixMap x(acts[i].data(), B, Hi);
            ConstMatrixMap w(var[2 * i] + k * Hi * Ho, Hi, Ho);
            const bool last = i == L - 1;
            float* out = last ? logits.data() : acts[i + 1].data();
            // out = bias + x @ w: the product accumulates onto the bias.
            const float* bias = var[2 * i + 1] + k * Ho;
            for (int64_t b = 0; b < B; ++b)
              std::memcpy(out + b * Ho, bias, sizeof(float) * Ho);
            MatrixMap o(out, B, Ho);
            o.noalias() += x * w;
            if (!last) {
              const bool use = rates[i] > 0.f;
              const DropoutStream drop(
                  use ? static_cast<uint64_t>(++seed) : 0, rates[i]);
              for (int64_t b = 0; b < B; ++b)
                BiasReluDropoutRow(out + b * Ho, nullptr, Ho,
                                   static_cast<uint32_t>((k * B + b) * Ho),
                                   drop, use);
            }
          }
          // Softmax cross-entropy; delta = d loss / d logits.
          double wsum = 0.0;
          for (int64_t b = 0; b < B; ++b) wsum += wk[b];
          const float inv = wsum > 0.0 ? static_cast<float>(1.0 / wsum) : 0.f;
          double step_loss = 0.0;
          for (int64_t b = 0; b < B; ++b) {
            const float* z = logits.data() + b * C;
            float* d = delta.data() + b * C;
            float mx = z[0];
            for (int64_t j = 1; j < C; ++j) mx = std::max(mx, z[j]);
            float sum = 0.f;
            for (int64_t j = 0; j < C; ++j) {
              d[j] = std::exp(z[j] - mx);
              sum += d[j];
            }
            const int64_t label = y[ik[b]];
            const float lse = std::log(sum);
            step_loss += static_cast<double>(wk[b]) * (lse - (z[label] - mx));
            const float coef = wk[b] * inv, norm = coef / sum;
            for (int64_t j = 0; j < C; ++j) d[j] *= norm;
            d[label] -= coef;
          }
          loss_sum += step_loss * inv;
          // Adam coefficients of this step.
          const float t = static_cast<float>(step0 + st + 1);
          const float b1p = std::pow(beta1, t), b2p = std::pow(beta2, t);
          AdamCoefs coefs;
          coefs.alpha = lr * std::sqrt(1.f - b2p) / (1.f - b1p);
          coefs.one_minus_b1 = 1.f - beta1;
          coefs.one_minus_b2 = 1.f - beta2;
          coefs.epsilon = epsilon;
          // Backward through layers L-1..1: gradients from the weights
          // before the step, then the layer's Adam step.
          for (int i = L - 1; i >= 1; --i) {
            const int64_t Hi = din[i], Ho = dout[i];
            ConstMatrixMap x(acts[i].data(), B, Hi);
            ConstMatrixMap d(delta.data(), B, Ho);
            float* w = var[2 * i] + k * Hi * Ho;
            MatrixMap g(gw.data(), Hi, Ho);
            g.noalias() = x.transpose() * d;
            MatrixMap dx(dinput.data(), B, Hi);
            dx.noalias() = d * ConstMatrixMap(w, Hi, Ho).transpose();
            AdamL2Update(w, mom[2 * i] + k * Hi * Ho, vel[2 * i] + k * Hi * Ho,
                         gw.data(), decay, Hi * Ho, coefs);
            ColumnSum(gb.data(), nullptr, 0.f, delta.data(), B, Ho);
            AdamL2Update(var[2 * i + 1] + k * Ho, mom[2 * i + 1] + k * Ho,
                         vel[2 * i + 1] + k * Ho, gb.data(), decay, Ho,
                         coefs);
            // delta of layer i - 1 (pre-activation), through its relu and
            // dropout.
            ReluDropoutGrad(dinput.data(), acts[i].data(),
                            1.f / (1.f - rates[i - 1]), B * Hi);
            std::swap(delta, dinput);
          }
          // Layer 0: bias, then the kernel rows feature by feature.
          {
            const int64_t H = dout[0];
            ColumnSum(gb.data(), var[1] + k * H, decay, delta.data(), B, H);
            AdamUpdate(var[1] + k * H, mom[1] + k * H, vel[1] + k * H,
                       gb.data(), H, coefs);
            std::fill(start.begin(), start.end(), 0);
            for (int64_t b = 0; b < B; ++b) {
              const int64_t r = ik[b];
              for (int64_t j = s[r]; j < s[r + 1]; ++j) ++start[c[j] + 1];
            }
            FinishBuckets(ik, B, s, c, F, &start, &fill, &rows);
            SparseLayerAdam(var[0] + k * F * H, mom[0] + k * F * H,
                            vel[0] + k * F * H, delta.data(), rows.data(),
                            start.data(), F, H, decay, coefs, gb.data());
          }
        }
        loss_out[k] = S > 0 ? static_cast<float>(loss_sum / S) : 0.f;
      }
    };
    // One member a shard: members take the free threads one by one, so the
    // threads finish the epoch together (a member-epoch is ~10 ms).
    pool->ParallelForWithWorkerId(
        K, thread::ThreadPool::SchedulingParams(
               thread::ThreadPool::SchedulingStrategy::kFixedBlockSize,
               absl::nullopt, 1),
        work);
  }

 private:
  int num_vars_;
  std::vector<float> rates_;
  int64_t batch_size_;
  float beta1_, beta2_, epsilon_;
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
REGISTER_OP("WememAdam")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("grad: float")
    .Input("lr: float")
    .Input("beta1_power: float")
    .Input("beta2_power: float")
    .Input("decay: float")
    .Attr("beta1: float")
    .Attr("beta2: float")
    .Attr("epsilon: float")
    .SetShapeFn([](InferenceContext* c) { return OkStatus(); });

REGISTER_KERNEL_BUILDER(Name("WememAdam").Device(DEVICE_CPU), AdamOp);
REGISTER_OP("WememRowSumReluDropout")
    .Input("weights: float")
    .Input("bias: float")
    .Input("cols: int32")
    .Input("splits: int64")
    .Input("idx: int32")
    .Input("seed: int64")
    .Attr("rate: float")
    .Output("out: float")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle w, idx;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &w));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(4), 2, &idx));
      c->set_output(0, c->MakeShape({c->Dim(w, 0), c->Dim(idx, 1),
                                     c->Dim(w, 2)}));
      return OkStatus();
    });

REGISTER_OP("WememRowSumReluDropoutAdam")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("bias: resource")
    .Input("bias_m: resource")
    .Input("bias_v: resource")
    .Input("h1: float")
    .Input("dh1: float")
    .Input("cols: int32")
    .Input("splits: int64")
    .Input("idx: int32")
    .Input("lr: float")
    .Input("beta1_power: float")
    .Input("beta2_power: float")
    .Input("decay: float")
    .Attr("rate: float")
    .Attr("beta1: float")
    .Attr("beta2: float")
    .Attr("epsilon: float")
    .SetShapeFn([](InferenceContext* c) { return OkStatus(); });

REGISTER_OP("WememMlpEpoch")
    .Input("vars: num_vars * resource")
    .Input("m: num_vars * resource")
    .Input("v: num_vars * resource")
    .Input("labels: int64")
    .Input("cols: int32")
    .Input("splits: int64")
    .Input("order: int32")
    .Input("weight: float")
    .Input("lr: float")
    .Input("decay: float")
    .Input("step: int64")
    .Input("seed: int64")
    .Output("loss: float")
    .Attr("num_vars: int >= 4")
    .Attr("rates: list(float)")
    .Attr("batch_size: int >= 1")
    .Attr("beta1: float")
    .Attr("beta2: float")
    .Attr("epsilon: float")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      int num_vars;
      TF_RETURN_IF_ERROR(c->GetAttr("num_vars", &num_vars));
      ShapeHandle order;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(3 * num_vars + 3), 2, &order));
      c->set_output(0, c->Vector(c->Dim(order, 0)));
      return OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("WememMlpEpoch").Device(DEVICE_CPU), MlpEpochOp);
REGISTER_KERNEL_BUILDER(Name("WememRowSumReluDropout").Device(DEVICE_CPU),
                        RowSumReluDropoutOp);
REGISTER_KERNEL_BUILDER(
    Name("WememRowSumReluDropoutAdam").Device(DEVICE_CPU),
    RowSumReluDropoutAdamOp);
"""

# Hidden visibility keeps the kernels' own Eigen instantiations (built for
# this machine's instruction set) from being interposed by TensorFlow's.
_CXX_FLAGS = ("-shared", "-fPIC", "-O3", "-march=native", "-fno-math-errno",
              "-fvisibility=hidden", "-fvisibility-inlines-hidden")

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
      _SOURCE, " ".join(_CXX_FLAGS), tf.__version__,
      " ".join(tf.sysconfig.get_compile_flags()),
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
    cmd = [compiler, *_CXX_FLAGS, src, "-o", out,
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
      for op in ("WememDropoutMask", "WememAdam", "WememRowSumReluDropout",
                 "WememRowSumReluDropoutAdam", "WememMlpEpoch"):
        tf.no_gradient(op)
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


def adam_l2(module, var: tf.Variable, m: tf.Variable, v: tf.Variable,
            grad: tf.Tensor, lr, beta1_power, beta2_power, decay,
            beta1: float, beta2: float, epsilon: float):
  """In place: Keras' Adam step on `var` with gradient grad + decay * var."""
  return module.wemem_adam(var.handle, m.handle, v.handle, grad, lr,
                           beta1_power, beta2_power, decay, beta1=beta1,
                           beta2=beta2, epsilon=epsilon)


def row_sum_relu_dropout_adam(module, kernel, kernel_m, kernel_v, bias,
                              bias_m, bias_v, h1, dh1, cols, splits, idx, lr,
                              beta1_power, beta2_power, decay, rate: float,
                              beta1: float, beta2: float, epsilon: float):
  """In place: Adam on the fused first layer's kernel (K, F, H) and bias.

  h1 is `wemem_row_sum_relu_dropout`'s output and dh1 the loss gradient with
  respect to it; the gradients (with the L2 term) are never stored.
  """
  return module.wemem_row_sum_relu_dropout_adam(
      kernel.handle, kernel_m.handle, kernel_v.handle, bias.handle,
      bias_m.handle, bias_v.handle, h1, dh1, cols, splits, idx, lr,
      beta1_power, beta2_power, decay, rate=rate, beta1=beta1, beta2=beta2,
      epsilon=epsilon)


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
