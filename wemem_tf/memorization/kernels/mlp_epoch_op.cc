// WememMlpEpoch: a whole epoch of K plain-MLP members (sparse binary first
// layer, then Dense layers) in one op: each member runs all its steps back
// to back, one member a task on TensorFlow's CPU threads. A step does what
// the per-step graph's ops do (the same dropout masks, Adam step counts and
// L2 terms); the dense layers' products use Eigen's matrix product.
#include "epoch_op.h"

namespace wemem {
namespace {

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
class MlpEpochOp : public EpochOpBase {
 public:
  explicit MlpEpochOp(OpKernelConstruction* c) : EpochOpBase(c) {
    OP_REQUIRES_OK(c, c->GetAttr("batch_size", &batch_size_));
  }

  void Compute(OpKernelContext* ctx) override {
    const int N = num_vars_, L = num_vars_ / 2;
    auto locks = LockVariables(ctx);
    std::vector<Tensor> tensors;
    MlpShape sh;
    int64_t K = 0;
    OP_REQUIRES_OK(ctx, ReadVariables(ctx, &tensors, &sh, &K));
    Csr csr;
    const int64_t* y = nullptr;
    OP_REQUIRES_OK(ctx, ReadRecords(ctx, 3 * N, sh, &csr, &y));
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

    const int64_t B = batch_size_;
    OP_REQUIRES(ctx, order.dims() == 2 && order.dim_size(0) == K &&
                     order.dim_size(1) % B == 0 &&
                     weight.shape() == order.shape(),
                errors::InvalidArgument("order and weight must be (K, S * "
                                        "batch_size)"));
    const int64_t SB = order.dim_size(1), S = SB / B;
    const int32_t* ord = order.flat<int32_t>().data();
    const float* wt = weight.flat<float>().data();
    OP_REQUIRES_OK(ctx, CheckIndices(ord, K * SB, csr.n));
    Tensor* loss_t = nullptr;
    OP_REQUIRES_OK(ctx,
                   ctx->allocate_output(0, TensorShape({K}), &loss_t));
    float* loss_out = loss_t->flat<float>().data();

    // Seeds per step: layer 0 always (as the per-step graph), then the
    // hidden layers i >= 1 with dropout.
    int64_t seeds_per_step = 1;
    for (int i = 1; i < L - 1; ++i) seeds_per_step += rates_[i] > 0.f;
    ForEachMember(
        ctx, tensors, K, sh, B, K, [](int64_t k) { return k; },
        [&](int64_t k, const MemberVars& mv, StepScratch& sc) {
          std::vector<uint64_t> seeds(L, 0);
          double loss_sum = 0.0;
          for (int64_t st = 0; st < S; ++st) {
            int64_t seed = seed0 + st * seeds_per_step;
            seeds[0] = static_cast<uint64_t>(++seed);
            for (int i = 1; i < L - 1; ++i)
              seeds[i] = rates_[i] > 0.f ? static_cast<uint64_t>(++seed) : 0;
            loss_sum += MemberStep(sh, csr, y, ord + k * SB + st * B,
                                   wt + k * SB + st * B, B, k, seeds.data(),
                                   lr, decay,
                                   static_cast<float>(step0 + st + 1), mv,
                                   sc);
          }
          loss_out[k] = S > 0 ? static_cast<float>(loss_sum / S) : 0.f;
        });
  }

 private:
  int64_t batch_size_;
};

}  // namespace

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

}  // namespace wemem
