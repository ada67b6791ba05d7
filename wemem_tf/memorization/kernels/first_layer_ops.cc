// The fused first layer of the per-step graph, for binary inputs as CSR:
// WememRowSumReluDropout, h1 = dropout(relu(x @ W + b)) with x @ W as a row
// sum, and WememRowSumReluDropoutAdam, that layer's backward pass and Adam
// step in one kernel (the gradient decay * W + X^T dpre formed feature row
// by feature row and applied at once, never stored).
#include "adam.h"
#include "backward.h"
#include "common.h"
#include "dropout.h"
#include "row_sum.h"

namespace wemem {
namespace {

// h1 = dropout(relu(row_sum(weights, idx) + bias)) for all members:
// weights (K, F, H), bias (K, 1, H) -> (K, B, H). The dropout mask of
// element i = (k * B + b) * H + h is the one DropoutMaskOp draws for i.
class RowSumReluDropoutOp : public DropoutOpBase {
 public:
  using DropoutOpBase::DropoutOpBase;
  void Compute(OpKernelContext* ctx) override {
    const Tensor& weights = ctx->input(0);
    const Tensor& bias = ctx->input(1);
    RowSumArgs a;
    OP_REQUIRES_OK(ctx, ReadRowSumArgs(ctx, weights, 2, &a));
    const int64_t H = a.H, B = a.B;
    OP_REQUIRES(ctx, bias.NumElements() == a.K * H,
                errors::InvalidArgument("bias must be (K, 1, H)"));
    DropoutStream drop;
    OP_REQUIRES_OK(ctx, ReadStream(ctx, 5, &drop));
    const bool use_dropout = rate_ > 0.f;
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({a.K, B, H}),
                                             &out));
    const float* bs = bias.flat<float>().data();
    const bool ok = SumBatchRows(
        ctx, a, weights.flat<float>().data(), out->flat<float>().data(),
        60 * H, [H, B, bs, drop, use_dropout](int64_t u, float* row) {
          BiasReluDropoutRow(row, bs + (u / B) * H, H,
                             static_cast<uint32_t>(u * H), drop, use_dropout);
        });
    OP_REQUIRES(ctx, ok, errors::InvalidArgument(
        "row_sum_relu_dropout: a record index or a column lies out of range"));
  }
};

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
    RowSumArgs a;
    OP_REQUIRES_OK(ctx, ReadRowSumArgs(ctx, var, 8, &a));
    const int64_t K = a.K, F = a.x.F, H = a.H, B = a.B;
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
    std::atomic<bool> bad(false);
    auto work = [&bad, a, K, F, H, B, ph, pd, pw, pm, pv, pbw, pbm, pbv,
                 decay, coefs, scale](int64_t begin, int64_t end) {
      std::vector<int32_t> start(F + 1), fill(F), rows;
      std::vector<float> grow(H), dpre(B * H);
      for (int64_t k = begin; k < end; ++k) {
        if (!BucketBatch(a.x, a.id + k * B, B, &start, &fill, &rows)) {
          bad = true;  // Leaves member k unchanged.
          continue;
        }
        // dpre and the bias gradient.
        std::copy(pd + k * B * H, pd + (k + 1) * B * H, dpre.begin());
        ReluDropoutGrad(dpre.data(), ph + k * B * H, scale, B * H);
        ColumnSum(grow.data(), pbw + k * H, decay, dpre.data(), B, H);
        AdamUpdate<false>(pbw + k * H, pbm + k * H, pbv + k * H, grow.data(),
                          0.f, H, coefs);
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

}  // namespace

REGISTER_OP("WememRowSumReluDropout")
    .Input("weights: float")
    .Input("bias: float")
    .Input("cols: int32")
    .Input("splits: int64")
    .Input("idx: int32")
    .Input("seed: int64")
    .Attr("rate: float")
    .Output("out: float")
    .SetShapeFn([](InferenceContext* c) { return RowSumShape(c, 4); });

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

REGISTER_KERNEL_BUILDER(Name("WememRowSumReluDropout").Device(DEVICE_CPU),
                        RowSumReluDropoutOp);
REGISTER_KERNEL_BUILDER(
    Name("WememRowSumReluDropoutAdam").Device(DEVICE_CPU),
    RowSumReluDropoutAdamOp);

}  // namespace wemem
