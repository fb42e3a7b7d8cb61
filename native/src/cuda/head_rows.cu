#include "cuda/head_rows.cuh"

namespace weft {
namespace cuda {
namespace {

__global__ void scatter_kernel(const float* __restrict__ small, int n, const int32_t* __restrict__ ids, float* __restrict__ logits, int vocab) {
  const int r = blockIdx.y;
  float* row = logits + size_t(r) * vocab;
  for (int v = blockIdx.x * blockDim.x + threadIdx.x; v < vocab; v += gridDim.x * blockDim.x) {
    float x = -INFINITY;
    for (int j = 0; j < n; ++j)
      if (ids[j] == v) x = small[size_t(r) * n + j];
    row[v] = x;
  }
}

}  // namespace

void HeadRows::release() {
  // cudaFree waits for the device, so work still reading these buffers finishes first
  if (data_) cudaFree(data_), data_ = nullptr;
  if (scales_) cudaFree(scales_), scales_ = nullptr;
  if (dev_ids_) cudaFree(dev_ids_), dev_ids_ = nullptr;
  if (out_) cudaFree(out_), out_ = nullptr;
  out_cap_ = 0;
  ids_.clear();
  src_ = nullptr;
}

cudaError_t HeadRows::gather(const GemmWeight& head, const std::vector<int32_t>& ids, cudaStream_t stream) {
  release();
  const int n = int(ids.size());
  const size_t row = size_t(head.k) * (head.kind == WeightKind::i8 ? 1 : 2);
  const size_t srow = head.kind != WeightKind::i8 ? 0 : head.group == 0 ? 1 : size_t(head.k) / 32;
  cudaError_t e = cudaMalloc(&data_, n * row);
  if (e == cudaSuccess && srow) e = cudaMalloc(&scales_, n * srow * sizeof(float));
  if (e == cudaSuccess) e = cudaMalloc(&dev_ids_, n * sizeof(int32_t));
  for (int j = 0; j < n && e == cudaSuccess; ++j) {
    const uint8_t* src = static_cast<const uint8_t*>(head.data) + size_t(ids[j]) * row;
    e = cudaMemcpyAsync(static_cast<uint8_t*>(data_) + j * row, src, row, cudaMemcpyDeviceToDevice, stream);
    if (e == cudaSuccess && srow)
      e = cudaMemcpyAsync(scales_ + j * srow, head.scales + size_t(ids[j]) * srow, srow * sizeof(float), cudaMemcpyDeviceToDevice, stream);
  }
  // from pageable memory: the call returns once the ids are staged, so `ids` may go
  if (e == cudaSuccess) e = cudaMemcpyAsync(dev_ids_, ids.data(), n * sizeof(int32_t), cudaMemcpyHostToDevice, stream);
  if (e != cudaSuccess) {
    release();
    return e;
  }
  w_ = head;
  w_.data = data_;
  w_.scales = scales_;
  w_.n = n;
  ids_ = ids;
  src_ = head.data;
  return cudaSuccess;
}

cudaError_t HeadRows::run(DType act, const void* x, int rows, const GemmWeight& head, const std::vector<int32_t>& ids, float* logits, int vocab,
                          cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  const int n = int(ids.size());
  if (n > 0 && (ids != ids_ || head.data != src_)) {
    const cudaError_t e = gather(head, ids, stream);
    if (e != cudaSuccess) return e;
  }
  if (n > 0 && size_t(rows) * n > out_cap_) {
    if (out_) cudaFree(out_), out_ = nullptr, out_cap_ = 0;
    const cudaError_t e = cudaMalloc(&out_, size_t(rows) * n * sizeof(float));
    if (e != cudaSuccess) return e;
    out_cap_ = size_t(rows) * n;
  }
  if (n > 0) {
    const cudaError_t e = gemm(act, x, rows, w_, out_, n, Epilogue::store_f32, stream);
    if (e != cudaSuccess) return e;
  }
  const dim3 grid(ceil_div(vocab, 256 * 4) > 0 ? ceil_div(vocab, 256 * 4) : 1, rows);
  scatter_kernel<<<grid, 256, 0, stream>>>(out_, n, n > 0 ? dev_ids_ : nullptr, logits, vocab);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace weft
