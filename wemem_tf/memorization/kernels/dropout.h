// Dropout from a counter-based hash: the keep factor (0 or 1 / (1 - rate))
// of flat element i is a function of (seed, i) alone (two rounds of a 32-bit
// integer finalizer), so every kernel draws the same mask for the same seed
// and element. Also the forward (bias, relu, dropout) and backward passes of
// a hidden layer's activation.
#ifndef WEMEM_TF_MEMORIZATION_KERNELS_DROPOUT_H_
#define WEMEM_TF_MEMORIZATION_KERNELS_DROPOUT_H_

#include "common.h"

namespace wemem {

inline uint32_t Mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// The keys, threshold and scale of the dropout stream of one seed and rate.
struct DropoutStream {
  uint32_t k1, k2, threshold;
  float scale;
  DropoutStream() = default;
  DropoutStream(uint64_t seed, float rate) {
    k1 = Mix32(static_cast<uint32_t>(seed) ^ 0x9e3779b9U);
    k2 = Mix32(static_cast<uint32_t>(seed >> 32) + k1);
    // Keep iff the 24-bit uniform u >= rate * 2^24.
    threshold =
        static_cast<uint32_t>(static_cast<double>(rate) * 16777216.0 + 0.5);
    scale = 1.f / (1.f - rate);
  }
};

// The keep factor of element i of the stream with keys key1, key2 (callers
// pass the stream's fields as locals, so that their loops vectorize).
inline float KeepFactor(uint32_t i, uint32_t key1, uint32_t key2,
                        uint32_t threshold, float scale) {
  const uint32_t h = Mix32(Mix32(i ^ key1) + key2);
  return static_cast<float>((h >> 8) >= threshold) * scale;
}

// row[0:H] = dropout(relu(row + bias)) (no bias when it is null), the keep
// factor of element h being the stream's for flat index base + h (no
// dropout when use_dropout is false).
inline void BiasReluDropoutRow(float* __restrict row,
                               const float* __restrict bias, int64_t H,
                               uint32_t base, const DropoutStream& drop,
                               bool use_dropout) {
  const uint32_t key1 = drop.k1, key2 = drop.k2, thresh = drop.threshold;
  const float keep = drop.scale;
  if (use_dropout) {
    for (int64_t h = 0; h < H; ++h) {
      const float m = KeepFactor(base + static_cast<uint32_t>(h), key1, key2,
                                 thresh, keep);
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

// An op that draws dropout masks: attr "rate" (in [0, 1)), a seed input.
class DropoutOpBase : public OpKernel {
 public:
  explicit DropoutOpBase(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("rate", &rate_));
    OP_REQUIRES(c, rate_ >= 0.f && rate_ < 1.f,
                errors::InvalidArgument("rate must lie in [0, 1)"));
  }

 protected:
  // The dropout stream of the seed (an int64 scalar) at input seed_input.
  Status ReadStream(OpKernelContext* ctx, int seed_input,
                    DropoutStream* drop) const {
    const Tensor& seed = ctx->input(seed_input);
    if (seed.NumElements() != 1)
      return errors::InvalidArgument("seed must be a scalar");
    *drop = DropoutStream(static_cast<uint64_t>(seed.flat<int64_t>()(0)),
                          rate_);
    return OkStatus();
  }
  float rate_;
};

}  // namespace wemem

#endif  // WEMEM_TF_MEMORIZATION_KERNELS_DROPOUT_H_
