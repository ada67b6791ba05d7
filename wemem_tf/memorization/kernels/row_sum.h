// Row sums over binary inputs held as CSR: the first layer's product x @ W
// as the sum of the weight rows of each record's active features,
// accumulated in registers; the checks of the CSR inputs; and the bucketing
// of a batch's ones by feature that the kernels' backward passes use.
#ifndef WEMEM_TF_MEMORIZATION_KERNELS_ROW_SUM_H_
#define WEMEM_TF_MEMORIZATION_KERNELS_ROW_SUM_H_

#include "common.h"

namespace wemem {

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

// A binary matrix as CSR: n records over F features, record r's ones at the
// columns c[s[r]:s[r + 1]] (nnz ones in all).
struct Csr {
  int64_t n, F, nnz;
  const int64_t* s;
  const int32_t* c;

  // True when record r's CSR row and its columns are valid.
  bool ValidRow(int64_t r) const {
    if (r < 0 || r >= n || s[r] < 0 || s[r + 1] > nnz || s[r] > s[r + 1])
      return false;
    for (int64_t j = s[r]; j < s[r + 1]; ++j)
      if (c[j] < 0 || c[j] >= F) return false;
    return true;
  }
};

// The inputs of a row-sum kernel: weights (K, F, H), the pool's ones
// (cols, splits) and the members' batch positions idx (K, B).
struct RowSumArgs {
  int64_t K, H, B;
  Csr x;
  const int32_t* id;
};

// Checks the shapes of a row-sum kernel's inputs, the weights and the
// kernel's inputs cols, splits and idx (at first_csr_input.. + 2), and
// reads them into *a.
inline Status ReadRowSumArgs(OpKernelContext* ctx, const Tensor& weights,
                             int first_csr_input, RowSumArgs* a) {
  const Tensor& cols = ctx->input(first_csr_input);
  const Tensor& splits = ctx->input(first_csr_input + 1);
  const Tensor& idx = ctx->input(first_csr_input + 2);
  if (weights.dims() != 3)
    return errors::InvalidArgument("weights must be (K, F, H)");
  if (cols.dims() != 1 || splits.dims() != 1 || splits.dim_size(0) < 1)
    return errors::InvalidArgument("cols and splits must be vectors");
  if (idx.dims() != 2 || idx.dim_size(0) != weights.dim_size(0))
    return errors::InvalidArgument("idx must be (K, B) with K members");
  a->K = weights.dim_size(0);
  a->H = weights.dim_size(2);
  a->B = idx.dim_size(1);
  a->x = Csr{splits.dim_size(0) - 1, weights.dim_size(1), cols.dim_size(0),
             splits.flat<int64_t>().data(), cols.flat<int32_t>().data()};
  a->id = idx.flat<int32_t>().data();
  return OkStatus();
}

// For every unit u = k * B + b (in parallel): out[u] (H floats) = the sum of
// the rows of member k's weights w[k] (F, H) at the features of record
// idx[u], then finish(u, out[u]). A unit whose record is invalid gets zeros
// (no finish); false when any did.
template <typename Finish>
bool SumBatchRows(OpKernelContext* ctx, const RowSumArgs& a, const float* w,
                  float* out, int64_t cost_per_unit, Finish finish) {
  std::atomic<bool> bad(false);
  auto work = [&bad, &finish, a, w, out](int64_t begin, int64_t end) {
    const Csr& x = a.x;
    for (int64_t u = begin; u < end; ++u) {
      const int64_t r = a.id[u];
      float* __restrict row = out + u * a.H;
      if (!x.ValidRow(r)) {
        bad = true;
        std::memset(row, 0, sizeof(float) * a.H);
        continue;
      }
      SumRows(row, nullptr, 0.f, w + (u / a.B) * x.F * a.H, x.c + x.s[r],
              x.s[r + 1] - x.s[r], a.H, a.H);
      finish(u, row);
    }
  };
  ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
      a.K * a.B, cost_per_unit, work);
  return !bad;
}

// Buckets the ones of a batch of records ik[0:B] by feature: afterwards
// (*rows)[start[f]:start[f + 1]] are the batch positions b (ascending) whose
// record ik[b] has feature f. start holds F + 1 entries and fill F. False
// (buckets unfinished) when a record is invalid.
inline bool BucketBatch(const Csr& x, const int32_t* ik, int64_t B,
                        std::vector<int32_t>* start,
                        std::vector<int32_t>* fill,
                        std::vector<int32_t>* rows) {
  const int64_t F = x.F;
  const int64_t* s = x.s;
  const int32_t* c = x.c;
  int32_t* st = start->data();
  std::fill(st, st + F + 1, 0);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t r = ik[b];
    if (!x.ValidRow(r)) return false;
    for (int64_t j = s[r]; j < s[r + 1]; ++j) ++st[c[j] + 1];
  }
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
  return true;
}

// The shape function of the forward row-sum ops: out (K, B, H) from the
// weights (K, F, H) at input 0 and idx (K, B) at input idx_input.
inline Status RowSumShape(InferenceContext* c, int idx_input) {
  ShapeHandle w, idx;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &w));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(idx_input), 2, &idx));
  c->set_output(0, c->MakeShape({c->Dim(w, 0), c->Dim(idx, 1),
                                 c->Dim(w, 2)}));
  return OkStatus();
}

}  // namespace wemem

#endif  // WEMEM_TF_MEMORIZATION_KERNELS_ROW_SUM_H_
