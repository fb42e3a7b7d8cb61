// SwiGLU: out[t][i] = silu(gate[t][i]) * up[t][i], where the gate_up matrix's output row t holds
// gate in columns [0, ffn) and up in [ffn, 2*ffn), in the activation dtype.
#pragma once
#include "cuda/common.cuh"

namespace weft {
namespace cuda {

cudaError_t silu_mul(DType t, const void* gate_up, int ld_gu, int num_tokens, int ffn, void* out, int ld_out,
                     cudaStream_t stream);

}  // namespace cuda
}  // namespace weft
