// The weight gradients of a layer's backward pass that the fused kernels
// form on the fly: a bias gradient (ColumnSum) and the Adam step of a
// sparse-input layer's kernel, row by row (SparseLayerAdam), the gradient
// never stored whole.
#ifndef WEMEM_TF_MEMORIZATION_KERNELS_BACKWARD_H_
#define WEMEM_TF_MEMORIZATION_KERNELS_BACKWARD_H_

#include "adam.h"
#include "common.h"
#include "row_sum.h"

namespace wemem {

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

// Adam on a sparse-input layer's kernel w (F, H): row f's gradient is
// decay * w[f] + the sum of the rows of dpre (B, H) listed for feature f
// (BucketBatch), formed in grow (H) and applied at once.
inline void SparseLayerAdam(float* w, float* m, float* v, const float* dpre,
                            const int32_t* rows, const int32_t* start,
                            int64_t F, int64_t H, float decay,
                            const AdamCoefs& coefs, float* grow) {
  for (int64_t f = 0; f < F; ++f) {
    const int64_t off = f * H;
    SumRows(grow, w + off, decay, dpre, rows + start[f],
            start[f + 1] - start[f], H, H);
    AdamUpdate<false>(w + off, m + off, v + off, grow, 0.f, H, coefs);
  }
}

}  // namespace wemem

#endif  // WEMEM_TF_MEMORIZATION_KERNELS_BACKWARD_H_
