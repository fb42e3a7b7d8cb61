// SwiGLU for the prefill path: out[t][i] = silu(gate[t][i]) * up[t][i], where the gate_up
// matrix's output row t holds gate i and up i interleaved, in columns 2i and 2i + 1 (the device
// gate_up weight's row order, weights.cuh), in the activation dtype. Decode steps get the same
// values from the gate_up gemv's swiglu epilogue (gemm.cuh) without this kernel.
#pragma once
#include "cuda/common.cuh"

namespace weft {
namespace cuda {

cudaError_t silu_mul(DType t, const void* gate_up, int ld_gu, int num_tokens, int ffn, void* out, int ld_out, cudaStream_t stream);

}  // namespace cuda
}  // namespace weft
