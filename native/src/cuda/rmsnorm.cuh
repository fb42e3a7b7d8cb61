// RMSNorm of fp32 residual rows into the activation dtype (the input of the next matrix):
// out[r] = x[row(r)] / sqrt(mean(x^2) + eps) * w, with row(r) = rows ? rows[r] : r
// (the final norm takes only the rows that are sampled).
#pragma once
#include "cuda/common.cuh"

namespace weft {
namespace cuda {

cudaError_t rmsnorm(DType t, const float* x, int ldx, const int32_t* rows, int num_rows, const float* w, float eps, int dim, void* out, int ld_out,
                    cudaStream_t stream);

}  // namespace cuda
}  // namespace weft
