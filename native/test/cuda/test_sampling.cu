// Device sampling (native/src/cuda/sampling.cu) against the CPU sampler (weft::sample_row):
// greedy tokens bit-exact (with and without penalties), log-probabilities, the stochastic draw
// (deterministic, never outside the CPU's kept set, and the same distribution as the CPU's over
// thousands of (seed, counter) pairs), and edge cases.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "cuda/sampling.cuh"
#include "harness.h"
#include "sampler.h"

namespace {

using weft::SampleParams;
using weft_test::cuda_ok;
using weft_test::DeviceBuf;
using weft_test::Harness;

struct Row {
  SampleParams p;
  uint64_t counter = 0;
  std::vector<int32_t> history;
  int prompt_len = 0;
};

struct Out {
  std::vector<int32_t> token;
  std::vector<float> logprob;
  std::vector<int32_t> top_ids;  // [rows][max_top_n]
  std::vector<float> top_lps;
};

// One sample() call over rows (logits: [rows][vocab]). The workspace is filled with `fill`
// bytes first: the kernel must not depend on its contents.
Out run_gpu(const std::vector<float>& logits, int vocab, const std::vector<Row>& rows, int max_top_n, unsigned char fill = 0xA5) {
  const int n = int(rows.size());
  std::vector<float> temp(n), top_p(n), min_p(n), rp(n), pp(n), fp(n);
  std::vector<int32_t> top_k(n), nlp(n), offs(n + 1, 0), plen(n), toks;
  std::vector<uint64_t> seeds(n), ctrs(n);
  for (int r = 0; r < n; ++r) {
    const SampleParams& p = rows[r].p;
    temp[r] = p.temperature, top_k[r] = p.top_k, top_p[r] = p.top_p, min_p[r] = p.min_p;
    rp[r] = p.repetition_penalty, pp[r] = p.presence_penalty, fp[r] = p.frequency_penalty;
    seeds[r] = p.seed, ctrs[r] = rows[r].counter, nlp[r] = p.num_logprobs, plen[r] = rows[r].prompt_len;
    toks.insert(toks.end(), rows[r].history.begin(), rows[r].history.end());
    offs[r + 1] = int32_t(toks.size());
  }
  DeviceBuf<float> d_logits(logits), d_temp(temp), d_top_p(top_p), d_min_p(min_p), d_rp(rp), d_pp(pp), d_fp(fp);
  DeviceBuf<int32_t> d_top_k(top_k), d_nlp(nlp), d_offs(offs), d_plen(plen), d_toks(toks);
  DeviceBuf<uint64_t> d_seeds(seeds), d_ctrs(ctrs);
  DeviceBuf<int32_t> d_token(n), d_top_ids(size_t(n) * max_top_n);
  DeviceBuf<float> d_logprob(n), d_top_lps(size_t(n) * max_top_n);
  const size_t ws_bytes = weft::cuda::sampling_workspace_bytes(n, vocab);
  DeviceBuf<unsigned char> ws(ws_bytes);
  cuda_ok(cudaMemset(ws.ptr, fill, ws_bytes), "memset workspace");

  weft::cuda::SamplingArgs a;
  a.num_rows = n, a.vocab = vocab, a.logits = d_logits.ptr;
  a.temperature = d_temp.ptr, a.top_k = d_top_k.ptr, a.top_p = d_top_p.ptr, a.min_p = d_min_p.ptr;
  a.repetition_penalty = d_rp.ptr, a.presence_penalty = d_pp.ptr, a.frequency_penalty = d_fp.ptr;
  a.seeds = d_seeds.ptr, a.counters = d_ctrs.ptr, a.num_logprobs = d_nlp.ptr;
  a.hist_offsets = d_offs.ptr, a.hist_tokens = d_toks.ptr, a.prompt_lens = d_plen.ptr;
  a.max_top_n = max_top_n;
  a.out_token = d_token.ptr, a.out_logprob = d_logprob.ptr;
  a.out_top_ids = max_top_n ? d_top_ids.ptr : nullptr;
  a.out_top_logprobs = max_top_n ? d_top_lps.ptr : nullptr;
  a.workspace = ws.ptr;
  cuda_ok(weft::cuda::sample(a, nullptr), "sample launch");
  weft_test::sync("sample");

  Out o;
  o.token = d_token.download();
  o.logprob = d_logprob.download();
  if (max_top_n) {
    o.top_ids = d_top_ids.download();
    o.top_lps = d_top_lps.download();
  }
  return o;
}

std::vector<weft::SampleResult> run_cpu(const std::vector<float>& logits, int vocab, const std::vector<Row>& rows) {
  weft::SampleScratch scratch;
  std::vector<weft::SampleResult> out(rows.size());
  for (size_t r = 0; r < rows.size(); ++r)
    weft::sample_row(logits.data() + r * vocab, vocab, rows[r].p, rows[r].history.data(), int(rows[r].history.size()), rows[r].prompt_len,
                     rows[r].counter, &scratch, &out[r]);
  return out;
}

// Distinct values: a random permutation of an evenly spaced grid in [lo, hi).
std::vector<float> distinct_logits(int vocab, uint32_t seed, float lo = -8.f, float hi = 8.f) {
  std::vector<int> perm(vocab);
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937 rng(seed);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<float> v(vocab);
  for (int i = 0; i < vocab; ++i) v[i] = lo + (hi - lo) * (float(perm[i]) + 0.5f) / float(vocab);
  return v;
}

// Ids of the n largest values, best first.
std::vector<int> top_ids_of(const float* x, int vocab, int n) {
  std::vector<int> ids(vocab);
  std::iota(ids.begin(), ids.end(), 0);
  n = std::min(n, vocab);
  std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&](int a, int b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
  ids.resize(n);
  return ids;
}

// A history with repeats that hits the row's best tokens (so penalties move the argmax) and
// random others; the prompt is the first half.
void make_history(Row& row, const float* logits, int vocab, std::mt19937& rng, int len) {
  const std::vector<int> best = top_ids_of(logits, vocab, 8);
  std::uniform_int_distribution<int> any(0, vocab - 1), pick(0, int(best.size()) - 1), coin(0, 1);
  row.history.clear();
  for (int i = 0; i < len; ++i) row.history.push_back(coin(rng) ? best[pick(rng)] : any(rng));
  row.prompt_len = len / 2;
}

void set_penalties(SampleParams& p) {
  p.repetition_penalty = 1.3f;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.3f;
}

// The CPU sampler's penalties (apply_penalties in sampler.cc), for the kept-set reference.
std::vector<float> penalized(const float* logits, int vocab, const SampleParams& p, const std::vector<int32_t>& h, int prompt_len) {
  std::vector<float> z(logits, logits + vocab);
  std::vector<int> seen(vocab, 0), count(vocab, 0);
  for (size_t i = 0; i < h.size(); ++i) {
    const int t = h[i];
    if (t < 0 || t >= vocab) continue;
    seen[t] = 1;
    if (int(i) >= std::max(prompt_len, 0)) ++count[t];
  }
  for (int t = 0; t < vocab; ++t) {
    if (!seen[t]) continue;
    if (p.repetition_penalty != 1.0f) z[t] = z[t] > 0 ? z[t] / p.repetition_penalty : z[t] * p.repetition_penalty;
    if ((p.presence_penalty != 0 || p.frequency_penalty != 0) && count[t] > 0) z[t] -= p.presence_penalty + p.frequency_penalty * count[t];
  }
  return z;
}

// The CPU's kept set (sample_stochastic in sampler.cc) with each kept id's probability.
std::vector<double> cpu_kept_probs(const std::vector<float>& z, const SampleParams& p) {
  const int vocab = int(z.size());
  std::vector<std::pair<float, int>> c(vocab);
  for (int i = 0; i < vocab; ++i) c[i] = {z[i] / p.temperature, i};
  std::sort(c.begin(), c.end(), [](const std::pair<float, int>& a, const std::pair<float, int>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  size_t n = c.size();
  if (p.top_k > 0 && size_t(p.top_k) < n) n = p.top_k;
  const float mx = c[0].first;
  std::vector<float> pr(n);
  for (size_t i = 0; i < n; ++i) pr[i] = std::exp(c[i].first - mx);
  if (p.min_p > 0) {
    const double floor = p.min_p * pr[0];
    size_t keep = 1;
    while (keep < n && pr[keep] >= floor) ++keep;
    n = keep;
  }
  double total = 0;
  for (size_t i = 0; i < n; ++i) total += pr[i];
  if (p.top_p < 1.0f) {
    double cum = 0;
    size_t keep = 0;
    while (keep < n) {
      cum += pr[keep++];
      if (cum >= p.top_p * total) break;
    }
    n = keep;
    total = cum;
  }
  std::vector<double> prob(vocab, 0.0);
  for (size_t i = 0; i < n; ++i) prob[c[i].second] = pr[i] / total;
  return prob;
}

// Many draws of one row of logits with (seed, counter) varying: deterministic, inside the CPU's
// kept set, and distributed as the CPU sampler (empirical vs empirical and vs exact).
void check_distribution(Harness& h, const std::string& name, const std::vector<float>& logits, const SampleParams& p,
                        const std::vector<int32_t>& history = {}, int prompt_len = 0, int draws = 8192, double max_tvd = 0.05) {
  const int vocab = int(logits.size());
  std::vector<float> all;
  all.reserve(size_t(draws) * vocab);
  std::vector<Row> rows(draws);
  for (int r = 0; r < draws; ++r) {
    all.insert(all.end(), logits.begin(), logits.end());
    rows[r].p = p;
    rows[r].p.seed = 0x5eed0000ull + 7919ull * r;
    rows[r].counter = 3 + (uint64_t(r) * 13) % 1009;
    rows[r].history = history;
    rows[r].prompt_len = prompt_len;
  }
  const Out g1 = run_gpu(all, vocab, rows, 0, 0xA5);
  const Out g2 = run_gpu(all, vocab, rows, 0, 0x00);
  h.check_equal(g1.token, g2.token, name + ": same draws twice (different workspace garbage)");
  const std::vector<weft::SampleResult> c = run_cpu(all, vocab, rows);
  const std::vector<double> prob = cpu_kept_probs(penalized(logits.data(), vocab, p, history, prompt_len), p);

  std::vector<double> hg(vocab, 0), hc(vocab, 0);
  int outside = 0, bad_id = 0;
  for (int r = 0; r < draws; ++r) {
    const int t = g1.token[r];
    if (t < 0 || t >= vocab) {
      ++bad_id;
      continue;
    }
    if (prob[t] == 0) ++outside;
    hg[t] += 1.0 / draws;
    hc[c[r].token] += 1.0 / draws;
  }
  double tvd_cpu = 0, tvd_exact = 0, tvd_cpu_exact = 0;
  for (int i = 0; i < vocab; ++i) {
    tvd_cpu += 0.5 * std::fabs(hg[i] - hc[i]);
    tvd_exact += 0.5 * std::fabs(hg[i] - prob[i]);
    tvd_cpu_exact += 0.5 * std::fabs(hc[i] - prob[i]);
  }
  int kept = 0;
  for (double q : prob) kept += q > 0;
  std::printf("  info  [%s] %s: %d draws, kept %d/%d, tvd(gpu,cpu)=%.4f tvd(gpu,exact)=%.4f tvd(cpu,exact)=%.4f\n", h.current.c_str(), name.c_str(),
              draws, kept, vocab, tvd_cpu, tvd_exact, tvd_cpu_exact);
  h.check(bad_id == 0, name + ": token ids in range (" + std::to_string(bad_id) + " bad)");
  h.check(outside == 0, name + ": never outside the CPU's kept set (" + std::to_string(outside) + " outside)");
  h.check(tvd_cpu < max_tvd, name + ": total variation vs the CPU's draws " + std::to_string(tvd_cpu));
  h.check(tvd_exact < max_tvd, name + ": total variation vs the exact distribution " + std::to_string(tvd_exact));
}

// A small peaked row: distinct logits 4 - 0.35 * rank, ranks shuffled over the ids.
std::vector<float> peaked_logits(int vocab, uint32_t seed) {
  std::vector<int> perm(vocab);
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937 rng(seed);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<float> v(vocab);
  for (int i = 0; i < vocab; ++i) v[i] = 4.f - 0.35f * float(perm[i]);
  return v;
}

void check_logprobs(Harness& h, const std::string& what, const Out& g, const std::vector<weft::SampleResult>& c, const std::vector<Row>& rows,
                    int max_top_n) {
  const int n = int(rows.size());
  std::vector<float> got_lp, want_lp, got_top, want_top;
  int id_mismatch = 0, pad_bad = 0;
  for (int r = 0; r < n; ++r) {
    const int k = rows[r].p.num_logprobs;
    if (k < 0) {
      pad_bad += !std::isnan(g.logprob[r]);
    } else {
      got_lp.push_back(g.logprob[r]);
      want_lp.push_back(c[r].logprob);
    }
    const int shown = k < 0 ? 0 : std::min(k, max_top_n);
    for (int j = 0; j < max_top_n; ++j) {
      const int32_t id = g.top_ids[size_t(r) * max_top_n + j];
      const float lp = g.top_lps[size_t(r) * max_top_n + j];
      if (j < shown && j < int(c[r].top.size())) {
        id_mismatch += id != c[r].top[j].first;
        got_top.push_back(lp);
        want_top.push_back(c[r].top[j].second);
      } else {
        pad_bad += id != -1 || !std::isnan(lp);
      }
    }
  }
  h.check_close(got_lp.data(), want_lp.data(), got_lp.size(), 1e-4f, 0.f, what + ": chosen logprob");
  h.check_close(got_top.data(), want_top.data(), got_top.size(), 1e-4f, 0.f, what + ": top logprobs");
  h.check(id_mismatch == 0, what + ": top ids equal (" + std::to_string(id_mismatch) + " differ)");
  h.check(pad_bad == 0, what + ": -1 / NaN padding (" + std::to_string(pad_bad) + " wrong)");
}

const int kVocabs[] = {512, 32000, 128256};
const int kRowCounts[] = {1, 3, 64};

}  // namespace

// (a) greedy (temperature 0, and top_k 1 at a positive temperature), with and without penalties:
// the same token ids as the CPU, bit for bit.
WEFT_CUDA_TEST(sampling_greedy) {
  for (int vocab : kVocabs)
    for (int n : kRowCounts) {
      std::mt19937 rng(vocab * 31 + n);
      std::vector<float> logits;
      std::vector<Row> rows(n);
      for (int r = 0; r < n; ++r) {
        const std::vector<float> row = distinct_logits(vocab, uint32_t(vocab + 977 * r + n));
        logits.insert(logits.end(), row.begin(), row.end());
        Row& w = rows[r];
        w.counter = 100 + r;
        w.p.seed = 42 + r;
        switch (r % 4) {
          case 0:
            break;  // plain argmax
          case 1:
            set_penalties(w.p);
            break;
          case 2:
            set_penalties(w.p), w.p.top_k = 1, w.p.temperature = 0.9f;
            break;
          case 3:
            w.p.repetition_penalty = 1.3f;
            break;  // repetition only
        }
        if (r % 4 != 0 || r == 0) make_history(w, row.data(), vocab, rng, 40 + (r * 7) % 60);
        if (r == 0 && n > 1) set_penalties(w.p), w.p.presence_penalty = 0;  // frequency only
      }
      const Out g = run_gpu(logits, vocab, rows, 0);
      const std::vector<weft::SampleResult> c = run_cpu(logits, vocab, rows);
      std::vector<int32_t> want(n);
      int moved = 0;
      for (int r = 0; r < n; ++r) {
        want[r] = c[r].token;
        moved += c[r].token != top_ids_of(logits.data() + size_t(r) * vocab, vocab, 1)[0];
      }
      h.check_equal(g.token, want,
                    "vocab " + std::to_string(vocab) + ", " + std::to_string(n) + " rows (" + std::to_string(moved) + " argmax moved by penalties)");
    }
}

// (b) log-probabilities of the raw logits: the chosen token's and the top 20, next to rows with
// fewer (5, 0) or none (-1).
WEFT_CUDA_TEST(sampling_logprobs) {
  const int kTop = weft::cuda::kMaxTopLogprobs;
  for (int vocab : kVocabs)
    for (int n : kRowCounts) {
      std::mt19937 rng(vocab * 17 + n);
      std::vector<float> logits;
      std::vector<Row> rows(n);
      for (int r = 0; r < n; ++r) {
        const std::vector<float> row = distinct_logits(vocab, uint32_t(3 * vocab + 131 * r + n));
        logits.insert(logits.end(), row.begin(), row.end());
        Row& w = rows[r];
        static const int kNum[] = {kTop, 5, 0, -1, 1};
        w.p.num_logprobs = n == 1 ? kTop : kNum[r % 5];
        if (r % 2) {  // penalties move the chosen token, not the logprobs
          set_penalties(w.p);
          make_history(w, row.data(), vocab, rng, 30);
        }
      }
      const Out g = run_gpu(logits, vocab, rows, kTop);
      const std::vector<weft::SampleResult> c = run_cpu(logits, vocab, rows);
      std::vector<int32_t> gt(g.token), ct(n);
      for (int r = 0; r < n; ++r) ct[r] = c[r].token;
      const std::string what = "vocab " + std::to_string(vocab) + ", " + std::to_string(n) + " rows";
      h.check_equal(gt, ct, what + ": tokens");
      check_logprobs(h, what, g, c, rows, kTop);
    }
}

// (c) stochastic sampling: temperature, top-k, top-p, min-p, combined, with penalties.
WEFT_CUDA_TEST(sampling_stochastic) {
  const std::vector<float> logits = peaked_logits(64, 7);
  struct Case {
    const char* name;
    float temperature;
    int top_k;
    float top_p, min_p;
  };
  const Case cases[] = {
      {"T0.7", 0.7f, 0, 1.f, 0.f},
      {"T1.3", 1.3f, 0, 1.f, 0.f},
      {"T1.0 top_k5", 1.0f, 5, 1.f, 0.f},
      {"T1.3 top_k50", 1.3f, 50, 1.f, 0.f},
      {"T0.7 top_p0.5", 0.7f, 0, 0.5f, 0.f},
      {"T1.3 top_p0.9", 1.3f, 0, 0.9f, 0.f},
      {"T1.3 min_p0.05", 1.3f, 0, 1.f, 0.05f},
      {"T1.3 top_k50 top_p0.9 min_p0.05", 1.3f, 50, 0.9f, 0.05f},
      {"T0.7 top_k5 top_p0.9", 0.7f, 5, 0.9f, 0.f},
  };
  for (const Case& k : cases) {
    SampleParams p;
    p.temperature = k.temperature, p.top_k = k.top_k, p.top_p = k.top_p, p.min_p = k.min_p;
    check_distribution(h, k.name, logits, p);
  }
  {  // penalties on the stochastic path
    SampleParams p;
    p.temperature = 1.0f, p.top_p = 0.9f;
    set_penalties(p);
    const std::vector<int32_t> history = {3, 9, 3, 17, 5, 9, 9, 40, 3, 22, 9, 5};
    std::vector<int32_t> hist = history;
    const std::vector<int> best = top_ids_of(logits.data(), 64, 4);
    hist.insert(hist.end(), best.begin(), best.end());
    hist.push_back(best[0]);
    check_distribution(h, "T1.0 top_p0.9 penalties", logits, p, hist, 6);
  }
  {  // top_k 1 at a positive temperature is greedy: exactly the CPU's token
    SampleParams p;
    p.temperature = 1.0f, p.top_k = 1;
    std::vector<Row> rows(64);
    std::vector<float> all;
    for (int r = 0; r < 64; ++r) {
      const std::vector<float> row = distinct_logits(4096, 500 + r);
      all.insert(all.end(), row.begin(), row.end());
      rows[r].p = p, rows[r].p.seed = r, rows[r].counter = r;
    }
    const Out g = run_gpu(all, 4096, rows, 0);
    const std::vector<weft::SampleResult> c = run_cpu(all, 4096, rows);
    std::vector<int32_t> want(64);
    for (int r = 0; r < 64; ++r) want[r] = c[r].token;
    h.check_equal(g.token, want, "top_k 1 (greedy) tokens");
  }
  {  // a large vocab: deterministic, inside the kept set
    const int vocab = 128256, n = 8;
    std::vector<float> all;
    std::vector<Row> rows(n);
    for (int r = 0; r < n; ++r) {
      const std::vector<float> row = distinct_logits(vocab, 900 + r, -12.f, 12.f);
      all.insert(all.end(), row.begin(), row.end());
      SampleParams& p = rows[r].p;
      p.temperature = r % 2 ? 0.8f : 1.2f;
      p.top_k = r % 4 == 1 ? 40 : (r % 4 == 2 ? 2000 : 0);
      p.top_p = r % 3 == 0 ? 0.9f : (r % 3 == 1 ? 0.5f : 1.f);
      p.min_p = r == 5 ? 0.01f : 0.f;
      p.seed = 1234 + r;
      p.num_logprobs = 0;
      rows[r].counter = 77 * r;
    }
    const Out g1 = run_gpu(all, vocab, rows, 0, 0x11);
    const Out g2 = run_gpu(all, vocab, rows, 0, 0xEE);
    h.check_equal(g1.token, g2.token, "vocab 128256: same draws twice");
    const std::vector<weft::SampleResult> c = run_cpu(all, vocab, rows);
    int outside = 0;
    std::vector<float> got_lp(n), want_lp(n);
    for (int r = 0; r < n; ++r) {
      const float* x = all.data() + size_t(r) * vocab;
      const std::vector<double> prob = cpu_kept_probs(std::vector<float>(x, x + vocab), rows[r].p);
      const int t = g1.token[r];
      outside += t < 0 || t >= vocab || prob[t] == 0;
      // the sampled token's logprob: the CPU's log-sum-exp, recovered from its own token
      const float lse = x[c[r].token] - c[r].logprob;
      got_lp[r] = g1.logprob[r];
      want_lp[r] = t >= 0 && t < vocab ? x[t] - lse : NAN;
    }
    h.check(outside == 0, "vocab 128256: never outside the CPU's kept set (" + std::to_string(outside) + ")");
    h.check_close(got_lp.data(), want_lp.data(), n, 1e-4f, 0.f, "vocab 128256: logprob of the sampled token");
  }
}

// (d) edge cases.
WEFT_CUDA_TEST(sampling_edge_cases) {
  const std::vector<float> logits = peaked_logits(64, 11);
  {  // top_k above the vocab, top_p = 1 and min_p = 0 spelled out: no filtering
    SampleParams p;
    p.temperature = 1.0f, p.top_k = 1000, p.top_p = 1.0f, p.min_p = 0.f;
    check_distribution(h, "top_k 1000 > vocab, top_p 1, min_p 0", logits, p);
  }
  {  // everything but one token filtered out
    SampleParams p;
    p.temperature = 1.0f, p.top_p = 0.01f;
    check_distribution(h, "top_p 0.01 (one token left)", logits, p, {}, 0, 512);
    p.top_p = 1.f, p.min_p = 1.5f;
    check_distribution(h, "min_p 1.5 (one token left)", logits, p, {}, 0, 512);
    p.min_p = 0.f, p.top_p = 0.f;
    check_distribution(h, "top_p 0 (one token left)", logits, p, {}, 0, 512);
  }
  {  // exact ties: top_k and top_p split a group of equal values, lowest ids first
    std::vector<float> flat(64, 0.5f);
    flat[40] = 2.f;  // one clear best, then 63 equal
    SampleParams p;
    p.temperature = 1.0f, p.top_k = 5;
    check_distribution(h, "ties: top_k 5 of equal values", flat, p);
    p.top_k = 0, p.top_p = 0.3f;
    check_distribution(h, "ties: top_p 0.3 of equal values", flat, p);
  }
  {  // temperature at the 1e-5 boundary: just below is greedy, exactly 1e-5 samples (but the
     // distribution is a point mass on the argmax for these well-separated logits)
    const int vocab = 32000, n = 8;
    std::vector<float> all;
    std::vector<Row> rows(n);
    for (int r = 0; r < n; ++r) {
      const std::vector<float> row = distinct_logits(vocab, 70 + r);
      all.insert(all.end(), row.begin(), row.end());
      rows[r].p.temperature = r % 2 ? 1e-5f : std::nextafter(1e-5f, 0.f);
      rows[r].p.seed = r, rows[r].counter = r;
    }
    const Out g = run_gpu(all, vocab, rows, 0);
    const std::vector<weft::SampleResult> c = run_cpu(all, vocab, rows);
    std::vector<int32_t> want(n);
    for (int r = 0; r < n; ++r) want[r] = c[r].token;
    h.check_equal(g.token, want, "temperature 1e-5 and just below: the argmax");
  }
  {  // num_logprobs -1 next to 5 (max_top_n 5), and 0 next to 3
    const int vocab = 32000;
    std::vector<float> all;
    std::vector<Row> rows(4);
    const int nums[] = {-1, 5, 0, 3};
    for (int r = 0; r < 4; ++r) {
      const std::vector<float> row = distinct_logits(vocab, 300 + r);
      all.insert(all.end(), row.begin(), row.end());
      rows[r].p.num_logprobs = nums[r];
    }
    const Out g = run_gpu(all, vocab, rows, 5);
    const std::vector<weft::SampleResult> c = run_cpu(all, vocab, rows);
    check_logprobs(h, "num_logprobs -1/5/0/3", g, c, rows, 5);
  }
  {  // tiny vocabularies (odd sizes, fewer ids than the top logprobs asked for)
    for (int vocab : {1, 2, 7}) {
      std::vector<float> all;
      std::vector<Row> rows(4);
      for (int r = 0; r < 4; ++r) {
        const std::vector<float> row = distinct_logits(vocab, 40 + r);
        all.insert(all.end(), row.begin(), row.end());
        rows[r].p.num_logprobs = 20;
        rows[r].p.temperature = r < 2 ? 0.f : 1.f;
        rows[r].p.top_k = r == 3 ? 3 : 0;
        rows[r].p.top_p = r == 3 ? 0.8f : 1.f;
        rows[r].p.seed = r, rows[r].counter = r;
      }
      const Out g = run_gpu(all, vocab, rows, 20);
      const std::vector<weft::SampleResult> c = run_cpu(all, vocab, rows);
      const std::string what = "vocab " + std::to_string(vocab);
      int bad = 0;
      for (int r = 0; r < 4; ++r) {
        if (r < 2) bad += g.token[r] != c[r].token;
        bad += g.token[r] < 0 || g.token[r] >= vocab;
      }
      h.check(bad == 0, what + ": tokens (greedy equal, all in range)");
      // logprobs for greedy rows only (the stochastic rows may pick another token)
      std::vector<Row> gr(rows.begin(), rows.begin() + 2);
      Out gg;
      gg.token.assign(g.token.begin(), g.token.begin() + 2);
      gg.logprob.assign(g.logprob.begin(), g.logprob.begin() + 2);
      gg.top_ids.assign(g.top_ids.begin(), g.top_ids.begin() + 40);
      gg.top_lps.assign(g.top_lps.begin(), g.top_lps.begin() + 40);
      std::vector<weft::SampleResult> cc(c.begin(), c.begin() + 2);
      check_logprobs(h, what, gg, cc, gr, 20);
    }
  }
  {  // NaN logits in greedy rows: a NaN at id 0 is never beaten (the CPU loop), others never win
    const int vocab = 512;
    std::vector<float> all;
    std::vector<Row> rows(2);
    for (int r = 0; r < 2; ++r) {
      std::vector<float> row = distinct_logits(vocab, 60 + r);
      row[r == 0 ? 0 : 17] = NAN;
      row[100] = NAN;
      all.insert(all.end(), row.begin(), row.end());
    }
    const Out g = run_gpu(all, vocab, rows, 0);
    const std::vector<weft::SampleResult> c = run_cpu(all, vocab, rows);
    h.check_equal(g.token, std::vector<int32_t>{c[0].token, c[1].token}, "greedy with NaN logits");
  }
  {  // a history with out-of-range ids and penalties on rows whose history is empty
    const int vocab = 512;
    std::vector<float> all;
    std::vector<Row> rows(3);
    std::mt19937 rng(5);
    for (int r = 0; r < 3; ++r) {
      const std::vector<float> row = distinct_logits(vocab, 80 + r);
      all.insert(all.end(), row.begin(), row.end());
      set_penalties(rows[r].p);
      if (r != 1) make_history(rows[r], row.data(), vocab, rng, 50);
      if (r == 2) rows[r].history.push_back(-3), rows[r].history.push_back(vocab + 5), rows[r].prompt_len = 100;
    }
    const Out g = run_gpu(all, vocab, rows, 0);
    const std::vector<weft::SampleResult> c = run_cpu(all, vocab, rows);
    h.check_equal(g.token, std::vector<int32_t>{c[0].token, c[1].token, c[2].token},
                  "penalties: empty history, invalid ids, prompt_len past the end");
  }
}

// (f) token masks (structured output): apply_token_masks sets exactly the disallowed logits of the
// masked rows to -inf and leaves unmasked rows alone; greedy rows then pick the CPU sampler's
// masked token (the CPU applies the same mask itself) with its log-prob over the allowed tokens,
// and stochastic rows only ever draw allowed tokens.
WEFT_CUDA_TEST(sampling_token_masks) {
  for (int vocab : kVocabs) {
    const int n = 6, words = (vocab + 31) / 32;
    std::mt19937 rng(vocab);
    std::vector<float> logits;
    std::vector<Row> rows(n);
    std::vector<int32_t> mask_row(n);
    std::vector<uint32_t> masks(size_t(n) * words, 0u);
    for (int r = 0; r < n; ++r) {
      const std::vector<float> row = distinct_logits(vocab, uint32_t(vocab * 7 + r));
      logits.insert(logits.end(), row.begin(), row.end());
      mask_row[r] = r == 1 ? -1 : n - 1 - r;  // row 1 unmasked; the others use masks in reverse order
      rows[r].counter = 50 + r;
      rows[r].p.seed = 7 + r;
      rows[r].p.num_logprobs = 0;
      if (r >= 3) rows[r].p.temperature = 1.f;  // stochastic
    }
    for (int m = 0; m < n; ++m) {
      uint32_t* w = &masks[size_t(m) * words];
      if (m == 2) {  // a single allowed token: the row's worst logit
        const int t = top_ids_of(&logits[size_t(n - 1 - m) * vocab], vocab, vocab).back();
        w[t >> 5] |= 1u << (t & 31);
        continue;
      }
      for (int t = 0; t < vocab; ++t)
        if (rng() % 10 == 0) w[t >> 5] |= 1u << (t & 31);
      w[0] |= 1u;  // never empty
    }
    const std::string tag = "vocab " + std::to_string(vocab);
    DeviceBuf<float> d_logits(logits);
    DeviceBuf<int32_t> d_rows(mask_row);
    DeviceBuf<uint32_t> d_masks(masks);
    cuda_ok(weft::cuda::apply_token_masks(d_logits.ptr, n, vocab, d_rows.ptr, d_masks.ptr, words, nullptr), "mask launch");
    weft_test::sync("apply_token_masks");
    const std::vector<float> got = d_logits.download();
    std::vector<float> want = logits;
    for (int r = 0; r < n; ++r)
      if (mask_row[r] >= 0)
        for (int t = 0; t < vocab; ++t)
          if (!((masks[size_t(mask_row[r]) * words + (t >> 5)] >> (t & 31)) & 1u)) want[size_t(r) * vocab + t] = -INFINITY;
    h.check(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0, tag + ": exactly the disallowed logits are -inf");

    const Out g = run_gpu(got, vocab, rows, 0);
    weft::SampleScratch scratch;
    for (int r = 0; r < n; ++r) {
      const uint32_t* m = mask_row[r] >= 0 ? &masks[size_t(mask_row[r]) * words] : nullptr;
      weft::SampleResult c;
      weft::sample_row(&logits[size_t(r) * vocab], vocab, rows[r].p, nullptr, 0, 0, rows[r].counter, &scratch, &c, m);
      const int tok = g.token[r];
      const bool allowed = tok >= 0 && tok < vocab && (!m || ((m[tok >> 5] >> (tok & 31)) & 1u));
      h.check(allowed, tag + " row " + std::to_string(r) + ": the sampled token is allowed");
      if (rows[r].p.temperature == 0.f) {
        h.check(tok == c.token, tag + " row " + std::to_string(r) + ": greedy equals the CPU's masked greedy");
        h.check(std::fabs(g.logprob[r] - c.logprob) < 1e-4f, tag + " row " + std::to_string(r) + ": log-prob over the allowed tokens");
      }
    }
  }
}
