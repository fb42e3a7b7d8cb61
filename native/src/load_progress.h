// How far the model load in progress has got, in bytes of the model files' tensors, for the
// server's progress bar and /ready. Loads run in engine worker threads while the main thread
// polls, so the counters are process-wide atomics (model_load runs one load at a time).
#pragma once
#include <atomic>
#include <cstdint>

namespace weft {

struct LoadProgress {
  uint64_t bytes_done = 0, bytes_total = 0;
  bool active = false;
};

namespace load_progress_detail {
inline std::atomic<uint64_t> done{0}, total{0};
inline std::atomic<bool> active{false};
}  // namespace load_progress_detail

inline void load_progress_begin(uint64_t total_bytes) {
  load_progress_detail::done = 0;
  load_progress_detail::total = total_bytes;
  load_progress_detail::active = true;
}
inline void load_progress_add(uint64_t bytes) {
  load_progress_detail::done += bytes;
}
// A finished load reports done == total even where parts of the files were never read (the CPU
// embedding table stays mapped and is read row by row).
inline void load_progress_end(bool ok) {
  if (ok) load_progress_detail::done = load_progress_detail::total.load();
  load_progress_detail::active = false;
}
inline LoadProgress load_progress() {
  return {load_progress_detail::done.load(), load_progress_detail::total.load(), load_progress_detail::active.load()};
}

}  // namespace weft
