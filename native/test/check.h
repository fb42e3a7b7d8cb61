// The CPU test drivers' one assertion (test_matmul, test_model_load): counts the checks, prints
// each failure, and ends with the line test/native/kernels.test.ts reads, "N passed, N failed".
#pragma once
#include <cstdio>
#include <string>

namespace weft_test {

inline int g_pass = 0, g_fail = 0;

inline void check(bool ok, const std::string& what) {
  if (ok) {
    ++g_pass;
  } else {
    ++g_fail;
    std::printf("FAIL %s\n", what.c_str());
  }
}

// The summary line; the driver's exit status.
inline int finish() {
  std::printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail ? 1 : 0;
}

}  // namespace weft_test
