// Device sampling: one CTA of kThreads threads per row of logits.
//
// Per row:
//  1. Penalties (only when the row has any): the raw logits are copied to the row's slot of the
//     workspace and the repetition / presence / frequency penalties are applied to the copy, once
//     per distinct history token, with the same float operations as apply_penalties in
//     sampler.cc. A per-row int32 count array in the workspace tells the distinct tokens apart:
//     cnt[t] = 1 for every history token, + 2 per occurrence in the output part; the thread whose
//     atomicExch takes the non-zero value owns (and penalizes) the token, and leaves 0 behind.
//  2. Greedy (temperature < 1e-5 or top_k == 1): argmax of the penalized logits, lowest id on
//     ties (a NaN at id 0 wins, as in the CPU loop; other NaNs never do).
//  3. Stochastic: s = z / temperature is stored in the workspace. Every filter of the CPU sampler
//     keeps a prefix of the order (s desc, id asc), so each is a threshold on the pair
//     (dk, id) with dk = ~orderable_bits(s): top-k by a radix select on dk (11-bit digits) with
//     counts, the tie group at the k-th value split by a second radix select on ids; min-p as a
//     per-element test p >= min_p (p = exp(s - max)); top-p by the same radix select weighted
//     with the probabilities, so that the kept set is the smallest prefix whose mass reaches
//     top_p * total. Probabilities are summed in 64-bit fixed point (p * 2^F with
//     vocab * 2^F <= 2^62): integer sums are exact and independent of the order of the atomics,
//     so the whole draw is a pure function of (seed, counter, logits, params). The draw walks the
//     kept set in id order with a block-wide exclusive scan and picks the first element whose
//     running mass exceeds floor(u * kept_total), u = uniform(seed, counter) as on the CPU.
//  4. Logprobs: log_softmax of the raw logits (max, then a double sum of exp), the chosen token's
//     logprob and, for num_logprobs = k > 0, the top k ids (a count radix select on the raw
//     logits, then a rank sort of the <= 20 survivors in shared memory).
//
// Workspace: [num_rows][vocab] float (penalized logits, then s), padded to 256 bytes, then
// [num_rows][vocab] int32 (penalty counts; need not be zero on entry, left zero where touched).
#include <cfloat>
#include <climits>
#include <cstdint>

#include "cuda/sampling.cuh"

namespace weft {
namespace cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kRadixBits = 11;
constexpr int kBins = 1 << kRadixBits;
constexpr int kBinsPerThread = (kBins + kThreads - 1) / kThreads;
constexpr int kDrawItems = 4;
constexpr int kSelectItems = 4;  // keys in flight per thread and radix-select iteration
constexpr unsigned kFull = 0xffffffffu;
constexpr uint32_t kNoBin = 0xffffffffu;
constexpr size_t kWorkspaceAlign = 256;

typedef unsigned long long u64;

struct Shared {
  u64 hist[kBins];
  u64 red_u64[kWarps];
  double red_f64[kWarps];
  float red_f32[kWarps];
  // radix-select result of the current pass
  u64 sel_acc, sel_weight;
  uint32_t sel_bin;
  int sel_found;
  int pick;
  int top_count;
  uint32_t top_key[kMaxTopLogprobs];
  int top_id[kMaxTopLogprobs];
};

size_t align_up(size_t x) {
  return (x + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign;
}

// ---- keys ----

// Ascending order key of a float: NaN lowest (0), -0 equal to +0.
__device__ __forceinline__ uint32_t order_key(float v) {
  if (v != v) return 0u;
  const uint32_t b = __float_as_uint(v == 0.f ? 0.f : v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
// Descending key: smaller = larger value; NaN last.
__device__ __forceinline__ uint32_t desc_key(float v) {
  return ~order_key(v);
}
// Inverse of desc_key (the canonical value: +0 for zeros, a NaN for the NaN key).
__device__ __forceinline__ float desc_key_value(uint32_t dk) {
  const uint32_t o = ~dk;
  return __uint_as_float((o & 0x80000000u) ? (o & 0x7fffffffu) : ~o);
}
// (dk, id) <= (DK, ID) in the sampling order (s desc, id asc).
__device__ __forceinline__ bool within(uint32_t dk, int id, uint32_t DK, int ID) {
  return dk < DK || (dk == DK && id <= ID);
}

// ---- the CPU sampler's random numbers (bit-identical) ----
__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
__device__ __forceinline__ double uniform01(uint64_t seed, uint64_t counter) {
  return double(splitmix64(splitmix64(seed) ^ (counter * 0xD1B54A32D192ED03ull)) >> 11) * 0x1.0p-53;
}

// ---- block-wide primitives (all threads must call them; each ends with a barrier so that the
// scratch may be reused at once) ----

template <class T, class Op> __device__ __forceinline__ T block_reduce(T v, Op op, T* scratch) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(kFull, v, o));
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
  __syncthreads();
  T r = scratch[0];
  for (int w = 1; w < kWarps; ++w) r = op(r, scratch[w]);  // same order in every thread
  __syncthreads();
  return r;
}

struct SumU64 {
  __device__ u64 operator()(u64 a, u64 b) const {
    return a + b;
  }
};
struct MinU64 {
  __device__ u64 operator()(u64 a, u64 b) const {
    return a < b ? a : b;
  }
};
struct MaxU64 {
  __device__ u64 operator()(u64 a, u64 b) const {
    return a > b ? a : b;
  }
};
struct SumF64 {
  __device__ double operator()(double a, double b) const {
    return a + b;
  }
};
struct MaxF32 {
  __device__ float operator()(float a, float b) const {
    return fmaxf(a, b);
  }
};

// Exclusive prefix sum over the threads in thread order; *total gets the sum of all.
__device__ __forceinline__ u64 block_exclusive_scan(u64 v, u64* total, u64* scratch) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  u64 x = v;
  for (int o = 1; o < 32; o <<= 1) {
    const u64 y = __shfl_up_sync(kFull, x, o);
    if (lane >= o) x += y;
  }
  if (lane == 31) scratch[warp] = x;
  __syncthreads();
  u64 before = 0, all = 0;
  for (int w = 0; w < kWarps; ++w) {
    const u64 s = scratch[w];
    if (w < warp) before += s;
    all += s;
  }
  __syncthreads();
  *total = all;
  return before + x - v;
}

__device__ __forceinline__ u64 warp_sum_u64(u64 v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

// ---- radix select ----

struct Selected {
  uint32_t key;  // the threshold key K
  bool complete;  // every participating element with key <= K is needed (no split of K's group)
  u64 acc;  // weight of the participating elements with key below K's last bin / below K
  u64 weight;  // weight of that last bin (the group key == K when !complete)
};

// Among the elements i in [0, n) with weight(i) > 0, finds the smallest key K (key_bits wide)
// with W(key <= K) >= target, for 0 < target <= total weight, 11 bits per pass from the top.
// Stops early when the selected bin's weight ends exactly at the target: then K is the bin's
// highest key and complete is set. Otherwise K is exact, acc = W(key < K), weight = W(key == K),
// acc < target < acc + weight when !complete. Weights are integers, so the result does not
// depend on the order of the atomics.
template <class KeyFn, class WeightFn>
__device__ Selected radix_select(int n, int key_bits, u64 target, KeyFn key_of, WeightFn weight_of, Shared& sm) {
  const int tid = threadIdx.x, lane = tid & 31;
  uint32_t prefix = 0;
  int done = 0;
  u64 acc = 0;
  for (;;) {
    const int width = min(kRadixBits, key_bits - done);
    const int shift = key_bits - done - width;
    const int nbins = 1 << width;
    for (int b = tid; b < nbins; b += kThreads) sm.hist[b] = 0;
    __syncthreads();
    if (tid == 0) sm.sel_found = 0;  // every thread read the previous result before the barrier
    // uniform trip count (warp collectives inside); kSelectItems keys loaded up front per thread
    for (int base = 0; base < n; base += kThreads * kSelectItems) {
      uint32_t keys[kSelectItems];
#pragma unroll
      for (int u = 0; u < kSelectItems; ++u) {
        const int i = base + u * kThreads + tid;
        keys[u] = i < n ? key_of(i) : 0u;
      }
#pragma unroll
      for (int u = 0; u < kSelectItems; ++u) {
        const int i = base + u * kThreads + tid;
        uint32_t d = kNoBin;
        u64 w = 0;
        if (i < n && (uint64_t(keys[u]) >> (shift + width)) == prefix) {
          w = weight_of(i);
          if (w != 0) d = (keys[u] >> shift) & uint32_t(nbins - 1);
        }
        // One atomic per warp when all lanes hit the same bin (rows with many equal values).
        const uint32_t d0 = __shfl_sync(kFull, d, 0);
        if (__all_sync(kFull, d == d0)) {
          if (d0 != kNoBin) {
            const u64 s = warp_sum_u64(w);
            if (lane == 0) atomicAdd(&sm.hist[d0], s);
          }
        } else if (d != kNoBin) {
          atomicAdd(&sm.hist[d], w);
        }
      }
    }
    __syncthreads();
    // The bin where the running weight (in key order) reaches the target.
    const int b0 = tid * kBinsPerThread;
    u64 h[kBinsPerThread];
    u64 local = 0;
#pragma unroll
    for (int j = 0; j < kBinsPerThread; ++j) {
      h[j] = b0 + j < nbins ? sm.hist[b0 + j] : 0;
      local += h[j];
    }
    u64 total;
    u64 run = acc + block_exclusive_scan(local, &total, sm.red_u64);
#pragma unroll
    for (int j = 0; j < kBinsPerThread; ++j) {
      if (run < target && run + h[j] >= target) {  // exactly one bin (h[j] > 0) satisfies this
        sm.sel_bin = uint32_t(b0 + j);
        sm.sel_acc = run;
        sm.sel_weight = h[j];
        sm.sel_found = 1;
      }
      run += h[j];
    }
    __syncthreads();
    Selected r;
    if (!sm.sel_found) {  // target above the total weight: cannot happen; keep everything
      r.key = key_bits >= 32 ? 0xffffffffu : (1u << key_bits) - 1u;
      r.complete = true;
      r.acc = acc;
      r.weight = total;
      return r;
    }
    prefix = (prefix << width) | sm.sel_bin;
    done += width;
    acc = sm.sel_acc;
    const u64 w = sm.sel_weight;
    if (acc + w == target || done == key_bits) {
      const int rest = key_bits - done;
      r.key = rest ? (prefix << rest) | ((1u << rest) - 1u) : prefix;
      r.complete = acc + w == target;
      r.acc = acc;
      r.weight = w;
      return r;
    }
  }
}

// The need-th smallest id (1-based) among the ids i in [0, n) with member(i); n >= 2.
template <class MemberFn> __device__ int select_id(int n, u64 need, MemberFn member, Shared& sm) {
  const int id_bits = 32 - __clz(n - 1);
  const Selected r = radix_select(
      n, id_bits, need, [](int i) { return uint32_t(i); }, [&](int i) -> u64 { return member(i) ? 1 : 0; }, sm);
  return int(r.key);
}

// First element, in id order, whose running weight exceeds target (< total weight); -1 if none.
template <class WeightFn> __device__ int draw_scan(int n, u64 target, WeightFn weight_of, Shared& sm) {
  if (threadIdx.x == 0) sm.pick = -1;
  __syncthreads();
  u64 base = 0;
  for (int tile = 0; tile < n; tile += kThreads * kDrawItems) {
    const int i0 = tile + int(threadIdx.x) * kDrawItems;
    u64 w[kDrawItems];
    u64 local = 0;
#pragma unroll
    for (int j = 0; j < kDrawItems; ++j) {
      w[j] = i0 + j < n ? weight_of(i0 + j) : 0;
      local += w[j];
    }
    u64 total;
    u64 run = base + block_exclusive_scan(local, &total, sm.red_u64);
    if (run <= target && target < run + local) {  // exactly one thread over all tiles
#pragma unroll
      for (int j = 0; j < kDrawItems; ++j) {
        run += w[j];
        if (run > target) {
          sm.pick = i0 + j;
          break;
        }
      }
    }
    __syncthreads();
    if (sm.pick >= 0) break;  // read by all after the barrier, written by no one after it
    base += total;
  }
  const int pick = sm.pick;
  __syncthreads();
  return pick;
}

template <class T> __device__ __forceinline__ T load_or(const T* p, int row, T dflt) {
  return p ? p[row] : dflt;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(SamplingArgs a, float* zbuf_all, int32_t* cnt_all) {
  __shared__ Shared sm;
  const int row = blockIdx.x, tid = threadIdx.x;
  const int vocab = a.vocab;
  const float* raw = a.logits + size_t(row) * vocab;
  float* zb = zbuf_all + size_t(row) * vocab;

  const float temperature = load_or(a.temperature, row, 0.f);
  const int top_k = load_or(a.top_k, row, 0);
  const float top_p = load_or(a.top_p, row, 1.f);
  const float min_p = load_or(a.min_p, row, 0.f);
  const float rp = load_or(a.repetition_penalty, row, 1.f);
  const float pp = load_or(a.presence_penalty, row, 0.f);
  const float fp = load_or(a.frequency_penalty, row, 0.f);

  // ---- 1. penalties on a copy ----
  const float* z = raw;
  const bool rep = rp != 1.0f, pres_freq = pp != 0.f || fp != 0.f;
  if (rep || pres_freq) {
    int32_t* cnt = cnt_all + size_t(row) * vocab;
    int h0 = 0, h1 = 0;
    if (a.hist_offsets && a.hist_tokens) {
      h0 = a.hist_offsets[row];
      h1 = a.hist_offsets[row + 1];
    }
    const int plen = max(load_or(a.prompt_lens, row, 0), 0);
    const int out0 = int(min((long long)h0 + plen, (long long)h1));
    const int32_t* hist = a.hist_tokens;
#pragma unroll 4
    for (int i = tid; i < vocab; i += kThreads) zb[i] = raw[i];
    for (int j = h0 + tid; j < h1; j += kThreads) {
      const int t = hist[j];
      if (t >= 0 && t < vocab) cnt[t] = 1;
    }
    __syncthreads();
    if (pres_freq)
      for (int j = out0 + tid; j < h1; j += kThreads) {
        const int t = hist[j];
        if (t >= 0 && t < vocab) atomicAdd(&cnt[t], 2);
      }
    __syncthreads();
    for (int j = h0 + tid; j < h1; j += kThreads) {
      const int t = hist[j];
      if (t < 0 || t >= vocab) continue;
      const int old = atomicExch(&cnt[t], 0);
      if (old == 0) continue;  // another position owns this token
      float v = raw[t];
      if (rep) v = v > 0.f ? __fdiv_rn(v, rp) : __fmul_rn(v, rp);
      const int c = old >> 1;
      if (pres_freq && c > 0) v = __fsub_rn(v, __fadd_rn(pp, __fmul_rn(fp, __int2float_rn(c))));
      zb[t] = v;
    }
    __syncthreads();
    z = zb;
  }

  // ---- 2./3. the token ----
  int token;
  if (temperature < 1e-5f || top_k == 1) {
    if (z[0] != z[0]) {
      token = 0;  // the CPU's `x[i] > x[best]` never beats a NaN at id 0
    } else {
      u64 best = 0;
#pragma unroll 4
      for (int i = tid; i < vocab; i += kThreads) best = max(best, (u64(order_key(z[i])) << 32) | u64(0xffffffffu - uint32_t(i)));
      best = block_reduce(best, MaxU64(), sm.red_u64);
      token = int(0xffffffffu - uint32_t(best));
    }
  } else {
    // s = z / T into the workspace; the first element of the order and the max s.
    u64 best = ~0ull;
#pragma unroll 4
    for (int i = tid; i < vocab; i += kThreads) {
      const float s = __fdiv_rn(z[i], temperature);
      zb[i] = s;
      best = min(best, (u64(desc_key(s)) << 32) | u64(i));
    }
    best = block_reduce(best, MinU64(), sm.red_u64);  // its barriers publish zb
    const int first = int(uint32_t(best));
    const uint32_t first_dk = uint32_t(best >> 32);
    const float mx = desc_key_value(first_dk);
    if (!(fabsf(mx) <= FLT_MAX)) {
      token = first;  // all NaN / infinite maximum: no distribution to draw from
    } else {
      const int ceil_log2_vocab = vocab <= 1 ? 0 : 32 - __clz(vocab - 1);
      const float scale = __uint_as_float(uint32_t(127 + 62 - ceil_log2_vocab) << 23);  // 2^F
      auto prob = [mx](float s) { return s == mx ? 1.f : expf(__fsub_rn(s, mx)); };
      auto fixed = [scale](float p) -> u64 { return p > 0.f ? __float2ull_rn(p * scale) : 0ull; };

      // top-k: keep (dk, id) <= (k_dk, k_id)
      uint32_t k_dk = 0xffffffffu;
      int k_id = INT_MAX;
      if (top_k > 0 && top_k < vocab) {
        const Selected r = radix_select(
            vocab, 32, u64(top_k), [&](int i) { return desc_key(zb[i]); }, [](int) -> u64 { return 1; }, sm);
        k_dk = r.key;
        if (!r.complete)  // split the tie group at the k-th value: lowest ids first
          k_id = select_id(
              vocab, u64(top_k) - r.acc, [&](int i) { return desc_key(zb[i]) == k_dk; }, sm);
      }
      // top-k and min-p membership and the fixed-point probability
      const bool minp_on = min_p > 0.f;
      auto weight2 = [&](int i) -> u64 {
        const float s = zb[i];
        if (!within(desc_key(s), i, k_dk, k_id)) return 0;
        const float p = prob(s);
        if (minp_on && !(p >= min_p) && i != first) return 0;
        return fixed(p);
      };
      u64 total2 = 0;
#pragma unroll 4
      for (int i = tid; i < vocab; i += kThreads) total2 += weight2(i);
      total2 = block_reduce(total2, SumU64(), sm.red_u64);

      // top-p: the smallest prefix of the order whose mass reaches top_p * total
      uint32_t p_dk = 0xffffffffu;
      int p_id = INT_MAX;
      u64 kept = total2;
      if (top_p < 1.0f) {
        const double P = double(top_p) * double(total2);
        if (!(P > 0.0)) {  // the CPU keeps the first element alone
          p_dk = first_dk;
          p_id = first;
          kept = fixed(1.f);
        } else {
          u64 target = u64(ceil(P));
          if (target > total2) target = total2;
          if (target == 0) target = 1;
          const Selected r = radix_select(
              vocab, 32, target, [&](int i) { return desc_key(zb[i]); }, weight2, sm);
          p_dk = r.key;
          kept = r.acc + r.weight;
          if (!r.complete) {
            // every member of the group key == p_dk has the same weight q
            const u64 q = fixed(prob(desc_key_value(p_dk)));
            if (q != 0) {
              const u64 group = r.weight / q, need = (target - r.acc + q - 1) / q;
              if (need < group) {
                p_id = select_id(
                    vocab, need, [&](int i) { return desc_key(zb[i]) == p_dk && weight2(i) != 0; }, sm);
                kept = r.acc + need * q;
              }
            }
          }
        }
      }

      // the draw
      const double u = uniform01(load_or(a.seeds, row, uint64_t(0)), load_or(a.counters, row, uint64_t(0)));
      u64 target = u64(u * double(kept));
      if (target >= kept) target = kept - 1;
      const int pick = draw_scan(
          vocab, target, [&](int i) -> u64 { return within(desc_key(zb[i]), i, p_dk, p_id) ? weight2(i) : 0; }, sm);
      token = pick >= 0 ? pick : first;
    }
  }

  // ---- 4. logprobs of the raw distribution ----
  const int nlp = load_or(a.num_logprobs, row, -1);
  const int mtn = a.out_top_ids && a.out_top_logprobs ? a.max_top_n : 0;
  int32_t* top_ids = a.out_top_ids + size_t(row) * mtn;
  float* top_lps = a.out_top_logprobs + size_t(row) * mtn;
  int written = 0;  // top columns filled
  float chosen_lp = __int_as_float(0x7fc00000);
  if (nlp >= 0) {
    float m = -INFINITY;
#pragma unroll 4
    for (int i = tid; i < vocab; i += kThreads) m = fmaxf(m, raw[i]);
    m = block_reduce(m, MaxF32(), sm.red_f32);
    double sum = 0;
#pragma unroll 4
    for (int i = tid; i < vocab; i += kThreads) sum += exp(double(__fsub_rn(raw[i], m)));
    sum = block_reduce(sum, SumF64(), sm.red_f64);
    const float lse = __fadd_rn(m, float(log(sum)));
    chosen_lp = __fsub_rn(raw[token], lse);
    const int ntop = min(min(nlp, kMaxTopLogprobs), min(mtn, vocab));
    if (ntop > 0) {
      uint32_t t_dk = 0xffffffffu;
      int t_id = INT_MAX;
      if (ntop < vocab) {
        const Selected r = radix_select(
            vocab, 32, u64(ntop), [&](int i) { return desc_key(raw[i]); }, [](int) -> u64 { return 1; }, sm);
        t_dk = r.key;
        if (!r.complete)
          t_id = select_id(
              vocab, u64(ntop) - r.acc, [&](int i) { return desc_key(raw[i]) == t_dk; }, sm);
      }
      if (tid == 0) sm.top_count = 0;
      __syncthreads();
      for (int i = tid; i < vocab; i += kThreads) {
        const uint32_t dk = desc_key(raw[i]);
        if (within(dk, i, t_dk, t_id)) {
          const int slot = atomicAdd(&sm.top_count, 1);
          if (slot < kMaxTopLogprobs) {
            sm.top_key[slot] = dk;
            sm.top_id[slot] = i;
          }
        }
      }
      __syncthreads();
      written = min(sm.top_count, ntop);
      if (tid < written) {  // keys (dk, id) are distinct: the ranks are a permutation
        const uint32_t dk = sm.top_key[tid];
        const int id = sm.top_id[tid];
        int rank = 0;
        for (int j = 0; j < written; ++j) rank += within(sm.top_key[j], sm.top_id[j], dk, id) && sm.top_id[j] != id;
        top_ids[rank] = id;
        top_lps[rank] = __fsub_rn(raw[id], lse);
      }
    }
  }
  for (int c = written + tid; c < mtn; c += kThreads) {
    top_ids[c] = -1;
    top_lps[c] = __int_as_float(0x7fc00000);
  }
  if (tid == 0) {
    a.out_token[row] = token;
    if (a.out_logprob) a.out_logprob[row] = chosen_lp;
  }
}

// One CTA column per masked row; rows without a mask return at once.
__global__ void mask_kernel(float* __restrict__ logits, int vocab, const int32_t* __restrict__ mask_row, const uint32_t* __restrict__ masks,
                            int words) {
  const int r = blockIdx.y, m = mask_row[r];
  if (m < 0) return;
  const uint32_t* mask = masks + size_t(m) * words;
  float* row = logits + size_t(r) * vocab;
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < vocab; t += gridDim.x * blockDim.x)
    if (!((__ldg(mask + (t >> 5)) >> (t & 31)) & 1u)) row[t] = -INFINITY;
}

// One thread per row adds that row's biases in order: a token listed twice gets both, in the
// CPU's order (a handful of entries per row, so no parallelism is lost).
__global__ void bias_kernel(float* __restrict__ logits, int num_rows, int vocab, const int32_t* __restrict__ offsets, const int32_t* __restrict__ ids,
                            const float* __restrict__ values) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= num_rows) return;
  for (int j = offsets[r]; j < offsets[r + 1]; ++j) logits[size_t(r) * vocab + ids[j]] += values[j];
}

}  // namespace

cudaError_t apply_logit_bias(float* logits, int num_rows, int vocab, const int32_t* offsets, const int32_t* ids, const float* values,
                             cudaStream_t stream) {
  if (num_rows <= 0) return cudaSuccess;
  if (!logits || !offsets || vocab <= 0) return cudaErrorInvalidValue;
  bias_kernel<<<ceil_div(num_rows, 128), 128, 0, stream>>>(logits, num_rows, vocab, offsets, ids, values);
  return cudaGetLastError();
}

cudaError_t apply_token_masks(float* logits, int num_rows, int vocab, const int32_t* mask_row, const uint32_t* masks, int words,
                              cudaStream_t stream) {
  if (num_rows <= 0) return cudaSuccess;
  if (!logits || !mask_row || !masks || vocab <= 0 || words != (vocab + 31) / 32) return cudaErrorInvalidValue;
  const dim3 grid(std::min(ceil_div(vocab, kThreads), 64u), unsigned(num_rows));
  mask_kernel<<<grid, kThreads, 0, stream>>>(logits, vocab, mask_row, masks, words);
  return cudaGetLastError();
}

size_t sampling_workspace_bytes(int max_rows, int vocab) {
  if (max_rows <= 0 || vocab <= 0) return 0;
  return 2 * align_up(size_t(max_rows) * size_t(vocab) * sizeof(float));
}

cudaError_t sample(const SamplingArgs& a, cudaStream_t stream) {
  if (a.num_rows <= 0) return cudaSuccess;
  if (a.vocab <= 0 || !a.logits || !a.out_token || !a.workspace || a.max_top_n < 0 || a.max_top_n > kMaxTopLogprobs) return cudaErrorInvalidValue;
  float* zbuf = static_cast<float*>(a.workspace);
  int32_t* cnt = reinterpret_cast<int32_t*>(static_cast<char*>(a.workspace) + align_up(size_t(a.num_rows) * size_t(a.vocab) * sizeof(float)));
  sample_kernel<<<a.num_rows, kThreads, 0, stream>>>(a, zbuf, cnt);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace weft
