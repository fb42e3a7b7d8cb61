// Dense products Y[m][n] (op)= X[m][k] · W[n][k]^T on the tensor cores (mma.sync m16n8k16,
// fp32 accumulation), for sm_80+ (built for sm_90). Two families of kernels:
//
// gemv (m <= kGemvMaxM = 16, decode): bandwidth-bound, W is read exactly once. A CTA owns 16
//   rows of W and its NW warps (8, or 16 when there are too few CTAs to fill the GPU) split k
//   in 64-byte chunks, chunk c going to warp c % NW. The product is still an mma: W rows are the
//   16-row A operand and the tokens the 8-column B operand (1 or 2 tiles of 8 tokens). Since the
//   order of the k terms of a dot product is free, each lane loads 16 contiguous bytes of W (rows
//   g and g+8, g = lane/4) and the matching 8 or 16 elements of X, and hands them to the mma as
//   the k pairs {2t, 2t+1, 2t+8, 2t+9} of successive k16 steps: the k permutation is the same
//   for A and B, so the sum is unchanged. U = 4 chunks are loaded (all of W's loads in flight)
//   before any is used; X (a few KB) comes through L1 with __ldg. The warps' 16 x 8·NT partial
//   tiles are summed in shared memory in a fixed order (deterministic) and the epilogue writes
//   consecutive n per thread (coalesced).
//
// tc (m > 16): a tiled kernel. X and W tiles go to shared memory with 16-byte cp.async (rows past
//   m or n are zero-filled), STAGES deep; rows are padded by 16 bytes so that ldmatrix and the
//   int8 reads are free of bank conflicts. Fragments come from ldmatrix.x4 (W [n][k] is exactly
//   the col-major B operand, so no .trans). Configurations (CTA tile BM x BN x BK, warps
//   WM x WN x WK, where WK warps split each stage's k16 steps and are reduced in shared memory):
//     large  128 x 128 x 32, 2 x 4 x 1 (warp tile 64 x 32), 4 stages, 80 KB smem (16-bit W)
//     medium  64 x  64 x 32, 2 x 2 x 1 (warp tile 32 x 32), 4 stages, 40 KB
//     skinny  64 x  32 x 64, 2 x 1 x 4 (warp tile 32 x 32), 6 stages, 83 KB
//   gemm_choose_path takes large when it makes at least ~7/8 of a wave of CTAs, else medium when
//   that does, else skinny (the most CTAs, and 6 stages of W in flight per CTA for the
//   bandwidth-bound batched-decode shapes).
//
// int8 weights: the int8 tile is copied as is (cp.async) and turned into T in registers right
//   before the mma: q -> float exactly (byte permute into 2^23 + q + 128, one subtraction).
//   group 0: W = q exactly (int8 is exact in f16 and bf16), and the fp32 accumulator of output
//   column j is multiplied by scales[j] in the epilogue. group 32: the weight is dequantized
//   inside the k loop as T(float(q) * scale) (one rounding to T per weight element, then the
//   usual fp32 accumulation); the scales of a stage come with it through cp.async.
//
// Epilogues: each output element is owned by one thread (no split-k across CTAs, no atomics), so
// add_f32 is a plain read-modify-write and every result is deterministic.
#include <atomic>

#include "cuda/gemm.cuh"
#include "cuda/gemm_kernels.cuh"

namespace weft {
namespace cuda {
namespace {

enum WMode : int { kDense = 0, kI8Row = 1, kI8G32 = 2 };

struct Params {
  const void* x;
  const void* w;
  const float* scales;
  void* y;
  int m, n, k, ldy, ep;  // ep: Epilogue as int
};

// ---------------------------------------------------------------------------------------------
// PTX wrappers and conversions
// ---------------------------------------------------------------------------------------------
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16-byte async copy global -> shared; valid == false copies nothing and zero-fills the 16 bytes.
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async4(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 4 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void ldsm_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}
// Streaming 16-byte load of weights: read once, so keep it out of L1.
__device__ __forceinline__ uint4 ldg_stream(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}
__device__ __forceinline__ uint32_t word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// D += A·B, m16n8k16, A row-major (4 regs), B col-major (2 regs), D/C fp32 (4 regs).
template <class T>
__device__ __forceinline__ void mma16816(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__half>(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Two floats -> packed T2, lo in the low half (the element of the smaller k).
template <class T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

// Byte i (0..3) of an int8x4 word as an exact float: with the sign bit flipped the byte is
// q + 128 in [0, 255]; placed in the mantissa of 2^23 it reads 2^23 + q + 128.
template <int I> __device__ __forceinline__ float i8_to_f(uint32_t flipped) {
  return __uint_as_float(__byte_perm(flipped, 0x4B000000u, 0x7440 + I)) - 8388736.f;
}
// Two int8 (bytes 0 and 1 of v) -> packed T2, multiplied by scale first when SCALED.
template <class T, bool SCALED> __device__ __forceinline__ uint32_t dequant2(uint32_t v, float scale) {
  const uint32_t f = v ^ 0x80808080u;
  float a = i8_to_f<0>(f), b = i8_to_f<1>(f);
  if (SCALED) a *= scale, b *= scale;
  return pack2<T>(a, b);
}
// Four int8 (a word) -> two packed T2: out0 = bytes {0,1}, out1 = bytes {2,3}.
template <class T, bool SCALED> __device__ __forceinline__ void dequant4(uint32_t v, float scale, uint32_t& out0, uint32_t& out1) {
  const uint32_t f = v ^ 0x80808080u;
  float a = i8_to_f<0>(f), b = i8_to_f<1>(f), c = i8_to_f<2>(f), d = i8_to_f<3>(f);
  if (SCALED) a *= scale, b *= scale, c *= scale, d *= scale;
  out0 = pack2<T>(a, b);
  out1 = pack2<T>(c, d);
}

template <class T> __device__ __forceinline__ void epilogue(const Params& p, size_t idx, float v) {
  if (p.ep == int(Epilogue::store_f32)) static_cast<float*>(p.y)[idx] = v;
  else if (p.ep == int(Epilogue::add_f32)) static_cast<float*>(p.y)[idx] += v;
  else static_cast<T*>(p.y)[idx] = from_f<T>(v);
}

// ---------------------------------------------------------------------------------------------
// gemv: m <= 16
// ---------------------------------------------------------------------------------------------
// Per lane and 64-byte chunk c of a W row (c*64 bytes into the row): W bytes [c*64 + 16t, +16)
// of rows g and g+8, i.e. k elements [c*EPC + t*EPT, +EPT) with EPT = 8 (16-bit W) or 16 (int8);
// X elements at the same k for token g of each 8-token tile. Those EPT elements are PAIRS = EPT/2
// packed pairs; k16 step s uses pairs 2s (as k {2t, 2t+1}) and 2s+1 (as k {2t+8, 2t+9}).
template <class T, int MODE, int NT, int NW> __global__ void __launch_bounds__(NW * 32) gemv_kernel(const Params p) {
  constexpr bool kI8 = MODE != kDense;
  constexpr int U = kI8 ? 2 : 4;  // chunks per warp per iteration (register budget: two iterations in flight)
  constexpr int EPT = kI8 ? 16 : 8;  // k elements per lane per chunk
  constexpr int PAIRS = EPT / 2;
  constexpr int XV = EPT / 8;  // 16-byte X loads per token tile per chunk
  constexpr int RS = 20;  // padded row of the reduction buffer

  __shared__ float red[NW][NT * 8][RS];

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int m = p.m, n = p.n, k = p.k;
  const int row0 = blockIdx.x * 16;
  // Rows past n read row n-1 instead (in bounds); their results are never stored.
  const int rlo = min(row0 + g, n - 1), rhi = min(row0 + g + 8, n - 1);
  const size_t rowbytes = size_t(k) * (kI8 ? 1 : 2);
  const char* wlo = static_cast<const char*>(p.w) + size_t(rlo) * rowbytes + t * 16;
  const char* whi = static_cast<const char*>(p.w) + size_t(rhi) * rowbytes + t * 16;
  const float* slo = nullptr;
  const float* shi = nullptr;
  if constexpr (MODE == kI8G32) {  // scale index of W byte c*64 + 16t: (c*64 + 16t) / 32 = 2c + t/2
    slo = p.scales + size_t(rlo) * (k / 32) + (t >> 1);
    shi = p.scales + size_t(rhi) * (k / 32) + (t >> 1);
  }
  const T* xrow[NT];
  bool xok[NT];
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    const int tok = j * 8 + g;
    xok[j] = tok < m;
    xrow[j] = static_cast<const T*>(p.x) + size_t(xok[j] ? tok : 0) * k + t * EPT;
  }
  const int nch = int(rowbytes / 64);

  float acc[NT][4];
#pragma unroll
  for (int j = 0; j < NT; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;

  // W (and its scales) never change, so the first iteration's W loads are issued before
  // pdl_wait(): under programmatic dependent launch they overlap the kernel before this one.
  // Later iterations are double-buffered: the next iteration's W loads are in flight while this
  // one's mma run (the long-k shapes, the down projection, take several iterations per warp).
  uint4 wl[U], wh[U], nwl[U], nwh[U], xr[U][NT][XV];
  float sl[U], sh[U], nsl[U], nsh[U];
  auto load_w = [&](int cbase, uint4(&lo)[U], uint4(&hi)[U], float(&slo_)[U], float(&shi_)[U]) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = cbase + u * NW;
      if (c < nch) {
        lo[u] = ldg_stream(wlo + size_t(c) * 64);
        hi[u] = ldg_stream(whi + size_t(c) * 64);
        if constexpr (MODE == kI8G32) {
          slo_[u] = __ldg(slo + 2 * c);
          shi_[u] = __ldg(shi + 2 * c);
        } else {
          slo_[u] = shi_[u] = 1.f;
        }
      }
    }
  };
  load_w(warp, wl, wh, sl, sh);
  pdl_wait();
  pdl_trigger();  // the next kernel may start fetching its weights

  for (int cbase = warp; cbase < nch; cbase += NW * U) {
#pragma unroll
    for (int u = 0; u < U; ++u) {  // X of this iteration (L2), then the next iteration's W
      const int c = cbase + u * NW;
      if (c < nch) {
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
          for (int v = 0; v < XV; ++v)
            xr[u][j][v] = xok[j] ? __ldg(reinterpret_cast<const uint4*>(xrow[j] + size_t(c) * (4 * EPT)) + v) : make_uint4(0u, 0u, 0u, 0u);
      }
    }
    const bool more = cbase + NW * U < nch;
    if (more) load_w(cbase + NW * U, nwl, nwh, nsl, nsh);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = cbase + u * NW;
      if (c < nch) {
        uint32_t alo[PAIRS], ahi[PAIRS];
        if constexpr (kI8) {
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            dequant4<T, MODE == kI8G32>(word(wl[u], i), sl[u], alo[2 * i], alo[2 * i + 1]);
            dequant4<T, MODE == kI8G32>(word(wh[u], i), sh[u], ahi[2 * i], ahi[2 * i + 1]);
          }
        } else {
#pragma unroll
          for (int i = 0; i < 4; ++i) alo[i] = word(wl[u], i), ahi[i] = word(wh[u], i);
        }
#pragma unroll
        for (int j = 0; j < NT; ++j) {
#pragma unroll
          for (int s = 0; s < PAIRS / 2; ++s) {
            // pair q = 2s / 2s+1 of the lane's X segment is word (q % 4) of 16-byte load q / 4
            const uint32_t b0 = word(xr[u][j][(2 * s) / 4], (2 * s) % 4);
            const uint32_t b1 = word(xr[u][j][(2 * s + 1) / 4], (2 * s + 1) % 4);
            mma16816<T>(acc[j], alo[2 * s], ahi[2 * s], alo[2 * s + 1], ahi[2 * s + 1], b0, b1);
          }
        }
      }
    }
    if (more) {
#pragma unroll
      for (int u = 0; u < U; ++u) wl[u] = nwl[u], wh[u] = nwh[u], sl[u] = nsl[u], sh[u] = nsh[u];
    }
  }

  // C fragment: acc[j][0..1] = (W row g, tokens j*8 + 2t, +1), acc[j][2..3] = (row g+8, same).
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    red[warp][j * 8 + 2 * t][g] = acc[j][0];
    red[warp][j * 8 + 2 * t + 1][g] = acc[j][1];
    red[warp][j * 8 + 2 * t][g + 8] = acc[j][2];
    red[warp][j * 8 + 2 * t + 1][g + 8] = acc[j][3];
  }
  __syncthreads();
  if (p.ep == int(Epilogue::swiglu)) {  // rows r, r + 1 (r even) are gate and up of output (row0 + r) / 2
    for (int i = threadIdx.x; i < NT * 8 * 8; i += NW * 32) {
      const int tok = i >> 3, r = 2 * (i & 7), row = row0 + r;
      if (tok < m && row < n) {
        float g = 0.f, u = 0.f;
#pragma unroll
        for (int w = 0; w < NW; ++w) g += red[w][tok][r], u += red[w][tok][r + 1];
        if constexpr (MODE == kI8Row) g *= __ldg(p.scales + row), u *= __ldg(p.scales + row + 1);
        g = to_f(from_f<T>(g)), u = to_f(from_f<T>(u));
        static_cast<T*>(p.y)[size_t(tok) * p.ldy + row / 2] = from_f<T>(g / (1.f + expf(-g)) * u);
      }
    }
    return;
  }
  for (int i = threadIdx.x; i < NT * 8 * 16; i += NW * 32) {
    const int tok = i >> 4, r = i & 15, row = row0 + r;
    if (tok < m && row < n) {
      float s = 0.f;
#pragma unroll
      for (int w = 0; w < NW; ++w) s += red[w][tok][r];
      if constexpr (MODE == kI8Row) s *= __ldg(p.scales + row);
      epilogue<T>(p, size_t(tok) * p.ldy + row, s);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// tc: tiled tensor-core kernel, m > 16
// ---------------------------------------------------------------------------------------------
template <int BM_, int BN_, int BK_, int WM_, int WN_, int WK_, int STAGES_> struct TileCfg {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, WM = WM_, WN = WN_, WK = WK_, STAGES = STAGES_;
  static constexpr int THREADS = WM * WN * WK * 32;
  static constexpr int WTM = BM / WM, WTN = BN / WN;  // warp tile
  static constexpr int MI = WTM / 16, NI = WTN / 8;  // m16 / n8 fragments per warp
  static constexpr int KSTEPS = BK / 16;
  static_assert(BM % (16 * WM) == 0 && BN % (16 * WN) == 0, "warp tile must be 16-row / 16-col multiples");
  static_assert(NI % 2 == 0, "B fragments are loaded two n8 tiles per ldmatrix.x4");
  static_assert(KSTEPS % WK == 0, "k split must divide the stage's k16 steps");
  static_assert(64 % BK == 0 && BK % 32 == 0, "BK must divide 64 (k is a multiple of 64) and hold whole groups");
};
using CfgLarge = TileCfg<128, 128, 32, 2, 4, 1, 4>;
using CfgMedium = TileCfg<64, 64, 32, 2, 2, 1, 4>;
using CfgSkinny = TileCfg<64, 32, 64, 2, 1, 4, 6>;

template <class Cfg, int MODE> struct SmemLayout {
  static constexpr int WB = MODE == kDense ? 2 : 1;  // bytes per W element
  static constexpr int A_STR = Cfg::BK + 8;  // A row stride, elements (16 bytes of pad)
  static constexpr int B_STR = Cfg::BK + 16 / WB;  // B row stride, W elements (16 bytes of pad)
  static constexpr int A_BYTES = Cfg::BM * A_STR * 2;
  static constexpr int B_BYTES = Cfg::BN * B_STR * WB;
  static constexpr int S_BYTES = MODE == kI8G32 ? Cfg::BN * (Cfg::BK / 32) * 4 : 0;
  static constexpr int STAGE = A_BYTES + B_BYTES + S_BYTES;
  static constexpr int PIPE = STAGE * Cfg::STAGES;
  static constexpr int R_STR = Cfg::BN + 8;  // k-split reduction buffer row stride (floats)
  static constexpr int RED = Cfg::WK > 1 ? Cfg::WK* Cfg::BM* R_STR * 4 : 0;
  static constexpr int BYTES = PIPE > RED ? PIPE : RED;
  static_assert(A_BYTES % 16 == 0 && B_BYTES % 16 == 0 && S_BYTES % 16 == 0, "16-byte aligned stage parts");
};

template <class T, int MODE, class Cfg> __global__ void __launch_bounds__(Cfg::THREADS) gemm_tc_kernel(const Params p) {
  using L = SmemLayout<Cfg, MODE>;
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, WM = Cfg::WM, WN = Cfg::WN, WK = Cfg::WK;
  constexpr int STAGES = Cfg::STAGES, THREADS = Cfg::THREADS;
  constexpr int WTM = Cfg::WTM, WTN = Cfg::WTN, MI = Cfg::MI, NI = Cfg::NI;
  constexpr int WB = L::WB;
  extern __shared__ __align__(16) unsigned char smem[];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int wk = warp / (WM * WN), wm = (warp % (WM * WN)) / WN, wn = warp % WN;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int m = p.m, n = p.n, k = p.k;
  const T* X = static_cast<const T*>(p.x);
  const unsigned char* W = static_cast<const unsigned char*>(p.w);
  const size_t wrow = size_t(k) * WB;  // bytes per W row
  const uint32_t sbase = smem_u32(smem);

  auto load_stage = [&](int st, int kt) {
    const int k0 = kt * BK;
    const uint32_t sa = sbase + st * L::STAGE, sb = sa + L::A_BYTES, ss = sb + L::B_BYTES;
    constexpr int ACH = BK / 8;  // 16-byte chunks per A row
#pragma unroll
    for (int it = 0; it < (BM * ACH + THREADS - 1) / THREADS; ++it) {
      const int i = tid + it * THREADS;
      if ((BM * ACH) % THREADS != 0 && i >= BM * ACH) break;
      const int r = i / ACH, c = i % ACH;
      const bool ok = m0 + r < m;
      const T* src = X + (ok ? size_t(m0 + r) * k + k0 + c * 8 : 0);
      cp_async16(sa + (r * L::A_STR + c * 8) * 2, src, ok);
    }
    constexpr int BCH = BK * WB / 16;  // 16-byte chunks per B row
#pragma unroll
    for (int it = 0; it < (BN * BCH + THREADS - 1) / THREADS; ++it) {
      const int i = tid + it * THREADS;
      if ((BN * BCH) % THREADS != 0 && i >= BN * BCH) break;
      const int r = i / BCH, c = i % BCH;
      const bool ok = n0 + r < n;
      const unsigned char* src = W + (ok ? size_t(n0 + r) * wrow + size_t(k0) * WB + c * 16 : 0);
      cp_async16(sb + r * L::B_STR * WB + c * 16, src, ok);
    }
    if constexpr (MODE == kI8G32) {  // scales [BN][BK/32] of this stage; zero past n
      constexpr int SCH = BK / 32;
#pragma unroll
      for (int it = 0; it < (BN * SCH + THREADS - 1) / THREADS; ++it) {
        const int i = tid + it * THREADS;
        if ((BN * SCH) % THREADS != 0 && i >= BN * SCH) break;
        const int r = i / SCH, c = i % SCH;
        const bool ok = n0 + r < n;
        const float* src = p.scales + (ok ? size_t(n0 + r) * (k / 32) + k0 / 32 + c : 0);
        cp_async4(ss + i * 4, src, ok);
      }
    }
  };

  float acc[MI][NI][4];
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int ni = 0; ni < NI; ++ni) acc[mi][ni][0] = acc[mi][ni][1] = acc[mi][ni][2] = acc[mi][ni][3] = 0.f;

  const int ktiles = k / BK;
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < ktiles) load_stage(s, s);
    cp_async_commit();  // one group per stage, empty or not, so that the counting below holds
  }

  // ldmatrix row addresses of this lane (byte offsets within a stage's A / B tile).
  // A x4: matrices (rows +0..7, k +0..7), (rows +8..15, k +0..7), (rows +0..7, k +8..15),
  //       (rows +8..15, k +8..15) = a0..a3; lane l addresses row (l & 15), k half (l >> 4).
  // B x4: matrices (n +0..7, k +0..7), (n +0..7, k +8..15), (n +8..15, k +0..7), (n +8..15, k +8..15)
  //       = b0, b1 of n8 tile 2j and b0, b1 of tile 2j+1; lane l addresses n (l & 7) + 8 (l >> 4),
  //       k half (l >> 3) & 1.
  const uint32_t a_lane = ((wm * WTM + (lane & 15)) * L::A_STR + (lane >> 4) * 8) * 2;
  const uint32_t b_lane = ((wn * WTN + (lane & 7) + ((lane >> 4) << 3)) * L::B_STR + ((lane >> 3) & 1) * 8) * 2;

  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<STAGES - 2>();  // the group of tile kt has landed (for this thread) ...
    __syncthreads();  // ... for every thread; and stage (kt-1) % STAGES is free
    {
      const int nk = kt + STAGES - 1;
      if (nk < ktiles) load_stage(nk % STAGES, nk);
      cp_async_commit();
    }
    const int st = kt % STAGES;
    const uint32_t sa = sbase + st * L::STAGE, sb = sa + L::A_BYTES;
    const unsigned char* sbq = smem + st * L::STAGE + L::A_BYTES;  // int8 B
    const float* ssc = reinterpret_cast<const float*>(sbq + L::B_BYTES);  // g32 scales
#pragma unroll
    for (int kk = 0; kk < Cfg::KSTEPS / WK; ++kk) {
      const int ks = kk * WK + wk;  // k16 step within the stage
      uint32_t a[MI][4], b[NI][2];
#pragma unroll
      for (int mi = 0; mi < MI; ++mi) ldsm_x4(sa + a_lane + (mi * 16 * L::A_STR + ks * 16) * 2, a[mi][0], a[mi][1], a[mi][2], a[mi][3]);
      if constexpr (MODE == kDense) {
#pragma unroll
        for (int nj = 0; nj < NI / 2; ++nj)
          ldsm_x4(sb + b_lane + (nj * 16 * L::B_STR + ks * 16) * 2, b[2 * nj][0], b[2 * nj][1], b[2 * nj + 1][0], b[2 * nj + 1][1]);
      } else {
        // b0 = W[n0+r][k 2t, 2t+1], b1 = W[n0+r][k 2t+8, 2t+9] of this k16 step, r = the lane's n (g)
#pragma unroll
        for (int ni = 0; ni < NI; ++ni) {
          const int r = wn * WTN + ni * 8 + g;
          const unsigned char* q = sbq + r * L::B_STR + ks * 16 + 2 * t;
          const uint32_t u0 = *reinterpret_cast<const uint16_t*>(q);
          const uint32_t u1 = *reinterpret_cast<const uint16_t*>(q + 8);
          const float sc = MODE == kI8G32 ? ssc[r * (BK / 32) + (ks >> 1)] : 1.f;
          b[ni][0] = dequant2<T, MODE == kI8G32>(u0, sc);
          b[ni][1] = dequant2<T, MODE == kI8G32>(u1, sc);
        }
      }
#pragma unroll
      for (int mi = 0; mi < MI; ++mi)
#pragma unroll
        for (int ni = 0; ni < NI; ++ni) mma16816<T>(acc[mi][ni], a[mi][0], a[mi][1], a[mi][2], a[mi][3], b[ni][0], b[ni][1]);
    }
  }
  cp_async_wait<0>();  // only empty groups can remain; drain them before smem is reused

  // C fragment of (mi, ni): [0..1] = (row wm*WTM + mi*16 + g, cols wn*WTN + ni*8 + 2t, +1),
  // [2..3] = (row + 8, same cols).
  if constexpr (WK == 1) {
#pragma unroll
    for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
      for (int ni = 0; ni < NI; ++ni) {
        const int row = m0 + wm * WTM + mi * 16 + g;
        const int col = n0 + wn * WTN + ni * 8 + 2 * t;
        float s0 = 1.f, s1 = 1.f;
        if constexpr (MODE == kI8Row) {
          s0 = col < n ? __ldg(p.scales + col) : 0.f;
          s1 = col + 1 < n ? __ldg(p.scales + col + 1) : 0.f;
        }
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int r = row + 8 * h;
          if (r < m) {
            const size_t o = size_t(r) * p.ldy + col;
            if (col < n) epilogue<T>(p, o, acc[mi][ni][2 * h] * s0);
            if (col + 1 < n) epilogue<T>(p, o + 1, acc[mi][ni][2 * h + 1] * s1);
          }
        }
      }
    }
  } else {
    __syncthreads();  // every warp is done reading the pipeline buffers
    float* red = reinterpret_cast<float*>(smem);  // [WK][BM][R_STR]
#pragma unroll
    for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
      for (int ni = 0; ni < NI; ++ni) {
        const int r = wm * WTM + mi * 16 + g, c = wn * WTN + ni * 8 + 2 * t;
        *reinterpret_cast<float2*>(red + (wk * BM + r) * L::R_STR + c) = make_float2(acc[mi][ni][0], acc[mi][ni][1]);
        *reinterpret_cast<float2*>(red + (wk * BM + r + 8) * L::R_STR + c) = make_float2(acc[mi][ni][2], acc[mi][ni][3]);
      }
    }
    __syncthreads();
    for (int i = tid; i < BM * BN; i += THREADS) {
      const int r = i / BN, c = i % BN;
      const int row = m0 + r, col = n0 + c;
      if (row < m && col < n) {
        float s = 0.f;
#pragma unroll
        for (int w = 0; w < WK; ++w) s += red[(w * BM + r) * L::R_STR + c];
        if constexpr (MODE == kI8Row) s *= __ldg(p.scales + col);
        epilogue<T>(p, size_t(row) * p.ldy + col, s);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// host side
// ---------------------------------------------------------------------------------------------
int current_device() {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) dev = 0;
  return dev;
}

int multiprocessor_count() {
  static std::atomic<int> cache[64];  // per device, 0 = not read yet
  const int dev = current_device() & 63;
  int v = cache[dev].load(std::memory_order_relaxed);
  if (v <= 0) {
    if (cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, current_device()) != cudaSuccess || v <= 0) {
      cudaGetLastError();
      v = 132;
    }
    cache[dev].store(v, std::memory_order_relaxed);
  }
  return v;
}

template <class T, int MODE, int NT, int NW> cudaError_t launch_gemv(const Params& p, cudaStream_t stream) {
  return launch_pdl(gemv_kernel<T, MODE, NT, NW>, dim3(ceil_div(p.n, 16)), dim3(NW * 32), 0, stream, p);
}

template <class T, int MODE> cudaError_t launch_gemv_m(const Params& p, cudaStream_t stream) {
  // 16 W rows per CTA; with fewer CTAs than multiprocessors, 16 warps per CTA keep twice the
  // loads in flight.
  const bool wide = long(ceil_div(p.n, 16)) <= long(multiprocessor_count());
  if (p.m <= 8) return wide ? launch_gemv<T, MODE, 1, 16>(p, stream) : launch_gemv<T, MODE, 1, 8>(p, stream);
  return wide ? launch_gemv<T, MODE, 2, 16>(p, stream) : launch_gemv<T, MODE, 2, 8>(p, stream);
}

template <class T, int MODE, class Cfg> cudaError_t launch_tc(const Params& p, cudaStream_t stream) {
  using L = SmemLayout<Cfg, MODE>;
  auto kernel = gemm_tc_kernel<T, MODE, Cfg>;
  if (L::BYTES > 48 * 1024) {  // opt in to more than 48 KB of dynamic shared memory, once per device
    static std::atomic<unsigned long long> done{0};
    const unsigned long long bit = 1ull << (current_device() & 63);
    if (!(done.load(std::memory_order_relaxed) & bit)) {
      const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, L::BYTES);
      if (e != cudaSuccess) return e;
      done.fetch_or(bit, std::memory_order_relaxed);
    }
  }
  const dim3 grid(ceil_div(p.n, Cfg::BN), ceil_div(p.m, Cfg::BM));
  kernel<<<grid, Cfg::THREADS, L::BYTES, stream>>>(p);
  return cudaGetLastError();
}

template <class T, int MODE> cudaError_t launch_mode(GemmPath path, const Params& p, cudaStream_t stream) {
  switch (path) {
    case GemmPath::gemv:
      return launch_gemv_m<T, MODE>(p, stream);
    case GemmPath::tc_large:
      return launch_tc<T, MODE, CfgLarge>(p, stream);
    case GemmPath::tc_medium:
      return launch_tc<T, MODE, CfgMedium>(p, stream);
    case GemmPath::tc_skinny:
      return launch_tc<T, MODE, CfgSkinny>(p, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

template <class T> cudaError_t launch_typed(GemmPath path, int mode, const Params& p, cudaStream_t stream) {
  if (mode == kDense) return launch_mode<T, kDense>(path, p, stream);
  if (mode == kI8Row) return launch_mode<T, kI8Row>(path, p, stream);
  return launch_mode<T, kI8G32>(path, p, stream);
}

bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

}  // namespace

GemmPath gemm_choose_path(int m, int n, int multiprocessors) {
  if (m <= kGemvMaxM) return GemmPath::gemv;
  const long sms = multiprocessors > 0 ? multiprocessors : 1;
  const long large = long(ceil_div(m, CfgLarge::BM)) * long(ceil_div(n, CfgLarge::BN));
  const long medium = long(ceil_div(m, CfgMedium::BM)) * long(ceil_div(n, CfgMedium::BN));
  if (large * 8 >= sms * 7) return GemmPath::tc_large;
  if (medium * 8 >= sms * 7) return GemmPath::tc_medium;
  return GemmPath::tc_skinny;
}

cudaError_t gemm_with_path(GemmPath path, DType act, const void* x, int m, const GemmWeight& w, void* y, int ldy, Epilogue ep, cudaStream_t stream) {
  const int n = w.n, k = w.k;
  if (m < 0 || n < 0 || k <= 0 || k % 64 != 0) return cudaErrorInvalidValue;
  if (act != DType::f16 && act != DType::bf16) return cudaErrorInvalidValue;
  if (ep != Epilogue::store_f32 && ep != Epilogue::store_act && ep != Epilogue::add_f32 && ep != Epilogue::swiglu) return cudaErrorInvalidValue;
  const bool swiglu = ep == Epilogue::swiglu;
  if (swiglu && (n % 2 != 0 || m > kGemvMaxM || (path != GemmPath::automatic && path != GemmPath::gemv))) return cudaErrorInvalidValue;
  int mode = kDense;
  switch (w.kind) {
    case WeightKind::f16:
      if (act != DType::f16) return cudaErrorInvalidValue;
      break;
    case WeightKind::bf16:
      if (act != DType::bf16) return cudaErrorInvalidValue;
      break;
    case WeightKind::i8:
      if (w.scales == nullptr || (w.group != 0 && w.group != 32)) return cudaErrorInvalidValue;
      mode = w.group == 0 ? kI8Row : kI8G32;
      break;
    default:
      return cudaErrorInvalidValue;
  }
  if (m == 0 || n == 0) return cudaSuccess;  // nothing to compute
  if (x == nullptr || w.data == nullptr || y == nullptr || ldy < (swiglu ? n / 2 : n)) return cudaErrorInvalidValue;
  if (!aligned16(x) || !aligned16(w.data)) return cudaErrorInvalidValue;  // 16-byte loads of rows
  if (path == GemmPath::automatic) path = gemm_choose_path(m, n, multiprocessor_count());
  if (path == GemmPath::gemv && m > kGemvMaxM) return cudaErrorInvalidValue;
  if (path != GemmPath::gemv && long(ceil_div(m, 64)) > 65535) return cudaErrorInvalidValue;  // grid.y

  const Params p{x, w.data, w.scales, y, m, n, k, ldy, int(ep)};
  WEFT_DISPATCH_DTYPE(act, return launch_typed<T>(path, mode, p, stream));
  return cudaErrorInvalidValue;  // not reached
}

cudaError_t gemm(DType act, const void* x, int m, const GemmWeight& w, void* y, int ldy, Epilogue ep, cudaStream_t stream) {
  return gemm_with_path(GemmPath::automatic, act, x, m, w, y, ldy, ep, stream);
}

}  // namespace cuda
}  // namespace weft
