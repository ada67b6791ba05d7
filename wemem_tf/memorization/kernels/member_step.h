// One training step of one plain-MLP member (sparse binary first layer,
// then Dense layers), as the per-step graph does it: forward with dropout,
// softmax cross-entropy (the weight-weighted batch mean), backward, and
// Keras' Adam step of every variable with the L2 term decay * var. The
// epoch ops (WememMlpEpoch, WememCohortEpoch) run it member by member.
#ifndef WEMEM_TF_MEMORIZATION_KERNELS_MEMBER_STEP_H_
#define WEMEM_TF_MEMORIZATION_KERNELS_MEMBER_STEP_H_

#include "adam.h"
#include "backward.h"
#include "common.h"
#include "dropout.h"
#include "row_sum.h"

namespace wemem {

typedef Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>
    RowMatrix;
typedef Eigen::Map<RowMatrix> MatrixMap;
typedef Eigen::Map<const RowMatrix> ConstMatrixMap;

// The members' architecture and optimizer constants.
struct MlpShape {
  int L = 0;                       // Dense layers.
  std::vector<int64_t> din, dout;  // Fan-in and fan-out of each.
  std::vector<float> rates;        // Dropout after each hidden layer.
  float beta1 = 0.9f, beta2 = 0.999f, epsilon = 1e-7f;
  int64_t F() const { return din[0]; }
  int64_t C() const { return dout[L - 1]; }
};

// Buffers of one worker thread, sized for batches of up to B records.
struct StepScratch {
  // acts[i] (B, din[i]): the input of layer i >= 1; logits (B, C).
  std::vector<std::vector<float>> acts;
  std::vector<float> logits, delta, dinput, gw, gb;
  std::vector<int32_t> start, fill, rows;

  void Reserve(const MlpShape& sh, int64_t B) {
    if (!acts.empty()) return;
    int64_t max_width = 0, max_kernel = 0;
    for (int i = 0; i < sh.L; ++i) {
      max_width = std::max(max_width, sh.dout[i]);
      if (i > 0) max_kernel = std::max(max_kernel, sh.din[i] * sh.dout[i]);
    }
    acts.resize(sh.L);
    for (int i = 1; i < sh.L; ++i) acts[i].resize(B * sh.din[i]);
    logits.resize(B * sh.C());
    delta.resize(B * max_width);
    dinput.resize(B * max_width);
    gw.resize(max_kernel);
    gb.resize(max_width);
    start.resize(sh.F() + 1);
    fill.resize(sh.F());
  }
};

// One member's variables: kernel i at var[2i], bias i at var[2i + 1], with
// Adam moments m and v alike (pointers at the member's own slices).
struct MemberVars {
  std::vector<float*> var, m, v;
};

// One step of a member on the batch of records ik[0:B] with weights
// wk[0:B] (0 for padding; their mean is over the weight sum). seeds[i]:
// the dropout seed of hidden layer i; the dropout element of (b, h) in a
// layer of width H is the stream's flat index (index_member * B + b) * H +
// h. t: the Adam step number (1 for the first). Returns the batch loss.
inline double MemberStep(const MlpShape& sh, const Csr& csr, const int64_t* y,
                         const int32_t* ik, const float* wk, int64_t B,
                         int64_t index_member, const uint64_t* seeds,
                         float lr, float decay, float t, const MemberVars& mv,
                         StepScratch& sc) {
  const int L = sh.L;
  const int64_t F = sh.F(), C = sh.C();
  const int64_t* s = csr.s;
  const int32_t* c = csr.c;
  std::vector<std::vector<float>>& acts = sc.acts;
  // Layer 0.
  {
    const int64_t H = sh.dout[0];
    const DropoutStream drop(seeds[0], sh.rates[0]);
    const float* w = mv.var[0];
    const float* bias = mv.var[1];
    float* h1 = acts[1].data();
    for (int64_t b = 0; b < B; ++b) {
      const int64_t r = ik[b];
      SumRows(h1 + b * H, nullptr, 0.f, w, c + s[r], s[r + 1] - s[r], H, H);
      BiasReluDropoutRow(h1 + b * H, bias, H,
                         static_cast<uint32_t>((index_member * B + b) * H),
                         drop, sh.rates[0] > 0.f);
    }
  }
  // Layers 1..L-1.
  for (int i = 1; i < L; ++i) {
    const int64_t Hi = sh.din[i], Ho = sh.dout[i];
    ConstMatrixMap x(acts[i].data(), B, Hi);
    ConstMatrixMap w(mv.var[2 * i], Hi, Ho);
    const bool last = i == L - 1;
    float* out = last ? sc.logits.data() : acts[i + 1].data();
    // out = bias + x @ w: the product accumulates onto the bias.
    const float* bias = mv.var[2 * i + 1];
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(out + b * Ho, bias, sizeof(float) * Ho);
    MatrixMap o(out, B, Ho);
    o.noalias() += x * w;
    if (!last) {
      const bool use = sh.rates[i] > 0.f;
      const DropoutStream drop(use ? seeds[i] : 0, sh.rates[i]);
      for (int64_t b = 0; b < B; ++b)
        BiasReluDropoutRow(out + b * Ho, nullptr, Ho,
                           static_cast<uint32_t>((index_member * B + b) * Ho),
                           drop, use);
    }
  }
  // Softmax cross-entropy; delta = d loss / d logits.
  double wsum = 0.0;
  for (int64_t b = 0; b < B; ++b) wsum += wk[b];
  const float inv = wsum > 0.0 ? static_cast<float>(1.0 / wsum) : 0.f;
  double step_loss = 0.0;
  for (int64_t b = 0; b < B; ++b) {
    const float* z = sc.logits.data() + b * C;
    float* d = sc.delta.data() + b * C;
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
  // Adam coefficients of this step.
  const float b1p = std::pow(sh.beta1, t), b2p = std::pow(sh.beta2, t);
  const AdamCoefs coefs(lr, b1p, b2p, sh.beta1, sh.beta2, sh.epsilon);
  // Backward through layers L-1..1: gradients from the weights before the
  // step, then the layer's Adam step.
  for (int i = L - 1; i >= 1; --i) {
    const int64_t Hi = sh.din[i], Ho = sh.dout[i];
    ConstMatrixMap x(acts[i].data(), B, Hi);
    ConstMatrixMap d(sc.delta.data(), B, Ho);
    float* w = mv.var[2 * i];
    MatrixMap g(sc.gw.data(), Hi, Ho);
    g.noalias() = x.transpose() * d;
    MatrixMap dx(sc.dinput.data(), B, Hi);
    dx.noalias() = d * ConstMatrixMap(w, Hi, Ho).transpose();
    AdamUpdate<true>(w, mv.m[2 * i], mv.v[2 * i], sc.gw.data(), decay,
                     Hi * Ho, coefs);
    ColumnSum(sc.gb.data(), nullptr, 0.f, sc.delta.data(), B, Ho);
    AdamUpdate<true>(mv.var[2 * i + 1], mv.m[2 * i + 1], mv.v[2 * i + 1],
                     sc.gb.data(), decay, Ho, coefs);
    // delta of layer i - 1 (pre-activation), through its relu and dropout.
    ReluDropoutGrad(sc.dinput.data(), acts[i].data(),
                    1.f / (1.f - sh.rates[i - 1]), B * Hi);
    std::swap(sc.delta, sc.dinput);
  }
  // Layer 0: bias, then the kernel rows feature by feature.
  {
    const int64_t H = sh.dout[0];
    ColumnSum(sc.gb.data(), mv.var[1], decay, sc.delta.data(), B, H);
    AdamUpdate<false>(mv.var[1], mv.m[1], mv.v[1], sc.gb.data(), 0.f, H,
                      coefs);
    BucketBatch(csr, ik, B, &sc.start, &sc.fill, &sc.rows);  // Checked.
    SparseLayerAdam(mv.var[0], mv.m[0], mv.v[0], sc.delta.data(),
                    sc.rows.data(), sc.start.data(), F, H, decay, coefs,
                    sc.gb.data());
  }
  return step_loss * inv;
}

}  // namespace wemem

#endif  // WEMEM_TF_MEMORIZATION_KERNELS_MEMBER_STEP_H_
