// The model's weights on one CUDA device: uploaded once per process and device from the CUDA
// staging built by model_load (target cuda), and shared read-only by every engine instance
// (stream) on that device.
#pragma once
#include <memory>
#include <vector>

#include "cuda/gemm.cuh"
#include "model.h"

namespace weft {
namespace cuda {

struct DeviceLayer {
  const float* attn_norm = nullptr;
  const float* ffn_norm = nullptr;
  const float* qkv_bias = nullptr;  // nullptr unless config.qkv_bias
  const float* q_norm = nullptr;  // [head_dim] each; nullptr unless config.qk_norm
  const float* k_norm = nullptr;
  GemmWeight qkv, o, down;
  GemmWeight gate_up;  // rows interleaved: gate j and up j at rows 2j and 2j + 1
};

struct DeviceModel {
  int device = 0;
  DType act = DType::f16;
  std::shared_ptr<const Model> host;  // keeps the config and the cache key alive
  std::vector<DeviceLayer> layers;
  const void* embed = nullptr;  // [vocab][dim] of act
  const float* final_norm = nullptr;
  const float* inv_freq = nullptr;  // [head_dim / 2], scaling folded in
  GemmWeight lm_head;
  uint64_t bytes = 0;  // device bytes held
  std::vector<void*> allocations;
  ~DeviceModel();
};

// Returns the device copy of `model` on `device`, uploading it on first use.
Status device_model_get(const std::shared_ptr<const Model>& model, int device, std::shared_ptr<const DeviceModel>* out);

}  // namespace cuda
}  // namespace weft
