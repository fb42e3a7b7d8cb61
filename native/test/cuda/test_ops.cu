// The small per-token ops (embedding, RMSNorm, Qwen3's q/k norm, RoPE, paged-KV write, SwiGLU, block copy) against
// the CPU reference (native/src/cpu/ops.h, attention.h) on seeded random inputs.
#include <algorithm>
#include <numeric>

#include "cpu/attention.h"
#include "cpu/ops.h"
#include "cuda/block_copy.cuh"
#include "cuda/embedding.cuh"
#include "cuda/qk_norm.cuh"
#include "cuda/rmsnorm.cuh"
#include "cuda/rope.cuh"
#include "cuda/silu_mul.cuh"
#include "harness.h"

using namespace weft_test;
using weft::cuda::DType;

namespace {
const DType kTypes[] = {DType::f16, DType::bf16};
// Output rounding of one value to the dtype (2^-11 for f16, 2^-8 for bf16), relative.
float type_eps(DType t) {
  return t == DType::f16 ? 1.f / 1024 : 1.f / 128;
}
}  // namespace

WEFT_CUDA_TEST(embedding_gather_rows) {
  for (DType t : kTypes) {
    const int V = 300, D = 72, T = 9;
    const auto table = random_vec(size_t(V) * D, 1);
    const auto bits = to_half_vec(table, t);
    std::vector<int32_t> ids = {0, 299, 5, 5, 17, 123, 250, 1, 42};
    DeviceBuf<uint16_t> dt(bits);
    DeviceBuf<int32_t> di(ids);
    DeviceBuf<float> dx(size_t(T) * D);
    cuda_ok(weft::cuda::embedding_gather(t, dt.ptr, di.ptr, T, D, dx.ptr, nullptr), "launch");
    sync("embedding");
    std::vector<float> want(size_t(T) * D);
    for (int r = 0; r < T; ++r)
      for (int i = 0; i < D; ++i) want[size_t(r) * D + i] = from_half_bits(bits[size_t(ids[r]) * D + i], t);
    h.check_close(dx.download().data(), want.data(), want.size(), 0, 0, std::string("exact rows ") + weft::cuda::dtype_name(t));
  }
}

WEFT_CUDA_TEST(rmsnorm_rows_and_gather) {
  for (DType t : kTypes)
    for (int D : {8, 64, 172, 2048, 2049}) {
      const int T = 7, ld_out = (D + 63) / 64 * 64;
      const auto x = random_vec(size_t(T) * D, 2, -3, 3);
      const auto w = random_vec(D, 3, 0.5f, 1.5f);
      DeviceBuf<float> dx(x), dw(w);
      DeviceBuf<uint16_t> dout(size_t(T) * ld_out);
      const std::vector<int32_t> rows = {6, 0, 3};
      DeviceBuf<int32_t> drows(rows);
      DeviceBuf<uint16_t> dsel(size_t(3) * ld_out);
      cuda_ok(weft::cuda::rmsnorm(t, dx.ptr, D, nullptr, T, dw.ptr, 1e-5f, D, dout.ptr, ld_out, nullptr), "launch");
      cuda_ok(weft::cuda::rmsnorm(t, dx.ptr, D, drows.ptr, 3, dw.ptr, 1e-5f, D, dsel.ptr, ld_out, nullptr), "launch");
      sync("rmsnorm");
      const auto got = from_half_vec(dout.download(), t), sel = from_half_vec(dsel.download(), t);
      std::vector<float> want(size_t(T) * ld_out, 0.f), want_sel(size_t(3) * ld_out, 0.f);
      for (int r = 0; r < T; ++r) weft::rmsnorm_f32(&x[size_t(r) * D], w.data(), 1e-5f, D, &want[size_t(r) * ld_out]);
      for (int r = 0; r < 3; ++r) std::copy_n(&want[size_t(rows[r]) * ld_out], ld_out, &want_sel[size_t(r) * ld_out]);
      const std::string what = std::string(weft::cuda::dtype_name(t)) + " dim " + std::to_string(D);
      // fp32 math, then one rounding to the dtype; pad columns stay zero
      h.check_close(got.data(), want.data(), want.size(), 1e-6f, type_eps(t), what);
      h.check_close(sel.data(), want_sel.data(), want_sel.size(), 1e-6f, type_eps(t), what + " (row gather)");
    }
}

WEFT_CUDA_TEST(rope_matches_cpu_incl_llama3_and_bias) {
  for (DType t : kTypes)
    for (int variant = 0; variant < 3; ++variant) {
      weft::ModelConfig c;
      c.num_heads = variant == 0 ? 8 : 32;
      c.num_kv_heads = variant == 0 ? 4 : 8;
      c.head_dim = variant == 0 ? 8 : variant == 1 ? 64 : 128;
      c.dim = c.num_heads * c.head_dim;
      c.rope_theta = variant == 2 ? 500000.f : 10000.f;
      if (variant == 2) {
        c.rope_scaling = weft::RopeScalingType::llama3;
        c.rope_factor = 32, c.rope_low_freq_factor = 1, c.rope_high_freq_factor = 4, c.rope_original_max_positions = 8192;
      }
      const int hd = c.head_dim, qc = c.num_heads * hd, kvc = c.num_kv_heads * hd, cols = qc + 2 * kvc, T = 6;
      std::vector<float> inv(hd / 2);
      weft::rope_inv_freq(c, inv.data());
      const std::vector<int32_t> pos = {0, 1, 7, 100, 4095, 70000};
      const auto qkv = random_vec(size_t(T) * cols, 4);
      const auto bias = random_vec(cols, 5, -0.1f, 0.1f);
      const bool use_bias = variant == 1;
      DeviceBuf<float> dqkv(qkv), dinv(inv), dbias(bias);
      DeviceBuf<int32_t> dpos(pos);
      DeviceBuf<uint16_t> dq(size_t(T) * qc);
      cuda_ok(weft::cuda::rope_qkv(t, dqkv.ptr, cols, T, use_bias ? dbias.ptr : nullptr, dpos.ptr, dinv.ptr, c.num_heads, c.num_kv_heads, hd, dq.ptr,
                                   qc, nullptr, nullptr),
              "launch");
      sync("rope");
      std::vector<float> want = qkv, want_q(size_t(T) * qc);
      for (int r = 0; r < T; ++r) {
        float* row = &want[size_t(r) * cols];
        if (use_bias)
          for (int i = 0; i < cols; ++i) row[i] += bias[i];
        weft::rope_apply_f32(row, c.num_heads, hd, pos[r], inv.data());
        weft::rope_apply_f32(row + qc, c.num_kv_heads, hd, pos[r], inv.data());
        std::copy_n(row, qc, &want_q[size_t(r) * qc]);
      }
      const auto got = dqkv.download();
      const auto got_q = from_half_vec(dq.download(), t);
      std::vector<float> got_k, want_k;
      for (int r = 0; r < T; ++r) {
        got_k.insert(got_k.end(), &got[size_t(r) * cols + qc], &got[size_t(r) * cols + cols]);
        want_k.insert(want_k.end(), &want[size_t(r) * cols + qc], &want[size_t(r) * cols + cols]);
      }
      const std::string what =
          std::string(weft::cuda::dtype_name(t)) + " head_dim " + std::to_string(hd) + (variant == 2 ? " llama3" : "") + (use_bias ? " bias" : "");
      // device sincosf vs host std::sin/cos of the same float angle: ~1 ulp of angles up to 7e4
      h.check_close(got_k.data(), want_k.data(), want_k.size(), 2e-4f, 1e-4f, what + " k (fp32)");
      h.check_close(got_q.data(), want_q.data(), want_q.size(), 2e-4f, type_eps(t), what + " q (rounded)");
    }
}

WEFT_CUDA_TEST(qk_norm_per_head_matches_cpu) {
  // head_dim 128 as in Qwen3, 32 (one value per lane), 40 (a lane does two, some one), 8 (idle lanes);
  // 16 + 8 heads fill whole blocks of 4 warps, 5 + 1 leave a partial block
  const int dims[][3] = {{128, 16, 8}, {32, 4, 2}, {40, 5, 1}, {8, 2, 2}};
  for (const auto& d : dims) {
    const int hd = d[0], nh = d[1], nkv = d[2], qc = nh * hd, kvc = nkv * hd, T = 5;
    const int ld = qc + 2 * kvc + 64;  // padded rows: the kernel must not touch v or the padding
    const auto qkv = random_vec(size_t(T) * ld, 11, -4, 4);
    const auto qw = random_vec(hd, 12, 0.5f, 1.5f), kw = random_vec(hd, 13, 0.5f, 1.5f);
    DeviceBuf<float> dqkv(qkv), dqw(qw), dkw(kw);
    cuda_ok(weft::cuda::qk_norm_f32(dqkv.ptr, ld, T, dqw.ptr, dkw.ptr, nh, nkv, hd, 1e-6f, nullptr), "launch");
    sync("qk_norm");
    std::vector<float> want = qkv;
    for (int r = 0; r < T; ++r) {
      float* row = &want[size_t(r) * ld];
      for (int h = 0; h < nh; ++h) weft::rmsnorm_f32(row + h * hd, qw.data(), 1e-6f, hd, row + h * hd);
      for (int h = 0; h < nkv; ++h) weft::rmsnorm_f32(row + qc + h * hd, kw.data(), 1e-6f, hd, row + qc + h * hd);
    }
    // fp32 throughout: rsqrtf and the summation order differ from the host by a few ulp
    h.check_close(dqkv.download().data(), want.data(), want.size(), 1e-6f, 1e-5f,
                  "head_dim " + std::to_string(hd) + ", " + std::to_string(nh) + "+" + std::to_string(nkv) + " heads");
  }
}

WEFT_CUDA_TEST(rope_kv_write_paged_slots) {
  for (DType t : kTypes) {
    const int kvh = 4, nh = 8, hd = 8, bs = 16, blocks = 6, qc = nh * hd, cols = qc + 2 * kvh * hd, T = 5;
    weft::ModelConfig c;
    c.num_heads = nh, c.num_kv_heads = kvh, c.head_dim = hd, c.dim = qc;
    std::vector<float> inv(hd / 2);
    weft::rope_inv_freq(c, inv.data());
    const auto qkv = random_vec(size_t(T) * cols, 6);
    const std::vector<int32_t> slots = {0, 17, 95, -1, 40}, pos = {0, 3, 90, 1, 33};
    DeviceBuf<float> dqkv(qkv), dinv(inv);
    DeviceBuf<int32_t> ds(slots), dpos(pos);
    DeviceBuf<uint16_t> dq(size_t(T) * qc);
    const size_t n = size_t(blocks) * kvh * bs * hd;
    DeviceBuf<uint16_t> dk(n), dv(n);
    const weft::cuda::KvDest kv{ds.ptr, bs, dk.ptr, dv.ptr};
    cuda_ok(weft::cuda::rope_qkv(t, dqkv.ptr, cols, T, nullptr, dpos.ptr, dinv.ptr, nh, kvh, hd, dq.ptr, qc, &kv, nullptr), "launch");
    sync("rope + kv_write");
    std::vector<float> wk(n, 0.f), wv(n, 0.f), row(cols);
    weft::PagedKv ref{wk.data(), wv.data(), false, bs, kvh, hd};
    for (int r = 0; r < T; ++r) {
      std::copy_n(&qkv[size_t(r) * cols], cols, row.data());
      weft::rope_apply_f32(row.data() + qc, kvh, hd, pos[r], inv.data());
      if (slots[r] >= 0) weft::kv_write_ref(ref, slots[r], row.data() + qc, row.data() + qc + kvh * hd);
    }
    for (auto& x : wk) x = round_to(x, t);
    for (auto& x : wv) x = round_to(x, t);
    const std::string name = weft::cuda::dtype_name(t);
    // k: rotated on the device (sincosf) and on the host, then one rounding each; v: copied exactly
    h.check_close(from_half_vec(dk.download(), t).data(), wk.data(), n, 2e-4f, type_eps(t), "K " + name);
    h.check_close(from_half_vec(dv.download(), t).data(), wv.data(), n, 0, 0, "V " + name + " (slot -1 skipped)");
  }
}

WEFT_CUDA_TEST(silu_mul_swiglu) {
  for (DType t : kTypes)
    for (int F : {172, 8192}) {
      const int T = 3, ld_out = (F + 63) / 64 * 64;
      auto gu = random_vec(size_t(T) * 2 * F, 7, -6, 6);
      for (auto& x : gu) x = round_to(x, t);
      DeviceBuf<uint16_t> dgu(to_half_vec(gu, t)), dout(size_t(T) * ld_out);
      cuda_ok(weft::cuda::silu_mul(t, dgu.ptr, 2 * F, T, F, dout.ptr, ld_out, nullptr), "launch");
      sync("silu_mul");
      std::vector<float> want(size_t(T) * ld_out, 0.f);
      std::vector<float> g(F), u(F);  // gate i and up i are columns 2i and 2i + 1
      for (int r = 0; r < T; ++r) {
        for (int i = 0; i < F; ++i) g[i] = gu[size_t(r) * 2 * F + 2 * i], u[i] = gu[size_t(r) * 2 * F + 2 * i + 1];
        weft::silu_mul_f32(g.data(), u.data(), F, &want[size_t(r) * ld_out]);
      }
      h.check_close(from_half_vec(dout.download(), t).data(), want.data(), want.size(), 1e-5f, 2 * type_eps(t),
                    std::string(weft::cuda::dtype_name(t)) + " ffn " + std::to_string(F));
    }
}

WEFT_CUDA_TEST(copy_blocks_every_layer) {
  const int layers = 3, blocks = 5;
  const size_t block_bytes = 4 * 16 * 8 * 2;
  std::vector<uint8_t> k(layers * blocks * block_bytes), v(k.size());
  std::iota(k.begin(), k.end(), 0);
  std::iota(v.begin(), v.end(), 7);
  DeviceBuf<uint8_t> dk(k), dv(v);
  const std::vector<int32_t> pairs = {1, 3, 0, 4};
  DeviceBuf<int32_t> dp(pairs);
  cuda_ok(weft::cuda::copy_blocks(dp.ptr, 2, layers, blocks, block_bytes, dk.ptr, dv.ptr, nullptr), "launch");
  sync("copy_blocks");
  for (int l = 0; l < layers; ++l)
    for (int p = 0; p < 2; ++p) {
      const size_t src = (size_t(l) * blocks + pairs[2 * p]) * block_bytes, dst = (size_t(l) * blocks + pairs[2 * p + 1]) * block_bytes;
      std::copy_n(&k[src], block_bytes, &k[dst]);
      std::copy_n(&v[src], block_bytes, &v[dst]);
    }
  h.check_equal(dk.download(), k, "K blocks");
  h.check_equal(dv.download(), v, "V blocks");
}
