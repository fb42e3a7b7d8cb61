// Element-wise and row-wise ops of the Llama step (CPU reference; the CUDA kernels mirror these
// names and argument order).
#pragma once
#include <cstdint>

#include "weft_engine.h"

namespace weft {

void rmsnorm_f32(const float* x, const float* w, float eps, int dim, float* out);
// Per-dimension-pair inverse frequencies, with llama3 / linear scaling folded in.
void rope_inv_freq(const ModelConfig& c, float* inv_freq /* [head_dim/2] */);
// Rotate-half RoPE (HF layout) in place on num_heads heads of one token.
void rope_apply_f32(float* x, int num_heads, int head_dim, int pos, const float* inv_freq);
// out[i] = silu(gate[i]) * up[i]
void silu_mul_f32(const float* gate, const float* up, int n, float* out);

}  // namespace weft
