// The loaded model: packed weights for one weight dtype, and views into the mapped files
// for the parts read row by row (the embedding table).
#pragma once
#include <memory>
#include <vector>

#include "cpu/matmul.h"
#include "mapped_file.h"
#include "weft_engine.h"

namespace weft {

// A 2-D tensor inside a mapped file (rows = out features in HF orientation).
struct TensorView {
  const uint8_t* data = nullptr;
  TensorDType dtype = TensorDType::f32;
  int64_t rows = 0, cols = 0;
  const float* row_scales = nullptr;  // i8 only: one scale per row
};

// Row r of `t` as floats (dequantized or widened).
void tensor_row_f32(const TensorView& t, int64_t r, float* out);

// A weight matrix packed for one dtype. A stacked matrix whose parts are stored in different types
// (a Q4_K_M file keeps attn_q/attn_k in Q4_K and attn_v in Q6_K) is a list of row segments,
// each packed for its own type; `segments` is then non-empty and the matrix's rows are theirs in
// order.
enum class MatrixKind { f32, i8, q };
struct Matrix {
  int n = 0, k = 0;
  MatrixKind kind = MatrixKind::f32;
  PackedF32 f32;
  PackedI8 i8;
  PackedQ q;
  std::vector<Matrix> segments;
};

// A weight matrix staged for upload to a CUDA device: row-major [n][kpad] (k zero-padded to a
// multiple of 64), f16/bf16 bits, or int8 with float scales per row (group 0) or per 32 k.
enum class HostWeightKind { f16 = 0, bf16 = 1, i8 = 2 };
struct HostMatrix {
  int n = 0, k = 0, kpad = 0, group = 0;
  HostWeightKind kind = HostWeightKind::f16;
  std::vector<uint16_t> half;  // f16 / bf16
  std::vector<int8_t> q;  // i8
  std::vector<float> scales;  // i8: [n] or [n][kpad/32]
  uint64_t bytes() const {
    return half.size() * 2 + q.size() + scales.size() * 4;
  }
};

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm;
  std::vector<float> qkv_bias;  // empty unless config.qkv_bias
  std::vector<float> q_norm, k_norm;  // [head_dim] each, shared by all heads; empty unless config.qk_norm
  Matrix qkv;  // q, k, v projections stacked: (num_heads + 2 * num_kv_heads) * head_dim rows
  Matrix o;
  Matrix gate_up;  // gate then up: 2 * ffn_dim rows
  Matrix down;
  HostMatrix g_qkv, g_o, g_gate_up, g_down;  // target == cuda: the same matrices, staged
};

struct Model {
  WeightArena arena;  // the packed CPU weights' memory (declared first: it outlives the matrices)
  ModelConfig config;
  WeightDType weight_dtype = WeightDType::f32;
  std::vector<std::shared_ptr<MappedFile>> files;  // keep the mappings alive
  TensorView embed;
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;
  Matrix lm_head;
  uint64_t weight_bytes = 0;
  // target == cuda
  Backend target = Backend::cpu;
  bool act_bf16 = false;  // activation dtype: bf16 (bf16 weights or sources), else f16
  std::vector<uint16_t> g_embed;  // [vocab][dim] in the activation dtype
  HostMatrix g_lm_head;
  bool g_lm_head_is_embed = false;  // tied and not quantized: the device shares one buffer
};

}  // namespace weft
