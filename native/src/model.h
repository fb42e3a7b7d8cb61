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

// A weight matrix packed for one dtype.
struct Matrix {
  int n = 0, k = 0;
  bool is_int8 = false;
  PackedF32 f32;
  PackedI8 i8;
};

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm;
  std::vector<float> qkv_bias;  // empty unless config.qkv_bias
  Matrix qkv;       // q, k, v projections stacked: (num_heads + 2 * num_kv_heads) * head_dim rows
  Matrix o;
  Matrix gate_up;   // gate then up: 2 * ffn_dim rows
  Matrix down;
};

struct Model {
  ModelConfig config;
  WeightDType weight_dtype = WeightDType::f32;
  std::vector<std::shared_ptr<MappedFile>> files;  // keep the mappings alive
  TensorView embed;
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;
  Matrix lm_head;
  uint64_t weight_bytes = 0;
};

}  // namespace weft
