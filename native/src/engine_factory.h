// Backend constructors behind engine_create (native/src/engine_create.cc).
#pragma once
#include "weft_engine.h"

namespace weft {

Status cpu_engine_create(std::shared_ptr<const Model> model, const EngineOptions& o, std::unique_ptr<Engine>* out);
#ifdef WEFT_HAVE_CUDA
Status cuda_engine_create(std::shared_ptr<const Model> model, const EngineOptions& o, std::unique_ptr<Engine>* out);
int cuda_runtime_device_count();
Status cuda_runtime_device_info(int device, CudaDeviceInfo* out);
#endif

}  // namespace weft
