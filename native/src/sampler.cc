#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/simd_ops.h"

namespace weft {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform in [0, 1), a pure function of (seed, counter).
double uniform(uint64_t seed, uint64_t counter) {
  return double(splitmix64(splitmix64(seed) ^ (counter * 0xD1B54A32D192ED03ull)) >> 11) * 0x1.0p-53;
}

void apply_penalties(float* logits, int vocab, const SampleParams& p, const int32_t* history, int history_len, int prompt_len,
                     std::vector<int32_t>& counts) {
  const bool rep = p.repetition_penalty != 1.0f, pres_freq = p.presence_penalty != 0 || p.frequency_penalty != 0;
  if (!rep && !pres_freq) return;
  if (rep) {
    for (int i = 0; i < history_len; ++i) {
      const int32_t t = history[i];
      if (t < 0 || t >= vocab || counts[t] < 0) continue;
      logits[t] = logits[t] > 0 ? logits[t] / p.repetition_penalty : logits[t] * p.repetition_penalty;
      counts[t] = -1;  // mark: penalized once
    }
    for (int i = 0; i < history_len; ++i)
      if (history[i] >= 0 && history[i] < vocab) counts[history[i]] = 0;
  }
  if (pres_freq) {
    for (int i = std::max(prompt_len, 0); i < history_len; ++i)
      if (history[i] >= 0 && history[i] < vocab) ++counts[history[i]];
    for (int i = std::max(prompt_len, 0); i < history_len; ++i) {
      const int32_t t = history[i];
      if (t < 0 || t >= vocab || counts[t] == 0) continue;
      logits[t] -= p.presence_penalty + p.frequency_penalty * counts[t];
      counts[t] = 0;
    }
  }
}

// The chosen token's log-prob and the top_n likeliest (best first, ties to the lower id). The top
// is kept in one pass over the row, a sorted list of top_n that a logit enters only when it beats
// the list's last: a row of a 32K vocabulary costs about one comparison a logit, where sorting a
// copy of it took as long as the log-sum-exp.
void log_softmax_top(const float* logits, int vocab, int top_n, int32_t chosen, SampleScratch* s, SampleResult* out) {
  const float lse = log_sum_exp_isa(s->isa, logits, vocab);
  out->logprob = logits[chosen] - lse;
  out->top.clear();
  if (top_n <= 0) return;
  top_n = std::min(top_n, vocab);
  auto& c = s->cand;
  c.clear();
  c.reserve(top_n + 1);
  for (int i = 0; i < vocab; ++i) {
    const float x = logits[i];
    if (int(c.size()) == top_n && !(x > c.back().first)) continue;
    // after the kept ones with the same logit: their ids are lower
    auto at = std::upper_bound(c.begin(), c.end(), x, [](float v, const std::pair<float, int32_t>& e) { return v > e.first; });
    c.insert(at, {x, i});
    if (int(c.size()) > top_n) c.pop_back();
  }
  for (const auto& [logit, id] : c) out->top.push_back({id, logit - lse});
}

int32_t argmax(const float* x, int n) {
  int32_t best = 0;
  for (int i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

int32_t sample_stochastic(const float* logits, int vocab, const SampleParams& p, double u, SampleScratch* s) {
  auto& c = s->cand;
  c.resize(vocab);
  for (int i = 0; i < vocab; ++i) c[i] = {logits[i] / p.temperature, i};
  auto desc = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  size_t n = c.size();
  const bool need_order = p.top_p < 1.0f || p.min_p > 0.0f;
  if (p.top_k > 0 && size_t(p.top_k) < n) {
    std::nth_element(c.begin(), c.begin() + p.top_k, c.end(), desc);
    n = p.top_k;
  }
  if (need_order || n < size_t(vocab)) std::sort(c.begin(), c.begin() + n, desc);
  const float mx = need_order || n < size_t(vocab) ? c[0].first : std::max_element(c.begin(), c.end())->first;
  double total = 0;
  for (size_t i = 0; i < n; ++i) total += (c[i].first = std::exp(c[i].first - mx));
  if (p.min_p > 0) {  // c is sorted: c[0] holds the largest probability
    const double floor = p.min_p * c[0].first;
    size_t keep = 1;
    while (keep < n && c[keep].first >= floor) ++keep;
    n = keep;
    total = 0;
    for (size_t i = 0; i < n; ++i) total += c[i].first;
  }
  if (p.top_p < 1.0f) {
    double cum = 0;
    size_t keep = 0;
    while (keep < n) {
      cum += c[keep++].first;
      if (cum >= p.top_p * total) break;
    }
    n = keep;
    total = cum;
  }
  double target = u * total, acc = 0;
  for (size_t i = 0; i < n; ++i) {
    acc += c[i].first;
    if (acc > target) return c[i].second;
  }
  return c[n - 1].second;
}

}  // namespace

void score_row(const float* logits, int vocab, int32_t target, int top_n, SampleScratch* s, SampleResult* out, int32_t* rank) {
  out->token = target;
  log_softmax_top(logits, vocab, top_n, target, s, out);
  int32_t above = 0;
  for (int i = 0; i < vocab; ++i) above += logits[i] > logits[target];
  *rank = above + 1;
}

void sample_row(const float* logits, int vocab, const SampleParams& p, const int32_t* history, int history_len, int prompt_len, uint64_t counter,
                SampleScratch* s, SampleResult* out, const uint32_t* mask, const LogitBias& bias) {
  if (mask || bias.count > 0) {
    s->masked.assign(logits, logits + vocab);
    if (mask)
      for (int t = 0; t < vocab; ++t)
        if (!((mask[t >> 5] >> (t & 31)) & 1u)) s->masked[t] = -INFINITY;
    for (int j = 0; j < bias.count; ++j) s->masked[bias.ids[j]] += bias.values[j];
    logits = s->masked.data();
  }
  s->logits.assign(logits, logits + vocab);
  if (s->counts.size() != size_t(vocab)) s->counts.assign(vocab, 0);
  float* z = s->logits.data();
  apply_penalties(z, vocab, p, history, history_len, prompt_len, s->counts);
  const bool greedy = p.temperature < 1e-5f || p.top_k == 1;
  out->token = greedy ? argmax(z, vocab) : sample_stochastic(z, vocab, p, uniform(p.seed, counter), s);
  if (p.num_logprobs >= 0) log_softmax_top(logits, vocab, p.num_logprobs, out->token, s, out);
  else out->logprob = NAN, out->top.clear();
}

}  // namespace weft
