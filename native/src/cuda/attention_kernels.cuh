// Private to attention.cu and its tests: the kernel paths behind attention() and a way to force
// them, so that the tests can check the tensor-core and the SIMT prefill on the same shapes, and
// the split-context decode at any split count. Not part of the engine's interface.
#pragma once
#include "cuda/attention.cuh"

namespace weft {
namespace cuda {

enum class AttentionPrefillPath {
  automatic = 0,  // what attention() does: mma for head_dim 64/128 (16-byte aligned), else simt
  mma = 1,  // tensor cores (mma.sync m16n8k16); head_dim 64 or 128 only
  simt = 2,  // one CTA per (query token, kv head): the decode kernel without splits
};

struct AttentionForce {
  AttentionPrefillPath prefill = AttentionPrefillPath::automatic;
  // 0: the heuristic (attention_decode_splits). Otherwise the number of context partitions of
  // the decode kernel, 1..kAttentionMaxSplits; the workspace must then hold
  // attention_partials_bytes(num_seqs * splits, num_heads, head_dim) bytes.
  int decode_splits = 0;
};

constexpr int kAttentionMaxSplits = 64;

// The split count attention() uses for a batch under these host bounds (a pure function of them).
int attention_decode_splits(int num_seqs, int num_tokens, int num_heads, int num_kv_heads, int max_context_len);

// Bytes of the partials of `slots` (sequence, partition) pairs.
size_t attention_partials_bytes(long slots, int num_heads, int head_dim);

// attention() with a path or a split count forced; an impossible force (mma with another
// head_dim, splits out of range) is cudaErrorInvalidValue.
cudaError_t attention_forced(DType t, const AttentionArgs& a, const AttentionForce& force, cudaStream_t stream);

}  // namespace cuda
}  // namespace weft
