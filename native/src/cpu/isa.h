// Instruction-set selection for the CPU kernels. Chosen once per engine at run time
// (never by -march), so one build runs on any x86-64 CPU.
#pragma once

namespace weft {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };  // avx512 means F+BW+VL+VNNI

// Best ISA this CPU supports.
Isa isa_detect();
// Whether this CPU can run `isa`.
bool isa_supported(Isa isa);
const char* isa_name(Isa isa);

}  // namespace weft
