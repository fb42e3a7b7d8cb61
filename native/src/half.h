// IEEE binary16 and bfloat16 <-> binary32 conversions in software (no F16C needed): weights
// stored as F16/BF16, the fp16 KV cache of the scalar path, and GPU weight staging.
#pragma once
#include <cstdint>

namespace weft {

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round to nearest even; overflow to inf; subnormals kept
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);  // round to nearest even; NaN stays NaN

}  // namespace weft
