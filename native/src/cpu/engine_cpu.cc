// The CPU engine: one batched forward pass per step over a packed batch of prefill chunks and
// decode tokens, a paged KV cache owned by the instance, and native sampling.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <new>

#include <sys/mman.h>

#include "cpu/attention.h"
#include "cpu/ops.h"
#include "cpu/simd_ops.h"
#include "model.h"
#include "sampler.h"
#include "step_common.h"
#include "thread_pool.h"
#include "engine_factory.h"

namespace weft {
namespace {

// Bytes of one layer's block of K or V values (the same for both), and of an int8 block's scales:
// a float per slot and kv head, for K one per group of kv_k_group(head_dim) values.
size_t kv_block_value_bytes(KvDType kv, const ModelConfig& c, int block_size) {
  return size_t(block_size) * c.num_kv_heads * c.head_dim * (kv == KvDType::i8 ? 1 : kv == KvDType::f16 ? 2 : 4);
}
size_t kv_block_scale_bytes(KvDType kv, const ModelConfig& c, int block_size, bool k) {
  const size_t per_slot_head = k ? c.head_dim / kv_k_group(c.head_dim) : 1;
  return kv == KvDType::i8 ? size_t(block_size) * c.num_kv_heads * per_slot_head * sizeof(float) : 0;
}

// The KV cache: anonymous pages, which the kernel zero-fills on first touch, so memory is taken
// as blocks are used rather than all at start (a std::vector zero-fills, and so touches, all of
// it). Size refused like any allocation: std::bad_alloc.
class KvBuffer {
 public:
  KvBuffer() = default;
  KvBuffer(const KvBuffer&) = delete;
  KvBuffer& operator=(const KvBuffer&) = delete;
  ~KvBuffer() {
    if (ptr_) munmap(ptr_, bytes_);
  }
  void allocate(size_t bytes) {
    void* p = mmap(nullptr, std::max<size_t>(bytes, 1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    ptr_ = static_cast<uint8_t*>(p);
    bytes_ = std::max<size_t>(bytes, 1);
    size_ = bytes;
  }
  uint8_t* data() const {
    return ptr_;
  }
  size_t size() const {
    return size_;
  }

 private:
  uint8_t* ptr_ = nullptr;
  size_t bytes_ = 0;  // mapped
  size_t size_ = 0;  // asked for
};

double now_us() {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

class CpuEngine final : public Engine {
 public:
  CpuEngine(std::shared_ptr<const Model> model, const EngineOptions& o, Isa isa)
      : model_(std::move(model)), cfg_(model_->config), opts_(o), isa_(isa), pool_(o.num_threads) {
    kv_ = cpu_kv_dtype(o.kv_dtype, model_->weight_dtype);
    const size_t bytes = block_bytes() * o.num_kv_blocks * cfg_.num_layers;
    k_cache_.allocate(bytes);
    v_cache_.allocate(bytes);
    if (kv_ == KvDType::i8) {
      k_scales_.allocate(block_scale_bytes(true) * o.num_kv_blocks * cfg_.num_layers);
      v_scales_.allocate(block_scale_bytes(false) * o.num_kv_blocks * cfg_.num_layers);
    }
    inv_freq_.resize(cfg_.head_dim / 2);
    rope_inv_freq(cfg_, inv_freq_.data());
    const int group = cfg_.num_heads / cfg_.num_kv_heads;
    tile_queries_ = std::max(1, kAttentionTileRows / group);
    thread_scratch_.assign(pool_.size(), std::vector<float>(attention_scratch_floats(cfg_.head_dim, tile_queries_ * group)));
    sample_scratch_.resize(pool_.size());
    for (auto& s : sample_scratch_) s.isa = isa_;
  }

  int num_kv_blocks() const override {
    return opts_.num_kv_blocks;
  }
  int block_size() const override {
    return opts_.block_size;
  }
  const char* isa_name() const override {
    return weft::isa_name(isa_);
  }
  const char* kv_dtype_name() const override {
    return weft::kv_dtype_name(kv_);
  }
  uint64_t kv_cache_bytes() const override {
    return uint64_t(k_cache_.size()) + v_cache_.size() + k_scales_.size() + v_scales_.size();
  }
  uint64_t token_weight_bytes() const override {
    uint64_t b = token_bytes(model_->lm_head);
    for (const LayerWeights& w : model_->layers) b += token_bytes(w.qkv) + token_bytes(w.o) + token_bytes(w.gate_up) + token_bytes(w.down);
    return b;
  }

  Status step(const StepInput& in, StepOutput* out) override {
    Status s = validate_step(in, cfg_, opts_.num_kv_blocks, opts_.block_size);
    if (!s.ok()) return s;
    try {
      housekeeping(in);
      const double t0 = now_us();
      forward(in);
      const double t1 = now_us();
      sample(in, out);
      out->forward_us = t1 - t0;
      out->sample_us = now_us() - t1;
    } catch (const std::bad_alloc&) {
      pool_.park();
      return Status::Error(StatusCode::out_of_memory, "out of memory during step");
    }
    pool_.park();
    return Status::Ok();
  }

 private:
  size_t block_bytes() const {
    return kv_block_value_bytes(kv_, cfg_, opts_.block_size);
  }
  size_t block_scale_bytes(bool k) const {
    return kv_block_scale_bytes(kv_, cfg_, opts_.block_size, k);
  }
  PagedKv layer_kv(int l) {
    const size_t per_layer = block_bytes() * opts_.num_kv_blocks;
    PagedKv kv{k_cache_.data() + l * per_layer,
               v_cache_.data() + l * per_layer,
               kv_ == KvDType::f16,
               opts_.block_size,
               cfg_.num_kv_heads,
               cfg_.head_dim,
               /*k_by_dim=*/true};
    if (kv_ == KvDType::i8) {
      kv.i8 = true;
      kv.k_scale = reinterpret_cast<float*>(k_scales_.data() + l * block_scale_bytes(true) * opts_.num_kv_blocks);
      kv.v_scale = reinterpret_cast<float*>(v_scales_.data() + l * block_scale_bytes(false) * opts_.num_kv_blocks);
    }
    return kv;
  }

  void housekeeping(const StepInput& in) {
    history_.apply(in);
    for (int c = 0; c < in.num_block_copies; ++c)
      for (int l = 0; l < cfg_.num_layers; ++l) {
        PagedKv kv = layer_kv(l);
        const size_t n = block_bytes(), src = in.block_copies[2 * c] * n, dst = in.block_copies[2 * c + 1] * n;
        std::memcpy(static_cast<uint8_t*>(kv.k) + dst, static_cast<uint8_t*>(kv.k) + src, n);
        std::memcpy(static_cast<uint8_t*>(kv.v) + dst, static_cast<uint8_t*>(kv.v) + src, n);
        if (kv.i8)
          for (const bool k : {true, false}) {
            const size_t ns = block_scale_bytes(k), s_src = in.block_copies[2 * c] * ns, s_dst = in.block_copies[2 * c + 1] * ns;
            uint8_t* scales = reinterpret_cast<uint8_t*>(k ? kv.k_scale : kv.v_scale);
            std::memcpy(scales + s_dst, scales + s_src, ns);
          }
      }
  }

  // y[m][n] = x[m][k] W^T, split over the pool in panels of 16 columns. A segmented matrix writes
  // its segments' columns side by side; each activation form is made once per call.
  void matmul(const Matrix& w, const float* x, int m, float* y) {
    int made_i8 = -1;  // act_q_'s group (a per-row int8 part and a Q8_0 part take different ones)
    int made_q = -1;  // act_b_'s BlockAct (segments of K-quant and legacy types take different ones)
    if (w.segments.empty()) return matmul_part(w, x, m, y, w.n, &made_i8, &made_q);
    int col = 0;
    for (const Matrix& s : w.segments) {
      matmul_part(s, x, m, y + col, w.n, &made_i8, &made_q);
      col += s.n;
    }
  }

  void matmul_part(const Matrix& w, const float* x, int m, float* y, int ldy, int* made_i8, int* made_q) {
    make_act(w, x, m, made_i8, made_q);
    const int panels = (w.n + kPackRows - 1) / kPackRows;
    // Tasks per thread. Many small tasks let the other threads take over the share of a thread
    // that loses its core to another process (the Node main thread, a client on the same machine).
    // But each task costs its thread a restart of the weight stream, which the few-µs tasks of a
    // decode step feel: 2 tasks a thread instead of 8 made a batch-1 step of the 110M shape 11%
    // (Q8_0) to 17% (Q4_K_M) faster. Longer products (more tokens) keep 8.
    const int tasks = std::min(panels, pool_.size() * std::clamp(m, 2, 8));
    pool_.run(tasks, [&](int task, int) {
      const int p0 = int(int64_t(panels) * task / tasks), p1 = int(int64_t(panels) * (task + 1) / tasks);
      const int n0 = p0 * kPackRows, n1 = std::min(w.n, p1 * kPackRows);
      if (n1 > n0) matmul_range(w, x, m, y, ldy, n0, n1);
    });
  }

  // The activation form w's kernel takes, made once per input (the flags say what is made).
  void make_act(const Matrix& w, const float* x, int m, int* made_i8, int* made_q) {
    if (w.kind == MatrixKind::i8 && *made_i8 != w.i8.group) {
      // Split over the threads in runs of 16 tokens (one was ~10% of a batch-64 step on its own)
      act_q_.reserve(m, w.k, w.i8.group);
      parallel_rows((m + 15) / 16, [&](int c, int) { quantize_act_rows(isa_, x, w.k, 16 * c, std::min(m, 16 * c + 16), &act_q_); });
      *made_i8 = w.i8.group;
    }
    if (w.kind == MatrixKind::q && *made_q != int(w.q.act)) {
      act_b_.reserve(m, w.k);
      parallel_rows(m, [&](int t, int) { quantize_blocks(isa_, x, w.k, t, t + 1, w.q.act, &act_b_); });
      *made_q = int(w.q.act);
    }
  }

  // Columns [n0, n1) of y = x W^T (n0 a multiple of kPackRows), the activations made by make_act.
  void matmul_range(const Matrix& w, const float* x, int m, float* y, int ldy, int n0, int n1) {
    switch (w.kind) {
      case MatrixKind::i8:
        return matmul_i8(isa_, act_q_, w.i8, y, ldy, n0, n1);
      case MatrixKind::q:
        return matmul_q(isa_, act_b_, w.q, y, ldy, n0, n1);
      default:
        return matmul_f32(isa_, x, m, w.f32, y, ldy, n0, n1);
    }
  }

  uint64_t token_bytes(const Matrix& m) const {
    uint64_t b = 0;
    for (const Matrix& s : m.segments) b += token_bytes(s);
    switch (m.kind) {
      case MatrixKind::i8:
        return b + matmul_i8_token_bytes(isa_, m.i8);
      case MatrixKind::q:
        return b + m.q.bytes();
      default:
        return b + m.f32.data.bytes;
    }
  }

  // Only the LM-head rows (vocabulary ids) the step asks for, each with the panel of kPackRows
  // rows it is packed in, on the calling thread; every other logit is -inf.
  void lm_head_rows(const StepInput& in, int S) {
    const Matrix& w = model_->lm_head;
    const int V = cfg_.vocab_size;
    int made_i8 = -1, made_q = -1;
    make_act(w, h_.data(), S, &made_i8, &made_q);
    std::vector<float> kept(size_t(S) * in.num_logit_rows);
    int done_panel = -1;
    for (int j = 0; j < in.num_logit_rows; ++j) {
      const int id = in.logit_rows[j];
      if (id < 0 || id >= V) continue;
      const int panel = id / kPackRows;
      if (panel != done_panel) matmul_range(w, h_.data(), S, logits_.data(), V, panel * kPackRows, std::min(V, (panel + 1) * kPackRows));
      done_panel = panel;
      for (int r = 0; r < S; ++r) kept[size_t(r) * in.num_logit_rows + j] = logits_[size_t(r) * V + id];
    }
    std::fill(logits_.begin(), logits_.end(), -INFINITY);
    for (int j = 0; j < in.num_logit_rows; ++j) {
      const int id = in.logit_rows[j];
      if (id < 0 || id >= V) continue;
      for (int r = 0; r < S; ++r) logits_[size_t(r) * V + id] = kept[size_t(r) * in.num_logit_rows + j];
    }
  }

  void parallel_rows(int rows, const std::function<void(int, int)>& fn) {
    const int tasks = std::min(rows, pool_.size() * 4);
    pool_.run(tasks, [&](int task, int thread) {
      for (int r = int(int64_t(rows) * task / tasks); r < int(int64_t(rows) * (task + 1) / tasks); ++r) fn(r, thread);
    });
  }

  void forward(const StepInput& in) {
    const int T = in.num_tokens, D = cfg_.dim, hd = cfg_.head_dim;
    const int q_cols = cfg_.num_heads * hd, kv_cols = cfg_.num_kv_heads * hd, qkv_cols = q_cols + 2 * kv_cols;
    const int F = cfg_.ffn_dim, group = cfg_.num_heads / cfg_.num_kv_heads;
    x_.resize(size_t(T) * D);
    h_.resize(size_t(T) * D);
    qkv_.resize(size_t(T) * qkv_cols);
    attn_.resize(size_t(T) * q_cols);
    gu_.resize(size_t(T) * 2 * F);
    act_.resize(size_t(T) * F);
    tmp_.resize(size_t(T) * D);
    plan_attention(in);
    rope_cs_.resize(size_t(T) * hd);
    parallel_rows(T, [&](int t, int) {
      tensor_row_f32(model_->embed, in.token_ids[t], &x_[size_t(t) * D]);
      rope_angles(in.positions[t], hd, inv_freq_.data(), &rope_cs_[size_t(t) * hd]);
    });
    const float scale = 1.0f / std::sqrt(float(hd));
    for (int l = 0; l < cfg_.num_layers; ++l) {
      const LayerWeights& w = model_->layers[l];
      const PagedKv kv = layer_kv(l);
      parallel_rows(T, [&](int t, int) { rmsnorm_isa(isa_, &x_[size_t(t) * D], w.attn_norm.data(), cfg_.rms_eps, D, &h_[size_t(t) * D]); });
      matmul(w.qkv, h_.data(), T, qkv_.data());
      parallel_rows(T, [&](int t, int) {
        float* r = &qkv_[size_t(t) * qkv_cols];
        if (!w.qkv_bias.empty())
          for (int c = 0; c < qkv_cols; ++c) r[c] += w.qkv_bias[c];
        if (!w.q_norm.empty()) {  // Qwen3: each q and k head normalized before RoPE (in place)
          for (int h = 0; h < cfg_.num_heads; ++h) rmsnorm_isa(isa_, r + h * hd, w.q_norm.data(), cfg_.rms_eps, hd, r + h * hd);
          for (int h = 0; h < cfg_.num_kv_heads; ++h) rmsnorm_isa(isa_, r + q_cols + h * hd, w.k_norm.data(), cfg_.rms_eps, hd, r + q_cols + h * hd);
        }
        rope_apply_cs(r, cfg_.num_heads, hd, &rope_cs_[size_t(t) * hd]);
        rope_apply_cs(r + q_cols, cfg_.num_kv_heads, hd, &rope_cs_[size_t(t) * hd]);
        kv_write_isa(isa_, kv, in.slot_mapping[t], r + q_cols, r + q_cols + kv_cols);
      });
      parallel_rows(int(tiles_.size()) * cfg_.num_kv_heads, [&](int task, int thread) {
        const Tile& tile = tiles_[task / cfg_.num_kv_heads];
        const int g = task % cfg_.num_kv_heads;
        AttentionTile a;
        a.block_table = in.block_tables + size_t(tile.seq) * in.max_blocks_per_seq;
        a.pos0 = in.positions[tile.token], a.nq = tile.nq, a.kv_head = g;
        a.q = &qkv_[size_t(tile.token) * qkv_cols + g * group * hd], a.q_stride = qkv_cols;
        a.out = &attn_[size_t(tile.token) * q_cols + g * group * hd], a.out_stride = q_cols;
        attention_tile_isa(isa_, kv, a, group, scale, thread_scratch_[thread].data());
      });
      matmul(w.o, attn_.data(), T, tmp_.data());
      add_inplace_isa(isa_, x_.data(), tmp_.data(), x_.size());
      parallel_rows(T, [&](int t, int) { rmsnorm_isa(isa_, &x_[size_t(t) * D], w.ffn_norm.data(), cfg_.rms_eps, D, &h_[size_t(t) * D]); });
      matmul(w.gate_up, h_.data(), T, gu_.data());
      parallel_rows(T, [&](int t, int) { silu_mul_isa(isa_, &gu_[size_t(t) * 2 * F], &gu_[size_t(t) * 2 * F + F], F, &act_[size_t(t) * F]); });
      matmul(w.down, act_.data(), T, tmp_.data());
      add_inplace_isa(isa_, x_.data(), tmp_.data(), x_.size());
    }
  }

  // Cuts each sequence's query tokens into attention tiles of up to tile_queries_ consecutive
  // positions (a decode token is a tile of one), costliest first so that no long tile starts
  // last and leaves the other threads waiting at the end of the layer.
  void plan_attention(const StepInput& in) {
    tiles_.clear();
    for (int i = 0; i < in.num_seqs; ++i)
      for (int t = in.query_start[i]; t < in.query_start[i + 1];) {
        int nq = 1;  // positions must follow each other inside a tile
        while (nq < tile_queries_ && t + nq < in.query_start[i + 1] && in.positions[t + nq] == in.positions[t] + nq) ++nq;
        tiles_.push_back({i, t, nq, int64_t(nq) * (in.positions[t] + nq)});
        t += nq;
      }
    std::stable_sort(tiles_.begin(), tiles_.end(), [](const Tile& a, const Tile& b) { return a.cost > b.cost; });
  }

  // The final norm of n token rows of x_ into h_ (token_row(r): the r-th row's token), the LM
  // head's input: for sampling, a sequence's last token; for prompt scoring, every scored token.
  template <class TokenRow> void final_norm_rows(int n, TokenRow token_row) {
    const int D = cfg_.dim;
    h_.resize(size_t(std::max(n, 1)) * D);
    for (int r = 0; r < n; ++r) rmsnorm_isa(isa_, &x_[size_t(token_row(r)) * D], model_->final_norm.data(), cfg_.rms_eps, D, &h_[size_t(r) * D]);
  }

  void sample(const StepInput& in, StepOutput* out) {
    const int N = in.num_seqs, V = cfg_.vocab_size;
    rows_.clear();
    for (int i = 0; i < N; ++i)
      if (in.do_sample[i]) rows_.push_back(i);
    const int S = int(rows_.size());
    final_norm_rows(S, [&](int r) { return in.query_start[rows_[r] + 1] - 1; });
    logits_.resize(size_t(S) * V);
    if (S > 0 && in.num_logit_rows > 0 && model_->lm_head.segments.empty()) lm_head_rows(in, S);
    else if (S > 0) matmul(model_->lm_head, h_.data(), S, logits_.data());
    int top_n = 0;
    for (int r = 0; r < S; ++r) top_n = std::max(top_n, in.num_logprobs[rows_[r]]);
    out->sampled.assign(N, -1);
    out->logprobs.assign(N, NAN);
    out->top_n = top_n;
    out->top_ids.assign(size_t(N) * top_n, -1);
    out->top_logprobs.assign(size_t(N) * top_n, NAN);
    parallel_rows(S, [&](int r, int thread) {
      const int i = rows_[r];
      const SampleParams p = SampleParams::of(in, i);
      const auto& h = history_.at(in.seq_ids[i]);
      SampleResult res;
      sample_row(&logits_[size_t(r) * V], V, p, h.data(), in.context_lens[i], in.prompt_lens[i], uint64_t(in.context_lens[i]),
                 &sample_scratch_[thread], &res, step_mask(in, i), step_bias(in, i));
      out->sampled[i] = res.token;
      out->logprobs[i] = res.logprob;
      for (size_t j = 0; j < res.top.size(); ++j) {
        out->top_ids[size_t(i) * top_n + j] = res.top[j].first;
        out->top_logprobs[size_t(i) * top_n + j] = res.top[j].second;
      }
    });
    if (in.return_logits) out->logits = logits_;
    if (in.score_targets) score_prompt_rows(in, out);
    if (in.num_hidden_rows > 0) {  // after sampling and scoring, which use h_ themselves
      final_norm_rows(in.num_hidden_rows, [&](int r) { return in.hidden_rows[r]; });
      out->hidden.assign(h_.begin(), h_.begin() + size_t(in.num_hidden_rows) * cfg_.dim);
    }
  }

  // Prompt scoring: the rows with a target go through the final norm and the whole LM head
  // (after sampling, which is done with logits_), then a log-softmax each; 64 rows at a time, so
  // that a long chunk's logits stay small (2048 rows of a 128K vocabulary would be 1 GB).
  void score_prompt_rows(const StepInput& in, StepOutput* out) {
    const int T = in.num_tokens, V = cfg_.vocab_size, n = in.score_top_n;
    rows_.clear();
    for (int t = 0; t < T; ++t)
      if (in.score_targets[t] >= 0) rows_.push_back(t);
    const int R = int(rows_.size());
    out->scored_logprobs.assign(T, NAN);
    out->scored_ranks.assign(T, 0);
    out->scored_top_ids.assign(size_t(T) * n, -1);
    out->scored_top_logprobs.assign(size_t(T) * n, NAN);
    constexpr int kRows = 64;
    for (int r0 = 0; r0 < R; r0 += kRows) {
      const int nr = std::min(kRows, R - r0);
      final_norm_rows(nr, [&](int r) { return rows_[r0 + r]; });
      logits_.resize(size_t(nr) * V);
      matmul(model_->lm_head, h_.data(), nr, logits_.data());
      parallel_rows(nr, [&](int r, int thread) {
        const int t = rows_[r0 + r];
        SampleResult res;
        score_row(&logits_[size_t(r) * V], V, in.score_targets[t], n, &sample_scratch_[thread], &res, &out->scored_ranks[t]);
        out->scored_logprobs[t] = res.logprob;
        for (size_t j = 0; j < res.top.size(); ++j) {
          out->scored_top_ids[size_t(t) * n + j] = res.top[j].first;
          out->scored_top_logprobs[size_t(t) * n + j] = res.top[j].second;
        }
      });
    }
  }

  std::shared_ptr<const Model> model_;
  const ModelConfig cfg_;
  EngineOptions opts_;
  Isa isa_;
  ThreadPool pool_;
  KvDType kv_ = KvDType::f32;  // never automatic (cpu_kv_dtype)
  KvBuffer k_cache_, v_cache_;
  KvBuffer k_scales_, v_scales_;  // int8 cache only: [layer][block][kv head]([K group])[slot] floats
  std::vector<float> inv_freq_, rope_cs_;  // rope_cs_: each token's cos and sin, [T][head_dim]
  std::vector<float> x_, h_, qkv_, attn_, gu_, act_, tmp_, logits_;
  std::vector<int> rows_;
  QuantAct act_q_;
  QuantBlocks act_b_;
  struct Tile {
    int seq, token, nq;
    int64_t cost;  // query rows x positions read
  };
  std::vector<Tile> tiles_;
  int tile_queries_ = 1;
  std::vector<std::vector<float>> thread_scratch_;  // attention tiles' scratch
  std::vector<SampleScratch> sample_scratch_;
  SequenceHistory history_;
};

}  // namespace

uint64_t cpu_kv_bytes_per_token(KvDType kv, const ModelConfig& c) {
  // a block of one slot: the values and scales of one position
  return uint64_t(2 * kv_block_value_bytes(kv, c, 1) + kv_block_scale_bytes(kv, c, 1, true) + kv_block_scale_bytes(kv, c, 1, false)) * c.num_layers;
}

Status cpu_engine_create(std::shared_ptr<const Model> model, const EngineOptions& o, std::unique_ptr<Engine>* out) {
  if (model->target != Backend::cpu)
    return Status::Error(StatusCode::bad_input, "the model was loaded for the CUDA backend; load it with target cpu");
  if (o.num_threads < 1 || o.num_threads > 256) return Status::Error(StatusCode::bad_input, "num_threads must be 1..256");
  if (o.num_kv_blocks < 1 || o.block_size < 1 || o.block_size > 1024)
    return Status::Error(StatusCode::bad_input, "num_kv_blocks and block_size must be positive");
  Isa isa = o.isa < 0 ? isa_detect() : static_cast<Isa>(o.isa);
  if (o.isa > 2 || !isa_supported(isa)) return Status::Error(StatusCode::bad_input, "ISA not supported by this CPU");
  try {
    out->reset(new CpuEngine(std::move(model), o, isa));
  } catch (const std::bad_alloc&) {
    return Status::Error(StatusCode::out_of_memory, "cannot allocate the KV cache (" + std::to_string(o.num_kv_blocks) + " blocks)");
  }
  return Status::Ok();
}

}  // namespace weft
