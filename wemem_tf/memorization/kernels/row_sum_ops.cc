// The first layer's product for binary inputs and its gradient:
// WememRowSum, out (K, B, H) = the sum of weights[k, f] over the ones f of
// record idx[k, b], and WememRowSumGrad, the gradient with respect to the
// weights plus the L2 term decay * weights.
#include "common.h"
#include "row_sum.h"

namespace wemem {
namespace {

class RowSumOp : public OpKernel {
 public:
  explicit RowSumOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& weights = ctx->input(0);
    RowSumArgs a;
    OP_REQUIRES_OK(ctx, ReadRowSumArgs(ctx, weights, 1, &a));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({a.K, a.B, a.H}),
                                             &out));
    const bool ok = SumBatchRows(ctx, a, weights.flat<float>().data(),
                                 out->flat<float>().data(), 50 * a.H,
                                 [](int64_t, float*) {});
    OP_REQUIRES(ctx, ok, errors::InvalidArgument(
        "row_sum: a record index or a column lies out of range"));
  }
};

class RowSumGradOp : public OpKernel {
 public:
  explicit RowSumGradOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& grad = ctx->input(0);
    const Tensor& weights = ctx->input(1);
    const Tensor& decay_t = ctx->input(5);
    RowSumArgs a;
    OP_REQUIRES_OK(ctx, ReadRowSumArgs(ctx, weights, 2, &a));
    const int64_t K = a.K, F = a.x.F, H = a.H, B = a.B;
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
    float* o = out->flat<float>().data();
    std::atomic<bool> bad(false);
    // One member per work unit (no races). For member k the batch's ones are
    // bucketed by feature, then each output row is decay * weights[k, f] +
    // the sum of the gradient rows of the records that have feature f,
    // accumulated in registers.
    auto work = [&bad, a, K, F, H, B, g, w, o, decay](int64_t begin,
                                                      int64_t end) {
      std::vector<int32_t> start(F + 1), fill(F), rows;
      for (int64_t k = begin; k < end; ++k) {
        if (!BucketBatch(a.x, a.id + k * B, B, &start, &fill, &rows)) {
          bad = true;
          std::memset(o + k * F * H, 0, sizeof(float) * F * H);
          continue;
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

}  // namespace

REGISTER_OP("WememRowSum")
    .Input("weights: float")
    .Input("cols: int32")
    .Input("splits: int64")
    .Input("idx: int32")
    .Output("out: float")
    .SetShapeFn([](InferenceContext* c) { return RowSumShape(c, 3); });

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

REGISTER_KERNEL_BUILDER(Name("WememRowSum").Device(DEVICE_CPU), RowSumOp);
REGISTER_KERNEL_BUILDER(Name("WememRowSumGrad").Device(DEVICE_CPU),
                        RowSumGradOp);

}  // namespace wemem
