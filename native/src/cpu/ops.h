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
// The same in two parts: cs = the cos (first half) and sin (second half) of each dimension pair's
// angle at pos, then the rotation with them. A step computes a token's angles once for all its
// layers and heads (rope_apply_f32 per layer took ~1% of a decode step in sincosf).
void rope_angles(int pos, int head_dim, const float* inv_freq, float* cs /* [head_dim] */);
void rope_apply_cs(float* x, int num_heads, int head_dim, const float* cs);
// out[i] = silu(gate[i]) * up[i]
void silu_mul_f32(const float* gate, const float* up, int n, float* out);

}  // namespace weft
