// What every backend does the same way around its forward pass: validating a step's packed
// input, and keeping each sequence's token history (penalties read it).
#pragma once
#include <unordered_map>
#include <vector>

#include "sampler.h"
#include "weft_engine.h"

namespace weft {

Status validate_step(const StepInput& in, const ModelConfig& cfg, int num_blocks, int block_size);

// Token masks (StepInput::token_masks): whether a mask row allows any token below vocab, and the
// mask row of sequence i (nullptr: every token allowed).
bool mask_allows_any(const uint32_t* mask, int vocab);
const uint32_t* step_mask(const StepInput& in, int i);
// Logit biases of sequence i (StepInput::bias_offsets): none when the step has no biases.
LogitBias step_bias(const StepInput& in, int i);

// Per-sequence token histories, updated by a step's housekeeping (releases, forks, prefix-cache
// history) and then by the tokens it feeds.
class SequenceHistory {
 public:
  void apply(const StepInput& in);
  const std::vector<int32_t>& at(int32_t seq_id) const {
    return map_.at(seq_id);
  }

 private:
  std::unordered_map<int32_t, std::vector<int32_t>> map_;
};

}  // namespace weft
