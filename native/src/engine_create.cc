// engine_create: the backend switch. A build without CUDA (no nvcc at build time) answers
// no_device for the CUDA backend and reports zero devices.
#include "engine_factory.h"
#include "model.h"

namespace weft {

KvDType cpu_kv_dtype(KvDType kv, WeightDType weights) {
  if (kv != KvDType::automatic) return kv;
  // int8 and block weights already round every activation; an f16 cache (llama.cpp's default)
  // halves the memory at no visible cost there, while f32 weights stay the exact reference path.
  return weights == WeightDType::int8 || weights == WeightDType::quant ? KvDType::f16 : KvDType::f32;
}

const char* kv_dtype_name(KvDType kv) {
  switch (kv) {
    case KvDType::f32:
      return "f32";
    case KvDType::f16:
      return "f16";
    case KvDType::i8:
      return "int8";
    case KvDType::automatic:
      break;
  }
  return "auto";
}

Status engine_create(std::shared_ptr<const Model> model, const EngineOptions& o, std::unique_ptr<Engine>* out) {
  if (!model) return Status::Error(StatusCode::bad_input, "no model");
  if (o.backend == Backend::cpu) return cpu_engine_create(std::move(model), o, out);
  if (o.kv_dtype == KvDType::i8) return Status::Error(StatusCode::bad_input, "an int8 KV cache is CPU-only: the GPU caches in its activation type");
#ifdef WEFT_HAVE_CUDA
  return cuda_engine_create(std::move(model), o, out);
#else
  return Status::Error(StatusCode::no_device, "this build has no CUDA backend (no CUDA compiler was found when it was built)");
#endif
}

int cuda_device_count() {
#ifdef WEFT_HAVE_CUDA
  return cuda_runtime_device_count();
#else
  return 0;
#endif
}

Status cuda_device_info(int device, CudaDeviceInfo* out) {
#ifdef WEFT_HAVE_CUDA
  return cuda_runtime_device_info(device, out);
#else
  (void)device;
  (void)out;
  return Status::Error(StatusCode::no_device, "this build has no CUDA backend");
#endif
}

}  // namespace weft
