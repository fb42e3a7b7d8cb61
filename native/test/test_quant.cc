// GGML block types (quant_blocks.h) and their kernels (matmul_q): each type's dequantization
// (tensor_row_f32) against reference dequantizers written here from the format definitions, the
// PackedQ packing against it, every ISA's kernel against the scalar kernel (bit for bit), and the
// scalar kernel against a double-precision product of the dequantized weights and activations.
// Ends with "N passed, N failed"; exit 1 on failure.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "cpu/matmul.h"
#include "cpu/matmul_internal.h"
#include "half.h"
#include "model.h"
#include "quant_blocks.h"

using namespace weft;
using weft_test::check;

namespace {

std::mt19937 rng(77);

uint8_t rbyte() {
  return uint8_t(rng() & 255);
}
// An fp16 scale of a plausible magnitude (random sign for d, as llama.cpp's Q4_0 allows).
uint16_t rhalf(bool sign) {
  std::uniform_real_distribution<float> u(1e-3f, 2e-2f);
  const float v = u(rng) * (sign && (rng() & 1) ? -1.f : 1.f);
  return f32_to_f16(v);
}
float h(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return f16_to_f32(v);
}
void put_half(uint8_t* p, uint16_t v) {
  std::memcpy(p, &v, 2);
}

// Reference dequantizers: y[i] and a bound on its rounding (a few ulps of the terms it sums).
using Ref = void (*)(const uint8_t* b, float* y, float* tol);
const float kE = std::ldexp(1.f, -21);

void ref_q4_0(const uint8_t* b, float* y, float* tol) {  // d; qs[16]; w = d * (nibble - 8)
  const float d = h(b);
  for (int j = 0; j < 16; ++j) {
    y[j] = float((b[2 + j] & 0x0F) - 8) * d;
    y[j + 16] = float((b[2 + j] >> 4) - 8) * d;
    tol[j] = tol[j + 16] = kE * 16 * std::fabs(d);
  }
}
void ref_q4_1(const uint8_t* b, float* y, float* tol) {  // d, m; qs[16]; w = d * nibble + m
  const float d = h(b), m = h(b + 2);
  for (int j = 0; j < 16; ++j) {
    y[j] = float(b[4 + j] & 0x0F) * d + m;
    y[j + 16] = float(b[4 + j] >> 4) * d + m;
    tol[j] = tol[j + 16] = kE * (16 * std::fabs(d) + std::fabs(m));
  }
}
void ref_q5_0(const uint8_t* b, float* y, float* tol) {  // d; qh u32; qs[16]; w = d * (q5 - 16)
  const float d = h(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  for (int j = 0; j < 16; ++j) {
    const int x0 = (b[6 + j] & 0x0F) | (((qh >> j) << 4) & 0x10), x1 = (b[6 + j] >> 4) | ((qh >> (j + 12)) & 0x10);
    y[j] = float(x0 - 16) * d;
    y[j + 16] = float(x1 - 16) * d;
    tol[j] = tol[j + 16] = kE * 32 * std::fabs(d);
  }
}
void ref_q5_1(const uint8_t* b, float* y, float* tol) {  // d, m; qh; qs; w = d * q5 + m
  const float d = h(b), m = h(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  for (int j = 0; j < 16; ++j) {
    const int x0 = (b[8 + j] & 0x0F) | (((qh >> j) << 4) & 0x10), x1 = (b[8 + j] >> 4) | ((qh >> (j + 12)) & 0x10);
    y[j] = float(x0) * d + m;
    y[j + 16] = float(x1) * d + m;
    tol[j] = tol[j + 16] = kE * (32 * std::fabs(d) + std::fabs(m));
  }
}
// K-quants: 8 sub-blocks of 32; 6-bit scale and min j: j < 4 from bytes j and j+4 (low 6 bits);
// j >= 4 the low nibble (scale) / high nibble (min) of byte j+4 plus the top 2 bits of bytes j-4 / j.
void k_scale(int j, const uint8_t* s, int* sc, int* mn) {
  if (j < 4) {
    *sc = s[j] & 63;
    *mn = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}
void ref_q45_k(const uint8_t* b, bool five, float* y, float* tol) {
  const float d = h(b), dmin = h(b + 2);
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + (five ? 48 : 16);
  for (int chunk = 0; chunk < 4; ++chunk) {
    for (int half = 0; half < 2; ++half) {
      int sc, mn;
      k_scale(2 * chunk + half, b + 4, &sc, &mn);
      const float d1 = d * float(sc), m1 = dmin * float(mn);
      for (int l = 0; l < 32; ++l) {
        int q = half ? ql[32 * chunk + l] >> 4 : ql[32 * chunk + l] & 0xF;
        if (five && (qh[l] & (1 << (2 * chunk + half)))) q += 16;
        y[64 * chunk + 32 * half + l] = d1 * float(q) - m1;
        tol[64 * chunk + 32 * half + l] = kE * (32 * std::fabs(d1) + std::fabs(m1));
      }
    }
  }
}
void ref_q4_k(const uint8_t* b, float* y, float* tol) {
  ref_q45_k(b, false, y, tol);
}
void ref_q5_k(const uint8_t* b, float* y, float* tol) {
  ref_q45_k(b, true, y, tol);
}
// Q6_K: ql[128], qh[64], int8 scales[16], d. Per 128-value half: for l < 32, four values
// l, l+32, l+64, l+96 from ql[l] low, ql[l+32] low, ql[l] high, ql[l+32] high nibbles and the
// 2-bit fields 0, 2, 4, 6 of qh[l]; w = d * scale[16-value sub-block] * (q6 - 32).
void ref_q6_k(const uint8_t* b, float* y, float* tol) {
  const float d = h(b + 208);
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  for (int n = 0; n < 2; ++n) {
    const uint8_t* ql = b + 64 * n;
    const uint8_t* qh = b + 128 + 32 * n;
    for (int l = 0; l < 32; ++l) {
      const int q[4] = {(ql[l] & 0xF) | ((qh[l] & 3) << 4), (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4), (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                        (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)};
      for (int j = 0; j < 4; ++j) {
        const int i = 128 * n + 32 * j + l;
        const float ds = d * float(sc[8 * n + 2 * j + l / 16]);
        y[i] = ds * float(q[j] - 32);
        tol[i] = kE * 64 * std::fabs(ds);
      }
    }
  }
}

// Q2_K: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin. Per 128-value half n and
// shift j (0..3): values 128n + 32j + l (l < 16) are bits 2j..2j+1 of qs[32n + l] with scales[8n + 2j],
// values 128n + 32j + 16 + l those of qs[32n + 16 + l] with scales[8n + 2j + 1]. w = d * sc * q - dmin * m.
void ref_q2_k(const uint8_t* b, float* y, float* tol) {
  const float d = h(b + 80), dmin = h(b + 82);
  for (int n = 0; n < 2; ++n)
    for (int j = 0; j < 4; ++j)
      for (int half = 0; half < 2; ++half) {
        const uint8_t s = b[8 * n + 2 * j + half];
        const float dl = d * float(s & 15), ml = dmin * float(s >> 4);
        for (int l = 0; l < 16; ++l) {
          const int i = 128 * n + 32 * j + 16 * half + l;
          y[i] = dl * float((b[16 + 32 * n + 16 * half + l] >> (2 * j)) & 3) - ml;
          tol[i] = kE * 8 * (std::fabs(dl) * 3 + std::fabs(ml));
        }
      }
}

// Q3_K: hmask[32], qs[64], scales[12] (sixteen 6-bit values: llama.cpp's kmask unpacking, written
// out as four 32-bit words), d. As Q2_K's layout for the 2-bit fields; the third bit of value
// 128n + 32j + 16h + l is bit 4n + j of hmask[16h + l], and a clear bit subtracts 4.
// w = d * (scale - 32) * q3.
void ref_q3_k(const uint8_t* b, float* y, float* tol) {
  uint32_t aux[4];
  std::memcpy(aux, b + 96, 12);
  const uint32_t k1 = 0x03030303, k2 = 0x0f0f0f0f, tmp = aux[2];
  aux[2] = ((aux[0] >> 4) & k2) | (((tmp >> 4) & k1) << 4);
  aux[3] = ((aux[1] >> 4) & k2) | (((tmp >> 6) & k1) << 4);
  aux[0] = (aux[0] & k2) | (((tmp >> 0) & k1) << 4);
  aux[1] = (aux[1] & k2) | (((tmp >> 2) & k1) << 4);
  int8_t scales[16];
  std::memcpy(scales, aux, 16);
  const float d = h(b + 108);
  for (int n = 0; n < 2; ++n)
    for (int j = 0; j < 4; ++j)
      for (int half = 0; half < 2; ++half) {
        const float dl = d * float(scales[8 * n + 2 * j + half] - 32);
        for (int l = 0; l < 16; ++l) {
          const int i = 128 * n + 32 * j + 16 * half + l, hl = 16 * half + l;
          const int q = ((b[32 + 32 * n + hl] >> (2 * j)) & 3) - ((b[hl] >> (4 * n + j)) & 1 ? 0 : 4);
          y[i] = dl * float(q);
          tol[i] = kE * 8 * std::fabs(dl);
        }
      }
}

struct TypeCase {
  const char* name;
  TensorDType type;
  Ref ref;
  int d_at[2];  // byte offsets of the block's fp16 fields (-1: none)
};
const TypeCase kTypes[] = {
    {"q4_0", TensorDType::q4_0, ref_q4_0, {0, -1}},   {"q4_1", TensorDType::q4_1, ref_q4_1, {0, 2}},
    {"q5_0", TensorDType::q5_0, ref_q5_0, {0, -1}},   {"q5_1", TensorDType::q5_1, ref_q5_1, {0, 2}},
    {"q4_k", TensorDType::q4_k, ref_q4_k, {0, 2}},    {"q5_k", TensorDType::q5_k, ref_q5_k, {0, 2}},
    {"q6_k", TensorDType::q6_k, ref_q6_k, {208, -1}}, {"q2_k", TensorDType::q2_k, ref_q2_k, {80, 82}},
    {"q3_k", TensorDType::q3_k, ref_q3_k, {108, -1}},
};

// n rows of k values of random blocks with sane fp16 fields.
std::vector<uint8_t> random_rows(const TypeCase& tc, int n, int k) {
  const BlockFormat& f = *block_format(tc.type);
  std::vector<uint8_t> data(size_t(n) * k / f.values * f.bytes);
  for (auto& v : data) v = rbyte();
  for (size_t b = 0; b < data.size(); b += f.bytes)
    for (int i = 0; i < 2; ++i)
      if (tc.d_at[i] >= 0) put_half(&data[b + tc.d_at[i]], rhalf(i == 0 && !f.has_sub));
  return data;
}

void test_dequant(const TypeCase& tc) {
  const BlockFormat& f = *block_format(tc.type);
  const int n = 5, k = 4 * f.values;
  std::vector<uint8_t> data = random_rows(tc, n, k);
  TensorView v{data.data(), tc.type, n, k, nullptr};
  std::vector<float> got(k), want(k), tol(k), packed(k);
  bool ok = true, pack_ok = true;
  double worst = 0;
  std::vector<const uint8_t*> rows;
  for (int r = 0; r < n; ++r) rows.push_back(data.data() + size_t(r) * k / f.values * f.bytes);
  PackedQ pq;
  pack_q(int(tc.type), rows.data(), n, k, &pq);
  for (int r = 0; r < n; ++r) {
    tensor_row_f32(v, r, got.data());
    for (int b = 0; b < k / f.values; ++b) tc.ref(rows[r] + b * f.bytes, want.data() + b * f.values, tol.data() + b * f.values);
    unpack_q_row(pq, r, packed.data());
    for (int i = 0; i < k; ++i) {
      ok &= std::fabs(got[i] - want[i]) <= tol[i];
      pack_ok &= packed[i] == got[i];
      worst = std::max(worst, double(std::fabs(got[i] - want[i]) / (tol[i] > 0 ? tol[i] : 1)));
    }
  }
  check(ok, std::string(tc.name) + ": tensor_row_f32 == reference dequantization (worst " + std::to_string(worst) + " of the bound)");
  check(pack_ok, std::string(tc.name) + ": PackedQ rows == tensor_row_f32 exactly");
}

using QKernel = void (*)(const QuantBlocks&, const PackedQ&, float*, int, int, int);
struct Impl {
  const char* name;
  Isa isa;
  QKernel fn;
};

void test_kernels(const TypeCase& tc, int n, int k, const std::vector<Impl>& impls) {
  std::vector<uint8_t> data = random_rows(tc, n, k);
  const BlockFormat& f = *block_format(tc.type);
  std::vector<const uint8_t*> rows;
  for (int r = 0; r < n; ++r) rows.push_back(data.data() + size_t(r) * k / f.values * f.bytes);
  PackedQ pq;
  pack_q(int(tc.type), rows.data(), n, k, &pq);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int m : {1, 3, 4, 5, 9}) {
    std::vector<float> x(size_t(m) * k);
    for (auto& v : x) v = nd(rng);
    for (int i = 0; i < k && m > 1; ++i) x[size_t(1) * k + i] = 0.f;  // an all-zero token
    QuantBlocks qb;
    qb.reserve(m, k);
    quantize_blocks(x.data(), k, 0, m, pq.act, &qb);
    std::vector<float> ref(size_t(m) * n, -1.f);
    detail::matmul_q_scalar(qb, pq, ref.data(), n, 0, n);
    // scalar ~ double product of the dequantized weights and the dequantized activations
    std::vector<float> wr(k);
    bool close = true;
    for (int r = 0; r < n; ++r) {
      unpack_q_row(pq, r, wr.data());
      for (int t = 0; t < m; ++t) {
        double s = 0, mag = 0;
        for (int c = 0; c < k; ++c) {
          const double xv = double(qb.sx.as<float>()[size_t(t) * (k / 32) + c / 32]) * qb.q.as<int8_t>()[size_t(t) * k + c];
          s += double(wr[c]) * xv;
          mag += std::fabs(double(wr[c]) * xv);
        }
        // Q8_1 keeps the block sums that the min term multiplies as fp16 (2^-11 relative), as llama.cpp does
        const double tol = pq.act == BlockAct::q8_1 ? 1e-3 : 1e-5;
        close &= std::fabs(ref[size_t(t) * n + r] - s) <= tol * mag + 1e-30;
      }
    }
    const std::string what = std::string(tc.name) + " n=" + std::to_string(n) + " k=" + std::to_string(k) + " m=" + std::to_string(m);
    check(close, what + ": scalar kernel == f32 product of the dequantized operands");
    for (const Impl& im : impls) {
      // split like the engine: a range that starts at a panel boundary and one that ends at n
      std::vector<float> y(size_t(m) * n, -1.f);
      const int mid = (n / 2) / kPackRows * kPackRows;
      im.fn(qb, pq, y.data(), n, 0, mid);
      im.fn(qb, pq, y.data(), n, mid, n);
      check(std::memcmp(y.data(), ref.data(), y.size() * 4) == 0, what + ": " + im.name + " == scalar bit for bit");
    }
  }
}

// The quantized activations follow the documented rule (llama.cpp's Q8_0, Q8_1 and Q8_K activation
// formats), and the block sums match them.
void test_quantize_blocks() {
  for (BlockAct fmt : {BlockAct::q8_0, BlockAct::q8_1, BlockAct::q8_k}) {
    const int span = fmt == BlockAct::q8_k ? 256 : 32;
    const std::string name = fmt == BlockAct::q8_0 ? "q8_0" : fmt == BlockAct::q8_1 ? "q8_1" : "q8_k";
    const int k = span == 32 ? 40 : 520, kp = (k + 31) / 32 * 32;  // a partial last block (zero padded)
    std::vector<float> x(k);
    for (int i = 0; i < k; ++i) x[i] = float(i % 9) - 4.f + (i == 5 ? 0.5f : 0.f) + (i == 300 ? 7.25f : 0.f);
    QuantBlocks qb;
    qb.reserve(1, k);
    quantize_blocks(x.data(), k, 0, 1, fmt, &qb);
    bool ok = true;
    for (int g = 0; g < kp / 32; ++g) {
      const int s0 = g / (span / 32) * span;
      float amax = 0;
      for (int i = s0; i < std::min(k, s0 + span); ++i) amax = std::max(amax, std::fabs(x[i]));
      // Q8_0/Q8_1: d = amax / 127 (per 32); Q8_K: d = 1 / iscale (per 256); all quantize x * 127 / amax
      const float s = span == 32 ? amax / 127.f : 1.f / (127.f / amax);
      ok &= qb.sx.as<float>()[g] == s;
      int sum16[2] = {0, 0};
      for (int j = 0; j < 32; ++j) {
        const int i = g * 32 + j;
        const int q = i < k ? int(std::nearbyint(x[i] * (127.f / amax))) : 0;
        ok &= qb.q.as<int8_t>()[i] == q;
        sum16[j / 16] += q;
      }
      ok &= qb.fs16.as<float>()[2 * g] == s * float(sum16[0]) && qb.fs16.as<float>()[2 * g + 1] == s * float(sum16[1]);
      const float s32 = s * float(sum16[0] + sum16[1]);  // Q8_1 keeps it as fp16
      ok &= qb.fs32.as<float>()[g] == (fmt == BlockAct::q8_1 ? f16_to_f32(f32_to_f16(s32)) : s32);
    }
    check(ok, "quantize_blocks " + name + ": int8 of x * 127 / absmax (half to even), llama.cpp's scales and sums, zero padding");
    // every ISA's version writes the same bytes and floats (ties at .5, a partial block, zeros)
    std::normal_distribution<float> nd(0.f, 1.f);
    for (int kk : {40, 256, 770}) {
      const int m = 3, kpp = (kk + 31) / 32 * 32;
      std::vector<float> xs(size_t(m) * kk);
      for (auto& v : xs) v = nd(rng);
      for (int i = 0; i < kk; ++i) xs[i] = float(i % 9) - 4.f, xs[size_t(2) * kk + i] = 0.f;
      QuantBlocks a, b;
      a.reserve(m, kk);
      b.reserve(m, kk);
      quantize_blocks(xs.data(), kk, 0, m, fmt, &a);
      for (Isa isa : {Isa::avx2, Isa::avx512}) {
        if (!isa_supported(isa)) continue;
        quantize_blocks(isa, xs.data(), kk, 0, m, fmt, &b);
        const bool same = !std::memcmp(a.q.ptr, b.q.ptr, size_t(m) * kpp) && !std::memcmp(a.sx.ptr, b.sx.ptr, size_t(m) * kpp / 32 * 4) &&
                          !std::memcmp(a.fs16.ptr, b.fs16.ptr, size_t(m) * kpp / 16 * 4) &&
                          !std::memcmp(a.fs32.ptr, b.fs32.ptr, size_t(m) * kpp / 32 * 4);
        check(same, "quantize_blocks " + name + " k=" + std::to_string(kk) + " " + isa_name(isa) + " == portable, bit for bit");
      }
    }
  }
}

}  // namespace

int main() {
  std::vector<Impl> impls;
  if (isa_supported(Isa::avx2)) {
    impls.push_back({"avx2", Isa::avx2, detail::matmul_q_avx2_plain});
    if (detail::avx_vnni_supported()) impls.push_back({"avx2-vnni", Isa::avx2, detail::matmul_q_avx2_vnni});
  }
  if (isa_supported(Isa::avx512)) impls.push_back({"avx512", Isa::avx512, detail::matmul_q_avx512});
  std::printf("ISAs tested against scalar:");
  for (auto& im : impls) std::printf(" %s", im.name);
  std::printf("\n");
  test_quantize_blocks();
  for (const TypeCase& tc : kTypes) {
    test_dequant(tc);
    const int kb = block_format(tc.type)->values;
    for (auto [n, kblocks] : {std::pair{16, 1}, {37, 2}, {64, 3}, {9, 1}})
      test_kernels(tc, n, std::max(kb, 32) * kblocks * (kb == 32 ? 4 : 1), impls);
  }
  return weft_test::finish();
}
