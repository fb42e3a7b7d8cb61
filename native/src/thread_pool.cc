#include "thread_pool.h"

#include <sched.h>

#include <chrono>

namespace weft {

static inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// How long a worker keeps polling for the next job before it sleeps. Ops inside one step
// follow each other within a few microseconds; steps are separated by JavaScript work.
static constexpr auto kSpinWindow = std::chrono::microseconds(200);
// Polls before a waiting thread starts yielding its core. On a loaded machine (the Node event
// loop, other processes) a busy-waiting thread would take the core a straggler needs to finish
// its part of the job; sched_yield hands it over and costs little when nobody else is runnable.
static constexpr int kPollsBeforeYield = 2000;

static inline void wait_a_little(int polls) {
  if (polls < kPollsBeforeYield) cpu_relax();
  else sched_yield();
}

ThreadPool::ThreadPool(int num_threads) : num_threads_(num_threads < 1 ? 1 : num_threads) {
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back(&ThreadPool::worker_main, this, i);
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_release);
    generation_.fetch_add(1);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::drain(int thread_index) {
  for (;;) {
    const int task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= num_tasks_) break;
    (*fn_)(task, thread_index);
  }
}

void ThreadPool::run(int num_tasks, const std::function<void(int, int)>& fn) {
  if (num_tasks <= 0) return;
  if (num_threads_ == 1 || num_tasks == 1) {
    for (int t = 0; t < num_tasks; ++t) fn(t, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    num_tasks_ = num_tasks;
    next_task_.store(0, std::memory_order_relaxed);
    num_busy_.store(num_threads_ - 1, std::memory_order_relaxed);
    parked_.store(false, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  if (num_sleeping_.load(std::memory_order_acquire) > 0) cv_.notify_all();
  drain(0);
  for (int polls = 0; num_busy_.load(std::memory_order_acquire) > 0; ++polls) wait_a_little(polls);
}

void ThreadPool::worker_main(int thread_index) {
  uint64_t seen = 0;
  for (;;) {
    auto spin_until = std::chrono::steady_clock::now() + kSpinWindow;
    int polls = 0;
    while (generation_.load(std::memory_order_acquire) == seen) {
      wait_a_little(polls);
      const bool parked = parked_.load(std::memory_order_acquire);
      if (parked || (++polls % 256 == 0 && std::chrono::steady_clock::now() > spin_until)) {
        std::unique_lock<std::mutex> lock(mu_);
        num_sleeping_.fetch_add(1);
        cv_.wait(lock, [&] { return generation_.load() != seen; });
        num_sleeping_.fetch_sub(1);
        break;
      }
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_acquire)) return;
    drain(thread_index);
    num_busy_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace weft
