// WememDropoutMask: a float mask shaped like its input, 0 or 1 / (1 - rate)
// per element from the counter-based dropout stream of a seed (dropout.h),
// ~0.6 ns/element.
#include "common.h"
#include "dropout.h"

namespace wemem {
namespace {

class DropoutMaskOp : public DropoutOpBase {
 public:
  using DropoutOpBase::DropoutOpBase;
  void Compute(OpKernelContext* ctx) override {
    const Tensor& like = ctx->input(0);
    DropoutStream drop;
    OP_REQUIRES_OK(ctx, ReadStream(ctx, 1, &drop));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, like.shape(), &out));
    float* o = out->flat<float>().data();
    const int64_t total = like.NumElements();
    constexpr int64_t kChunk = 4096;
    auto work = [o, total, drop](int64_t begin, int64_t end) {
      for (int64_t blk = begin; blk < end; ++blk) {
        const int64_t lo = blk * kChunk;
        const int64_t len = std::min(total, lo + kChunk) - lo;
        float* __restrict ob = o + lo;
        // Locals (not lambda members) so that the loop vectorizes.
        const uint32_t base = static_cast<uint32_t>(lo), key1 = drop.k1,
                       key2 = drop.k2, thresh = drop.threshold;
        const float keep = drop.scale;
        for (int64_t i = 0; i < len; ++i)
          ob[i] = KeepFactor(base + static_cast<uint32_t>(i), key1, key2,
                             thresh, keep);
      }
    };
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
        (total + kChunk - 1) / kChunk, kChunk * 8, work);
  }
};

}  // namespace

REGISTER_OP("WememDropoutMask")
    .Input("like: float")
    .Input("seed: int64")
    .Attr("rate: float")
    .Output("mask: float")
    .SetShapeFn(shape_inference::UnchangedShape);

REGISTER_KERNEL_BUILDER(Name("WememDropoutMask").Device(DEVICE_CPU),
                        DropoutMaskOp);

}  // namespace wemem
