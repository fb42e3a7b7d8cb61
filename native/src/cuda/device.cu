// Device discovery for the addon and the logs: a build with CUDA on a machine without a driver
// or a GPU reports zero devices rather than failing.
#include <cstdlib>
#include <cstring>

#include "cuda/common.cuh"
#include "engine_factory.h"

namespace weft {
namespace cuda {
bool pdl_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("WEFT_CUDA_PDL");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return on;
}
}  // namespace cuda

int cuda_runtime_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the (non-sticky) error so later calls start clean
    return 0;
  }
  return n;
}

Status cuda_runtime_device_info(int device, CudaDeviceInfo* out) {
  const int n = cuda_runtime_device_count();
  if (device < 0 || device >= n)
    return Status::Error(StatusCode::no_device, "CUDA device " + std::to_string(device) + " not visible (" + std::to_string(n) + " devices)");
  cudaDeviceProp p{};
  WEFT_CUDA_TRY(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
  WEFT_CUDA_TRY(cudaSetDevice(device), "cudaSetDevice");
  size_t free_b = 0, total_b = 0;
  WEFT_CUDA_TRY(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
  out->name = p.name;
  out->major = p.major;
  out->minor = p.minor;
  out->sm_count = p.multiProcessorCount;
  out->total_bytes = total_b;
  out->free_bytes = free_b;
  return Status::Ok();
}

}  // namespace weft
