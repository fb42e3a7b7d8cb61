// Sampling on the device, one row of logits per sampled sequence: penalties, greedy,
// temperature, top-k, top-p, min-p, a counter-based seeded RNG, and log-probabilities of the
// raw (unpenalized) distribution. Only token ids and the asked-for logprobs go back to the host.
// Semantics follow the CPU sampler (native/src/sampler.cc): greedy (temperature < 1e-5 or
// top_k == 1) is the argmax of the penalized logits, lowest id on ties; the random draw is
// uniform(seed, counter) with the same splitmix64 construction, so a draw depends only on the
// seed and the position, never on the batch.
#pragma once
#include "cuda/common.cuh"

namespace weft {
namespace cuda {

// 32: the top 2k candidates of a beam search of width k up to 16 (OpenAI's top_logprobs stops at 20).
constexpr int kMaxTopLogprobs = 32;

struct SamplingArgs {
  int num_rows = 0, vocab = 0;
  const float* logits = nullptr;  // [num_rows][vocab] device, raw model output
  // per row, device arrays [num_rows]
  const float* temperature = nullptr;
  const int32_t* top_k = nullptr;  // 0 = off
  const float* top_p = nullptr;  // 1 = off
  const float* min_p = nullptr;  // 0 = off
  const float* repetition_penalty = nullptr;  // 1 = off
  const float* presence_penalty = nullptr;  // 0 = off
  const float* frequency_penalty = nullptr;  // 0 = off
  const uint64_t* seeds = nullptr;
  const uint64_t* counters = nullptr;  // the position the sampled token will take
  const int32_t* num_logprobs = nullptr;  // -1: none; 0: chosen only; k <= kMaxTopLogprobs: + top k
  // penalty history (CSR): tokens [hist_offsets[r], hist_offsets[r+1]) of hist_tokens are the
  // sequence's tokens at positions 0, 1, …; the first prompt_lens[r] are the prompt. Rows without
  // penalties may have an empty range.
  const int32_t* hist_offsets = nullptr;  // [num_rows + 1]
  const int32_t* hist_tokens = nullptr;
  const int32_t* prompt_lens = nullptr;  // [num_rows]
  int max_top_n = 0;  // host: max num_logprobs over the rows (0..kMaxTopLogprobs)
  // outputs, device
  int32_t* out_token = nullptr;  // [num_rows]
  float* out_logprob = nullptr;  // [num_rows] NaN when num_logprobs < 0
  int32_t* out_top_ids = nullptr;  // [num_rows][max_top_n], -1 padded
  float* out_top_logprobs = nullptr;  // [num_rows][max_top_n], NaN padded
  void* workspace = nullptr;  // sampling_workspace_bytes(num_rows, vocab)
};

size_t sampling_workspace_bytes(int max_rows, int vocab);

cudaError_t sample(const SamplingArgs& a, cudaStream_t stream);

// Token masks (StepInput::token_masks), in place before sample(): for each row r with
// mask_row[r] >= 0, the logits of the tokens not allowed by masks[mask_row[r]] ([words] each,
// bit t & 31 of word t >> 5) become -inf. Rows with mask_row[r] < 0 are untouched.
cudaError_t apply_token_masks(float* logits, int num_rows, int vocab, const int32_t* mask_row, const uint32_t* masks, int words, cudaStream_t stream);

// Logit biases (StepInput::bias_*), in place after the masks: row r adds values[j] to the logit
// of token ids[j] for j in [offsets[r], offsets[r+1]), in order (as the CPU sampler does).
cudaError_t apply_logit_bias(float* logits, int num_rows, int vocab, const int32_t* offsets, const int32_t* ids, const float* values,
                             cudaStream_t stream);

}  // namespace cuda
}  // namespace weft
