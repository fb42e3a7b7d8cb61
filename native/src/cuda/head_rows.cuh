// A step that needs only a few LM-head rows (a reranker's yes and no): those rows of the weight,
// gathered once into a small matrix (again only when the rows asked for change), one small gemm,
// and its results scattered into the full logits rows with every other logit -inf — what the CPU
// engine gives (engine_cpu.cc, lm_head_rows). The vocabulary-wide gemm it replaces reads the
// whole LM head for two numbers.
#pragma once
#include <vector>

#include "cuda/common.cuh"
#include "cuda/gemm.cuh"

namespace weft {
namespace cuda {

class HeadRows {
 public:
  HeadRows() = default;
  HeadRows(const HeadRows&) = delete;
  HeadRows& operator=(const HeadRows&) = delete;
  ~HeadRows() {
    release();
  }

  // logits[r][v] for r < rows: x[r] · head[v] where v is one of `ids` (valid vocabulary ids,
  // any order, possibly none), -inf elsewhere. x: [rows][head.k] of act, as for gemm().
  cudaError_t run(DType act, const void* x, int rows, const GemmWeight& head, const std::vector<int32_t>& ids, float* logits, int vocab,
                  cudaStream_t stream);

 private:
  cudaError_t gather(const GemmWeight& head, const std::vector<int32_t>& ids, cudaStream_t stream);
  void release();

  std::vector<int32_t> ids_;
  const void* src_ = nullptr;  // the head the rows were gathered from
  GemmWeight w_;  // the gathered rows: [ids.size()][k]
  void* data_ = nullptr;
  float* scales_ = nullptr;
  int32_t* dev_ids_ = nullptr;
  float* out_ = nullptr;  // [rows][ids.size()]
  size_t out_cap_ = 0;
};

}  // namespace cuda
}  // namespace weft
