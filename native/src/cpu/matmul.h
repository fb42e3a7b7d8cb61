// Dense matrix products for the CPU engine: Y[m][n] = sum_k X[m][k] * W[n][k].
// W is the weight in HF orientation (out_features x in_features). Weights are packed once at
// load time into a layout shared by every ISA; activations are given per call.
// Each kernel is single-threaded and computes output columns [n0, n1) (multiples of
// kPackRows, except n1 == n): the engine splits that range across its threads.
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "cpu/isa.h"

namespace weft {

constexpr int kPackRows = 16;  // weight rows interleaved per panel (one 512-bit lane of floats/int32)
constexpr int kQ8Group = 32;  // group size of grouped int8 scales (GGUF Q8_0 block)

// Memory for a model's packed weights: a few large anonymous mappings, advised to the kernel's
// transparent huge pages, carved into 64-byte aligned pieces that are freed all at once with the
// arena. A decode step streams every weight byte, and with 4 KiB pages it took a TLB miss every 4
// KiB (tens of MB a step, past the TLB's reach); 2 MiB pages made batch 1 ~9% faster (110M shape,
// Q4_K_M and Q8_0) and batch 64 ~3%.
class WeightArena {
 public:
  WeightArena() = default;
  ~WeightArena();
  WeightArena(const WeightArena&) = delete;
  WeightArena& operator=(const WeightArena&) = delete;
  // n bytes, zeroed, 64-byte aligned; throws std::bad_alloc. Thread-safe: a model's matrices
  // are packed on several threads at once (model_load.cc).
  void* take(size_t n);

 private:
  std::mutex mu_;
  struct Mapping {
    void* ptr;
    size_t bytes;
  };
  std::vector<Mapping> mappings_;
  char* next_ = nullptr;
  size_t left_ = 0;
};

// While one is alive, the AlignedBuffers its thread constructs come from `arena` (model loading
// packs every weight inside one); scopes nest.
class WeightArenaScope {
 public:
  explicit WeightArenaScope(WeightArena* arena);
  ~WeightArenaScope();
  WeightArenaScope(const WeightArenaScope&) = delete;
  WeightArenaScope& operator=(const WeightArenaScope&) = delete;

 private:
  WeightArena* saved_;
};

// 64-byte aligned buffer (no std::vector: the packed data must be aligned for wide loads); owns its
// memory unless it came from a WeightArena.
struct AlignedBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  bool owned = false;
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t n);
  ~AlignedBuffer();
  AlignedBuffer(AlignedBuffer&& o) noexcept;
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  template <class T> T* as() const {
    return static_cast<T*>(ptr);
  }
};

// FP32 weight, packed in panels of kPackRows rows.
struct PackedF32 {
  int n = 0, k = 0;
  AlignedBuffer data;
};

// Int8 weight-only quantized matrix: symmetric int8 values with one float scale per row
// (group == 0) or per kQ8Group consecutive k of a row (group == kQ8Group).
// `row_sums` holds what the kernels need to correct for the unsigned activation offset
// (layout private to the kernels). k is padded inside the packing as needed.
struct PackedI8 {
  int n = 0, k = 0;
  int group = 0;
  AlignedBuffer data;
  AlignedBuffer scales;
  AlignedBuffer row_sums;
};

// Activations quantized to symmetric int8, in whatever form the int8 kernels want (e.g. offset
// to uint8 for VNNI), with one float scale per row (token) for per-row weights (group 0) or per
// 32 values of a row for group-32 weights (GGUF Q8_0), as llama.cpp quantizes what a Q8_0 matrix
// multiplies: one outlier then coarsens only its own 32 values, not the whole row.
struct QuantAct {
  int m = 0, k = 0;
  int group = 0;  // 0 or kQ8Group, as the weights it feeds
  AlignedBuffer data;
  AlignedBuffer scales;  // float [m] (group 0) or [m][kp / 32] (group 32)
  void reserve(int m, int k, int group);
  int groups() const;  // scales per row
};

// llama.cpp's activation format for a block weight type (ggml's vec_dot_type), which weft's
// activation quantization reproduces (QuantBlocks) so that its products equal llama.cpp's on the
// same file up to the order of float additions, and greedy near-ties break the same way.
enum class BlockAct : int8_t {
  q8_0,  // Q4_0, Q5_0: absmax per 32, scale absmax / 127
  q8_1,  // Q4_1, Q5_1: as q8_0, and the block sums (the min term's factor) rounded to fp16
  q8_k,  // K-quants: absmax per 256, scale 1 / (127 / absmax), shared by its 8 blocks of 32
};

// GGML block-quantized weight (quant_blocks.h's common form), kept at its bit width, in panels
// of kPackRows rows and groups of 32 k (layout in matmul_internal.h). k is a multiple of 32 and
// of `super`. w = D * sc * u + M * mn.
struct PackedQ {
  int n = 0, k = 0;
  int bits = 4;  // 2 (Q2_K), 3 (Q3_K), 4, 5 or 6
  int sub = 32;  // values per sc/mn: 32 or 16
  int super = 32;  // values per D/M: 32 or 256
  bool has_sub = false;  // sc/mn stored (K-quants); else all 1
  BlockAct act = BlockAct::q8_0;  // the activation format its kernels take
  bool mn_is_sc = false;  // Q6_K, Q3_K: mn equals sc and is not stored
  int sm_per_sub() const {
    return mn_is_sc ? 1 : 2;
  }
  // Panel p is one contiguous span: its fp16 D and M, its int8 sc and mn (has_sub), then its groups'
  // bits (nibbles and high-bit planes), so that a decode step, which reads every weight byte once,
  // reads each panel as one sequential stream rather than three (Q4_K_M decodes ~8% faster).
  AlignedBuffer mem;
  size_t panel_bytes = 0, dm_offset = 0, sm_offset = 0, data_offset = 0;
  const uint8_t* panel_base(int p) const {
    return mem.as<uint8_t>() + size_t(p) * panel_bytes;
  }
  const uint8_t* panel(int p) const {
    return panel_base(p) + data_offset;
  }
  const uint16_t* panel_dm(int p) const {
    return reinterpret_cast<const uint16_t*>(panel_base(p) + dm_offset);
  }
  const int8_t* panel_sm(int p) const {
    return has_sub ? reinterpret_cast<const int8_t*>(panel_base(p) + sm_offset) : nullptr;
  }
  uint64_t bytes() const {
    return mem.bytes;
  }
};

// Activations for PackedQ: symmetric int8 per block of 32 (round half to even of x * 127 / absmax,
// the absmax and scale as BlockAct says), with each block's scale and the float sums of its
// dequantized values per 16 and per 32, which the min terms (M * mn) multiply. k padded to 32
// with zeros.
struct QuantBlocks {
  int m = 0, k = 0;
  AlignedBuffer q;  // int8 [m][kp]
  AlignedBuffer sx;  // float [m][kp / 32]
  AlignedBuffer fs16;  // float [m][kp / 16]: sx * sum of the 16 int8 values
  AlignedBuffer fs32;  // float [m][kp / 32]: sx * sum of the 32 int8 values
  void reserve(int m, int k);
};

// ---- packing (load time) ----
void pack_f32(const float* w, int n, int k, PackedF32* out);
// Quantize a float matrix: group 0 = per-row scale, kQ8Group = per-32 group scales.
void quantize_pack_i8(const float* w, int n, int k, int group, PackedI8* out);
// Already-quantized rows: q[n][k] int8 and scales ([n] for group 0, [n][k/32] for group 32).
void pack_i8(const int8_t* q, const float* scales, int n, int k, int group, PackedI8* out);
// GGUF Q8_0 blocks (per 32 values: fp16 scale d, then 32 int8) -> group-32 PackedI8.
void pack_q8_0(const void* blocks, int n, int k, PackedI8* out);
// GGML block rows (rows[r] points at row r's first block; quant_blocks.h formats) -> PackedQ.
// `type` is a TensorDType value (kept as int so this header needs no engine types).
void pack_q(int type, const uint8_t* const* rows, int n, int k, PackedQ* out);
// Inverse, for tests: float values of row r of a PackedQ.
void unpack_q_row(const PackedQ& w, int r, float* out);
// Inverse, for tests and for the quantize command: float values of row r.
void unpack_i8_row(const PackedI8& w, int r, float* out);

// ---- compute (per step) ----
// x: [m][k] row-major floats. y: row-major with leading dimension ldy; writes y[i][n0..n1).
void matmul_f32(Isa isa, const float* x, int m, const PackedF32& w, float* y, int ldy, int n0, int n1);
// Quantize activations once per step per input (shared by every matrix with the same input and
// the same group); matmul_i8 takes x quantized with w's group.
void quantize_act(Isa isa, const float* x, int m, int k, int group, QuantAct* out);
// Rows [t0, t1) of x into `out`, sized by out->reserve(m, k, group): rows are independent, so the
// threads of a step can split them (in runs of 16 tokens, whole cache lines of the k-quad layout).
void quantize_act_rows(Isa isa, const float* x, int k, int t0, int t1, QuantAct* out);
void matmul_i8(Isa isa, const QuantAct& x, const PackedI8& w, float* y, int ldy, int n0, int n1);
// The bytes of w that one token's matmul_i8 reads (what a decode step at batch 1 streams).
uint64_t matmul_i8_token_bytes(Isa isa, const PackedI8& w);
// Quantizes rows [t0, t1) of x (rows of k floats) into `out`, sized by out->reserve(m, k), with
// the format of the matrix it feeds (PackedQ::act). Every ISA writes the same bytes and floats.
void quantize_blocks(const float* x, int k, int t0, int t1, BlockAct fmt, QuantBlocks* out);
void quantize_blocks(Isa isa, const float* x, int k, int t0, int t1, BlockAct fmt, QuantBlocks* out);
// x must be quantized in w.act's format: the K-quant kernels take one activation scale per super-block.
void matmul_q(Isa isa, const QuantBlocks& x, const PackedQ& w, float* y, int ldy, int n0, int n1);

}  // namespace weft
