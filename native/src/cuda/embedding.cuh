// Embedding gather: x[t] = float(table[ids[t]]) for each token, into the fp32 residual stream.
#pragma once
#include "cuda/common.cuh"

namespace weft {
namespace cuda {

// table: [vocab][dim] of T; x: [num_tokens][dim] fp32.
cudaError_t embedding_gather(DType t, const void* table, const int32_t* ids, int num_tokens, int dim, float* x, cudaStream_t stream);

}  // namespace cuda
}  // namespace weft
