// Causal paged attention of a packed batch (see attention.cuh for the interface).
//
// Design
// ------
// Two kernel families, launched one after the other on the stream; each skips the other's
// sequences, so every row of `out` that belongs to a sequence is written exactly once:
//
//  * token_kernel (decode; also the SIMT prefill): one CTA (4 warps) per (sequence or query
//    token, kv head, chunk of up to HG query heads of that kv group, context partition). The
//    K/V rows of a position are loaded once (16 bytes per lane when head_dim % 8 == 0, else 4)
//    and used by all HG heads. A group of TPT lanes holds one position: GP = 32 / TPT positions
//    per warp pass, P passes per iteration. Each lane group keeps its own online-softmax state
//    (max, sum, unnormalized output, fp32, scores in the log2 domain); groups are merged with
//    shuffles, warps through shared memory.
//    Decode mode: grid (num_seqs, num_kv_heads * head_chunks, splits); only sequences with
//    q_len == 1. With splits > 1 the context is cut into partitions on the device
//    (decode_partition: never more than splits, at least kMinPart positions each unless the
//    context is shorter); a sequence whose context yields one partition is written directly,
//    otherwise each partition writes its partials to the workspace and reduce_kernel (grid
//    (num_seqs, num_heads)) merges them.
//    Prefill (SIMT) mode, for head dims without a tensor-core path: grid (max_query_len,
//    num_kv_heads * head_chunks, num_seqs); only sequences with q_len > 1, one query token per
//    CTA, the whole causal range, written directly.
//
//  * prefill_mma_kernel<HD> (head_dim 64 / 128): FlashAttention-2 style. A CTA holds 64 query
//    rows, a row being a (query token, head) pair of one kv group, token-major: TQ = 64 / hpc
//    tokens x hpc heads (hpc = min(group, 64)), so the heads of a group share every K/V tile.
//    Each warp owns 16 rows: Q fragments stay in registers, S = Q K^T and O += P V run on
//    mma.sync.m16n8k16 (fp32 accumulation, P rounded to T for the second product), online
//    softmax on the S fragments. K/V tiles of 64 positions come through the block table with
//    16-byte cp.async into a two-stage ring (rows past the causal end are zero-filled); only
//    tiles that reach past the first query position of the CTA are masked. Grid
//    (ceil(max_query_len / TQ), num_kv_heads * head_chunks, num_seqs), later query tiles first.
//
// The launch configuration depends only on host-side fields (num_seqs, num_tokens,
// max_query_len, max_context_len, head sizes, pointer alignment): kernels read the real
// query_start / context_lens / block_tables and return early for empty work, so a captured
// graph replays correctly for any batch under the same bounds. Block-table entries are read
// only for positions < context_len.
//
// Workspace (split-context decode partials). For a launch with S = num_seqs * splits slots
// (slot = seq * splits + partition), floats:
//   o[S][num_heads][head_dim]   the partition's output, unnormalized, relative to its max
//   m[S][num_heads]             the partition's max score (log2 domain: score * scale * log2 e)
//   l[S][num_heads]             the partition's sum of 2^(score - m)
// The heuristic keeps S <= min(kMaxSlots, num_tokens * max_splits_for(max_context_len)) whenever
// splits > 1, which attention_workspace_bytes(max_tokens, ..., max_context_len) covers for every
// batch with num_tokens <= max_tokens and max_context_len <= its bound.
#include "cuda/attention.cuh"
#include "cuda/attention_kernels.cuh"

#include <algorithm>
#include <atomic>
#include <cmath>

namespace weft {
namespace cuda {
namespace {

constexpr int kThreads = 128, kWarps = 4;
constexpr int kMinPart = 256;  // fewest positions per decode partition (unless the context is shorter)
constexpr int kPartAlign = 32;  // partition lengths are multiples of this
constexpr int kMaxSplits = kAttentionMaxSplits;
constexpr int kMaxSlots = 1024;  // (sequence, partition) pairs of one launch, at most
constexpr int kTargetCtas = 1024;  // decode CTAs aimed at: ~8 per SM of an H100 (132 SMs)
constexpr float kLog2e = 1.4426950408889634f;

struct Params {
  const int32_t* query_start;
  const int32_t* context_lens;
  const int32_t* block_tables;
  const void* q;
  const void* k;
  const void* v;
  void* out;
  float* ws;
  int mbps, num_heads, num_kv_heads, head_dim, block_size, bs_shift;  // bs_shift: log2(block_size) or -1
  int q_stride, out_stride;
  int group;  // query heads per kv head
  int hchunks;  // CTAs per kv head along grid.y (chunks of the group's heads)
  int hpc;  // heads per chunk (mma kernel: rows are tq tokens x hpc heads)
  int tq;  // mma kernel: query tokens per CTA
  int splits;  // decode: context partitions (grid.z)
  int slots;  // decode: num_seqs * splits
  float scale_log2;  // scale * log2(e)
};

// ---- PTX wrappers (sm_80+) ----
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16-byte global → shared copy, asynchronous (L2 only).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_u32(smem)), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, and register i of lane
// l receives row l/4, columns 2(l%4), 2(l%4)+1 of matrix i (with .trans: row 2(l%4)+{0,1}, column l/4).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(smem)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(smem)));
}
// d += a (16x16, row-major) * b (16x8, col-major), fp32 accumulators.
template <class T> __device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <> __device__ __forceinline__ void mma_16816<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <> __device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// ---- end of PTX wrappers ----

// Two T values packed in 32 bits (the lower address in the low half) ↔ two floats.
template <class T> __device__ __forceinline__ float2 unpack2(uint32_t u);
template <> __device__ __forceinline__ float2 unpack2<__half>(uint32_t u) {
  return make_float2(__half2float(__ushort_as_half(static_cast<unsigned short>(u & 0xffffu))),
                     __half2float(__ushort_as_half(static_cast<unsigned short>(u >> 16))));
}
template <> __device__ __forceinline__ float2 unpack2<__nv_bfloat16>(uint32_t u) {
  return make_float2(__uint_as_float(u << 16), __uint_as_float(u & 0xffff0000u));
}
template <class T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  return uint32_t(__half_as_ushort(__float2half_rn(lo))) | (uint32_t(__half_as_ushort(__float2half_rn(hi))) << 16);
}
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  return uint32_t(__bfloat16_as_ushort(__float2bfloat16_rn(lo))) | (uint32_t(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) << 16);
}

// VEC T values as loaded by one lane: 16 bytes (VEC 8) or 4 bytes (VEC 2).
template <int VEC> struct Raw;
template <> struct Raw<8> {
  uint32_t w[4];
  __device__ __forceinline__ void load(const void* p) {
    const uint4 u = __ldg(static_cast<const uint4*>(p));
    w[0] = u.x, w[1] = u.y, w[2] = u.z, w[3] = u.w;
  }
};
template <> struct Raw<2> {
  uint32_t w[1];
  __device__ __forceinline__ void load(const void* p) {
    w[0] = __ldg(static_cast<const unsigned int*>(p));
  }
};
template <class T, int VEC> __device__ __forceinline__ void to_float(const Raw<VEC>& r, float (&f)[VEC]) {
#pragma unroll
  for (int i = 0; i < VEC / 2; ++i) {
    const float2 x = unpack2<T>(r.w[i]);
    f[2 * i] = x.x, f[2 * i + 1] = x.y;
  }
}

// Guarded online-softmax base: a running max of -inf (nothing seen yet) rescales by 2^-inf = 0
// and exponentiates masked scores to 0, never to NaN.
__device__ __forceinline__ float safe_max(float m) {
  return m == -INFINITY ? 0.f : m;
}

// Cache element offset of position t of a sequence (block table row bt), kv head kvh.
__device__ __forceinline__ size_t kv_elem(const Params& p, const int32_t* __restrict__ bt, int t, int kvh) {
  int b, off;
  if (p.bs_shift >= 0) b = t >> p.bs_shift, off = t & (p.block_size - 1);
  else b = t / p.block_size, off = t - b * p.block_size;
  const int phys = __ldg(bt + b);
  return ((size_t(phys) * p.num_kv_heads + kvh) * p.block_size + off) * size_t(p.head_dim);
}

// The decode partitions of a context of ctx >= 1 positions under `splits`: n non-empty
// partitions [i * len, min(ctx, (i + 1) * len)), 1 <= n <= splits. Also used by reduce_kernel.
__device__ __forceinline__ void decode_partition(int ctx, int splits, int& len, int& n) {
  int want = min(splits, (ctx + kMinPart - 1) / kMinPart);
  want = max(want, 1);
  len = (ctx + want - 1) / want;
  len = (len + kPartAlign - 1) / kPartAlign * kPartAlign;
  n = (ctx + len - 1) / len;
}

// ============================ token kernel (decode / SIMT prefill) ============================
// VEC: T values per load; TPT: lanes per position (a power of two <= 32); NV: loads per lane per
// position; the lane li of a group holds dims (j * TPT + li) * VEC + [0, VEC) for j < NV.
// HG: query heads per CTA. decode: 1 decode mode, 0 prefill mode (see the top of the file).
template <class T, int VEC, int TPT, int NV, int HG> __global__ void __launch_bounds__(kThreads) token_kernel(const Params p, const int decode) {
  pdl_wait();
  pdl_trigger();  // the o projection may start fetching its weights
  constexpr int GP = 32 / TPT;  // positions per warp pass
  constexpr int P = HG >= 8 ? 2 : 4;  // passes per iteration
  constexpr int TOK = P * GP;  // positions per warp iteration
  constexpr int HDC = TPT * VEC * NV;  // head dims covered by a lane group
  __shared__ float sm_m[kWarps][HG], sm_l[kWarps][HG];
  __shared__ float sm_o[kWarps][HG][HDC];

  const int kvh = blockIdx.y / p.hchunks, hc = blockIdx.y - kvh * p.hchunks;
  int seq, tok, split;
  if (decode) seq = blockIdx.x, tok = 0, split = blockIdx.z;
  else seq = blockIdx.z, tok = blockIdx.x, split = 0;
  const int q0 = p.query_start[seq], q_len = p.query_start[seq + 1] - q0, ctx = p.context_lens[seq];
  if (ctx <= 0) return;
  if (decode ? q_len != 1 : (q_len <= 1 || tok >= q_len)) return;
  // the token sits at position ctx - q_len + tok and attends to [0, kv_len)
  const int kv_len = ctx - q_len + tok + 1;
  int p0 = 0, p1 = max(kv_len, 0), n_parts = 1;
  if (decode && p.splits > 1) {
    int len;
    decode_partition(ctx, p.splits, len, n_parts);  // kv_len == ctx in decode mode
    if (split >= n_parts) return;
    p0 = split * len;
    p1 = min(ctx, p0 + len);
  }

  const int hd = p.head_dim, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int grp = lane / TPT, li = lane % TPT;

  // this CTA's query heads, pre-scaled into the log2 domain (heads past the group are zero)
  float q[HG][NV][VEC];
  {
    const T* qrow = static_cast<const T*>(p.q) + size_t(q0 + tok) * p.q_stride;
#pragma unroll
    for (int h = 0; h < HG; ++h) {
      const int hig = hc * HG + h;
#pragma unroll
      for (int j = 0; j < NV; ++j) {
        const int d0 = (j * TPT + li) * VEC;
        const bool ok = hig < p.group && d0 < hd;
        const T* src = qrow + size_t(kvh * p.group + hig) * hd + d0;
#pragma unroll
        for (int e = 0; e < VEC; ++e) q[h][j][e] = ok ? to_f<T>(src[e]) * p.scale_log2 : 0.f;
      }
    }
  }

  float m[HG], l[HG], acc[HG][NV][VEC];
#pragma unroll
  for (int h = 0; h < HG; ++h) {
    m[h] = -INFINITY, l[h] = 0.f;
#pragma unroll
    for (int j = 0; j < NV; ++j)
#pragma unroll
      for (int e = 0; e < VEC; ++e) acc[h][j][e] = 0.f;
  }

  const int32_t* bt = p.block_tables + size_t(seq) * p.mbps;
  const T* kc = static_cast<const T*>(p.k);
  const T* vc = static_cast<const T*>(p.v);
  // `base` depends only on the warp: the loop and the shuffles inside it are warp-uniform
  for (int base = p0 + warp * TOK; base < p1; base += kWarps * TOK) {
    Raw<VEC> kr[P][NV], vr[P][NV];
    bool ok[P];
#pragma unroll
    for (int pp = 0; pp < P; ++pp) {
      const int t = base + pp * GP + grp;
      ok[pp] = t < p1;
      const size_t e0 = ok[pp] ? kv_elem(p, bt, t, kvh) : 0;
#pragma unroll
      for (int j = 0; j < NV; ++j) {
        const int d0 = (j * TPT + li) * VEC;
        if (ok[pp] && d0 < hd) {
          kr[pp][j].load(kc + e0 + d0);
          vr[pp][j].load(vc + e0 + d0);
        } else {
#pragma unroll
          for (int w = 0; w < VEC / 2; ++w) kr[pp][j].w[w] = 0u, vr[pp][j].w[w] = 0u;
        }
      }
    }
    // scores of the P positions for every head (all lanes of a group end with the same sums)
    float s[P][HG];
#pragma unroll
    for (int pp = 0; pp < P; ++pp) {
      float dot[HG];
#pragma unroll
      for (int h = 0; h < HG; ++h) dot[h] = 0.f;
#pragma unroll
      for (int j = 0; j < NV; ++j) {
        float kf[VEC];
        to_float<T, VEC>(kr[pp][j], kf);
#pragma unroll
        for (int h = 0; h < HG; ++h)
#pragma unroll
          for (int e = 0; e < VEC; ++e) dot[h] = fmaf(q[h][j][e], kf[e], dot[h]);
      }
#pragma unroll
      for (int h = 0; h < HG; ++h) {
#pragma unroll
        for (int o = TPT / 2; o > 0; o >>= 1) dot[h] += __shfl_xor_sync(0xffffffffu, dot[h], o);
        s[pp][h] = ok[pp] ? dot[h] : -INFINITY;
      }
    }
    // online softmax of this lane group
#pragma unroll
    for (int h = 0; h < HG; ++h) {
      float mx = s[0][h];
#pragma unroll
      for (int pp = 1; pp < P; ++pp) mx = fmaxf(mx, s[pp][h]);
      const float m_new = fmaxf(m[h], mx), mu = safe_max(m_new);
      const float alpha = exp2f(m[h] - mu);
      m[h] = m_new;
      l[h] *= alpha;
#pragma unroll
      for (int j = 0; j < NV; ++j)
#pragma unroll
        for (int e = 0; e < VEC; ++e) acc[h][j][e] *= alpha;
#pragma unroll
      for (int pp = 0; pp < P; ++pp) {
        s[pp][h] = exp2f(s[pp][h] - mu);
        l[h] += s[pp][h];
      }
    }
#pragma unroll
    for (int pp = 0; pp < P; ++pp)
#pragma unroll
      for (int j = 0; j < NV; ++j) {
        float vf[VEC];
        to_float<T, VEC>(vr[pp][j], vf);
#pragma unroll
        for (int h = 0; h < HG; ++h)
#pragma unroll
          for (int e = 0; e < VEC; ++e) acc[h][j][e] = fmaf(s[pp][h], vf[e], acc[h][j][e]);
      }
  }

  // merge the lane groups of the warp (butterfly: every lane ends with the warp's state)
#pragma unroll
  for (int o = TPT; o < 32; o <<= 1)
#pragma unroll
    for (int h = 0; h < HG; ++h) {
      const float mo = __shfl_xor_sync(0xffffffffu, m[h], o), lo = __shfl_xor_sync(0xffffffffu, l[h], o);
      const float m_new = fmaxf(m[h], mo), mu = safe_max(m_new);
      const float a = exp2f(m[h] - mu), b = exp2f(mo - mu);
      m[h] = m_new;
      l[h] = l[h] * a + lo * b;
#pragma unroll
      for (int j = 0; j < NV; ++j)
#pragma unroll
        for (int e = 0; e < VEC; ++e) acc[h][j][e] = acc[h][j][e] * a + __shfl_xor_sync(0xffffffffu, acc[h][j][e], o) * b;
    }
  if (lane < TPT) {
#pragma unroll
    for (int h = 0; h < HG; ++h) {
#pragma unroll
      for (int j = 0; j < NV; ++j)
#pragma unroll
        for (int e = 0; e < VEC; ++e) sm_o[warp][h][(j * TPT + li) * VEC + e] = acc[h][j][e];
      if (lane == 0) sm_m[warp][h] = m[h], sm_l[warp][h] = l[h];
    }
  }
  __syncthreads();

  // merge the warps; write the output (one partition) or the partials
  const bool direct = n_parts == 1;
  for (int idx = threadIdx.x; idx < HG * HDC; idx += kThreads) {
    const int h = idx / HDC, d = idx - h * HDC, hig = hc * HG + h;
    if (hig >= p.group || d >= hd) continue;
    float mw = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) mw = fmaxf(mw, sm_m[w][h]);
    const float mu = safe_max(mw);
    float lsum = 0.f, o = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float f = exp2f(sm_m[w][h] - mu);
      lsum += sm_l[w][h] * f;
      o += sm_o[w][h][d] * f;
    }
    const int head = kvh * p.group + hig;
    if (direct) {
      T* orow = static_cast<T*>(p.out) + size_t(q0 + tok) * p.out_stride;
      orow[size_t(head) * hd + d] = from_f<T>(lsum > 0.f ? o / lsum : 0.f);
    } else {
      const size_t sh = size_t(seq * p.splits + split) * p.num_heads + head;  // (slot, head)
      p.ws[sh * hd + d] = o;
      if (d == 0) {
        float* wm = p.ws + size_t(p.slots) * p.num_heads * hd;
        wm[sh] = mw;
        wm[size_t(p.slots) * p.num_heads + sh] = lsum;
      }
    }
  }
}

// Merges the partitions of the split decode sequences: one CTA per (sequence, query head).
template <class T> __global__ void __launch_bounds__(kThreads) reduce_kernel(const Params p) {
  pdl_wait();
  pdl_trigger();  // the o projection may start fetching its weights
  __shared__ float sw[kMaxSplits];
  const int seq = blockIdx.x, head = blockIdx.y;
  const int q0 = p.query_start[seq], q_len = p.query_start[seq + 1] - q0, ctx = p.context_lens[seq];
  if (q_len != 1 || ctx <= 0) return;
  int len, n;
  decode_partition(ctx, p.splits, len, n);
  if (n <= 1) return;  // written directly by the decode kernel
  const int hd = p.head_dim;
  const size_t sh0 = size_t(seq) * p.splits * p.num_heads + head;  // (slot seq * splits, head)
  const float* wo = p.ws;
  const float* wm = p.ws + size_t(p.slots) * p.num_heads * hd;
  const float* wl = wm + size_t(p.slots) * p.num_heads;
  // every partition holds at least one position, so its max is finite
  float mx = -INFINITY;
  for (int s = 0; s < n; ++s) mx = fmaxf(mx, wm[sh0 + size_t(s) * p.num_heads]);
  const float mu = safe_max(mx);
  for (int s = threadIdx.x; s < n; s += blockDim.x) sw[s] = exp2f(wm[sh0 + size_t(s) * p.num_heads] - mu);
  __syncthreads();
  float lsum = 0.f;
  for (int s = 0; s < n; ++s) lsum += wl[sh0 + size_t(s) * p.num_heads] * sw[s];
  const float inv = lsum > 0.f ? 1.f / lsum : 0.f;
  T* orow = static_cast<T*>(p.out) + size_t(q0) * p.out_stride + size_t(head) * hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float o = 0.f;
    for (int s = 0; s < n; ++s) o += wo[(sh0 + size_t(s) * p.num_heads) * hd + d] * sw[s];
    orow[d] = from_f<T>(o * inv);
  }
}

// ============================ tensor-core prefill ============================
template <int HD> struct MmaCfg {
  static constexpr int kRows = 64;  // query rows per CTA, 16 per warp
  static constexpr int kTK = 64;  // kv positions per tile
  static constexpr int kPitch = HD + 8;  // smem row pitch (elements): 16-byte skew, conflict-free ldmatrix
  static constexpr int kTile = kTK * kPitch;  // elements of one K or V tile (also of the Q tile)
  static constexpr int kChunks = HD / 8;  // 16-byte chunks per row
  static constexpr size_t kSmemBytes = 4 * size_t(kTile) * 2;  // K0 V0 K1 V1 (Q staged in K1)
};

template <class T, int HD> __global__ void __launch_bounds__(kThreads) prefill_mma_kernel(const Params p) {
  pdl_wait();
  pdl_trigger();  // the o projection may start fetching its weights
  using C = MmaCfg<HD>;
  static_assert(C::kRows == kWarps * 16 && C::kRows == C::kTK, "Q is staged in a K tile");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* const smem = reinterpret_cast<T*>(smem_raw);

  const int seq = blockIdx.z;
  const int qt = gridDim.x - 1 - blockIdx.x;  // the longest (last) query tiles start first
  const int kvh = blockIdx.y / p.hchunks, hc = blockIdx.y - kvh * p.hchunks;
  const int q0 = p.query_start[seq], q_len = p.query_start[seq + 1] - q0, ctx = p.context_lens[seq];
  if (q_len <= 1 || ctx <= 0) return;
  const int tok0 = qt * p.tq;
  if (tok0 >= q_len) return;
  const int ntok = min(p.tq, q_len - tok0);
  const int pos0 = ctx - q_len + tok0;  // position of the CTA's first token
  const int kv_end = pos0 + ntok;  // the CTA attends to positions [0, kv_end)
  const int ntiles = kv_end > 0 ? (kv_end + C::kTK - 1) / C::kTK : 0;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int32_t* bt = p.block_tables + size_t(seq) * p.mbps;
  const T* kc = static_cast<const T*>(p.k);
  const T* vc = static_cast<const T*>(p.v);

  // row r of the CTA: token r / hpc, head hc * hpc + r % hpc of the group
  auto row_info = [&](int r, int& tk, int& head) -> bool {
    tk = r / p.hpc;
    const int hig = hc * p.hpc + (r - tk * p.hpc);
    head = kvh * p.group + hig;
    return tk < ntok && hig < p.group;
  };

  auto load_kv_tile = [&](int it, int buf) {
    T* sk = smem + (2 * buf) * C::kTile;
    T* sv = sk + C::kTile;
    const int kv0 = it * C::kTK;
#pragma unroll
    for (int i = tid; i < C::kTK * C::kChunks; i += kThreads) {
      const int r = i / C::kChunks, c = i % C::kChunks, t = kv0 + r;
      T* dk = sk + r * C::kPitch + c * 8;
      T* dv = sv + r * C::kPitch + c * 8;
      if (t < kv_end) {
        const size_t e = kv_elem(p, bt, t, kvh) + c * 8;
        cp_async16(dk, kc + e);
        cp_async16(dv, vc + e);
      } else {  // past the causal end: zeros (P is 0 there, and 0 * garbage could be NaN)
        *reinterpret_cast<uint4*>(dk) = make_uint4(0u, 0u, 0u, 0u);
        *reinterpret_cast<uint4*>(dv) = make_uint4(0u, 0u, 0u, 0u);
      }
    }
  };

  // Q tile → smem (in K buffer 1), K/V tile 0 → buffer 0
  {
    T* sq = smem + 2 * C::kTile;
    const T* qg = static_cast<const T*>(p.q);
#pragma unroll
    for (int i = tid; i < C::kRows * C::kChunks; i += kThreads) {
      const int r = i / C::kChunks, c = i % C::kChunks;
      int tk, head;
      T* dst = sq + r * C::kPitch + c * 8;
      if (row_info(r, tk, head)) cp_async16(dst, qg + size_t(q0 + tok0 + tk) * p.q_stride + size_t(head) * HD + c * 8);
      else *reinterpret_cast<uint4*>(dst) = make_uint4(0u, 0u, 0u, 0u);
    }
  }
  if (ntiles > 0) load_kv_tile(0, 0);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();

  // this thread's rows: A = warp * 16 + g, B = A + 8
  const int rA = warp * 16 + g, rB = rA + 8;
  int tkA, tkB, headA, headB;
  const bool okA = row_info(rA, tkA, headA), okB = row_info(rB, tkB, headB);
  // invalid rows get position -1: fully masked on masked tiles, never stored
  const int posA = okA ? pos0 + tkA : -1, posB = okB ? pos0 + tkB : -1;

  uint32_t qf[HD / 16][4];  // A fragments of Q: k-step kk covers dims [16 kk, 16 kk + 16)
  {
    const T* sq = smem + 2 * C::kTile;
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      const T* b = sq + kk * 16 + t4 * 2;
      qf[kk][0] = *reinterpret_cast<const uint32_t*>(b + rA * C::kPitch);
      qf[kk][1] = *reinterpret_cast<const uint32_t*>(b + rB * C::kPitch);
      qf[kk][2] = *reinterpret_cast<const uint32_t*>(b + rA * C::kPitch + 8);
      qf[kk][3] = *reinterpret_cast<const uint32_t*>(b + rB * C::kPitch + 8);
    }
  }
  __syncthreads();  // buffer 1 (Q) is overwritten by tile 1 from here on

  float o[HD / 8][4];  // C fragments of O: n-tile d8 covers dims [8 d8, 8 d8 + 8)
#pragma unroll
  for (int d8 = 0; d8 < HD / 8; ++d8) o[d8][0] = o[d8][1] = o[d8][2] = o[d8][3] = 0.f;
  float mA = -INFINITY, mB = -INFINITY, lA = 0.f, lB = 0.f;  // l: this thread's columns only

  for (int it = 0; it < ntiles; ++it) {
    if (it + 1 < ntiles) load_kv_tile(it + 1, (it + 1) & 1);
    cp_async_commit();
    cp_async_wait<1>();  // everything but the group just committed: tile `it` has landed
    __syncthreads();
    const T* sk = smem + (2 * (it & 1)) * C::kTile;
    const T* sv = sk + C::kTile;
    const int kv0 = it * C::kTK;

    // S = Q K^T: n-tile j covers positions kv0 + [8 j, 8 j + 8)
    float s[C::kTK / 8][4];
#pragma unroll
    for (int j = 0; j < C::kTK / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk += 2) {
#pragma unroll
      for (int j = 0; j < C::kTK / 8; ++j) {
        // matrices: dims 16kk+[0,8), 16kk+[8,16), 16(kk+1)+[0,8), 16(kk+1)+[8,16) of positions 8j..8j+7
        uint32_t b[4];
        ldmatrix_x4(b, sk + (8 * j + (lane & 7)) * C::kPitch + kk * 16 + (lane >> 3) * 8);
        mma_16816<T>(s[j], qf[kk], b[0], b[1]);
        mma_16816<T>(s[j], qf[kk + 1], b[2], b[3]);
      }
    }

    // scale, causal mask (only tiles reaching past the first query position)
    const bool diag = kv0 + C::kTK - 1 > pos0;
#pragma unroll
    for (int j = 0; j < C::kTK / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[j][e] * p.scale_log2;
        if (diag && kv0 + 8 * j + 2 * t4 + (e & 1) > (e < 2 ? posA : posB)) x = -INFINITY;
        s[j][e] = x;
      }

    // online softmax: rows A (e = 0, 1) and B (e = 2, 3); a row lives in the 4 lanes of a quad
    float mxA = -INFINITY, mxB = -INFINITY;
#pragma unroll
    for (int j = 0; j < C::kTK / 8; ++j) {
      mxA = fmaxf(mxA, fmaxf(s[j][0], s[j][1]));
      mxB = fmaxf(mxB, fmaxf(s[j][2], s[j][3]));
    }
    mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, 1));
    mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, 2));
    mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, 1));
    mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, 2));
    const float mnA = fmaxf(mA, mxA), mnB = fmaxf(mB, mxB);
    const float muA = safe_max(mnA), muB = safe_max(mnB);
    const float alphaA = exp2f(mA - muA), alphaB = exp2f(mB - muB);
    mA = mnA, mB = mnB;
    lA *= alphaA, lB *= alphaB;
#pragma unroll
    for (int d8 = 0; d8 < HD / 8; ++d8) {
      o[d8][0] *= alphaA, o[d8][1] *= alphaA;
      o[d8][2] *= alphaB, o[d8][3] *= alphaB;
    }
#pragma unroll
    for (int j = 0; j < C::kTK / 8; ++j) {
      s[j][0] = exp2f(s[j][0] - muA), s[j][1] = exp2f(s[j][1] - muA);
      s[j][2] = exp2f(s[j][2] - muB), s[j][3] = exp2f(s[j][3] - muB);
      lA += s[j][0] + s[j][1];
      lB += s[j][2] + s[j][3];
    }

    // O += P V: k-step ks covers positions kv0 + [16 ks, 16 ks + 16); the C fragments of S
    // n-tiles 2ks, 2ks+1 are exactly the A fragment of P
#pragma unroll
    for (int ks = 0; ks < C::kTK / 16; ++ks) {
      uint32_t a[4];
      a[0] = pack2<T>(s[2 * ks][0], s[2 * ks][1]);
      a[1] = pack2<T>(s[2 * ks][2], s[2 * ks][3]);
      a[2] = pack2<T>(s[2 * ks + 1][0], s[2 * ks + 1][1]);
      a[3] = pack2<T>(s[2 * ks + 1][2], s[2 * ks + 1][3]);
#pragma unroll
      for (int dp = 0; dp < HD / 16; ++dp) {
        // matrices (transposed): positions 16ks+[0,8) and 16ks+[8,16) of dims 16dp+[0,8), then of 16dp+[8,16)
        uint32_t b[4];
        ldmatrix_x4_trans(b, sv + (16 * ks + ((lane >> 3) & 1) * 8 + (lane & 7)) * C::kPitch + dp * 16 + (lane >> 4) * 8);
        mma_16816<T>(o[2 * dp], a, b[0], b[1]);
        mma_16816<T>(o[2 * dp + 1], a, b[2], b[3]);
      }
    }
    __syncthreads();  // the buffer is refilled by the next iteration's prefetch
  }

  // normalize and store (each quad holds 8 consecutive dims of a row per n-tile)
  lA += __shfl_xor_sync(0xffffffffu, lA, 1);
  lA += __shfl_xor_sync(0xffffffffu, lA, 2);
  lB += __shfl_xor_sync(0xffffffffu, lB, 1);
  lB += __shfl_xor_sync(0xffffffffu, lB, 2);
  const float invA = lA > 0.f ? 1.f / lA : 0.f, invB = lB > 0.f ? 1.f / lB : 0.f;
  T* out = static_cast<T*>(p.out);
  if (okA) {
    T* orow = out + size_t(q0 + tok0 + tkA) * p.out_stride + size_t(headA) * HD + 2 * t4;
#pragma unroll
    for (int d8 = 0; d8 < HD / 8; ++d8) *reinterpret_cast<uint32_t*>(orow + 8 * d8) = pack2<T>(o[d8][0] * invA, o[d8][1] * invA);
  }
  if (okB) {
    T* orow = out + size_t(q0 + tok0 + tkB) * p.out_stride + size_t(headB) * HD + 2 * t4;
#pragma unroll
    for (int d8 = 0; d8 < HD / 8; ++d8) *reinterpret_cast<uint32_t*>(orow + 8 * d8) = pack2<T>(o[d8][2] * invB, o[d8][3] * invB);
  }
}

// ============================ host side ============================
int current_device() {
  int d = 0;
  cudaGetDevice(&d);
  return d;
}

// Decode partitions at most, for contexts up to max_ctx.
int max_splits_for(int max_ctx) {
  const long s = (long(std::max(max_ctx, 1)) + kMinPart - 1) / kMinPart;
  return int(std::min<long>(std::max<long>(s, 1), kMaxSplits));
}

// Query heads per decode CTA: the group rounded up to a power of two, at most 8.
int decode_heads_per_cta(int group) {
  return group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : 8;
}

int splits_heuristic(int num_seqs, int num_tokens, int kv_ctas, int max_ctx) {
  // the workspace is indexed by sequence and sized by tokens: no split when seqs > tokens
  if (num_seqs <= 0 || num_seqs > num_tokens) return 1;
  const int cap = max_splits_for(max_ctx);
  if (cap < 2) return 1;
  const long base = long(num_seqs) * std::max(kv_ctas, 1);
  int s = int(std::min<long>(cap, (kTargetCtas + base - 1) / base));
  s = std::min(s, kMaxSlots / num_seqs);
  return std::max(s, 1);
}

template <class T, int VEC, int TPT, int NV> cudaError_t launch_token_hg(int hg, const Params& p, dim3 grid, int decode, cudaStream_t stream) {
  switch (hg) {
    case 1:
      return launch_pdl(token_kernel<T, VEC, TPT, NV, 1>, grid, dim3(kThreads), 0, stream, p, decode);
    case 2:
      return launch_pdl(token_kernel<T, VEC, TPT, NV, 2>, grid, dim3(kThreads), 0, stream, p, decode);
    case 4:
      return launch_pdl(token_kernel<T, VEC, TPT, NV, 4>, grid, dim3(kThreads), 0, stream, p, decode);
    default:
      return launch_pdl(token_kernel<T, VEC, TPT, NV, 8>, grid, dim3(kThreads), 0, stream, p, decode);
  }
}

// Picks the lane layout from head_dim: 16-byte loads with the fewest lanes per position that
// cover it (head_dim % 8 == 0, 16-byte aligned caches), else 4-byte loads over a full warp.
template <class T> cudaError_t launch_token(bool vec16, int hg, const Params& p, dim3 grid, int decode, cudaStream_t stream) {
  const int hd = p.head_dim;
  if (vec16) {
    if (hd <= 32) return launch_token_hg<T, 8, 4, 1>(hg, p, grid, decode, stream);
    if (hd <= 64) return launch_token_hg<T, 8, 8, 1>(hg, p, grid, decode, stream);
    if (hd <= 128) return launch_token_hg<T, 8, 16, 1>(hg, p, grid, decode, stream);
    return launch_token_hg<T, 8, 32, 1>(hg, p, grid, decode, stream);
  }
  return launch_token_hg<T, 2, 32, 4>(hg, p, grid, decode, stream);
}

template <class T, int HD> cudaError_t launch_mma(const Params& p, dim3 grid, cudaStream_t stream) {
  using C = MmaCfg<HD>;
  auto kernel = prefill_mma_kernel<T, HD>;
  if (C::kSmemBytes > 48 * 1024) {  // opt in to more than 48 KB of dynamic shared memory, once per device
    static std::atomic<unsigned long long> done{0};
    const unsigned long long bit = 1ull << (current_device() & 63);
    if (!(done.load(std::memory_order_relaxed) & bit)) {
      const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(C::kSmemBytes));
      if (e != cudaSuccess) return e;
      done.fetch_or(bit, std::memory_order_relaxed);
    }
  }
  return launch_pdl(kernel, grid, dim3(kThreads), C::kSmemBytes, stream, p);
}

bool aligned(const void* ptr, size_t n) {
  return reinterpret_cast<uintptr_t>(ptr) % n == 0;
}

template <class T> cudaError_t run(const AttentionArgs& a, const AttentionForce& force, cudaStream_t stream) {
  const int hd = a.head_dim, group = a.num_heads / a.num_kv_heads;
  Params p{};
  p.query_start = a.query_start, p.context_lens = a.context_lens, p.block_tables = a.block_tables;
  p.q = a.q, p.k = a.k_cache, p.v = a.v_cache, p.out = a.out, p.ws = static_cast<float*>(a.workspace);
  p.mbps = a.max_blocks_per_seq, p.num_heads = a.num_heads, p.num_kv_heads = a.num_kv_heads, p.head_dim = hd;
  p.block_size = a.block_size;
  p.bs_shift = -1;
  if ((a.block_size & (a.block_size - 1)) == 0)
    for (int s = 0; s < 31; ++s)
      if ((1 << s) == a.block_size) p.bs_shift = s;
  p.q_stride = a.q_stride, p.out_stride = a.out_stride, p.group = group;
  p.scale_log2 = a.scale * kLog2e;

  const bool vec16 = hd % 8 == 0 && aligned(a.k_cache, 16) && aligned(a.v_cache, 16);
  if (!vec16 && !(aligned(a.k_cache, 4) && aligned(a.v_cache, 4))) return cudaErrorInvalidValue;
  const bool mma_ok = (hd == 64 || hd == 128) && vec16 && aligned(a.q, 16) && a.q_stride % 8 == 0 && aligned(a.out, 4) && a.out_stride % 2 == 0;
  AttentionPrefillPath path = force.prefill;
  if (path == AttentionPrefillPath::automatic) path = mma_ok ? AttentionPrefillPath::mma : AttentionPrefillPath::simt;
  if (path == AttentionPrefillPath::mma && !mma_ok) return cudaErrorInvalidValue;

  // decode: sequences with q_len == 1
  const int hg = decode_heads_per_cta(group), hchunks = (group + hg - 1) / hg;
  const long kv_ctas = long(a.num_kv_heads) * hchunks;
  if (kv_ctas > 65535) return cudaErrorInvalidValue;
  int splits = force.decode_splits;
  if (splits == 0) splits = splits_heuristic(a.num_seqs, a.num_tokens, int(kv_ctas), a.max_context_len);
  if (splits < 1 || splits > kMaxSplits) return cudaErrorInvalidValue;
  if (splits > 1 && a.workspace == nullptr) return cudaErrorInvalidValue;
  {
    Params d = p;
    d.hchunks = hchunks, d.hpc = hg, d.tq = 1, d.splits = splits, d.slots = a.num_seqs * splits;
    cudaError_t e = launch_token<T>(vec16, hg, d, dim3(a.num_seqs, unsigned(kv_ctas), splits), 1, stream);
    if (e != cudaSuccess) return e;
    if (splits > 1) {
      e = launch_pdl(reduce_kernel<T>, dim3(a.num_seqs, a.num_heads), dim3(kThreads), 0, stream, d);
      if (e != cudaSuccess) return e;
    }
  }

  // prefill: sequences with q_len > 1
  if (a.max_query_len > 1) {
    if (a.num_seqs > 65535) return cudaErrorInvalidValue;
    Params f = p;
    f.splits = 1, f.slots = 0;
    if (path == AttentionPrefillPath::mma) {
      const int hpc = std::min(group, 64), mchunks = (group + hpc - 1) / hpc;
      if (long(a.num_kv_heads) * mchunks > 65535) return cudaErrorInvalidValue;
      f.hpc = hpc, f.tq = 64 / hpc, f.hchunks = mchunks;
      const dim3 grid(ceil_div(a.max_query_len, f.tq), unsigned(a.num_kv_heads * mchunks), a.num_seqs);
      return hd == 64 ? launch_mma<T, 64>(f, grid, stream) : launch_mma<T, 128>(f, grid, stream);
    }
    f.hchunks = hchunks, f.hpc = hg, f.tq = 1;
    return launch_token<T>(vec16, hg, f, dim3(a.max_query_len, unsigned(kv_ctas), a.num_seqs), 0, stream);
  }
  return cudaSuccess;
}

cudaError_t check_args(const AttentionArgs& a) {
  if (a.num_seqs < 0 || a.num_tokens < 0 || a.max_query_len < 0) return cudaErrorInvalidValue;
  if (a.num_heads <= 0 || a.num_kv_heads <= 0 || a.num_heads % a.num_kv_heads != 0) return cudaErrorInvalidValue;
  if (a.head_dim <= 0 || a.head_dim % 2 != 0 || a.head_dim > 256 || a.block_size <= 0) return cudaErrorInvalidValue;
  if (a.q_stride < a.num_heads * a.head_dim || a.out_stride < a.num_heads * a.head_dim) return cudaErrorInvalidValue;
  if (!a.query_start || !a.context_lens || !a.block_tables || !a.q || !a.k_cache || !a.v_cache || !a.out) return cudaErrorInvalidValue;
  return cudaSuccess;
}

}  // namespace

int attention_decode_splits(int num_seqs, int num_tokens, int num_heads, int num_kv_heads, int max_context_len) {
  if (num_heads <= 0 || num_kv_heads <= 0) return 1;
  const int group = std::max(num_heads / num_kv_heads, 1), hg = decode_heads_per_cta(group);
  return splits_heuristic(num_seqs, num_tokens, num_kv_heads * ((group + hg - 1) / hg), max_context_len);
}

size_t attention_partials_bytes(long slots, int num_heads, int head_dim) {
  return size_t(std::max(slots, 0L)) * size_t(num_heads) * (size_t(head_dim) + 2) * sizeof(float);
}

size_t attention_workspace_bytes(int max_tokens, int num_heads, int head_dim, int max_context_len) {
  // splits > 1 only with num_seqs <= num_tokens, splits <= max_splits_for(max_context_len) and
  // num_seqs * splits <= kMaxSlots (splits_heuristic)
  const int cap = max_splits_for(max_context_len);
  const long slots = cap < 2 ? 0 : std::min<long>(kMaxSlots, long(std::max(max_tokens, 0)) * cap);
  return std::max<size_t>(attention_partials_bytes(slots, num_heads, head_dim), 256);
}

cudaError_t attention_forced(DType t, const AttentionArgs& a, const AttentionForce& force, cudaStream_t stream) {
  const cudaError_t e = check_args(a);
  if (e != cudaSuccess) return e;
  if (a.num_seqs == 0 || a.num_tokens == 0) return cudaSuccess;  // no rows to write
  WEFT_DISPATCH_DTYPE(t, return run<T>(a, force, stream));
  return cudaSuccess;
}

cudaError_t attention(DType t, const AttentionArgs& a, cudaStream_t stream) {
  return attention_forced(t, a, AttentionForce{}, stream);
}

}  // namespace cuda
}  // namespace weft
