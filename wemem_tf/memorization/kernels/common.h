// What every kernel source of wemem_tf shares: the standard, TensorFlow and
// Eigen headers, and the names used from them.
//
// native.py compiles all the .cc files of this folder as ONE translation
// unit (a generated file that #includes each of them, in name order), with
// TensorFlow's flags and -march=native, into one library loaded with
// tf.load_op_library. Helpers shared by several kernels live in the headers
// (namespace wemem); each .cc file holds the kernels of one concept and
// registers their ops.
#ifndef WEMEM_TF_MEMORIZATION_KERNELS_COMMON_H_
#define WEMEM_TF_MEMORIZATION_KERNELS_COMMON_H_

#define EIGEN_USE_THREADS

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/kernels/training_op_helpers.h"
#include "Eigen/Core"

using namespace tensorflow;  // NOLINT

namespace wemem {

typedef Eigen::ThreadPoolDevice CPUDevice;
using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

}  // namespace wemem

#endif  // WEMEM_TF_MEMORIZATION_KERNELS_COMMON_H_
