// WememCohortEpoch: one epoch of chosen members of a cohort of plain MLPs
// (sparse binary first layer, then Dense layers) that are being pruned, in
// one op (wemem_tf/pruning/cohort.py). Like WememMlpEpoch, each member runs
// its steps back to back, one member a task on TensorFlow's CPU threads,
// each step being MemberStep; unlike it, each member has
// * its own Adam step count (steps) and dropout key (keys): hidden layer l
//   at step s draws the stream of seed key + 64 s + l, flat index b H + h
//   (the member's own batch position: independent of the other members);
// * its own batches: order and weight (members, S, B), a step whose weights
//   are all 0 is no step at all (no update, no Adam count), and its own L2
//   coefficient per step, decay (members, S);
// * pruning masks of its hidden kernels: before each step and after the
//   epoch, kernel = kernel * mask (what the pruning wrappers do).
// Members not listed are left untouched. Outputs: each listed member's sum
// of batch losses and its number of steps taken.
#include "epoch_op.h"

namespace wemem {
namespace {

constexpr int64_t kSeedsPerStep = 64;

class CohortEpochOp : public EpochOpBase {
 public:
  explicit CohortEpochOp(OpKernelConstruction* c) : EpochOpBase(c) {}

  void Compute(OpKernelContext* ctx) override {
    const int N = num_vars_, L = num_vars_ / 2, H = L - 1;  // H masks.
    auto locks = LockVariables(ctx);
    std::vector<Tensor> tensors;
    MlpShape sh;
    int64_t K = 0;
    OP_REQUIRES_OK(ctx, ReadVariables(ctx, &tensors, &sh, &K));
    int arg = 3 * N;
    std::vector<const float*> masks(H);
    for (int i = 0; i < H; ++i) {
      const Tensor& mask = ctx->input(arg++);
      OP_REQUIRES(ctx, mask.shape() == tensors[2 * i].shape(),
                  errors::InvalidArgument("a mask differs in shape from its "
                                          "kernel"));
      masks[i] = mask.flat<float>().data();
    }
    Csr csr;
    const int64_t* y = nullptr;
    OP_REQUIRES_OK(ctx, ReadRecords(ctx, arg, sh, &csr, &y));
    arg += 3;
    const Tensor& members = ctx->input(arg++);
    const Tensor& order = ctx->input(arg++);
    const Tensor& weight = ctx->input(arg++);
    const Tensor& decay = ctx->input(arg++);
    const Tensor& lr_t = ctx->input(arg++);
    const Tensor& steps = ctx->input(arg++);
    const Tensor& keys = ctx->input(arg++);
    OP_REQUIRES(ctx, lr_t.NumElements() == 1,
                errors::InvalidArgument("lr must be a scalar"));
    const float lr = lr_t.flat<float>()(0);

    const int64_t M = members.NumElements();
    OP_REQUIRES(ctx, members.dims() == 1 && order.dims() == 3 &&
                     order.dim_size(0) == M && weight.shape() == order.shape()
                     && decay.dims() == 2 && decay.dim_size(0) == M &&
                     decay.dim_size(1) == order.dim_size(1) &&
                     steps.NumElements() == M && keys.NumElements() == M,
                errors::InvalidArgument("members (M,), order and weight (M, "
                                        "S, B), decay (M, S), steps and keys "
                                        "(M,) needed"));
    const int64_t S = order.dim_size(1), B = order.dim_size(2);
    const int32_t* who = members.flat<int32_t>().data();
    const int32_t* ord = order.flat<int32_t>().data();
    const float* wt = weight.flat<float>().data();
    const float* dec = decay.flat<float>().data();
    const int64_t* step0 = steps.flat<int64_t>().data();
    const int64_t* key = keys.flat<int64_t>().data();
    // Everything is checked before any variable changes.
    OP_REQUIRES_OK(ctx, CheckIndices(ord, M * S * B, csr.n));
    for (int64_t i = 0; i < M; ++i)
      OP_REQUIRES(ctx, who[i] >= 0 && who[i] < K,
                  errors::InvalidArgument("cohort_epoch: a member lies out "
                                          "of range"));
    Tensor* loss_t = nullptr;
    Tensor* taken_t = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({M}), &loss_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({M}), &taken_t));
    float* loss_out = loss_t->flat<float>().data();
    int64_t* taken_out = taken_t->flat<int64_t>().data();

    ForEachMember(
        ctx, tensors, K, sh, B, M, [&](int64_t i) { return who[i]; },
        [&](int64_t i, const MemberVars& mv, StepScratch& sc) {
          const int64_t k = who[i];
          auto apply_masks = [&]() {
            for (int l = 0; l < H; ++l) {
              const int64_t size = sh.din[l] * sh.dout[l];
              float* w = mv.var[2 * l];
              const float* mask = masks[l] + k * size;
              for (int64_t e = 0; e < size; ++e) w[e] *= mask[e];
            }
          };
          std::vector<uint64_t> seeds(L, 0);
          double loss_sum = 0.0;
          int64_t taken = 0;
          for (int64_t st = 0; st < S; ++st) {
            const float* wk = wt + (i * S + st) * B;
            double wsum = 0.0;
            for (int64_t b = 0; b < B; ++b) wsum += wk[b];
            if (wsum <= 0.0) continue;  // No batch for this member here.
            apply_masks();
            for (int l = 0; l < L; ++l)
              seeds[l] =
                  static_cast<uint64_t>(key[i] + st * kSeedsPerStep + l);
            loss_sum += MemberStep(
                sh, csr, y, ord + (i * S + st) * B, wk, B, 0, seeds.data(),
                lr, dec[i * S + st], static_cast<float>(step0[i] + taken + 1),
                mv, sc);
            ++taken;
          }
          apply_masks();
          loss_out[i] = static_cast<float>(loss_sum);
          taken_out[i] = taken;
        });
  }
};

}  // namespace

REGISTER_OP("WememCohortEpoch")
    .Input("vars: num_vars * resource")
    .Input("m: num_vars * resource")
    .Input("v: num_vars * resource")
    .Input("masks: num_masks * float")
    .Input("labels: int64")
    .Input("cols: int32")
    .Input("splits: int64")
    .Input("members: int32")
    .Input("order: int32")
    .Input("weight: float")
    .Input("decay: float")
    .Input("lr: float")
    .Input("steps: int64")
    .Input("keys: int64")
    .Output("loss_sum: float")
    .Output("steps_taken: int64")
    .Attr("num_vars: int >= 4")
    .Attr("num_masks: int >= 1")
    .Attr("rates: list(float)")
    .Attr("beta1: float")
    .Attr("beta2: float")
    .Attr("epsilon: float")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      int num_vars, num_masks;
      TF_RETURN_IF_ERROR(c->GetAttr("num_vars", &num_vars));
      TF_RETURN_IF_ERROR(c->GetAttr("num_masks", &num_masks));
      ShapeHandle members;
      TF_RETURN_IF_ERROR(
          c->WithRank(c->input(3 * num_vars + num_masks + 3), 1, &members));
      c->set_output(0, c->Vector(c->Dim(members, 0)));
      c->set_output(1, c->Vector(c->Dim(members, 0)));
      return OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("WememCohortEpoch").Device(DEVICE_CPU),
                        CohortEpochOp);

}  // namespace wemem
