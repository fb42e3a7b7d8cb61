// Per-sequence sampling from one row of logits: penalties, greedy / temperature, top-k, top-p,
// min-p, a counter-based seeded RNG (same seed and position → same draw, whatever the batch),
// and log-probabilities of the raw model distribution.
#pragma once
#include <cstdint>
#include <vector>

namespace weft {

struct SampleParams {
  float temperature = 0;
  int top_k = 0;
  float top_p = 1, min_p = 0;
  float repetition_penalty = 1, presence_penalty = 0, frequency_penalty = 0;
  uint64_t seed = 0;
  int num_logprobs = -1;
};

struct SampleScratch {
  std::vector<float> logits;
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
void sample_row(const float* logits, int vocab, const SampleParams& p, const int32_t* history, int history_len,
                int prompt_len, uint64_t counter, SampleScratch* scratch, SampleResult* out);

}  // namespace weft
