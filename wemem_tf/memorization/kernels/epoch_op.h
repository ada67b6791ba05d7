// What the epoch ops (WememMlpEpoch, WememCohortEpoch) share: their
// attributes, their locked variables (vars, m, v of every layer), the
// members' shape read from those variables, and the checks of the records.
#ifndef WEMEM_TF_MEMORIZATION_KERNELS_EPOCH_OP_H_
#define WEMEM_TF_MEMORIZATION_KERNELS_EPOCH_OP_H_

#include "member_step.h"

namespace wemem {

class EpochOpBase : public OpKernel {
 public:
  // Attributes: num_vars (a kernel and a bias per layer), rates (dropout
  // after each hidden layer), beta1, beta2, epsilon (Adam).
  explicit EpochOpBase(OpKernelConstruction* c) : OpKernel(c) {
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

 protected:
  // Locks the variables at inputs 0 .. 3 * num_vars - 1 (vars, m, v) until
  // the holder is destroyed.
  VariableInputLockHolder LockVariables(OpKernelContext* ctx) const {
    std::vector<int> ids(3 * num_vars_);
    for (int i = 0; i < 3 * num_vars_; ++i) ids[i] = i;
    return MaybeLockVariableInputMutexesInOrder<CPUDevice, float>(ctx, true,
                                                                  false, ids);
  }

  // The locked variables' tensors and the members' shape: kernel i
  // (K, din_i, dout_i), bias i with K * dout_i values.
  Status ReadVariables(OpKernelContext* ctx, std::vector<Tensor>* tensors,
                       MlpShape* sh, int64_t* K) const {
    const int N = num_vars_, L = num_vars_ / 2;
    tensors->resize(3 * N);
    for (int i = 0; i < 3 * N; ++i) {
      Tensor& t = (*tensors)[i];
      TF_RETURN_IF_ERROR(GetInputTensorFromVariable<CPUDevice, float>(
          ctx, i, true, false, &t));
      if (!t.IsInitialized())
        return errors::FailedPrecondition("uninitialized variable");
      if (t.shape() != (*tensors)[i % N].shape())
        return errors::InvalidArgument("var, m and v differ in shape");
    }
    const Tensor& w0 = (*tensors)[0];
    if (w0.dims() != 3)
      return errors::InvalidArgument("kernels must be (K, fan_in, fan_out)");
    *K = w0.dim_size(0);
    sh->L = L;
    sh->din.assign(L, 0);
    sh->dout.assign(L, 0);
    sh->rates = rates_;
    sh->beta1 = beta1_;
    sh->beta2 = beta2_;
    sh->epsilon = epsilon_;
    for (int i = 0; i < L; ++i) {
      const Tensor& w = (*tensors)[2 * i];
      const Tensor& b = (*tensors)[2 * i + 1];
      if (w.dims() != 3 || w.dim_size(0) != *K ||
          b.NumElements() != *K * w.dim_size(2) ||
          (i > 0 && w.dim_size(1) != sh->dout[i - 1]))
        return errors::InvalidArgument("layer shapes do not chain");
      sh->din[i] = w.dim_size(1);
      sh->dout[i] = w.dim_size(2);
    }
    return OkStatus();
  }

  // Member k's slices of the variables (of K members).
  void MemberSlices(std::vector<Tensor>& tensors, int64_t K, int64_t k,
                    MemberVars* mv) const {
    const int N = num_vars_;
    mv->var.resize(N);
    mv->m.resize(N);
    mv->v.resize(N);
    for (int i = 0; i < N; ++i) {
      const int64_t size = tensors[i].NumElements() / K;
      mv->var[i] = tensors[i].flat<float>().data() + k * size;
      mv->m[i] = tensors[N + i].flat<float>().data() + k * size;
      mv->v[i] = tensors[2 * N + i].flat<float>().data() + k * size;
    }
  }

  // The records at inputs first .. first + 2 (labels int64 (n,), cols
  // int32 (nnz,) and splits int64 (n + 1,): the CSR of their ones), checked
  // (every row, every label in [0, C)) before any variable changes.
  static Status ReadRecords(OpKernelContext* ctx, int first,
                            const MlpShape& sh, Csr* csr, const int64_t** y) {
    const Tensor& labels = ctx->input(first);
    const Tensor& cols = ctx->input(first + 1);
    const Tensor& splits = ctx->input(first + 2);
    if (cols.dims() != 1 || splits.dims() != 1 || splits.dim_size(0) < 1 ||
        labels.dims() != 1 || labels.dim_size(0) != splits.dim_size(0) - 1)
      return errors::InvalidArgument("cols, splits and labels must be "
                                     "vectors for the same records");
    *csr = Csr{splits.dim_size(0) - 1, sh.F(), cols.dim_size(0),
               splits.flat<int64_t>().data(), cols.flat<int32_t>().data()};
    *y = labels.flat<int64_t>().data();
    for (int64_t r = 0; r < csr->n; ++r) {
      if (!csr->ValidRow(r))
        return errors::InvalidArgument("a column lies out of range");
      if ((*y)[r] < 0 || (*y)[r] >= sh.C())
        return errors::InvalidArgument("a label lies out of range");
    }
    return OkStatus();
  }

  // Checks that the record indices ord[0:count] lie in [0, n).
  static Status CheckIndices(const int32_t* ord, int64_t count, int64_t n) {
    for (int64_t i = 0; i < count; ++i)
      if (ord[i] < 0 || ord[i] >= n)
        return errors::InvalidArgument("a record index lies out of range");
    return OkStatus();
  }

  // Calls member(i, mv, scratch) for i in [0, count), one member a task on
  // TensorFlow's CPU threads (members take the free threads one by one, so
  // the threads finish the epoch together; a member-epoch is ~10 ms), with
  // mv set to the slices of member index_of(i) and the thread's scratch
  // sized for batches of B records.
  template <typename IndexOf, typename Member>
  void ForEachMember(OpKernelContext* ctx, std::vector<Tensor>& tensors,
                     int64_t K, const MlpShape& sh, int64_t B, int64_t count,
                     IndexOf index_of, Member member) const {
    thread::ThreadPool* pool =
        ctx->device()->tensorflow_cpu_worker_threads()->workers;
    std::vector<StepScratch> scratch(pool->NumThreads() + 1);
    auto work = [&](int64_t begin, int64_t end, int worker) {
      StepScratch& sc = scratch[worker];
      sc.Reserve(sh, B);
      MemberVars mv;
      for (int64_t i = begin; i < end; ++i) {
        MemberSlices(tensors, K, index_of(i), &mv);
        member(i, mv, sc);
      }
    };
    pool->ParallelForWithWorkerId(
        count, thread::ThreadPool::SchedulingParams(
                   thread::ThreadPool::SchedulingStrategy::kFixedBlockSize,
                   absl::nullopt, 1),
        work);
  }

  int num_vars_;
  std::vector<float> rates_;
  float beta1_, beta2_, epsilon_;
};

}  // namespace wemem

#endif  // WEMEM_TF_MEMORIZATION_KERNELS_EPOCH_OP_H_
