// Copy-on-write of KV blocks: for each (src, dst) pair, every layer's K and V block is copied.
// The caches are one allocation each: [num_layers][num_blocks][block_bytes].
#pragma once
#include "cuda/common.cuh"

namespace weft {
namespace cuda {

cudaError_t copy_blocks(const int32_t* pairs, int num_pairs, int num_layers, int num_blocks, size_t block_bytes, void* k_cache, void* v_cache,
                        cudaStream_t stream);

}  // namespace cuda
}  // namespace weft
