// Vectorized step ops with run-time ISA dispatch (scalar references in ops.cc / attention.cc).
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu/attention.h"
#include "cpu/isa.h"

namespace weft {

#define WEFT_SIMD_OPS_DECL                                                                                          \
  void rmsnorm(const float* x, const float* w, float eps, int dim, float* out);                                     \
  void silu_mul(const float* gate, const float* up, int n, float* out);                                             \
  void add_inplace(float* x, const float* y, size_t n);                                                             \
  void kv_write(const PagedKv& kv, int slot, const float* k, const float* v);                                       \
  void attention_tile(const PagedKv& kv, const AttentionTile& t, int heads_per_group, float scale, float* scratch); \
  float max_of(const float* x, int n);                                                                              \
  double sum_exp(const float* x, int n, float shift);
namespace avx2 {
WEFT_SIMD_OPS_DECL
}
namespace avx512 {
WEFT_SIMD_OPS_DECL
}
#undef WEFT_SIMD_OPS_DECL

void rmsnorm_isa(Isa isa, const float* x, const float* w, float eps, int dim, float* out);
void silu_mul_isa(Isa isa, const float* gate, const float* up, int n, float* out);
void add_inplace_isa(Isa isa, float* x, const float* y, size_t n);
void kv_write_isa(Isa isa, const PagedKv& kv, int slot, const float* k, const float* v);
// One attention tile; the vectorized kernels need K stored by dimension (PagedKv::k_by_dim) and
// scratch of attention_scratch_floats(head_dim, tile rows) floats, else the scalar reference runs.
void attention_tile_isa(Isa isa, const PagedKv& kv, const AttentionTile& t, int heads_per_group, float scale, float* scratch);
// log(sum exp(x)) of a row of logits: its max, then the sum of exp(x - max), in float lanes whose
// partial sums go to a double every 1024 values (a 128K vocabulary loses nothing a float would).
float log_sum_exp_isa(Isa isa, const float* x, int n);

}  // namespace weft
