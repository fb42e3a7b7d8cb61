// The test driver's own reader for an HF model directory (config.json + model.safetensors) and
// the golden values in SOURCE.md beside it, so that the whole-step tests need no Node.js (the
// GPU machine has none). Only what stories260K-style Llama directories use.
#pragma once
#include <string>
#include <vector>

#include "weft_engine.h"

namespace weft_test {

// Fills spec (config + tensors) from dir; key = dir + "|" + dtype + "|" + target.
bool read_hf_model(const std::string& dir, weft::WeightDType dtype, weft::Backend target, weft::ModelSpec* spec, std::string* error);
// "Greedy ids from [BOS]: 1, 403, …" from SOURCE.md; empty when absent.
std::vector<int> read_golden_ids(const std::string& dir);

}  // namespace weft_test
