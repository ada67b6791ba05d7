// WememAdam: Keras' Adam step with the L2 term on one variable,
// var, m, v <- Adam(var, m, v, grad + decay * var), in one pass (the other
// layers of the per-step graph; TensorFlow's Adam needs the L2 term as a
// separate pass).
#include "adam.h"
#include "common.h"

namespace wemem {
namespace {

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
      for (int64_t blk = begin; blk < end; ++blk) {
        const int64_t lo = blk * kChunk;
        const int64_t len = std::min(total, lo + kChunk) - lo;
        AdamUpdate<true>(pw + lo, pm + lo, pv + lo, pg + lo, decay, len,
                         coefs);
      }
    };
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
        (total + kChunk - 1) / kChunk, kChunk * 12, work);
  }
};

}  // namespace

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

}  // namespace wemem
