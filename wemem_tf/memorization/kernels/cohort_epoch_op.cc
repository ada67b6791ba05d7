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
#include "member_step.h"

namespace wemem {
namespace {

constexpr int64_t kSeedsPerStep = 64;

class CohortEpochOp : public OpKernel {
 public:
  explicit CohortEpochOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("num_vars", &num_vars_));
    OP_REQUIRES_OK(c, c->GetAttr("rates", &rates_));
    OP_REQUIRES_OK(c, c->GetAttr("beta1", &beta1_));
    OP_REQUIRES_OK(c, c->GetAttr("beta2", &beta2_));
    OP_REQUIRES_OK(c, c->GetAttr("epsilon", &epsilon_));
    OP_REQUIRES(c, num_vars_ % 2 == 0 && num_vars_ >= 4,
                errors::InvalidArgument("num_vars: a kernel and a bias per "
                                        "layer, two layers or more"));
    OP_REQUIRES(c, static_cast<int>(rates_.size()) == num_vars_ / 2 - 1,
                errors::InvalidArgument("rates: one per hidden layer"));
    for (float r : rates_)
      OP_REQUIRES(c, r >= 0.f && r < 1.f,
                  errors::InvalidArgument("rates must lie in [0, 1)"));
  }

  void Compute(OpKernelContext* ctx) override {
    const int N = num_vars_, L = num_vars_ / 2, H = L - 1;  // H masks.
    std::vector<int> ids(3 * N);
    for (int i = 0; i < 3 * N; ++i) ids[i] = i;
    auto locks =
        MaybeLockVariableInputMutexesInOrder<CPUDevice, float>(ctx, true,
                                                               false, ids);
    std::vector<Tensor> tensors(3 * N);
    for (int i = 0; i < 3 * N; ++i) {
      OP_REQUIRES_OK(ctx, GetInputTensorFromVariable<CPUDevice, float>(
                              ctx, i, true, false, &tensors[i]));
      OP_REQUIRES(ctx, tensors[i].IsInitialized(),
                  errors::FailedPrecondition("uninitialized variable"));
      OP_REQUIRES(ctx, tensors[i].shape() == tensors[i % N].shape(),
                  errors::InvalidArgument("var, m and v differ in shape"));
    }
    int arg = 3 * N;
    std::vector<const float*> masks(H);
    for (int i = 0; i < H; ++i) {
      const Tensor& mask = ctx->input(arg++);
      OP_REQUIRES(ctx, mask.shape() == tensors[2 * i].shape(),
                  errors::InvalidArgument("a mask differs in shape from its "
                                          "kernel"));
      masks[i] = mask.flat<float>().data();
    }
    const Tensor& labels = ctx->input(arg++);
    const Tensor& cols = ctx->input(arg++);
    const Tensor& splits = ctx->input(arg++);
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

    const Tensor& w0 = tensors[0];
    OP_REQUIRES(ctx, w0.dims() == 3,
                errors::InvalidArgument("kernels must be (K, fan_in, "
                                        "fan_out)"));
    const int64_t K = w0.dim_size(0);
    MlpShape sh;
    sh.L = L;
    sh.din.resize(L);
    sh.dout.resize(L);
    sh.rates = rates_;
    sh.beta1 = beta1_;
    sh.beta2 = beta2_;
    sh.epsilon = epsilon_;
    for (int i = 0; i < L; ++i) {
      const Tensor& w = tensors[2 * i];
      const Tensor& b = tensors[2 * i + 1];
      OP_REQUIRES(ctx, w.dims() == 3 && w.dim_size(0) == K &&
                       b.NumElements() == K * w.dim_size(2) &&
                       (i == 0 || w.dim_size(1) == sh.dout[i - 1]),
                  errors::InvalidArgument("layer shapes do not chain"));
      sh.din[i] = w.dim_size(1);
      sh.dout[i] = w.dim_size(2);
    }
    const int64_t M = members.NumElements();
    OP_REQUIRES(ctx, members.dims() == 1 && order.dims() == 3 &&
                     order.dim_size(0) == M && weight.shape() == order.shape()
                     && decay.dims() == 2 && decay.dim_size(0) == M &&
                     decay.dim_size(1) == order.dim_size(1) &&
                     steps.NumElements() == M && keys.NumElements() == M,
                errors::InvalidArgument("members (M,), order and weight (M, "
                                        "S, B), decay (M, S), steps and keys "
                                        "(M,) needed"));
    OP_REQUIRES(ctx, cols.dims() == 1 && splits.dims() == 1 &&
                     splits.dim_size(0) >= 1 && labels.dims() == 1 &&
                     labels.dim_size(0) == splits.dim_size(0) - 1,
                errors::InvalidArgument("cols, splits and labels must be "
                                        "vectors for the same records"));
    const int64_t S = order.dim_size(1), B = order.dim_size(2);
    const int64_t n = splits.dim_size(0) - 1, nnz = cols.dim_size(0);
    const Csr csr{n, sh.F(), nnz, splits.flat<int64_t>().data(),
                  cols.flat<int32_t>().data()};
    const int64_t* y = labels.flat<int64_t>().data();
    const int32_t* who = members.flat<int32_t>().data();
    const int32_t* ord = order.flat<int32_t>().data();
    const float* wt = weight.flat<float>().data();
    const float* dec = decay.flat<float>().data();
    const int64_t* step0 = steps.flat<int64_t>().data();
    const int64_t* key = keys.flat<int64_t>().data();
    // Everything is checked before any variable changes.
    for (int64_t r = 0; r < n; ++r) {
      OP_REQUIRES(ctx, csr.ValidRow(r),
                  errors::InvalidArgument("cohort_epoch: a column lies out "
                                          "of range"));
      OP_REQUIRES(ctx, y[r] >= 0 && y[r] < sh.C(),
                  errors::InvalidArgument("cohort_epoch: a label lies out of "
                                          "range"));
    }
    for (int64_t i = 0; i < M; ++i)
      OP_REQUIRES(ctx, who[i] >= 0 && who[i] < K,
                  errors::InvalidArgument("cohort_epoch: a member lies out "
                                          "of range"));
    for (int64_t i = 0; i < M * S * B; ++i)
      OP_REQUIRES(ctx, ord[i] >= 0 && ord[i] < n,
                  errors::InvalidArgument("cohort_epoch: a record index lies "
                                          "out of range"));
    Tensor* loss_t = nullptr;
    Tensor* taken_t = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({M}), &loss_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({M}), &taken_t));
    float* loss_out = loss_t->flat<float>().data();
    int64_t* taken_out = taken_t->flat<int64_t>().data();

    thread::ThreadPool* pool =
        ctx->device()->tensorflow_cpu_worker_threads()->workers;
    std::vector<StepScratch> scratch(pool->NumThreads() + 1);
    auto work = [&](int64_t begin, int64_t end, int worker) {
      StepScratch& sc = scratch[worker];
      sc.Reserve(sh, B);
      MemberVars mv;
      mv.var.resize(N);
      mv.m.resize(N);
      mv.v.resize(N);
      std::vector<uint64_t> seeds(L, 0);
      for (int64_t i = begin; i < end; ++i) {
        const int64_t k = who[i];
        for (int j = 0; j < N; ++j) {
          const int64_t size = tensors[j].NumElements() / K;
          mv.var[j] = tensors[j].flat<float>().data() + k * size;
          mv.m[j] = tensors[N + j].flat<float>().data() + k * size;
          mv.v[j] = tensors[2 * N + j].flat<float>().data() + k * size;
        }
        auto apply_masks = [&]() {
          for (int l = 0; l < H; ++l) {
            const int64_t size = sh.din[l] * sh.dout[l];
            float* w = mv.var[2 * l];
            const float* mask = masks[l] + k * size;
            for (int64_t e = 0; e < size; ++e) w[e] *= mask[e];
          }
        };
        double loss_sum = 0.0;
        int64_t taken = 0;
        for (int64_t st = 0; st < S; ++st) {
          const float* wk = wt + (i * S + st) * B;
          double wsum = 0.0;
          for (int64_t b = 0; b < B; ++b) wsum += wk[b];
          if (wsum <= 0.0) continue;  // No batch for this member here.
          apply_masks();
          for (int l = 0; l < L; ++l)
            seeds[l] = static_cast<uint64_t>(key[i] + st * kSeedsPerStep + l);
          loss_sum += MemberStep(
              sh, csr, y, ord + (i * S + st) * B, wk, B, 0, seeds.data(), lr,
              dec[i * S + st], static_cast<float>(step0[i] + taken + 1), mv,
              sc);
          ++taken;
        }
        apply_masks();
        loss_out[i] = static_cast<float>(loss_sum);
        taken_out[i] = taken;
      }
    };
    pool->ParallelForWithWorkerId(
        M, thread::ThreadPool::SchedulingParams(
               thread::ThreadPool::SchedulingStrategy::kFixedBlockSize,
               absl::nullopt, 1),
        work);
  }

 private:
  int num_vars_;
  std::vector<float> rates_;
  float beta1_, beta2_, epsilon_;
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
