// Load-time weight packing (one layout for every ISA, described in matmul_internal.h) and
// the per-ISA dispatch of the compute kernels.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include <sys/mman.h>

#include "cpu/matmul.h"
#include "cpu/matmul_internal.h"

namespace weft {

using detail::i8_kpad;
using detail::kQuad;
using detail::panels_of;
using detail::round_up;

namespace {
thread_local WeightArena* t_arena = nullptr;
constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kArenaChunk = size_t(32) << 20;  // a mapping's size, unless one piece needs more
}  // namespace

WeightArena::~WeightArena() {
  for (const Mapping& m : mappings_) munmap(m.ptr, m.bytes);
}

void* WeightArena::take(size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  n = (n + 63) / 64 * 64;
  if (n > left_) {
    // A new mapping, 2 MiB aligned (over-mapped by one huge page, the ends given back) so that
    // whole huge pages fit in it.
    const size_t bytes = std::max(kArenaChunk, (n + kHugePage - 1) / kHugePage * kHugePage);
    void* raw = mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    const uintptr_t start = (reinterpret_cast<uintptr_t>(raw) + kHugePage - 1) / kHugePage * kHugePage;
    const size_t head = start - reinterpret_cast<uintptr_t>(raw);
    if (head) munmap(raw, head);
    if (kHugePage - head) munmap(reinterpret_cast<char*>(start) + bytes, kHugePage - head);
    madvise(reinterpret_cast<void*>(start), bytes, MADV_HUGEPAGE);  // advice: without THP, 4 KiB pages
    mappings_.push_back({reinterpret_cast<void*>(start), bytes});
    next_ = reinterpret_cast<char*>(start);
    left_ = bytes;
  }
  void* p = next_;  // fresh anonymous pages: already zero
  next_ += n;
  left_ -= n;
  return p;
}

WeightArenaScope::WeightArenaScope(WeightArena* arena) : saved_(t_arena) {
  t_arena = arena;
}
WeightArenaScope::~WeightArenaScope() {
  t_arena = saved_;
}

AlignedBuffer::AlignedBuffer(size_t n) : bytes(n) {
  if (n == 0) return;
  if (t_arena) {
    ptr = t_arena->take(n);
    return;
  }
  // Round the allocation up to whole cache lines: kernels may read a full vector at the end.
  ptr = std::aligned_alloc(64, (n + 63) / 64 * 64);
  if (!ptr) throw std::bad_alloc();
  owned = true;
  std::memset(ptr, 0, (n + 63) / 64 * 64);
}
AlignedBuffer::~AlignedBuffer() {
  if (owned) std::free(ptr);
}
AlignedBuffer::AlignedBuffer(AlignedBuffer&& o) noexcept : ptr(o.ptr), bytes(o.bytes), owned(o.owned) {
  o.ptr = nullptr;
  o.bytes = 0;
  o.owned = false;
}
AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& o) noexcept {
  if (this != &o) {
    if (owned) std::free(ptr);
    ptr = o.ptr;
    bytes = o.bytes;
    owned = o.owned;
    o.ptr = nullptr;
    o.bytes = 0;
    o.owned = false;
  }
  return *this;
}

// Grows only (called every step with the step's token count).
void QuantAct::reserve(int m_, int k_, int group_) {
  m = m_;
  k = k_;
  group = group_;
  const size_t data_bytes = size_t(m_) * i8_kpad(k_), scale_bytes = size_t(m_) * groups() * sizeof(float);
  if (data.bytes < data_bytes) data = AlignedBuffer(data_bytes);
  if (scales.bytes < scale_bytes) scales = AlignedBuffer(scale_bytes);
}

int QuantAct::groups() const {
  return group == 0 ? 1 : i8_kpad(k) / kQ8Group;
}

void pack_f32(const float* w, int n, int k, PackedF32* out) {
  const int np = panels_of(n);
  out->n = n;
  out->k = k;
  out->data = AlignedBuffer(size_t(np) * kPackRows * k * sizeof(float));  // zeroed: pad rows
  float* d = out->data.as<float>();
  for (int r = 0; r < n; ++r) {
    float* panel = d + size_t(r / kPackRows) * k * kPackRows + r % kPackRows;
    for (int c = 0; c < k; ++c) panel[size_t(c) * kPackRows] = w[size_t(r) * k + c];
  }
}

// Symmetric rule shared with the TypeScript `weft quantize` tool (bit-exact contract).
static void quantize_span(const float* w, int len, int8_t* q, float* scale) {
  float amax = 0.0f;
  for (int i = 0; i < len; ++i) amax = std::max(amax, std::fabs(w[i]));
  const float s = amax > 0.0f ? amax / 127.0f : 1.0f;
  for (int i = 0; i < len; ++i) q[i] = int8_t(std::clamp<long>(std::lround(w[i] / s), -127, 127));
  *scale = s;
}

void quantize_pack_i8(const float* w, int n, int k, int group, PackedI8* out) {
  const int groups = group == 0 ? 1 : (k + group - 1) / group, glen = group == 0 ? k : group;
  std::vector<int8_t> q(size_t(n) * k);
  std::vector<float> scales(size_t(n) * groups);
  for (int r = 0; r < n; ++r)
    for (int g = 0; g < groups; ++g) {
      const size_t o = size_t(r) * k + size_t(g) * glen;
      quantize_span(w + o, std::min(glen, k - g * glen), q.data() + o, &scales[size_t(r) * groups + g]);
    }
  pack_i8(q.data(), scales.data(), n, k, group, out);
}

void pack_i8(const int8_t* q, const float* scales, int n, int k, int group, PackedI8* out) {
  const int np = panels_of(n), kp = i8_kpad(k), kq = kp / kQuad;
  const int groups = group == 0 ? 1 : kp / kQ8Group;  // scale groups per row
  const int glen = group == 0 ? kp : kQ8Group;
  out->n = n;
  out->k = k;
  out->group = group;
  out->data = AlignedBuffer(size_t(np) * kPackRows * kp);
  out->scales = AlignedBuffer(size_t(np) * kPackRows * groups * sizeof(float));
  out->row_sums = AlignedBuffer(size_t(np) * kPackRows * groups * sizeof(int32_t));
  int8_t* d = out->data.as<int8_t>();
  float* sc = out->scales.as<float>();
  int32_t* rs = out->row_sums.as<int32_t>();
  for (int r = 0; r < n; ++r) {
    const int p = r / kPackRows, lane = r % kPackRows;
    int8_t* panel = d + size_t(p) * kq * 64;
    const int8_t* row = q + size_t(r) * k;
    for (int c = 0; c < k; ++c) panel[size_t(c / kQuad) * 64 + lane * kQuad + c % kQuad] = row[c];
    for (int g = 0; g < groups; ++g) {
      int32_t sum = 0;
      for (int c = g * glen; c < std::min(k, (g + 1) * glen); ++c) sum += row[c];
      const size_t o = (size_t(p) * groups + g) * kPackRows + lane;  // [p][g][16]
      sc[o] = scales[size_t(r) * groups + g];
      rs[o] = -128 * sum;
    }
  }
  // Padded rows keep scale 0 and sum 0 (buffers are zero-initialized).
}

// IEEE binary16 -> float without requiring F16C (load time only).
static float half_to_float(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 31, mant = h & 1023;
  float v;
  if (exp == 0) v = std::ldexp(float(mant), -24);  // zero / subnormal
  else if (exp == 31) v = mant ? NAN : INFINITY;
  else v = std::ldexp(float(mant | 1024), exp - 25);
  return sign ? -v : v;
}

void pack_q8_0(const void* blocks, int n, int k, PackedI8* out) {
  const int nb = k / kQ8Group;
  const uint8_t* b = static_cast<const uint8_t*>(blocks);
  std::vector<int8_t> q(size_t(n) * k);
  std::vector<float> scales(size_t(n) * nb);
  for (size_t i = 0; i < size_t(n) * nb; ++i, b += 2 + kQ8Group) {
    scales[i] = half_to_float(uint16_t(b[0] | (b[1] << 8)));
    std::memcpy(&q[i * kQ8Group], b + 2, kQ8Group);
  }
  pack_i8(q.data(), scales.data(), n, k, kQ8Group, out);
}

void unpack_i8_row(const PackedI8& w, int r, float* out) {
  const int kq = i8_kpad(w.k) / kQuad, p = r / kPackRows, lane = r % kPackRows;
  const int groups = w.group == 0 ? 1 : i8_kpad(w.k) / kQ8Group;
  const int8_t* panel = w.data.as<int8_t>() + size_t(p) * kq * 64;
  const float* sc = w.scales.as<float>() + size_t(p) * groups * kPackRows + lane;
  for (int c = 0; c < w.k; ++c) {
    const float s = sc[(w.group == 0 ? 0 : c / kQ8Group) * kPackRows];
    out[c] = float(panel[size_t(c / kQuad) * 64 + lane * kQuad + c % kQuad]) * s;
  }
}

// ---- dispatch ----

void matmul_f32(Isa isa, const float* x, int m, const PackedF32& w, float* y, int ldy, int n0, int n1) {
  if (m <= 0 || n1 <= n0) return;
  switch (isa) {
    case Isa::avx512:
      return detail::matmul_f32_avx512(x, m, w, y, ldy, n0, n1);
    case Isa::avx2:
      return detail::matmul_f32_avx2(x, m, w, y, ldy, n0, n1);
    default:
      return detail::matmul_f32_scalar(x, m, w, y, ldy, n0, n1);
  }
}

// `group` sets the scales' layout (one per token, or one per 32 values of a token); the int8 bytes
// are laid out alike for both (the weights' k padding is always to 32).
void quantize_act(Isa isa, const float* x, int m, int k, int group, QuantAct* out) {
  out->reserve(m, k, group);
  quantize_act_rows(isa, x, k, 0, m, out);
}

void quantize_act_rows(Isa isa, const float* x, int k, int t0, int t1, QuantAct* out) {
  if (t1 <= t0) return;
  switch (isa) {
    case Isa::avx512:
      return detail::quantize_act_avx512(x, k, t0, t1, out);
    case Isa::avx2:
      return detail::quantize_act_avx2(x, k, t0, t1, out);
    default:
      return detail::quantize_act_scalar(x, k, t0, t1, out);
  }
}

uint64_t matmul_i8_token_bytes(Isa isa, const PackedI8& w) {
  // The row sums cancel the +128 offset of VNNI's unsigned activations: AVX-512's group GEMV
  // recomputes them instead, and the scalar and plain AVX2 kernels take signed activations.
  const bool sums = (isa == Isa::avx512 && w.group == 0) || (isa == Isa::avx2 && detail::avx_vnni_supported());
  return w.data.bytes + w.scales.bytes + (sums ? w.row_sums.bytes : 0);
}

void matmul_i8(Isa isa, const QuantAct& x, const PackedI8& w, float* y, int ldy, int n0, int n1) {
  if (x.group != w.group) {  // an engine bug, never input: the scales would be read in the wrong layout
    std::fprintf(stderr, "weft: matmul_i8 with activations of group %d for weights of group %d\n", x.group, w.group);
    std::abort();
  }
  if (x.m <= 0 || n1 <= n0) return;
  switch (isa) {
    case Isa::avx512:
      return detail::matmul_i8_avx512(x, w, y, ldy, n0, n1);
    case Isa::avx2:
      return detail::matmul_i8_avx2(x, w, y, ldy, n0, n1);
    default:
      return detail::matmul_i8_scalar(x, w, y, ldy, n0, n1);
  }
}

}  // namespace weft
