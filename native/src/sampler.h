// Per-sequence sampling from one row of logits: penalties, greedy / temperature, top-k, top-p,
// min-p, a counter-based seeded RNG (same seed and position → same draw, whatever the batch),
// and log-probabilities of the raw model distribution.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/isa.h"
#include "weft_engine.h"

namespace weft {

struct SampleParams {
#define WEFT_SAMPLE_PARAM(T, name, js, off) T name = off;
  WEFT_SAMPLING_FIELDS(WEFT_SAMPLE_PARAM)
#undef WEFT_SAMPLE_PARAM
  uint64_t seed = 0;

  // Row i of a step's sampling arrays.
  static SampleParams of(const StepInput& in, int i) {
    SampleParams p;
#define WEFT_SAMPLE_PARAM_OF(T, name, js, off) p.name = in.name[i];
    WEFT_SAMPLING_FIELDS(WEFT_SAMPLE_PARAM_OF)
#undef WEFT_SAMPLE_PARAM_OF
    p.seed = uint64_t(in.seeds[2 * i]) | (uint64_t(in.seeds[2 * i + 1]) << 32);
    return p;
  }
};

struct SampleScratch {
  Isa isa = Isa::scalar;  // the engine's, for the log-softmax of log-probs
  std::vector<float> logits;
  std::vector<float> masked;  // the raw logits with a token mask applied
  std::vector<int32_t> counts;  // per vocab id, all zero between calls
  std::vector<std::pair<float, int32_t>> cand;
};

struct SampleResult {
  int32_t token = -1;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // (id, logprob), best first
};

// history: the sequence's tokens [0, history_len); the first prompt_len are the prompt.
// counter: the position the sampled token will take (makes the draw reproducible).
// mask: the allowed tokens (StepInput::token_masks), or nullptr; disallowed logits count as -inf
// for everything, log-probs included.
// bias: num_bias (token, added logit) pairs, applied after the mask, before everything else.
struct LogitBias {
  const int32_t* ids = nullptr;
  const float* values = nullptr;
  int count = 0;
};
void sample_row(const float* logits, int vocab, const SampleParams& p, const int32_t* history, int history_len, int prompt_len, uint64_t counter,
                SampleScratch* scratch, SampleResult* out, const uint32_t* mask = nullptr, const LogitBias& bias = {});

// The log-prob of `target` under the raw distribution of `logits` (a log-softmax), and the top_n
// likeliest tokens' (best first, ties to the lower id): prompt scoring. *rank: 1 + the number of
// tokens with a larger logit (vLLM's rank of a prompt token).
void score_row(const float* logits, int vocab, int32_t target, int top_n, SampleScratch* scratch, SampleResult* out, int32_t* rank);

}  // namespace weft
