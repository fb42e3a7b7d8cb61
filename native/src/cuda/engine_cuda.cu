// The CUDA engine: one instance per CUDA stream. The whole step runs on the device — embedding,
// every layer, the LM head and sampling — and only the step's metadata goes up (one copy) and
// token ids plus the asked-for logprobs come back (one copy). Weights are shared by every
// instance on the device (weights.cuh); the KV cache, activations and graphs are per instance.
//
// Buffers are sized for max_num_tokens / max_num_seqs / max_context_len at creation, then the
// KV cache takes its share of the remaining memory. Activation rows whose width feeds a matrix
// are padded to a multiple of 64 with zero columns that nothing writes (gemm.cuh's contract).
// Decode-only steps (every sequence feeds one token and samples) replay a CUDA graph captured
// per (batch bucket, context bucket); other steps launch the same kernels directly.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <new>

#include "cuda/attention.cuh"
#include "cuda/block_copy.cuh"
#include "cuda/embedding.cuh"
#include "cuda/gemm.cuh"
#include "cuda/head_rows.cuh"
#include "cuda/qk_norm.cuh"
#include "cuda/op_profile.cuh"
#include "cuda/rmsnorm.cuh"
#include "cuda/rope.cuh"
#include "cuda/sampling.cuh"
#include "cuda/silu_mul.cuh"
#include "cuda/weights.cuh"
#include "engine_factory.h"
#include "step_common.h"

// An op of the forward pass: launched, error-checked and, under WEFT_CUDA_PROFILE=1, timed.
#define WEFT_CUDA_OP(expr, what)                      \
  do {                                                \
    profile_.begin(st, capturing_);                   \
    WEFT_CUDA_TRY(expr, what);                        \
    profile_.end(st, what, capturing_, decode_step_); \
  } while (0)

namespace weft {
namespace {

using cuda::DType;

int pad64(int v) {
  return (v + 63) / 64 * 64;
}
size_t align16(size_t v) {
  return (v + 15) / 16 * 16;
}

// Decode batch buckets captured as graphs (padded up to the next bucket).
constexpr int kBatchBuckets[] = {1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256, 320, 384, 448, 512};

// Byte offsets of one step's metadata inside the staging buffers (host pinned and device): a
// pure function of the padded sizes, so a captured graph's pointers stay valid on replay.
struct Layout {
  int tokens = 0, seqs = 0, stride = 0;  // padded token count, sequence count, block-table width
  size_t token_ids, positions, slots, query_start, context_lens, block_tables, sample_rows;
  size_t temperature, top_k, top_p, min_p, rep, pres, freq, seeds, counters, num_logprobs, prompt_lens, hist_offsets;
  size_t end;
  Layout(int T, int N, int W) : tokens(T), seqs(N), stride(W) {
    size_t o = 0;
    auto take = [&](size_t bytes) {
      const size_t at = o;
      o = align16(o + bytes);
      return at;
    };
    token_ids = take(4 * size_t(T));
    positions = take(4 * size_t(T));
    slots = take(4 * size_t(T));
    query_start = take(4 * size_t(N + 1));
    context_lens = take(4 * size_t(N));
    block_tables = take(4 * size_t(N) * W);
    sample_rows = take(4 * size_t(N));
    temperature = take(4 * size_t(N));
    top_k = take(4 * size_t(N));
    top_p = take(4 * size_t(N));
    min_p = take(4 * size_t(N));
    rep = take(4 * size_t(N));
    pres = take(4 * size_t(N));
    freq = take(4 * size_t(N));
    seeds = take(8 * size_t(N));
    counters = take(8 * size_t(N));
    num_logprobs = take(4 * size_t(N));
    prompt_lens = take(4 * size_t(N));
    hist_offsets = take(4 * size_t(N + 1));
    end = o;
  }
};

// Sizes of one forward pass (the launch configuration of every kernel derives from these).
struct Dims {
  int tokens = 0, seqs = 0, stride = 0, head_rows = 0, max_query_len = 0, max_context_len = 0;
};

class DeviceArena {
 public:
  ~DeviceArena() {
    release();
  }
  Status alloc(size_t bytes, void** out, const char* what) {
    void* p = nullptr;
    WEFT_CUDA_TRY(cudaMalloc(&p, std::max<size_t>(bytes, 16)), std::string("cudaMalloc for ") + what);
    ptrs_.push_back(p);
    WEFT_CUDA_TRY(cudaMemset(p, 0, std::max<size_t>(bytes, 16)), std::string("cudaMemset of ") + what);
    *out = p;
    return Status::Ok();
  }
  void release() {
    for (void* p : ptrs_) cudaFree(p);
    ptrs_.clear();
  }

 private:
  std::vector<void*> ptrs_;
};

class CudaEngine final : public Engine {
 public:
  CudaEngine(std::shared_ptr<const Model> model, const EngineOptions& o) : model_(std::move(model)), cfg_(model_->config), opts_(o) {}

  ~CudaEngine() override {
    cudaSetDevice(opts_.device);
    if (stream_) cudaStreamSynchronize(stream_);
    drop_graphs();
    for (cudaEvent_t e : events_)
      if (e) cudaEventDestroy(e);
    work_.release();
    kv_.release();
    if (host_meta_) cudaFreeHost(host_meta_);
    if (host_out_) cudaFreeHost(host_out_);
    if (host_var_) cudaFreeHost(host_var_);
    if (dev_var_) cudaFree(dev_var_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  Status init() {
    WEFT_CUDA_TRY(cudaSetDevice(opts_.device), "cudaSetDevice(" + std::to_string(opts_.device) + ")");
    cudaDeviceProp p{};
    WEFT_CUDA_TRY(cudaGetDeviceProperties(&p, opts_.device), "cudaGetDeviceProperties");
    device_name_ = std::string(p.name) + " (cuda:" + std::to_string(opts_.device) + ")";
    WEFT_CUDA_TRY(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    for (cudaEvent_t& e : events_) WEFT_CUDA_TRY(cudaEventCreate(&e), "cudaEventCreate");
    Status s = cuda::device_model_get(model_, opts_.device, &dm_);
    if (!s.ok()) return s;
    act_ = dm_->act;
    const int max_ctx = opts_.max_context_len > 0 ? opts_.max_context_len : std::max(cfg_.max_positions, 1);
    if (!(s = allocate_work(opts_.max_num_tokens, opts_.max_num_seqs, (max_ctx + opts_.block_size - 1) / opts_.block_size)).ok()) return s;
    // the KV cache: a fraction of what is free now, or a fixed block count
    block_bytes_ = size_t(opts_.block_size) * cfg_.num_kv_heads * cfg_.head_dim * cuda::dtype_size(act_);
    const size_t per_block = 2 * block_bytes_ * cfg_.num_layers;
    num_blocks_ = opts_.num_kv_blocks;
    if (opts_.kv_cache_fraction > 0) {
      size_t free_b = 0, total_b = 0;
      WEFT_CUDA_TRY(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
      const double budget = std::min(opts_.kv_cache_fraction, 1.0) * double(free_b);
      num_blocks_ = int(std::min<double>(budget / double(per_block), 1 << 30));
      if (num_blocks_ < 1)
        return Status::Error(StatusCode::out_of_memory,
                             "no room for a KV cache: " + std::to_string(free_b >> 20) + " MiB free after the weights and workspaces");
    }
    void* k = nullptr;
    void* v = nullptr;
    if (!(s = kv_.alloc(per_block / 2 * num_blocks_, &k, "the K cache")).ok()) return s;
    if (!(s = kv_.alloc(per_block / 2 * num_blocks_, &v, "the V cache")).ok()) return s;
    k_cache_ = static_cast<uint8_t*>(k);
    v_cache_ = static_cast<uint8_t*>(v);
    // the zero-fills ran on the legacy stream, which the engine's non-blocking stream does not wait for
    WEFT_CUDA_TRY(cudaDeviceSynchronize(), "engine initialization");
    return Status::Ok();
  }

  int num_kv_blocks() const override {
    return num_blocks_;
  }
  int block_size() const override {
    return opts_.block_size;
  }
  const char* isa_name() const override {
    return device_name_.c_str();
  }
  const char* kv_dtype_name() const override {
    return cuda::dtype_name(act_);
  }
  uint64_t kv_cache_bytes() const override {
    return uint64_t(2) * block_bytes_ * cfg_.num_layers * num_blocks_;
  }
  uint64_t token_weight_bytes() const override {
    return model_->weight_bytes;  // every staged matrix is read whole by a decode step
  }

  Status step(const StepInput& in, StepOutput* out) override {
    Status s = validate_step(in, cfg_, num_blocks_, opts_.block_size);
    if (!s.ok()) return s;
    if (!(s = validate_cuda(in)).ok()) return s;
    try {
      history_.apply(in);
      if (cudaSetDevice(opts_.device) != cudaSuccess) return cuda::cuda_status(cudaGetLastError(), "cudaSetDevice");
      s = run_step(in, out);
    } catch (const std::bad_alloc&) {
      return Status::Error(StatusCode::out_of_memory, "out of host memory during a step");
    }
    if (!s.ok()) {
      cudaStreamSynchronize(stream_);
      cudaGetLastError();
    }
    return s;
  }

 private:
  Status validate_cuda(const StepInput& in) const {
    auto bad = [](const std::string& m) { return Status::Error(StatusCode::bad_input, m); };
    if (in.score_targets) return bad("prompt scoring (score_targets) is CPU-only for now");
    if (in.num_hidden_rows > 0) return bad("hidden states (hidden_rows) are CPU-only for now");
    for (int i = 0; i < in.num_seqs; ++i) {
      const int q0 = in.query_start[i], q1 = in.query_start[i + 1], ctx = in.context_lens[i];
      for (int t = q0; t < q1; ++t)
        if (in.positions[t] != ctx - (q1 - q0) + (t - q0))
          return bad("the CUDA backend needs each sequence's tokens at the last positions of its context");
      if (in.do_sample[i] && in.num_logprobs[i] > cuda::kMaxTopLogprobs)
        return bad("at most " + std::to_string(cuda::kMaxTopLogprobs) + " top logprobs per token");
    }
    return Status::Ok();
  }

  // Activation buffers, workspaces and staging for up to T tokens, N sequences and block tables
  // W wide. Growing drops the captured graphs (their pointers change).
  Status allocate_work(int T, int N, int W) {
    T = std::max(T, 1);
    N = std::max(N, 1);
    W = std::max(W, 1);
    drop_graphs();
    work_.release();
    if (host_meta_) cudaFreeHost(host_meta_), host_meta_ = nullptr;
    if (host_out_) cudaFreeHost(host_out_), host_out_ = nullptr;
    cap_tokens_ = T, cap_seqs_ = N, cap_stride_ = W;
    const int D = cfg_.dim, hd = cfg_.head_dim, F = cfg_.ffn_dim, V = cfg_.vocab_size;
    const int q_cols = cfg_.num_heads * hd, kv_cols = cfg_.num_kv_heads * hd;
    const size_t e = cuda::dtype_size(act_);
    void* p = nullptr;
    Status s;
    auto get = [&](size_t bytes, const char* what, auto** out) {
      if (!s.ok()) return;
      s = work_.alloc(bytes, &p, what);
      *out = static_cast<std::remove_reference_t<decltype(*out)>>(p);
    };
    const int R = std::max(N, 1);  // rows of the LM head: sampled sequences (or a graph's bucket)
    get(size_t(T) * D * 4, "x", &x_);
    get(size_t(T) * pad64(D) * e, "h", &h_);
    get(size_t(T) * (q_cols + 2 * kv_cols) * 4, "qkv", &qkv_);
    get(size_t(T) * q_cols * e, "q", &q_);
    get(size_t(T) * pad64(q_cols) * e, "attn", &attn_);
    get(size_t(T) * 2 * F * e, "gate_up", &gu_);
    get(size_t(T) * pad64(F) * e, "act", &mlp_);
    get(size_t(R) * pad64(D) * e, "final h", &hs_);
    get(size_t(R) * V * 4, "logits", &logits_);
    get(cuda::attention_workspace_bytes(T, cfg_.num_heads, hd, W * opts_.block_size), "attention workspace", &attn_ws_);
    get(cuda::sampling_workspace_bytes(R, V), "sampling workspace", &samp_ws_);
    const Layout cap(T, N, W);
    out_bytes_ = align16(size_t(R) * (8 + 8 * cuda::kMaxTopLogprobs));
    get(cap.end, "step metadata", &dev_meta_);
    get(out_bytes_, "step outputs", &dev_out_);
    if (!s.ok()) return s;
    WEFT_CUDA_TRY(cudaHostAlloc(&host_meta_, cap.end, cudaHostAllocDefault), "cudaHostAlloc (metadata)");
    WEFT_CUDA_TRY(cudaHostAlloc(&host_out_, out_bytes_, cudaHostAllocDefault), "cudaHostAlloc (outputs)");
    WEFT_CUDA_TRY(cudaDeviceSynchronize(), "workspace zero-fill");  // see init()
    return Status::Ok();
  }

  // Variable-length uploads (block copies, penalty histories): a growable pair of buffers.
  Status reserve_var(size_t bytes) {
    if (bytes <= var_cap_) return Status::Ok();  // graphs never read these buffers: they stay valid
    if (host_var_) cudaFreeHost(host_var_), host_var_ = nullptr;
    if (dev_var_) cudaFree(dev_var_), dev_var_ = nullptr;
    var_cap_ = 0;
    const size_t cap = std::max<size_t>(bytes * 2, 4096);
    WEFT_CUDA_TRY(cudaHostAlloc(&host_var_, cap, cudaHostAllocDefault), "cudaHostAlloc (histories)");
    WEFT_CUDA_TRY(cudaMalloc(&dev_var_, cap), "cudaMalloc (histories)");
    var_cap_ = cap;
    return Status::Ok();
  }

  void drop_graphs() {
    for (auto& g : graphs_)
      if (g.second) cudaGraphExecDestroy(g.second);
    graphs_.clear();
  }

  template <class T> T* hm(size_t off) {
    return reinterpret_cast<T*>(static_cast<uint8_t*>(host_meta_) + off);
  }
  template <class T> T* dmeta(size_t off) const {
    return reinterpret_cast<T*>(static_cast<uint8_t*>(dev_meta_) + off);
  }

  Status run_step(const StepInput& in, StepOutput* out) {
    const int T = in.num_tokens, N = in.num_seqs, V = cfg_.vocab_size, bs = opts_.block_size;
    std::vector<int> rows;  // sampled sequences, in order
    int max_q = 0, max_ctx = 0;
    bool decode_only = N > 0 && T == N;
    for (int i = 0; i < N; ++i) {
      const int q = in.query_start[i + 1] - in.query_start[i];
      max_q = std::max(max_q, q);
      max_ctx = std::max(max_ctx, in.context_lens[i]);
      if (in.do_sample[i]) rows.push_back(i);
      decode_only &= q == 1 && in.do_sample[i];
    }
    const int S = int(rows.size());
    // Only some LM-head rows (a reranker): the valid ids among them; such a step runs eagerly, as
    // a graph would hold one set of rows.
    head_ids_.clear();
    for (int j = 0; j < in.num_logit_rows; ++j)
      if (in.logit_rows[j] >= 0 && in.logit_rows[j] < V) head_ids_.push_back(in.logit_rows[j]);
    head_subset_ = in.num_logit_rows > 0;
    // padded sizes: a decode-only step takes its graph bucket; others run as they are
    Dims d;
    d.max_query_len = max_q;
    int bucket = 0;
    if (decode_only && opts_.cuda_graphs && !head_subset_)
      for (int b : kBatchBuckets)
        if (b >= N && b <= cap_seqs_) {
          bucket = b;
          break;
        }
    if (bucket) {
      int ctx_bucket = 256;
      while (ctx_bucket < max_ctx) ctx_bucket *= 2;
      ctx_bucket = std::min(ctx_bucket, cap_stride_ * bs);
      if (ctx_bucket < max_ctx) bucket = 0;  // beyond the workspace bound: run eagerly
      d.tokens = d.seqs = d.head_rows = bucket;
      d.stride = (ctx_bucket + bs - 1) / bs;
      d.max_context_len = ctx_bucket;
      d.max_query_len = 1;
    }
    if (!bucket) {
      d.tokens = T, d.seqs = N, d.head_rows = S;
      d.stride = std::max(in.max_blocks_per_seq, 1);
      d.max_context_len = std::max(max_ctx, 1);
    }
    if (d.tokens > cap_tokens_ || d.seqs > cap_seqs_ || d.stride > cap_stride_) {
      Status s = allocate_work(std::max(d.tokens, cap_tokens_), std::max(d.seqs, cap_seqs_), std::max(d.stride, cap_stride_));
      if (!s.ok()) return s;
    }
    const Layout L(d.tokens, d.seqs, d.stride);
    stage(in, rows, d, L);
    WEFT_CUDA_TRY(cudaMemcpyAsync(dev_meta_, host_meta_, L.end, cudaMemcpyHostToDevice, stream_), "metadata upload");
    // penalty histories and block copies
    Status s = stage_var(in, rows);
    if (!s.ok()) return s;
    if (in.num_block_copies > 0)
      WEFT_CUDA_TRY(cuda::copy_blocks(static_cast<const int32_t*>(dev_var_), in.num_block_copies, cfg_.num_layers, num_blocks_, block_bytes_,
                                      k_cache_, v_cache_, stream_),
                    "copy_blocks");
    WEFT_CUDA_TRY(cudaEventRecord(events_[0], stream_), "cudaEventRecord");
    if (T > 0) {
      if (bucket) s = replay(d, L);
      else s = forward(d, L);
      if (!s.ok()) return s;
    }
    WEFT_CUDA_TRY(cudaEventRecord(events_[1], stream_), "cudaEventRecord");
    out->sampled.assign(N, -1);
    out->logprobs.assign(N, NAN);
    int top_n = 0;
    for (int i : rows) top_n = std::max(top_n, in.num_logprobs[i]);
    out->top_n = top_n;
    out->top_ids.assign(size_t(N) * top_n, -1);
    out->top_logprobs.assign(size_t(N) * top_n, NAN);
    if (S > 0) {
      if (in.return_logits) {  // before sampling, which applies the token masks in place
        out->logits.resize(size_t(S) * V);
        WEFT_CUDA_TRY(cudaMemcpyAsync(out->logits.data(), logits_, out->logits.size() * 4, cudaMemcpyDeviceToHost, stream_), "logits download");
      }
      if (!(s = sample(S, top_n, L)).ok()) return s;
      const size_t copy = size_t(S) * (8 + 8 * top_n);
      WEFT_CUDA_TRY(cudaMemcpyAsync(host_out_, dev_out_, copy, cudaMemcpyDeviceToHost, stream_), "output download");
    }
    WEFT_CUDA_TRY(cudaEventRecord(events_[2], stream_), "cudaEventRecord");
    WEFT_CUDA_TRY(cudaStreamSynchronize(stream_), "the step");
    WEFT_CUDA_TRY(cudaGetLastError(), "the step");
    profile_.collect();
    const int32_t* tok = static_cast<const int32_t*>(host_out_);
    const float* lp = reinterpret_cast<const float*>(tok + S);
    const int32_t* tids = reinterpret_cast<const int32_t*>(lp + S);
    const float* tlp = reinterpret_cast<const float*>(tids + size_t(S) * top_n);
    for (int r = 0; r < S; ++r) {
      const int i = rows[r];
      out->sampled[i] = tok[r];
      out->logprobs[i] = lp[r];
      for (int j = 0; j < top_n; ++j) {
        out->top_ids[size_t(i) * top_n + j] = tids[size_t(r) * top_n + j];
        out->top_logprobs[size_t(i) * top_n + j] = tlp[size_t(r) * top_n + j];
      }
    }
    float fwd_ms = 0, smp_ms = 0;
    cudaEventElapsedTime(&fwd_ms, events_[0], events_[1]);
    cudaEventElapsedTime(&smp_ms, events_[1], events_[2]);
    out->forward_us = fwd_ms * 1e3;
    out->sample_us = smp_ms * 1e3;
    return Status::Ok();
  }

  // Fills the pinned metadata for layout L (padding entries: token 0 at position 0 in no slot,
  // sequences with no tokens and no context).
  void stage(const StepInput& in, const std::vector<int>& rows, const Dims& d, const Layout& L) {
    const int T = in.num_tokens, N = in.num_seqs, S = int(rows.size());
    std::memset(host_meta_, 0, L.end);
    std::memcpy(hm<int32_t>(L.token_ids), in.token_ids, 4 * size_t(T));
    std::memcpy(hm<int32_t>(L.positions), in.positions, 4 * size_t(T));
    std::memcpy(hm<int32_t>(L.slots), in.slot_mapping, 4 * size_t(T));
    for (int t = T; t < d.tokens; ++t) hm<int32_t>(L.slots)[t] = -1;
    std::memcpy(hm<int32_t>(L.query_start), in.query_start, 4 * size_t(N + 1));
    for (int i = N + 1; i <= d.seqs; ++i) hm<int32_t>(L.query_start)[i] = T;
    std::memcpy(hm<int32_t>(L.context_lens), in.context_lens, 4 * size_t(N));
    const int bs = opts_.block_size;
    for (int i = 0; i < N; ++i) {
      const int used = std::min((in.context_lens[i] + bs - 1) / bs, d.stride);
      std::memcpy(hm<int32_t>(L.block_tables) + size_t(i) * d.stride, in.block_tables + size_t(i) * in.max_blocks_per_seq, 4 * size_t(used));
    }
    int32_t* srows = hm<int32_t>(L.sample_rows);
    for (int r = 0; r < S; ++r) srows[r] = in.query_start[rows[r] + 1] - 1;
    uint32_t hist_total = 0;
    for (int r = 0; r < S; ++r) {
      const int i = rows[r];
      hm<float>(L.temperature)[r] = in.temperature[i];
      hm<int32_t>(L.top_k)[r] = in.top_k[i];
      hm<float>(L.top_p)[r] = in.top_p[i];
      hm<float>(L.min_p)[r] = in.min_p[i];
      hm<float>(L.rep)[r] = in.repetition_penalty[i];
      hm<float>(L.pres)[r] = in.presence_penalty[i];
      hm<float>(L.freq)[r] = in.frequency_penalty[i];
      hm<uint64_t>(L.seeds)[r] = uint64_t(in.seeds[2 * i]) | (uint64_t(in.seeds[2 * i + 1]) << 32);
      hm<uint64_t>(L.counters)[r] = uint64_t(in.context_lens[i]);
      hm<int32_t>(L.num_logprobs)[r] = in.num_logprobs[i];
      hm<int32_t>(L.prompt_lens)[r] = in.prompt_lens[i];
      hm<int32_t>(L.hist_offsets)[r] = int32_t(hist_total);
      if (has_penalty(in, i)) hist_total += uint32_t(in.context_lens[i]);
    }
    hm<int32_t>(L.hist_offsets)[S] = int32_t(hist_total);
  }

  static bool has_penalty(const StepInput& in, int i) {
    return in.repetition_penalty[i] != 1.0f || in.presence_penalty[i] != 0.0f || in.frequency_penalty[i] != 0.0f;
  }

  // dev_var_: [block copy pairs][penalty history tokens of the sampled rows with penalties]
  //          [mask row of each sampled row, -1 for none][the token masks those rows use]
  //          [bias offsets of the sampled rows (S + 1)][their bias ids][their bias values]
  Status stage_var(const StepInput& in, const std::vector<int>& rows) {
    size_t hist = 0, biases = 0;
    bool masked = false;
    for (int i : rows) {
      if (has_penalty(in, i)) hist += size_t(in.context_lens[i]);
      masked |= step_mask(in, i) != nullptr;
      biases += size_t(step_bias(in, i).count);
    }
    const size_t copies = 2 * size_t(in.num_block_copies), S = rows.size();
    hist_offset_ = align16(copies * 4);
    size_t end = hist_offset_ + hist * 4;
    mask_row_offset_ = masked ? align16(end) : 0;
    mask_offset_ = masked ? align16(mask_row_offset_ + S * 4) : 0;
    const size_t mask_bytes = masked ? size_t(in.num_masks) * in.mask_words * 4 : 0;
    if (masked) end = mask_offset_ + mask_bytes;
    bias_offset_ = biases ? align16(end) : 0;
    bias_total_ = biases;
    if (biases) end = bias_offset_ + (S + 1 + 2 * biases) * 4;
    const size_t bytes = end;
    if (bytes == 0) return Status::Ok();
    Status s = reserve_var(bytes);
    if (!s.ok()) return s;
    int32_t* h = static_cast<int32_t*>(host_var_);
    if (copies) std::memcpy(h, in.block_copies, copies * 4);
    int32_t* ht = reinterpret_cast<int32_t*>(static_cast<uint8_t*>(host_var_) + hist_offset_);
    for (int i : rows) {
      if (!has_penalty(in, i)) continue;
      const auto& seq = history_.at(in.seq_ids[i]);
      const size_t n = size_t(in.context_lens[i]);
      for (size_t p = 0; p < n; ++p) *ht++ = p < seq.size() ? seq[p] : -1;
    }
    if (masked) {
      int32_t* mr = reinterpret_cast<int32_t*>(static_cast<uint8_t*>(host_var_) + mask_row_offset_);
      for (size_t r = 0; r < S; ++r) mr[r] = step_mask(in, rows[r]) ? in.mask_index[rows[r]] : -1;
      std::memcpy(static_cast<uint8_t*>(host_var_) + mask_offset_, in.token_masks, mask_bytes);
    }
    if (biases) {
      int32_t* off = reinterpret_cast<int32_t*>(static_cast<uint8_t*>(host_var_) + bias_offset_);
      int32_t* ids = off + S + 1;
      float* vals = reinterpret_cast<float*>(ids + biases);
      off[0] = 0;
      for (size_t r = 0; r < S; ++r) {
        const LogitBias b = step_bias(in, rows[r]);
        std::memcpy(ids + off[r], b.ids, 4 * size_t(b.count));
        std::memcpy(vals + off[r], b.values, 4 * size_t(b.count));
        off[r + 1] = off[r] + b.count;
      }
    }
    WEFT_CUDA_TRY(cudaMemcpyAsync(dev_var_, host_var_, bytes, cudaMemcpyHostToDevice, stream_), "history upload");
    return Status::Ok();
  }

  // The forward pass of layout L up to the logits of d.head_rows rows.
  Status forward(const Dims& d, const Layout& L) {
    const cuda::DeviceModel& m = *dm_;
    const int D = cfg_.dim, hd = cfg_.head_dim, F = cfg_.ffn_dim, Tn = d.tokens;
    const int q_cols = cfg_.num_heads * hd, kv_cols = cfg_.num_kv_heads * hd, qkv_cols = q_cols + 2 * kv_cols;
    const int Dp = pad64(D);
    const int32_t* ids = dmeta<int32_t>(L.token_ids);
    cudaStream_t st = stream_;
    decode_step_ = d.max_query_len == 1;
    WEFT_CUDA_OP(cuda::embedding_gather(act_, m.embed, ids, Tn, D, x_, st), "embedding");
    cuda::AttentionArgs a;
    a.query_start = dmeta<int32_t>(L.query_start);
    a.context_lens = dmeta<int32_t>(L.context_lens);
    a.block_tables = dmeta<int32_t>(L.block_tables);
    a.num_seqs = d.seqs;
    a.num_tokens = Tn;
    a.max_blocks_per_seq = d.stride;
    a.max_query_len = d.max_query_len;
    a.max_context_len = d.max_context_len;
    a.num_heads = cfg_.num_heads;
    a.num_kv_heads = cfg_.num_kv_heads;
    a.head_dim = hd;
    a.block_size = opts_.block_size;
    a.scale = 1.0f / std::sqrt(float(hd));
    a.q = q_;
    a.q_stride = q_cols;
    a.out = attn_;
    a.out_stride = pad64(q_cols);
    a.workspace = attn_ws_;
    const size_t layer_bytes = block_bytes_ * num_blocks_;
    for (int l = 0; l < cfg_.num_layers; ++l) {
      const cuda::DeviceLayer& w = m.layers[l];
      void* kc = k_cache_ + l * layer_bytes;
      void* vc = v_cache_ + l * layer_bytes;
      WEFT_CUDA_OP(cuda::rmsnorm(act_, x_, D, nullptr, Tn, w.attn_norm, cfg_.rms_eps, D, h_, Dp, st), "attn rmsnorm");
      WEFT_CUDA_OP(cuda::gemm(act_, h_, Tn, w.qkv, qkv_, qkv_cols, cuda::Epilogue::store_f32, st), "qkv projection");
      if (w.q_norm)  // Qwen3 (no qkv bias, so rope_qkv's bias add cannot come after it)
        WEFT_CUDA_OP(cuda::qk_norm_f32(qkv_, qkv_cols, Tn, w.q_norm, w.k_norm, cfg_.num_heads, cfg_.num_kv_heads, hd, cfg_.rms_eps, st), "q/k norm");
      const cuda::KvDest kv{dmeta<int32_t>(L.slots), opts_.block_size, kc, vc};
      WEFT_CUDA_OP(cuda::rope_qkv(act_, qkv_, qkv_cols, Tn, w.qkv_bias, dmeta<int32_t>(L.positions), m.inv_freq, cfg_.num_heads, cfg_.num_kv_heads,
                                  hd, q_, q_cols, &kv, st),
                   "rope and kv write");
      a.k_cache = kc;
      a.v_cache = vc;
      WEFT_CUDA_OP(cuda::attention(act_, a, st), "attention");
      WEFT_CUDA_OP(cuda::gemm(act_, attn_, Tn, w.o, x_, D, cuda::Epilogue::add_f32, st), "o projection");
      WEFT_CUDA_OP(cuda::rmsnorm(act_, x_, D, nullptr, Tn, w.ffn_norm, cfg_.rms_eps, D, h_, Dp, st), "ffn rmsnorm");
      if (Tn <= cuda::kGemvMaxM) {  // decode: SwiGLU in the gemv's epilogue, one launch fewer
        WEFT_CUDA_OP(cuda::gemm(act_, h_, Tn, w.gate_up, mlp_, pad64(F), cuda::Epilogue::swiglu, st), "gate_up + swiglu");
      } else {
        WEFT_CUDA_OP(cuda::gemm(act_, h_, Tn, w.gate_up, gu_, 2 * F, cuda::Epilogue::store_act, st), "gate_up projection");
        WEFT_CUDA_OP(cuda::silu_mul(act_, gu_, 2 * F, Tn, F, mlp_, pad64(F), st), "silu_mul");
      }
      WEFT_CUDA_OP(cuda::gemm(act_, mlp_, Tn, w.down, x_, D, cuda::Epilogue::add_f32, st), "down projection");
    }
    if (d.head_rows > 0) {
      WEFT_CUDA_OP(cuda::rmsnorm(act_, x_, D, dmeta<int32_t>(L.sample_rows), d.head_rows, m.final_norm, cfg_.rms_eps, D, hs_, Dp, st),
                   "final rmsnorm");
      if (head_subset_) WEFT_CUDA_OP(head_rows_.run(act_, hs_, d.head_rows, m.lm_head, head_ids_, logits_, cfg_.vocab_size, st), "lm head rows");
      else WEFT_CUDA_OP(cuda::gemm(act_, hs_, d.head_rows, m.lm_head, logits_, cfg_.vocab_size, cuda::Epilogue::store_f32, st), "lm head");
    }
    return Status::Ok();
  }

  // Decode steps: replay (capturing on first use) the graph of this bucket.
  Status replay(const Dims& d, const Layout& L) {
    const std::pair<int, int> key{d.seqs, d.max_context_len};
    auto it = graphs_.find(key);
    if (it == graphs_.end()) {
      cudaGraph_t g = nullptr;
      cudaGraphExec_t exec = nullptr;
      WEFT_CUDA_TRY(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "graph capture");
      capturing_ = true;
      Status s = forward(d, L);
      capturing_ = false;
      const cudaError_t e = cudaStreamEndCapture(stream_, &g);
      if (!s.ok()) {
        if (g) cudaGraphDestroy(g);
        return s;
      }
      WEFT_CUDA_TRY(e, "graph capture");
      const cudaError_t ie = cudaGraphInstantiate(&exec, g, 0);
      cudaGraphDestroy(g);
      WEFT_CUDA_TRY(ie, "graph instantiate");
      it = graphs_.emplace(key, exec).first;
    }
    WEFT_CUDA_TRY(cudaGraphLaunch(it->second, stream_), "graph launch");
    return Status::Ok();
  }

  Status sample(int S, int top_n, const Layout& L) {
    cuda::SamplingArgs a;
    a.num_rows = S;
    a.vocab = cfg_.vocab_size;
    a.logits = logits_;
    a.temperature = dmeta<float>(L.temperature);
    a.top_k = dmeta<int32_t>(L.top_k);
    a.top_p = dmeta<float>(L.top_p);
    a.min_p = dmeta<float>(L.min_p);
    a.repetition_penalty = dmeta<float>(L.rep);
    a.presence_penalty = dmeta<float>(L.pres);
    a.frequency_penalty = dmeta<float>(L.freq);
    a.seeds = dmeta<uint64_t>(L.seeds);
    a.counters = dmeta<uint64_t>(L.counters);
    a.num_logprobs = dmeta<int32_t>(L.num_logprobs);
    a.hist_offsets = dmeta<int32_t>(L.hist_offsets);
    a.hist_tokens = dev_var_ ? reinterpret_cast<const int32_t*>(static_cast<uint8_t*>(dev_var_) + hist_offset_) : nullptr;
    a.prompt_lens = dmeta<int32_t>(L.prompt_lens);
    a.max_top_n = top_n;
    int32_t* o = static_cast<int32_t*>(dev_out_);
    a.out_token = o;
    a.out_logprob = reinterpret_cast<float*>(o + S);
    a.out_top_ids = reinterpret_cast<int32_t*>(a.out_logprob + S);
    a.out_top_logprobs = reinterpret_cast<float*>(a.out_top_ids + size_t(S) * top_n);
    a.workspace = samp_ws_;
    if (mask_offset_ > 0) {
      const uint8_t* var = static_cast<const uint8_t*>(dev_var_);
      WEFT_CUDA_TRY(cuda::apply_token_masks(logits_, S, cfg_.vocab_size, reinterpret_cast<const int32_t*>(var + mask_row_offset_),
                                            reinterpret_cast<const uint32_t*>(var + mask_offset_), (cfg_.vocab_size + 31) / 32, stream_),
                    "token masks");
    }
    if (bias_offset_ > 0) {
      const int32_t* off = reinterpret_cast<const int32_t*>(static_cast<const uint8_t*>(dev_var_) + bias_offset_);
      const float* values = reinterpret_cast<const float*>(off + S + 1 + bias_total_);
      WEFT_CUDA_TRY(cuda::apply_logit_bias(logits_, S, cfg_.vocab_size, off, off + S + 1, values, stream_), "logit bias");
    }
    profile_.begin(stream_, false);
    WEFT_CUDA_TRY(cuda::sample(a, stream_), "sampling");
    profile_.end(stream_, "sampling", false, decode_step_);
    return Status::Ok();
  }

  cuda::OpProfile profile_;
  bool capturing_ = false;  // forward() is being captured into a graph
  bool decode_step_ = false;  // the current step feeds one token per sequence
  std::shared_ptr<const Model> model_;
  std::shared_ptr<const cuda::DeviceModel> dm_;
  const ModelConfig cfg_;
  EngineOptions opts_;
  DType act_ = DType::f16;
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t events_[3] = {nullptr, nullptr, nullptr};
  DeviceArena kv_, work_;
  uint8_t* k_cache_ = nullptr;
  uint8_t* v_cache_ = nullptr;
  size_t block_bytes_ = 0;
  int num_blocks_ = 0;
  int cap_tokens_ = 0, cap_seqs_ = 0, cap_stride_ = 0;
  float* x_ = nullptr;
  void* h_ = nullptr;
  float* qkv_ = nullptr;
  void* q_ = nullptr;
  void* attn_ = nullptr;
  void* gu_ = nullptr;
  void* mlp_ = nullptr;
  void* hs_ = nullptr;
  float* logits_ = nullptr;
  void* attn_ws_ = nullptr;
  void* samp_ws_ = nullptr;
  void* dev_meta_ = nullptr;
  void* dev_out_ = nullptr;
  void* host_meta_ = nullptr;
  void* host_out_ = nullptr;
  size_t out_bytes_ = 0;
  void* host_var_ = nullptr;
  void* dev_var_ = nullptr;
  size_t var_cap_ = 0, hist_offset_ = 0;
  size_t mask_row_offset_ = 0, mask_offset_ = 0;  // in dev_var_; 0: no token masks this step
  size_t bias_offset_ = 0, bias_total_ = 0;  // in dev_var_; 0: no logit biases this step
  std::map<std::pair<int, int>, cudaGraphExec_t> graphs_;
  SequenceHistory history_;
  bool head_subset_ = false;  // this step evaluates only the LM-head rows head_ids_
  std::vector<int32_t> head_ids_;
  cuda::HeadRows head_rows_;
};

}  // namespace

Status cuda_engine_create(std::shared_ptr<const Model> model, const EngineOptions& o, std::unique_ptr<Engine>* out) {
  const int n = cuda_runtime_device_count();
  if (n == 0) return Status::Error(StatusCode::no_device, "no CUDA device is visible (no GPU, or no NVIDIA driver)");
  if (o.device < 0 || o.device >= n)
    return Status::Error(StatusCode::no_device, "CUDA device " + std::to_string(o.device) + " not visible (" + std::to_string(n) + " devices)");
  if (o.num_kv_blocks < 1 && o.kv_cache_fraction <= 0) return Status::Error(StatusCode::bad_input, "give num_kv_blocks or kv_cache_fraction");
  if (o.block_size < 1 || o.block_size > 1024) return Status::Error(StatusCode::bad_input, "block_size must be 1..1024");
  if (o.max_num_tokens < 1 || o.max_num_seqs < 1) return Status::Error(StatusCode::bad_input, "max_num_tokens and max_num_seqs must be positive");
  if (model->target != Backend::cuda)
    return Status::Error(StatusCode::bad_input, "the model was loaded for the CPU backend; load it with target cuda");
  try {
    std::unique_ptr<CudaEngine> e(new CudaEngine(std::move(model), o));
    Status s = e->init();
    if (!s.ok()) return s;
    *out = std::move(e);
  } catch (const std::bad_alloc&) {
    return Status::Error(StatusCode::out_of_memory, "out of host memory creating the CUDA engine");
  }
  return Status::Ok();
}

}  // namespace weft
