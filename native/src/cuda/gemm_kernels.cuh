// Private to gemm.cu and its tests: the kernel paths behind gemm(), and a way to force one so
// that the tests can check every path on every shape (the automatic choice depends on the shape
// and the device's multiprocessor count). Not part of the engine's interface.
#pragma once
#include "cuda/gemm.cuh"

namespace weft {
namespace cuda {

enum class GemmPath {
  automatic = 0,  // what gemm() does: gemm_choose_path(m, n, multiprocessor count)
  gemv = 1,  // small m (m <= kGemvMaxM): bandwidth-bound, W streamed once with 16-byte loads
  tc_large = 2,  // tensor cores, 128x128x32 CTA tile, 8 warps, 4 stages
  tc_medium = 3,  // tensor cores, 64x64x32 CTA tile, 4 warps, 4 stages
  tc_skinny = 4,  // tensor cores, 64x32x64 CTA tile, 8 warps splitting k 4 ways, 6 stages
};

GemmPath gemm_choose_path(int m, int n, int multiprocessors);

// gemm() with the path forced (automatic: gemm() itself). Same validation as gemm(); a forced
// gemv path with m > kGemvMaxM is cudaErrorInvalidValue.
cudaError_t gemm_with_path(GemmPath path, DType act, const void* x, int m, const GemmWeight& w, void* y, int ldy, Epilogue ep, cudaStream_t stream);

}  // namespace cuda
}  // namespace weft
