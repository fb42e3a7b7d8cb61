#include "step_common.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace weft {

bool mask_allows_any(const uint32_t* mask, int vocab) {
  const int full = vocab / 32;
  for (int w = 0; w < full; ++w)
    if (mask[w]) return true;
  const int rest = vocab % 32;
  return rest > 0 && (mask[full] & ((1u << rest) - 1u)) != 0;
}

const uint32_t* step_mask(const StepInput& in, int i) {
  return in.num_masks > 0 && in.mask_index[i] >= 0 ? in.token_masks + size_t(in.mask_index[i]) * in.mask_words : nullptr;
}

LogitBias step_bias(const StepInput& in, int i) {
  if (!in.bias_offsets) return {};
  const int b = in.bias_offsets[i];
  return {in.bias_ids + b, in.bias_values + b, in.bias_offsets[i + 1] - b};
}

Status validate_step(const StepInput& in, const ModelConfig& cfg, int num_blocks, int block_size) {
  const int T = in.num_tokens, N = in.num_seqs, B = num_blocks, bs = block_size;
  auto bad = [](const std::string& m) { return Status::Error(StatusCode::bad_input, m); };
  if (T < 0 || N < 0 || (N > 0 && (!in.query_start || in.query_start[0] != 0 || in.query_start[N] != T)))
    return bad("query_start must run from 0 to num_tokens");
  for (int t = 0; t < T; ++t) {
    if (in.token_ids[t] < 0 || in.token_ids[t] >= cfg.vocab_size) return bad("token id out of range");
    if (in.slot_mapping[t] < 0 || in.slot_mapping[t] >= B * bs) return bad("slot out of range");
    if (in.positions[t] < 0) return bad("negative position");
  }
  for (int i = 0; i < N; ++i) {
    const int q0 = in.query_start[i], q1 = in.query_start[i + 1], ctx = in.context_lens[i];
    if (q1 < q0) return bad("query_start must not decrease");
    if (ctx > in.max_blocks_per_seq * bs) return bad("context longer than the block table");
    if (q1 > q0 && in.positions[q1 - 1] >= ctx) return bad("position beyond context length");
    if (in.do_sample[i] && q1 == q0) return bad("a sampled sequence needs at least one token");
    for (int b = 0; b < (ctx + bs - 1) / bs; ++b) {
      const int blk = in.block_tables[size_t(i) * in.max_blocks_per_seq + b];
      if (blk < 0 || blk >= B) return bad("block id out of range");
    }
  }
  if (in.num_history < 0 || (in.num_history > 0 && (!in.history_offsets || in.history_offsets[0] != 0)))
    return bad("history_offsets must start at 0");
  for (int i = 0; i < in.num_history; ++i)
    if (in.history_offsets[i + 1] < in.history_offsets[i]) return bad("history_offsets must not decrease");
  for (int c = 0; c < 2 * in.num_block_copies; ++c)
    if (in.block_copies[c] < 0 || in.block_copies[c] >= B) return bad("block copy id out of range");
  if (in.bias_offsets) {
    if (in.bias_offsets[0] != 0) return bad("bias_offsets must start at 0");
    for (int i = 0; i < N; ++i) {
      if (in.bias_offsets[i + 1] < in.bias_offsets[i]) return bad("bias_offsets must not decrease");
      for (int j = in.bias_offsets[i]; j < in.bias_offsets[i + 1]; ++j) {
        if (in.bias_ids[j] < 0 || in.bias_ids[j] >= cfg.vocab_size) return bad("logit bias token id out of range");
        if (!std::isfinite(in.bias_values[j])) return bad("logit bias values must be finite");
      }
    }
  }
  if (in.score_targets) {
    if (in.score_top_n < 0 || in.score_top_n > cfg.vocab_size) return bad("score_top_n must be in [0, vocab_size]");
    for (int t = 0; t < T; ++t)
      if (in.score_targets[t] < -1 || in.score_targets[t] >= cfg.vocab_size) return bad("score target out of range");
  }
  if (in.num_hidden_rows < 0 || (in.num_hidden_rows > 0 && !in.hidden_rows)) return bad("hidden_rows missing");
  for (int j = 0; j < in.num_hidden_rows; ++j)
    if (in.hidden_rows[j] < 0 || in.hidden_rows[j] >= T) return bad("hidden row out of range");
  if (in.num_masks > 0) {
    const int words = (cfg.vocab_size + 31) / 32;
    if (in.mask_words != words) return bad("mask_words must be ceil(vocab_size / 32) = " + std::to_string(words));
    for (int i = 0; i < N; ++i) {
      const int m = in.mask_index[i];
      if (m < -1 || m >= in.num_masks) return bad("mask_index out of range");
      if (m < 0 || !in.do_sample[i]) continue;
      if (!mask_allows_any(in.token_masks + size_t(m) * words, cfg.vocab_size))
        return bad("the token mask of sequence " + std::to_string(in.seq_ids[i]) + " allows no token");
    }
  }
  return Status::Ok();
}

void SequenceHistory::apply(const StepInput& in) {
  // Forks before releases: a parent may be released in the very step that forks it.
  for (int f = 0; f < in.num_forks; ++f) map_[in.forks[2 * f + 1]] = map_[in.forks[2 * f]];
  for (int r = 0; r < in.num_release; ++r) map_.erase(in.release_seq_ids[r]);
  for (int i = 0; i < in.num_history; ++i) {
    auto& h = map_[in.history_seq_ids[i]];
    const int32_t* b = in.history_tokens + in.history_offsets[i];
    const int32_t* e = in.history_tokens + in.history_offsets[i + 1];
    if (h.size() < size_t(e - b)) h.resize(e - b, -1);
    std::copy(b, e, h.begin());
  }
  for (int i = 0; i < in.num_seqs; ++i) {
    auto& h = map_[in.seq_ids[i]];
    for (int t = in.query_start[i]; t < in.query_start[i + 1]; ++t) {
      const int pos = in.positions[t];
      if (size_t(pos) >= h.size()) h.resize(pos + 1, -1);
      h[pos] = in.token_ids[t];
    }
  }
}

}  // namespace weft
