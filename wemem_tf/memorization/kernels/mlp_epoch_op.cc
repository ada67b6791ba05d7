// WememMlpEpoch: a whole epoch of K plain-MLP members (sparse binary first
// layer, then Dense layers) in one op: each member runs all its steps back
// to back, one member a task on TensorFlow's CPU threads. A step does what
// the per-step graph's ops do (the same dropout masks, Adam step counts and
// L2 terms); the dense layers' products use Eigen's matrix product.
#include "member_step.h"

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
class MlpEpochOp : public OpKernel {
 public:
  explicit MlpEpochOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("num_vars", &num_vars_));
    OP_REQUIRES_OK(c, c->GetAttr("rates", &rates_));
    OP_REQUIRES_OK(c, c->GetAttr("batch_size", &batch_size_));
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
    const int N = num_vars_, L = num_vars_ / 2;
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
    const Tensor& labels = ctx->input(3 * N);
    const Tensor& cols = ctx->input(3 * N + 1);
    const Tensor& splits = ctx->input(3 * N + 2);
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

    // Layer shapes: kernel i (K, din_i, dout_i), bias i (K, 1, dout_i).
    const Tensor& w0 = tensors[0];
    OP_REQUIRES(ctx, w0.dims() == 3,
                errors::InvalidArgument("kernels must be (K, fan_in, "
                                        "fan_out)"));
    const int64_t K = w0.dim_size(0);
    std::vector<int64_t> din(L), dout(L);
    for (int i = 0; i < L; ++i) {
      const Tensor& w = tensors[2 * i];
      const Tensor& b = tensors[2 * i + 1];
      OP_REQUIRES(ctx, w.dims() == 3 && w.dim_size(0) == K &&
                       b.NumElements() == K * w.dim_size(2) &&
                       (i == 0 || w.dim_size(1) == dout[i - 1]),
                  errors::InvalidArgument("layer shapes do not chain"));
      din[i] = w.dim_size(1);
      dout[i] = w.dim_size(2);
    }
    const int64_t F = din[0], C = dout[L - 1], B = batch_size_;
    OP_REQUIRES(ctx, cols.dims() == 1 && splits.dims() == 1 &&
                     splits.dim_size(0) >= 1 && labels.dims() == 1 &&
                     labels.dim_size(0) == splits.dim_size(0) - 1,
                errors::InvalidArgument("cols, splits and labels must be "
                                        "vectors for the same records"));
    OP_REQUIRES(ctx, order.dims() == 2 && order.dim_size(0) == K &&
                     order.dim_size(1) % B == 0 &&
                     weight.shape() == order.shape(),
                errors::InvalidArgument("order and weight must be (K, S * "
                                        "batch_size)"));
    const int64_t n = splits.dim_size(0) - 1, nnz = cols.dim_size(0),
                  SB = order.dim_size(1), S = SB / B;
    const Csr csr{n, F, nnz, splits.flat<int64_t>().data(),
                  cols.flat<int32_t>().data()};
    const int64_t* y = labels.flat<int64_t>().data();
    const int32_t* ord = order.flat<int32_t>().data();
    const float* wt = weight.flat<float>().data();
    // Everything is checked before any variable changes.
    for (int64_t r = 0; r < n; ++r) {
      OP_REQUIRES(ctx, csr.ValidRow(r),
                  errors::InvalidArgument("mlp_epoch: a column lies out of "
                                          "range"));
      OP_REQUIRES(ctx, y[r] >= 0 && y[r] < C,
                  errors::InvalidArgument("mlp_epoch: a label lies out of "
                                          "range"));
    }
    for (int64_t i = 0; i < K * SB; ++i)
      OP_REQUIRES(ctx, ord[i] >= 0 && ord[i] < n,
                  errors::InvalidArgument("mlp_epoch: a record index lies "
                                          "out of range"));
    Tensor* loss_t = nullptr;
    OP_REQUIRES_OK(ctx,
                   ctx->allocate_output(0, TensorShape({K}), &loss_t));
    float* loss_out = loss_t->flat<float>().data();

    MlpShape sh;
    sh.L = L;
    sh.din = din;
    sh.dout = dout;
    sh.rates = rates_;
    sh.beta1 = beta1_;
    sh.beta2 = beta2_;
    sh.epsilon = epsilon_;
    // Seeds per step: layer 0 always (as the per-step graph), then the
    // hidden layers i >= 1 with dropout.
    int64_t seeds_per_step = 1;
    for (int i = 1; i < L - 1; ++i) seeds_per_step += rates_[i] > 0.f;
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
      for (int64_t k = begin; k < end; ++k) {
        for (int i = 0; i < N; ++i) {
          const int64_t size = tensors[i].NumElements() / K;
          mv.var[i] = tensors[i].flat<float>().data() + k * size;
          mv.m[i] = tensors[N + i].flat<float>().data() + k * size;
          mv.v[i] = tensors[2 * N + i].flat<float>().data() + k * size;
        }
        double loss_sum = 0.0;
        for (int64_t st = 0; st < S; ++st) {
          int64_t seed = seed0 + st * seeds_per_step;
          seeds[0] = static_cast<uint64_t>(++seed);
          for (int i = 1; i < L - 1; ++i)
            seeds[i] = rates_[i] > 0.f ? static_cast<uint64_t>(++seed) : 0;
          loss_sum += MemberStep(sh, csr, y, ord + k * SB + st * B,
                                 wt + k * SB + st * B, B, k, seeds.data(), lr,
                                 decay, static_cast<float>(step0 + st + 1),
                                 mv, sc);
        }
        loss_out[k] = S > 0 ? static_cast<float>(loss_sum / S) : 0.f;
      }
    };
    // One member a shard: members take the free threads one by one, so the
    // threads finish the epoch together (a member-epoch is ~10 ms).
    pool->ParallelForWithWorkerId(
        K, thread::ThreadPool::SchedulingParams(
               thread::ThreadPool::SchedulingStrategy::kFixedBlockSize,
               absl::nullopt, 1),
        work);
  }

 private:
  int num_vars_;
  std::vector<float> rates_;
  int64_t batch_size_;
  float beta1_, beta2_, epsilon_;
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
