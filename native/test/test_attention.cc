// test_attention: the CPU attention kernels against the scalar reference (attention.cc).
//  - kv_write on every ISA stores the very values kv_write_ref stores, in both K layouts.
//  - attention_tile on every ISA equals attention_tile_ref (query by query, two-pass softmax) for
//    decode tokens and prefill tiles, f32, f16 and int8 caches, head dims 32-256, GQA groups 1-32,
//    block sizes that are and are not multiples of the vector width, and block tables in
//    shuffled order. Every cache slot outside the contexts holds NaN, so a kernel that reads a
//    position it may not see (past the context, or later than its query) fails the check (int8:
//    every scale NaN, every value -128, which the quantizer never writes).
//  - The int8 cache's rounding: scales absmax / 127 (V one per position and head, K one per 32
//    values), values within half a step of the input, the absmax value at +-127.
// `test_attention --bench [prefill|decode]` times the AVX-512 (else AVX2) kernel on a prefill and a decode shape.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
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

enum class Elem { f32, f16, i8 };
const char* elem_name(Elem e) {
  return e == Elem::f32 ? "f32" : e == Elem::f16 ? "f16" : "int8";
}

// Page-aligned storage, as the engine's mmap'ed cache is (a large std::vector sits 16 bytes past a
// page start, so every row would straddle cache lines and the bench would time that).
template <class T> struct PageAlloc {
  using value_type = T;
  PageAlloc() = default;
  template <class U> PageAlloc(const PageAlloc<U>&) {}
  T* allocate(size_t n) {
    void* p = std::aligned_alloc(4096, (n * sizeof(T) + 4095) / 4096 * 4096);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) {
    std::free(p);
  }
  template <class U> bool operator==(const PageAlloc<U>&) const {
    return true;
  }
  template <class U> bool operator!=(const PageAlloc<U>&) const {
    return false;
  }
};
template <class T> using pvec = std::vector<T, PageAlloc<T>>;

struct Cache {
  pvec<float> k32, v32, ks, vs;
  pvec<uint16_t> k16, v16;
  pvec<int8_t> k8, v8;
  PagedKv kv;
  std::vector<int32_t> table;
};

// Points kv at c's buffers (n values each; int8 scales: K one per kv_k_group values, V per hd), every slot poisoned.
void poison(Cache& c, Elem e, size_t n, int hd) {
  if (e == Elem::f16) c.k16.assign(n, 0x7e00), c.v16.assign(n, 0x7e00);  // f16 NaN
  if (e == Elem::f32) c.k32.assign(n, NAN), c.v32.assign(n, NAN);
  if (e == Elem::i8) c.k8.assign(n, -128), c.v8.assign(n, -128), c.ks.assign(n / kv_k_group(hd), NAN), c.vs.assign(n / hd, NAN);
  c.kv.k = e == Elem::f16 ? static_cast<void*>(c.k16.data()) : e == Elem::i8 ? static_cast<void*>(c.k8.data()) : c.k32.data();
  c.kv.v = e == Elem::f16 ? static_cast<void*>(c.v16.data()) : e == Elem::i8 ? static_cast<void*>(c.v8.data()) : c.v32.data();
  c.kv.f16 = e == Elem::f16, c.kv.i8 = e == Elem::i8, c.kv.k_scale = c.ks.data(), c.kv.v_scale = c.vs.data();
}

// A cache of num_blocks blocks, every slot poisoned; the context's positions [0, ctx) written
// through kv_write_ref at the slots of a shuffled block table.
Cache make_cache(Elem e, int bs, int kvh, int hd, int ctx, std::mt19937& rng) {
  Cache c;
  const int blocks_needed = (ctx + bs - 1) / bs, num_blocks = blocks_needed + 3;
  const size_t n = size_t(num_blocks) * kvh * bs * hd;
  poison(c, e, n, hd);
  c.kv.block_size = bs, c.kv.num_kv_heads = kvh, c.kv.head_dim = hd, c.kv.k_by_dim = true;
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
  for (Elem e : {Elem::f16, Elem::i8})
    for (bool by_dim : {false, true})
      for (int hd : {32, 64, 128}) {
        const int kvh = 2, bs = 16, blocks = 4, slot = 37;
        std::vector<float> k(size_t(kvh) * hd), v(size_t(kvh) * hd);
        for (auto& x : k) x = nd(rng);
        for (auto& x : v) x = nd(rng);
        v[3] = 0;  // an all-zero head: scale 0, values 0
        for (int i = 0; i < hd; ++i) v[hd + i] = 0;
        const size_t n = size_t(blocks) * kvh * bs * hd;
        Cache ref;
        poison(ref, e, n, hd);
        ref.kv.block_size = bs, ref.kv.num_kv_heads = kvh, ref.kv.head_dim = hd, ref.kv.k_by_dim = by_dim;
        kv_write_ref(ref.kv, slot, k.data(), v.data());
        const std::string where = std::string(elem_name(e)) + " hd=" + std::to_string(hd) + (by_dim ? " K by dim" : " K by position");
        if (e == Elem::i8) {
          // the rounding rule, value by value: V one scale per head, K one per kv_k_group values
          bool ok = true;
          for (int g = 0; g < kvh; ++g)
            for (int part = 0; part < 2; ++part) {
              const int group = part ? hd : kv_k_group(hd);
              for (int d0 = 0; d0 < hd; d0 += group) {
                const float* x = (part ? v.data() : k.data()) + g * hd + d0;
                const float sc = part ? ref.vs[kv_v_scale_index(ref.kv, slot, g)] : ref.ks[kv_k_scale_index(ref.kv, slot, g, d0 / group)];
                float amax = 0;
                for (int i = 0; i < group; ++i) amax = std::max(amax, std::fabs(x[i]));
                ok = ok && sc == amax / 127.0f;
                for (int i = 0; i < group; ++i) {
                  const int8_t q = part ? ref.v8[kv_offset(ref.kv, slot, g) + d0 + i] : ref.k8[kv_k_index(ref.kv, slot, g, d0 + i)];
                  ok = ok && q >= -127 && q <= 127 && std::fabs(q * sc - x[i]) <= 0.5f * sc * (1 + 1e-5f);
                  if (std::fabs(x[i]) == amax && amax > 0) ok = ok && std::abs(q) == 127;
                }
              }
            }
          check(ok, "kv_write_ref " + where + ": scales absmax / 127 (V per head, K per " + std::to_string(kv_k_group(hd)) +
                        " values), values within half a step");
        }
        for (Isa isa : isas) {
          Cache got;
          poison(got, e, n, hd);
          got.kv.block_size = bs, got.kv.num_kv_heads = kvh, got.kv.head_dim = hd, got.kv.k_by_dim = by_dim;
          kv_write_isa(isa, got.kv, slot, k.data(), v.data());
          auto same_f = [](const pvec<float>& a, const pvec<float>& b) {  // NaN poison equal to NaN poison
            return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
          };
          check(got.k16 == ref.k16 && got.v16 == ref.v16 && got.k8 == ref.k8 && got.v8 == ref.v8 && same_f(got.ks, ref.ks) && same_f(got.vs, ref.vs),
                std::string("kv_write ") + isa_name(isa) + " " + where + " stores what kv_write_ref stores");
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
    for (Elem e : {Elem::f32, Elem::f16, Elem::i8})
      for (const auto& tl : tiles) {
        const int pos0 = tl[0], nq = std::max(1, std::min(tl[1], std::max(1, kAttentionTileRows / sh.G)));
        const int ctx = pos0 + nq, R = nq * sh.G;
        Cache c = make_cache(e, sh.bs, sh.kvh, sh.hd, ctx, rng);
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
            const std::string tag = std::string("attention_tile ") + isa_name(isa) + " " + elem_name(e) + " hd=" + std::to_string(sh.hd) +
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
  auto run = [&](const char* what, Elem e, int ctx, int nq, int seqs, bool decode) {
    if (only && std::strcmp(only, what) != 0) return;
    // every sequence its own blocks (decode at batch 64 reads the cache from DRAM, as it does in a step)
    Cache c = make_cache(e, bs, heads, hd, ctx * seqs, rng);
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
    std::printf("%-8s %s %-4s ctx %4d x %2d seqs, tiles of %2d: %8.3f ms (median of 7), %.2f GFLOP/s (4 flops a position per dim)\n", what,
                isa_name(isa), elem_name(e), ctx, seqs, nq, ms[3], pairs * hd * 4 / ms[3] / 1e6);
  };
  for (Elem e : {Elem::f16, Elem::i8}) {
    run("prefill", e, 512, kAttentionTileRows, 1, false);
    run("prefill", e, 512, 1, 1, false);
    run("decode", e, 512, 1, 64, true);
  }
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
