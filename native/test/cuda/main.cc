// test_cuda: every CUDA op against the CPU reference on seeded random inputs, and whole steps on
// a real model (WEFT_TEST_MODEL_DIR or --model DIR). Prints one line per check and a summary;
// exits 0 when all pass, 1 on a failure, and 0 with "skipped" when no CUDA device is visible.
// Usage: test_cuda [--model DIR] [--list] [name-substring | =exact-name ...]
#include <cstdlib>
#include <string>
#include <vector>

#include "harness.h"

namespace weft_test {
std::string g_model_dir;  // read by the whole-step tests
}

int main(int argc, char** argv) {
  using namespace weft_test;
  std::vector<std::string> filters;
  if (const char* env = std::getenv("WEFT_TEST_MODEL_DIR")) g_model_dir = env;
  bool list = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--model" && i + 1 < argc) g_model_dir = argv[++i];
    else if (a == "--list") list = true;
    else filters.push_back(a);
  }
  if (list) {
    for (const auto& t : registry()) std::printf("%s\n", t.name.c_str());
    return 0;
  }
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    std::printf("test_cuda: skipped: no CUDA device visible (%s)\n", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return 0;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::printf("test_cuda: device 0: %s (sm_%d%d, %d SMs, %.1f GiB)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount,
              prop.totalGlobalMem / 1073741824.0);
  Harness h;
  int run = 0;
  for (const auto& t : registry()) {
    bool selected = filters.empty();
    for (const auto& f : filters) selected |= f[0] == '=' ? t.name == f.substr(1) : t.name.find(f) != std::string::npos;
    if (!selected) continue;
    ++run;
    h.current = t.name;
    std::printf("%s\n", t.name.c_str());
    try {
      t.fn(h);
    } catch (const CudaFailure& f) {
      std::printf("  FAIL [%s] CUDA error: %s\n", t.name.c_str(), f.what.c_str());
      ++h.failed;
      cudaGetLastError();
    }
  }
  std::printf("test_cuda: %d tests, %d checks passed, %d failed\n", run, h.passed, h.failed);
  return h.failed ? 1 : 0;
}
