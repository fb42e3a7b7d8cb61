// IEEE binary16 <-> binary32 conversions in software (no F16C needed): weights stored as F16
// and the fp16 KV cache of the scalar path.
#pragma once
#include <cstdint>

namespace weft {

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round to nearest even; overflow to inf; subnormals kept

}  // namespace weft
