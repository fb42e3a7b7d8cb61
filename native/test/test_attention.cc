// test_attention: the CPU attention kernels against the scalar reference (attention.cc).
//  - kv_write on every ISA stores the very values kv_write_ref stores, in both K layouts.
//  - attention_tile on every ISA equals attention_tile_ref (query by query, two-pass softmax) for
//    decode tokens and prefill tiles, f32 and f16 caches, head dims 32-256, GQA groups 1-32,
//    block sizes that are and are not multiples of the vector width, and block tables in
//    shuffled order. Every cache slot outside the contexts holds NaN, so a kernel that reads a
//    position it may not see (past the context, or later than its query) fails the check.
// `test_attention --bench [prefill|decode]` times the AVX-512 (else AVX2) kernel on a prefill and a decode shape.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "cpu/attention.h"
#include "cpu/isa.h"
#include "cpu/simd_ops.h"
#include "half.h"

using namespace weft;
using weft_test::check;

namespace {

struct Cache {
  std::vector<float> k32, v32;
  std::vector<uint16_t> k16, v16;
  PagedKv kv;
  std::vector<int32_t> table;
};

// A cache of num_blocks blocks, every slot NaN; the context's positions [0, ctx) written through
// kv_write_ref at the slots of a shuffled block table.
Cache make_cache(bool f16, int bs, int kvh, int hd, int ctx, std::mt19937& rng) {
  Cache c;
  const int blocks_needed = (ctx + bs - 1) / bs, num_blocks = blocks_needed + 3;
  const size_t n = size_t(num_blocks) * kvh * bs * hd;
  if (f16) c.k16.assign(n, 0x7e00), c.v16.assign(n, 0x7e00);  // f16 NaN
  else c.k32.assign(n, NAN), c.v32.assign(n, NAN);
  c.kv.k = f16 ? static_cast<void*>(c.k16.data()) : c.k32.data();
  c.kv.v = f16 ? static_cast<void*>(c.v16.data()) : c.v32.data();
  c.kv.f16 = f16, c.kv.block_size = bs, c.kv.num_kv_heads = kvh, c.kv.head_dim = hd, c.kv.k_by_dim = true;
  std::vector<int32_t> ids(num_blocks);
  for (int i = 0; i < num_blocks; ++i) ids[i] = i;
  std::shuffle(ids.begin(), ids.end(), rng);
  c.table.assign(ids.begin(), ids.begin() + blocks_needed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> k(size_t(kvh) * hd), v(size_t(kvh) * hd);
  for (int p = 0; p < ctx; ++p) {
    for (auto& x : k) x = nd(rng);
    for (auto& x : v) x = nd(rng);
    kv_write_ref(c.kv, c.table[p / bs] * bs + p % bs, k.data(), v.data());
  }
  return c;
}

void test_kv_write(const std::vector<Isa>& isas) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 2.f);
  for (bool by_dim : {false, true})
    for (int hd : {32, 64, 128}) {
      const int kvh = 2, bs = 16, blocks = 4;
      std::vector<float> k(size_t(kvh) * hd), v(size_t(kvh) * hd);
      for (auto& x : k) x = nd(rng);
      for (auto& x : v) x = nd(rng);
      const size_t n = size_t(blocks) * kvh * bs * hd;
      std::vector<uint16_t> rk(n, 0), rv(n, 0);
      PagedKv ref{rk.data(), rv.data(), true, bs, kvh, hd, by_dim};
      kv_write_ref(ref, 37, k.data(), v.data());
      for (Isa isa : isas) {
        std::vector<uint16_t> ik(n, 0), iv(n, 0);
        PagedKv kv{ik.data(), iv.data(), true, bs, kvh, hd, by_dim};
        kv_write_isa(isa, kv, 37, k.data(), v.data());
        check(ik == rk && iv == rv, std::string("kv_write ") + isa_name(isa) + " hd=" + std::to_string(hd) +
                                        (by_dim ? " K by dim" : " K by position") + " stores what kv_write_ref stores");
      }
    }
}

void test_tiles(const std::vector<Isa>& isas) {
  std::mt19937 rng(1234);
  std::normal_distribution<float> nd(0.f, 1.f);
  struct Shape {
    int hd, G, kvh, bs;
  };
  const Shape shapes[] = {{64, 1, 2, 16},  {64, 4, 2, 16}, {32, 2, 1, 8},  {128, 8, 1, 16}, {128, 1, 2, 32},
                          {256, 2, 1, 16}, {64, 3, 1, 5},  {96, 2, 1, 16}, {64, 16, 1, 16}, {32, 32, 1, 16}};
  // (pos0, nq): decode tokens at several context lengths, prefill tiles from the start and mid-context
  const int tiles[][2] = {{0, 1}, {1, 1}, {15, 1}, {16, 1}, {40, 1}, {99, 1}, {0, 16}, {0, 5}, {16, 16}, {33, 7}, {80, 16}, {3, 2}};
  for (const Shape& sh : shapes)
    for (bool f16 : {false, true})
      for (const auto& tl : tiles) {
        const int pos0 = tl[0], nq = std::max(1, std::min(tl[1], std::max(1, kAttentionTileRows / sh.G)));
        const int ctx = pos0 + nq, R = nq * sh.G;
        Cache c = make_cache(f16, sh.bs, sh.kvh, sh.hd, ctx, rng);
        const int q_cols = sh.kvh * sh.G * sh.hd;
        std::vector<float> q(size_t(nq) * (q_cols + 8));  // rows padded: strides are not the row width
        for (auto& x : q) x = 0.5f * nd(rng);
        const float scale = 1.0f / std::sqrt(float(sh.hd));
        for (int g = 0; g < sh.kvh; ++g) {
          AttentionTile t;
          t.block_table = c.table.data(), t.pos0 = pos0, t.nq = nq, t.kv_head = g;
          t.q = q.data() + size_t(g) * sh.G * sh.hd, t.q_stride = q_cols + 8;
          std::vector<float> want(size_t(nq) * (q_cols + 4), 0.f);
          t.out = want.data() + size_t(g) * sh.G * sh.hd, t.out_stride = q_cols + 4;
          attention_tile_ref(c.kv, t, sh.G, scale);
          for (Isa isa : isas) {
            std::vector<float> got(want.size(), 0.f), scratch(attention_scratch_floats(sh.hd, R));
            t.out = got.data() + size_t(g) * sh.G * sh.hd;
            attention_tile_isa(isa, c.kv, t, sh.G, scale, scratch.data());
            double worst = 0;
            bool finite = true;
            for (size_t i = 0; i < want.size(); ++i) {
              finite = finite && std::isfinite(got[i]);
              worst = std::max(worst, double(std::fabs(got[i] - want[i])));
            }
            const std::string tag = std::string("attention_tile ") + isa_name(isa) + (f16 ? " f16" : " f32") + " hd=" + std::to_string(sh.hd) +
                                    " G=" + std::to_string(sh.G) + " bs=" + std::to_string(sh.bs) + " pos0=" + std::to_string(pos0) +
                                    " nq=" + std::to_string(nq) + " head " + std::to_string(g);
            // outputs are averages of N(0,1) values: only the summation order and the online
            // softmax's rescaling differ from the reference
            check(finite && worst < 2e-5, tag + " (max diff " + std::to_string(worst) + ")");
          }
        }
      }
}

void bench(const char* only) {
  const Isa isa = isa_supported(Isa::avx512) ? Isa::avx512 : Isa::avx2;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  const int hd = 64, heads = 12, bs = 16;
  auto run = [&](const char* what, int ctx, int nq, int seqs, bool decode) {
    if (only && std::strcmp(only, what) != 0) return;
    // every sequence its own blocks (decode at batch 64 reads the cache from DRAM, as it does in a step)
    Cache c = make_cache(true, bs, heads, hd, ctx * seqs, rng);
    const int q_cols = heads * hd;
    std::vector<float> q(size_t(ctx) * q_cols), out(q.size()), scratch(attention_scratch_floats(hd, kAttentionTileRows));
    for (auto& x : q) x = 0.5f * nd(rng);
    const float scale = 0.125f;
    auto pass = [&] {
      for (int s = 0; s < seqs; ++s)
        for (int p0 = decode ? ctx - 1 : 0; p0 < ctx; p0 += nq)
          for (int g = 0; g < heads; ++g) {
            AttentionTile t;
            t.block_table = c.table.data() + size_t(s) * (ctx / bs), t.pos0 = p0, t.nq = std::min(nq, ctx - p0), t.kv_head = g;
            t.q = q.data() + size_t(p0) * q_cols + g * hd, t.q_stride = q_cols;
            t.out = out.data() + size_t(p0) * q_cols + g * hd, t.out_stride = q_cols;
            attention_tile_isa(isa, c.kv, t, 1, scale, scratch.data());
          }
    };
    pass();
    std::vector<double> ms;
    for (int r = 0; r < 7; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      pass();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    const double pairs = decode ? double(seqs) * ctx * heads : double(seqs) * heads * ctx * (ctx + 1) / 2;
    std::printf("%-8s %s ctx %4d x %2d seqs, tiles of %2d: %8.3f ms (median of 7), %.2f GFLOP/s (4 flops a position per dim)\n", what, isa_name(isa),
                ctx, seqs, nq, ms[3], pairs * hd * 4 / ms[3] / 1e6);
  };
  run("prefill", 512, kAttentionTileRows, 1, false);
  run("prefill", 512, 1, 1, false);
  run("decode", 512, 1, 64, true);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--bench") == 0) {
    bench(argc > 2 ? argv[2] : nullptr);
    return 0;
  }
  std::vector<Isa> isas;
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512})
    if (isa_supported(isa)) isas.push_back(isa);
  test_kv_write(isas);
  test_tiles(isas);
  return weft_test::finish();
}
