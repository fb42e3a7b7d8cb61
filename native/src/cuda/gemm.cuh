// Dense matrix products on the tensor cores: Y[m][n] (op)= X[m][k] · W[n][k]^T.
// X: activations, row-major [m][k] of the engine dtype T (f16 or bf16), leading dimension k.
// W: weights in HF orientation (out_features × in_features), row-major [n][k], either of the
//    activation dtype, or int8 weight-only with float scales per row (group 0) or per 32
//    consecutive k of a row (group 32: scales [n][k/32]); dequantization is fused.
// k is always a multiple of 64: weights are zero-padded at upload and activation buffers keep
// zeroed pad columns. m >= 1 and n >= 1 are arbitrary. Accumulation is in fp32.
#pragma once
#include "cuda/common.cuh"

namespace weft {
namespace cuda {

enum class WeightKind { f16 = 0, bf16 = 1, i8 = 2 };

struct GemmWeight {
  const void* data = nullptr;  // [n][k] f16/bf16 or int8
  const float* scales = nullptr;  // i8 only: [n] (group 0) or [n][k/32] (group 32)
  WeightKind kind = WeightKind::f16;
  int group = 0;
  int n = 0, k = 0;
};

enum class Epilogue {
  store_f32 = 0,  // y (float*) [m][ldy] = result
  store_act = 1,  // y (T*)     [m][ldy] = result rounded to T
  add_f32 = 2,  // y (float*) [m][ldy] += result (the residual stream)
  // SwiGLU of interleaved gate/up rows (W rows 2j and 2j + 1 are gate j and up j; n even):
  // y (T*) [m][ldy >= n/2], y[t][j] = silu(g) * u of the two results, each first rounded to T,
  // exactly what store_act followed by silu_mul() computes. Decode gemv only (m <= kGemvMaxM).
  swiglu = 3,
};

// The small-m cut-off: m <= kGemvMaxM takes the bandwidth-bound gemv kernel (decode).
constexpr int kGemvMaxM = 16;

// act: the dtype of x (and of y for store_act). For f16/bf16 weights the weight kind must match act.
// Small m (decode) uses a bandwidth-bound kernel, larger m a tiled tensor-core kernel.
// Returns cudaGetLastError() of the launch.
cudaError_t gemm(DType act, const void* x, int m, const GemmWeight& w, void* y, int ldy, Epilogue ep, cudaStream_t stream);

}  // namespace cuda
}  // namespace weft
