// A small fork-join pool for one engine instance. The calling thread takes part in every job.
// Workers spin for a short while after a job (the next op of the same step follows within
// microseconds) and then sleep on a condition variable, so an idle engine never competes with
// the Node.js event loop for a core.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace weft {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const {
    return num_threads_;
  }
  // Runs fn(task, thread) for task in [0, num_tasks) across the pool; returns when all are done.
  void run(int num_tasks, const std::function<void(int, int)>& fn);
  // The last job of a step is done: workers sleep at once instead of spinning, since what comes
  // next (the reply to Node.js, the next schedule) needs the cores; run() wakes them again.
  void park() {
    parked_.store(true, std::memory_order_release);
  }

 private:
  void worker_main(int thread_index);
  void drain(int thread_index);

  int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> next_task_{0};
  std::atomic<int> num_busy_{0};
  std::atomic<int> num_sleeping_{0};
  int num_tasks_ = 0;
  const std::function<void(int, int)>* fn_ = nullptr;
  std::atomic<bool> stop_{false};  // read by workers on every job without the lock
  std::atomic<bool> parked_{false};
};

}  // namespace weft
