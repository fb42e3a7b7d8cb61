// The GGML block formats weft reads (Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), decoded into one
// common form that the packing and the kernels share:
//
//   w[i] = D[i / super] * sc[i / sub] * u[i]  +  M[i / super] * mn[i / sub]
//
// u unsigned with `bits` bits; D, M per super-block (exact halves: the file's fp16 d, dmin, or
// small power-of-two multiples of d); sc, mn small integers per sub-block (K-quants' scales and
// mins; 1 for the legacy 32-blocks). Q8_0 is not here: it already runs as group-32 int8.
#pragma once
#include <cstdint>

#include "weft_engine.h"

namespace weft {

struct BlockFormat {
  int values;  // values per block
  int bytes;  // bytes per block
  int bits;  // bits of u: 2 to 6
  int sub;  // values per sc/mn: 32, or 16 (Q2_K, Q3_K, Q6_K)
  int super;  // values per D/M: 32 (legacy) or 256 (K-quants)
  bool has_sub;  // sc/mn vary (K-quants); else they are all 1
};

// The format of a block type; nullptr for f32, f16, bf16, q8_0 and i8.
const BlockFormat* block_format(TensorDType d);
// Bytes of `count` values stored in `d` (count a multiple of the block size for block types).
uint64_t tensor_bytes(TensorDType d, uint64_t count);
// Values per block of `d` (1 for element types).
int block_values(TensorDType d);

// Decodes one row of k values (k a multiple of the block size) into the common form:
// u[k], D and M [k / super], sc and mn [k / sub].
void block_row_decode(TensorDType d, const uint8_t* row, int k, uint8_t* u, float* D, float* M, int8_t* sc, int8_t* mn);

}  // namespace weft
