// Keras' Adam (keras.optimizers.Adam: epsilon outside the square root, the
// bias correction folded into the step size), the one implementation every
// kernel that updates weights uses: its coefficients (AdamCoefs), the update
// (AdamUpdate) and the base of the Adam ops (AdamOpBase).
#ifndef WEMEM_TF_MEMORIZATION_KERNELS_ADAM_H_
#define WEMEM_TF_MEMORIZATION_KERNELS_ADAM_H_

#include "common.h"

namespace wemem {

// The coefficients of Adam step t, from lr, beta1^t (b1p) and beta2^t (b2p):
// alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t).
struct AdamCoefs {
  float alpha, one_minus_b1, one_minus_b2, epsilon;

  AdamCoefs() = default;
  AdamCoefs(float lr, float b1p, float b2p, float beta1, float beta2,
            float eps)
      : alpha(lr * std::sqrt(1.f - b2p) / (1.f - b1p)),
        one_minus_b1(1.f - beta1),
        one_minus_b2(1.f - beta2),
        epsilon(eps) {}
};

// Keras' Adam on n contiguous floats: var, m, v <- Adam(var, m, v, g), with
// the gradient g = grad + decay * var (the L2 term) when kAddDecay, else
// g = grad (which then holds any L2 term already).
template <bool kAddDecay>
inline void AdamUpdate(float* __restrict var, float* __restrict m,
                       float* __restrict v, const float* __restrict grad,
                       float decay, int64_t n, const AdamCoefs& a) {
  const float alpha = a.alpha, c1 = a.one_minus_b1, c2 = a.one_minus_b2,
              eps = a.epsilon, d = decay;
  for (int64_t i = 0; i < n; ++i) {
    const float gi = kAddDecay ? grad[i] + d * var[i] : grad[i];
    const float mi = m[i] + (gi - m[i]) * c1;
    const float vi = v[i] + (gi * gi - v[i]) * c2;
    m[i] = mi;
    v[i] = vi;
    var[i] -= (mi * alpha) / (std::sqrt(vi) + eps);
  }
}

// Reads the float scalars lr, beta1_power, beta2_power and decay (inputs
// first_scalar.. first_scalar + 3) into the step's coefficients and *decay.
inline Status ReadAdamInputs(OpKernelContext* ctx, int first_scalar,
                             float beta1, float beta2, float epsilon,
                             AdamCoefs* coefs, float* decay) {
  float vals[4];
  for (int i = 0; i < 4; ++i) {
    const Tensor& t = ctx->input(first_scalar + i);
    if (t.NumElements() != 1 || t.dtype() != DT_FLOAT)
      return errors::InvalidArgument("lr, beta1_power, beta2_power and decay "
                                     "must be float scalars");
    vals[i] = t.flat<float>()(0);
  }
  *coefs = AdamCoefs(vals[0], vals[1], vals[2], beta1, beta2, epsilon);
  *decay = vals[3];
  return OkStatus();
}

// An op that applies Adam to resource variables (attrs beta1, beta2,
// epsilon).
class AdamOpBase : public OpKernel {
 public:
  explicit AdamOpBase(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("beta1", &beta1_));
    OP_REQUIRES_OK(c, c->GetAttr("beta2", &beta2_));
    OP_REQUIRES_OK(c, c->GetAttr("epsilon", &epsilon_));
  }

 protected:
  // The tensors of variables var, m, v at inputs first..first+2 (locked by
  // the caller).
  Status Variables(OpKernelContext* ctx, int first, Tensor* var, Tensor* m,
                   Tensor* v) {
    TF_RETURN_IF_ERROR(GetInputTensorFromVariable<CPUDevice, float>(
        ctx, first, true, false, var));
    TF_RETURN_IF_ERROR(GetInputTensorFromVariable<CPUDevice, float>(
        ctx, first + 1, true, false, m));
    TF_RETURN_IF_ERROR(GetInputTensorFromVariable<CPUDevice, float>(
        ctx, first + 2, true, false, v));
    if (!var->IsInitialized() || !m->IsInitialized() || !v->IsInitialized())
      return errors::FailedPrecondition("uninitialized variable");
    if (var->shape() != m->shape() || var->shape() != v->shape())
      return errors::InvalidArgument("var, m and v differ in shape");
    return OkStatus();
  }
  float beta1_, beta2_, epsilon_;
};

}  // namespace wemem

#endif  // WEMEM_TF_MEMORIZATION_KERNELS_ADAM_H_
