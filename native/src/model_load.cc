// model_load: spec (file offsets from the TypeScript loader) → packed weights, cached per key
// so every engine instance in the process shares one copy.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <new>
#include <thread>

#include "half.h"
#include "load_progress.h"
#include "model.h"
#include "quant_blocks.h"

namespace weft {
namespace {

// The largest dimension a tensor may have: matrices are indexed with int (Matrix::n, k), and two
// of them multiply without overflow in 64 bits (2^31 · 2^31 · 4 bytes < 2^64).
constexpr int64_t kMaxTensorDim = INT32_MAX;

// [offset, offset + length) lies inside the file, without overflowing on huge values.
bool within(const MappedFile& f, uint64_t offset, uint64_t length) {
  return offset <= f.size && length <= f.size - offset;
}

struct Loader {
  const ModelSpec& spec;
  Model& model;
  std::map<std::string, TensorView> views;
  std::vector<std::vector<float>> scale_store;  // aligned copies of i8 row scales

  Status open_all() {
    std::map<std::string, const TensorSpec*> by_name;
    for (const auto& t : spec.tensors) by_name[t.name] = &t;
    for (const auto& t : spec.tensors) {
      if (t.name.size() > 6 && t.name.compare(t.name.size() - 6, 6, "_scale") == 0) continue;
      std::shared_ptr<MappedFile> f;
      Status s = mapped_file_open(t.file, &f);
      if (!s.ok()) return s;
      model.files.push_back(f);
      if (t.shape.empty() || t.shape.size() > 2) return Status::Error(StatusCode::model_shape, t.name + " in " + t.file + ": rank must be 1 or 2");
      for (int64_t d : t.shape)
        if (d < 1 || d > kMaxTensorDim)
          return Status::Error(StatusCode::model_shape, t.name + " in " + t.file + ": dimension " + std::to_string(d) + " out of range");
      int64_t rows = t.shape.size() == 2 ? t.shape[0] : 1, cols = t.shape.back();
      if (cols % block_values(t.dtype) != 0)
        return Status::Error(StatusCode::model_corrupt, t.name + " in " + t.file + ": row length " + std::to_string(cols) + " not a multiple of " +
                                                            std::to_string(block_values(t.dtype)) + " (the type's block)");
      if (t.byte_length != tensor_bytes(t.dtype, uint64_t(rows) * uint64_t(cols)) || !within(*f, t.offset, t.byte_length))
        return Status::Error(StatusCode::model_corrupt, t.name + " in " + t.file + ": data size or offset out of bounds");
      TensorView v{f->data + t.offset, t.dtype, rows, cols, nullptr};
      if (t.dtype == TensorDType::i8) {
        auto it = by_name.find(t.name + "_scale");
        if (it == by_name.end()) return Status::Error(StatusCode::model_missing, t.name + "_scale missing for int8 tensor in " + t.file);
        const TensorSpec& ss = *it->second;
        std::shared_ptr<MappedFile> sf;
        if (!(s = mapped_file_open(ss.file, &sf)).ok()) return s;
        model.files.push_back(sf);
        if (ss.dtype != TensorDType::f32 || ss.byte_length != uint64_t(rows) * 4 || !within(*sf, ss.offset, ss.byte_length))
          return Status::Error(StatusCode::model_corrupt, ss.name + " in " + ss.file + ": expected F32 [" + std::to_string(rows) + "]");
        scale_store.emplace_back(rows);
        std::memcpy(scale_store.back().data(), sf->data + ss.offset, rows * 4);
        v.row_scales = scale_store.back().data();
      }
      views[t.name] = v;
    }
    return Status::Ok();
  }

  Status get(const std::string& name, int64_t rows, int64_t cols, TensorView* out) {
    auto it = views.find(name);
    if (it == views.end()) return Status::Error(StatusCode::model_missing, "missing tensor " + name);
    const TensorView& v = it->second;
    if (v.rows != rows || v.cols != cols)
      return Status::Error(StatusCode::model_shape, name + ": expected [" + std::to_string(rows) + ", " + std::to_string(cols) + "], found [" +
                                                        std::to_string(v.rows) + ", " + std::to_string(v.cols) + "]");
    *out = v;
    return Status::Ok();
  }

  Status vec(const std::string& name, int64_t n, std::vector<float>* out) {
    TensorView v;
    Status s = get(name, 1, n, &v);
    if (!s.ok()) return s;
    out->resize(n);
    tensor_row_f32(v, 0, out->data());
    return Status::Ok();
  }
};

// Rows of a stacked matrix: which tensor and which of its rows (GGUF llama q/k rows are
// permuted for interleaved RoPE; map them back to the HF rotate-half order).
struct Part {
  TensorView view;
  int unpermute_heads = 0;  // > 0: undo the GGUF permutation with this many heads
};

int64_t source_row(const Part& p, int64_t r) {
  if (p.unpermute_heads <= 0) return r;
  const int64_t hd = p.view.rows / p.unpermute_heads, h = r / hd, i = r % hd, half = hd / 2;
  const int64_t s = i / half, j = i % half;  // HF row (h, s, j) sits at GGUF row (h, j, s)
  return h * hd + j * 2 + s;
}

Status build_matrix(const std::vector<Part>& parts, WeightDType wd, Matrix* m) {
  int64_t n = 0, k = parts[0].view.cols;
  bool all_q8 = true, all_i8 = true;
  for (const auto& p : parts) {
    n += p.view.rows;
    all_q8 &= p.view.dtype == TensorDType::q8_0;
    all_i8 &= p.view.dtype == TensorDType::i8;
  }
  m->n = int(n);
  m->k = int(k);
  m->kind = wd == WeightDType::int8 ? MatrixKind::i8 : MatrixKind::f32;
  const bool is_int8 = m->kind == MatrixKind::i8;
  if (is_int8 && all_q8) {
    const int64_t row_bytes = (k / 32) * 34;
    std::vector<uint8_t> blocks(n * row_bytes);
    int64_t o = 0;
    for (const auto& p : parts)
      for (int64_t r = 0; r < p.view.rows; ++r, ++o) std::memcpy(&blocks[o * row_bytes], p.view.data + source_row(p, r) * row_bytes, row_bytes);
    pack_q8_0(blocks.data(), int(n), int(k), &m->i8);
    return Status::Ok();
  }
  if (is_int8 && all_i8) {
    std::vector<int8_t> q(n * k);
    std::vector<float> scales(n);
    int64_t o = 0;
    for (const auto& p : parts)
      for (int64_t r = 0; r < p.view.rows; ++r, ++o) {
        const int64_t sr = source_row(p, r);
        std::memcpy(&q[o * k], p.view.data + sr * k, k);
        scales[o] = p.view.row_scales[sr];
      }
    pack_i8(q.data(), scales.data(), int(n), int(k), 0, &m->i8);
    return Status::Ok();
  }
  std::vector<float> w(n * k);
  int64_t o = 0;
  for (const auto& p : parts)
    for (int64_t r = 0; r < p.view.rows; ++r, ++o) tensor_row_f32(p.view, source_row(p, r), &w[o * k]);
  if (is_int8) quantize_pack_i8(w.data(), int(n), int(k), 0, &m->i8);
  else pack_f32(w.data(), int(n), int(k), &m->f32);
  return Status::Ok();
}

// WeightDType::quant: parts that share a storage type, packed in that type: GGML blocks as
// PackedQ, Q8_0 and int8 as int8, float types as f32.
Status build_quant_run(const std::vector<Part>& parts, Matrix* m) {
  const TensorDType d = parts[0].view.dtype;
  if (!block_format(d)) return build_matrix(parts, d == TensorDType::q8_0 || d == TensorDType::i8 ? WeightDType::int8 : WeightDType::f32, m);
  const int64_t k = parts[0].view.cols, row_bytes = int64_t(tensor_bytes(d, uint64_t(k)));
  std::vector<const uint8_t*> rows;
  for (const auto& p : parts)
    for (int64_t r = 0; r < p.view.rows; ++r) rows.push_back(p.view.data + source_row(p, r) * row_bytes);
  m->n = int(rows.size());
  m->k = int(k);
  m->kind = MatrixKind::q;
  pack_q(int(d), rows.data(), m->n, m->k, &m->q);
  return Status::Ok();
}

// Runs of consecutive parts with one type; a matrix of several runs becomes row segments.
Status build_quant_matrix(const std::vector<Part>& parts, Matrix* m) {
  std::vector<std::vector<Part>> runs;
  for (const auto& p : parts) {
    if (runs.empty() || runs.back()[0].view.dtype != p.view.dtype) runs.emplace_back();
    runs.back().push_back(p);
  }
  if (runs.size() == 1) return build_quant_run(parts, m);
  m->n = 0;
  m->k = int(parts[0].view.cols);
  for (const auto& run : runs) {
    Status s = build_quant_run(run, &m->segments.emplace_back());
    if (!s.ok()) return s;
    m->n += m->segments.back().n;
  }
  return Status::Ok();
}

// The CUDA staging of the same stacked matrix: row-major, k zero-padded to a multiple of 64.
// int8: GGUF Q8_0 keeps its per-32 scales, pre-quantized int8 its per-row scales, and float
// sources are quantized per row (symmetric, as on the CPU).
Status build_host_matrix(const std::vector<Part>& parts, WeightDType wd, HostMatrix* m) {
  int64_t n = 0;
  const int64_t k = parts[0].view.cols;
  bool all_q8 = true, all_i8 = true;
  for (const auto& p : parts) {
    n += p.view.rows;
    all_q8 &= p.view.dtype == TensorDType::q8_0;
    all_i8 &= p.view.dtype == TensorDType::i8;
  }
  const int64_t kpad = (k + 63) / 64 * 64;
  m->n = int(n);
  m->k = int(k);
  m->kpad = int(kpad);
  std::vector<float> row(k);
  if (wd != WeightDType::int8) {
    m->kind = wd == WeightDType::bf16 ? HostWeightKind::bf16 : HostWeightKind::f16;
    m->half.assign(n * kpad, 0);
    int64_t o = 0;
    for (const auto& p : parts)
      for (int64_t r = 0; r < p.view.rows; ++r, ++o) {
        tensor_row_f32(p.view, source_row(p, r), row.data());
        uint16_t* dst = &m->half[o * kpad];
        for (int64_t c = 0; c < k; ++c) dst[c] = wd == WeightDType::bf16 ? f32_to_bf16(row[c]) : f32_to_f16(row[c]);
      }
    return Status::Ok();
  }
  m->kind = HostWeightKind::i8;
  m->q.assign(n * kpad, 0);
  if (all_q8) {
    m->group = 32;
    m->scales.assign(n * (kpad / 32), 0.f);
    const int64_t row_bytes = (k / 32) * 34;
    int64_t o = 0;
    for (const auto& p : parts)
      for (int64_t r = 0; r < p.view.rows; ++r, ++o) {
        const uint8_t* src = p.view.data + source_row(p, r) * row_bytes;
        for (int64_t b = 0; b < k / 32; ++b, src += 34) {
          uint16_t d;
          std::memcpy(&d, src, 2);
          m->scales[o * (kpad / 32) + b] = f16_to_f32(d);
          std::memcpy(&m->q[o * kpad + b * 32], src + 2, 32);
        }
      }
    return Status::Ok();
  }
  m->group = 0;
  m->scales.assign(n, 0.f);
  int64_t o = 0;
  for (const auto& p : parts)
    for (int64_t r = 0; r < p.view.rows; ++r, ++o) {
      const int64_t sr = source_row(p, r);
      if (all_i8) {
        std::memcpy(&m->q[o * kpad], p.view.data + sr * k, k);
        m->scales[o] = p.view.row_scales[sr];
        continue;
      }
      tensor_row_f32(p.view, sr, row.data());
      float amax = 0;
      for (int64_t c = 0; c < k; ++c) amax = std::max(amax, std::fabs(row[c]));
      const float scale = amax > 0 ? amax / 127.f : 1.f;
      m->scales[o] = scale;
      for (int64_t c = 0; c < k; ++c) m->q[o * kpad + c] = int8_t(std::lrint(std::min(127.f, std::max(-127.f, row[c] / scale))));
    }
  return Status::Ok();
}

// Builds the matrix for the model's target: CPU packed panels, or CUDA staging.
Status build_target_matrix(const std::vector<Part>& parts, const ModelSpec& spec, Matrix* cpu, HostMatrix* gpu) {
  Status s = spec.target == Backend::cuda              ? build_host_matrix(parts, spec.weight_dtype, gpu)
             : spec.weight_dtype == WeightDType::quant ? build_quant_matrix(parts, cpu)
                                                       : build_matrix(parts, spec.weight_dtype, cpu);
  for (const auto& p : parts) load_progress_add(tensor_bytes(p.view.dtype, uint64_t(p.view.rows) * uint64_t(p.view.cols)));
  return s;
}

// Bytes a step streams for this matrix: the packed buffers as laid out (padding, group scales
// and the int8 row sums included).
uint64_t matrix_bytes(const Matrix& m) {
  uint64_t b = 0;
  for (const auto& s : m.segments) b += matrix_bytes(s);
  switch (m.kind) {
    case MatrixKind::i8:
      return b + m.i8.data.bytes + m.i8.scales.bytes + m.i8.row_sums.bytes;
    case MatrixKind::q:
      return b + m.q.bytes();
    default:
      return b + m.f32.data.bytes;
  }
}

Status validate_dtype_target(const ModelSpec& spec) {
  const WeightDType wd = spec.weight_dtype;
  if (spec.target == Backend::cpu && (wd == WeightDType::f16 || wd == WeightDType::bf16))
    return Status::Error(StatusCode::model_dtype, "f16/bf16 weights run on the CUDA backend; the CPU backend takes f32 or int8");
  if (spec.target == Backend::cuda && (wd == WeightDType::f32 || wd == WeightDType::quant))
    return Status::Error(StatusCode::model_dtype, "f32 and quant weights run on the CPU backend; the CUDA backend takes f16, bf16 or int8");
  return Status::Ok();
}

Status validate_config(const ModelConfig& c) {
  if (c.dim <= 0 || c.num_layers <= 0 || c.num_heads <= 0 || c.num_kv_heads <= 0 || c.head_dim <= 0 || c.ffn_dim <= 0 || c.vocab_size <= 0 ||
      c.num_heads % c.num_kv_heads != 0 || c.head_dim % 2 != 0)
    return Status::Error(StatusCode::bad_input, "invalid model config");
  // the stacked matrices (q, k, v rows; gate and up rows) are indexed with int
  const int64_t qkv_heads = int64_t(c.num_heads) + 2 * int64_t(c.num_kv_heads);
  if (qkv_heads > kMaxTensorDim / c.head_dim || 2 * int64_t(c.ffn_dim) > kMaxTensorDim)
    return Status::Error(StatusCode::bad_input, "invalid model config: the attention or FFN matrices have more than 2^31 rows");
  return Status::Ok();
}

// CUDA: the embedding table in the activation dtype, and the LM head (sharing the table's
// device buffer when the embeddings are tied, unquantized and dim is a multiple of 64).
Status stage_embeddings_cuda(const ModelSpec& spec, const TensorView& head, Model* model) {
  const ModelConfig& c = spec.config;
  const bool bf16 = model->act_bf16;
  model->g_embed.resize(size_t(c.vocab_size) * c.dim);
  std::vector<float> row(c.dim);
  for (int r = 0; r < c.vocab_size; ++r) {
    tensor_row_f32(model->embed, r, row.data());
    for (int i = 0; i < c.dim; ++i) model->g_embed[size_t(r) * c.dim + i] = bf16 ? f32_to_bf16(row[i]) : f32_to_f16(row[i]);
  }
  const bool same_table = head.data == model->embed.data;
  model->g_lm_head_is_embed = same_table && spec.weight_dtype != WeightDType::int8 && c.dim % 64 == 0;
  if (!model->g_lm_head_is_embed) {
    Status s = build_host_matrix({{head, 0}}, spec.weight_dtype, &model->g_lm_head);
    if (!s.ok()) return s;
  }
  model->weight_bytes += model->g_lm_head_is_embed ? uint64_t(c.vocab_size) * c.dim * 2 : model->g_lm_head.bytes();
  return Status::Ok();
}

// Runs the jobs (each packs one matrix) on up to one thread per core, each thread allocating
// from the model's arena; the first failure is returned, an exception (std::bad_alloc) rethrown
// here. Packing reads and converts every weight byte: one thread packed the 110M shape's Q4_K_M
// file at ~175 MB/s (an 8B model's 4.9 GB would take ~28 s); two made it 1.9x faster.
Status run_build_jobs(std::vector<std::function<Status()>>& jobs, WeightArena* arena) {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const size_t num_threads = std::min<size_t>({jobs.size(), cores, 32});
  std::atomic<size_t> next{0};
  std::mutex mu;
  Status first = Status::Ok();
  std::exception_ptr thrown;
  auto work = [&] {
    WeightArenaScope in_arena(arena);
    for (size_t j; (j = next.fetch_add(1)) < jobs.size();) {
      Status s = Status::Ok();
      try {
        s = jobs[j]();
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!thrown) thrown = std::current_exception();
        next = jobs.size();  // the others stop after their current job
        return;
      }
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = s;
        next = jobs.size();
        return;
      }
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 1; t < num_threads; ++t) threads.emplace_back(work);
  work();
  for (std::thread& t : threads) t.join();
  if (thrown) std::rethrow_exception(thrown);
  return first;
}

Status load_uncached(const ModelSpec& spec, Model* model) {
  const ModelConfig& c = spec.config;
  Status s = validate_config(c);
  if (!s.ok()) return s;
  if (!(s = validate_dtype_target(spec)).ok()) return s;
  model->config = c;
  model->weight_dtype = spec.weight_dtype;
  model->target = spec.target;
  Loader L{spec, *model, {}, {}};
  if (!(s = L.open_all()).ok()) return s;
  if (!(s = L.get("model.embed_tokens.weight", c.vocab_size, c.dim, &model->embed)).ok()) return s;
  if (model->embed.dtype == TensorDType::i8)
    return Status::Error(StatusCode::model_dtype, "model.embed_tokens.weight: int8 embeddings are not supported");
  // CUDA activations: bf16 for bf16 weights, or int8 quantized from a bf16 checkpoint; else f16.
  model->act_bf16 = spec.weight_dtype == WeightDType::bf16 || (spec.weight_dtype == WeightDType::int8 && model->embed.dtype == TensorDType::bf16);
  const int q_rows = c.num_heads * c.head_dim, kv_rows = c.num_kv_heads * c.head_dim;
  const int perm_q = spec.rope_interleaved ? c.num_heads : 0, perm_k = spec.rope_interleaved ? c.num_kv_heads : 0;
  // grown layer by layer: a config with 2^31 layers fails at the first missing tensor, before
  // allocating anything for the layers it claims
  std::vector<std::function<Status()>> jobs;  // the matrices to pack (run_build_jobs)
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights& lw = model->layers.emplace_back();
    TensorView q, k, v, o, g, u, d;
    if (!(s = L.vec(p + "input_layernorm.weight", c.dim, &lw.attn_norm)).ok()) return s;
    if (!(s = L.vec(p + "post_attention_layernorm.weight", c.dim, &lw.ffn_norm)).ok()) return s;
    if (!(s = L.get(p + "self_attn.q_proj.weight", q_rows, c.dim, &q)).ok()) return s;
    if (!(s = L.get(p + "self_attn.k_proj.weight", kv_rows, c.dim, &k)).ok()) return s;
    if (!(s = L.get(p + "self_attn.v_proj.weight", kv_rows, c.dim, &v)).ok()) return s;
    if (!(s = L.get(p + "self_attn.o_proj.weight", c.dim, q_rows, &o)).ok()) return s;
    if (!(s = L.get(p + "mlp.gate_proj.weight", c.ffn_dim, c.dim, &g)).ok()) return s;
    if (!(s = L.get(p + "mlp.up_proj.weight", c.ffn_dim, c.dim, &u)).ok()) return s;
    if (!(s = L.get(p + "mlp.down_proj.weight", c.dim, c.ffn_dim, &d)).ok()) return s;
    if (c.qkv_bias) {
      std::vector<float> bq, bk, bv;
      if (!(s = L.vec(p + "self_attn.q_proj.bias", q_rows, &bq)).ok()) return s;
      if (!(s = L.vec(p + "self_attn.k_proj.bias", kv_rows, &bk)).ok()) return s;
      if (!(s = L.vec(p + "self_attn.v_proj.bias", kv_rows, &bv)).ok()) return s;
      // the bias rows follow the weight rows' permutation
      Part pq{TensorView{reinterpret_cast<const uint8_t*>(bq.data()), TensorDType::f32, q_rows, 1, nullptr}, perm_q};
      Part pk{TensorView{reinterpret_cast<const uint8_t*>(bk.data()), TensorDType::f32, kv_rows, 1, nullptr}, perm_k};
      for (int r = 0; r < q_rows; ++r) lw.qkv_bias.push_back(bq[source_row(pq, r)]);
      for (int r = 0; r < kv_rows; ++r) lw.qkv_bias.push_back(bk[source_row(pk, r)]);
      lw.qkv_bias.insert(lw.qkv_bias.end(), bv.begin(), bv.end());
    }
    if (c.qk_norm) {
      // the norm runs over a whole head in HF (rotate-half) order, so GGUF permuted rows would
      // need their norm weights permuted too; llama.cpp permutes only llama q/k, which has no q/k norm
      if (spec.rope_interleaved) return Status::Error(StatusCode::bad_input, "q/k norm with interleaved (permuted) GGUF q/k rows");
      // the CUDA engine normalizes before rope_qkv adds the bias (neither Qwen2 nor Qwen3 has both)
      if (c.qkv_bias) return Status::Error(StatusCode::bad_input, "q/k norm together with a q/k/v bias is not supported");
      if (!(s = L.vec(p + "self_attn.q_norm.weight", c.head_dim, &lw.q_norm)).ok()) return s;
      if (!(s = L.vec(p + "self_attn.k_norm.weight", c.head_dim, &lw.k_norm)).ok()) return s;
    }
    // packed below, once every layer's tensors are found (model->layers no longer grows then)
    auto pack = [&](std::vector<Part> parts, Matrix LayerWeights::*cpu, HostMatrix LayerWeights::*gpu) {
      jobs.push_back([=, &spec] {
        LayerWeights& w = model->layers[size_t(l)];
        return build_target_matrix(parts, spec, &(w.*cpu), &(w.*gpu));
      });
    };
    pack({{q, perm_q}, {k, perm_k}, {v, 0}}, &LayerWeights::qkv, &LayerWeights::g_qkv);
    pack({{o, 0}}, &LayerWeights::o, &LayerWeights::g_o);
    pack({{g, 0}, {u, 0}}, &LayerWeights::gate_up, &LayerWeights::g_gate_up);
    pack({{d, 0}}, &LayerWeights::down, &LayerWeights::g_down);
  }
  if (!(s = L.vec("model.norm.weight", c.dim, &model->final_norm)).ok()) return s;
  TensorView head = model->embed;
  if (!c.tie_embeddings || L.views.count("lm_head.weight"))
    if (!(s = L.get("lm_head.weight", c.vocab_size, c.dim, &head)).ok()) return s;
  if (spec.target == Backend::cpu)
    jobs.push_back([=, &spec] {
      Matrix* lm = &model->lm_head;
      return spec.weight_dtype == WeightDType::quant ? build_quant_matrix({{head, 0}}, lm) : build_matrix({{head, 0}}, spec.weight_dtype, lm);
    });
  if (!(s = run_build_jobs(jobs, &model->arena)).ok()) return s;
  for (const LayerWeights& lw : model->layers)
    model->weight_bytes += matrix_bytes(lw.qkv) + matrix_bytes(lw.o) + matrix_bytes(lw.gate_up) + matrix_bytes(lw.down) + lw.g_qkv.bytes() +
                           lw.g_o.bytes() + lw.g_gate_up.bytes() + lw.g_down.bytes();
  if (spec.target == Backend::cpu) {
    model->weight_bytes += matrix_bytes(model->lm_head);
    return Status::Ok();
  }
  return stage_embeddings_cuda(spec, head, model);
}

}  // namespace

Status model_load(const ModelSpec& spec, std::shared_ptr<const Model>* out) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<const Model>> cache;
  std::lock_guard<std::mutex> lock(mu);  // one load at a time; a second worker waits and shares
  if (auto m = cache[spec.key].lock()) {
    *out = m;
    return Status::Ok();
  }
  uint64_t total = 0;
  for (const auto& t : spec.tensors) total += t.byte_length;
  load_progress_begin(total);
  try {
    auto model = std::make_shared<Model>();
    Status s = [&] {
      WeightArenaScope in_arena(&model->arena);
      return load_uncached(spec, model.get());
    }();
    load_progress_end(s.ok());
    if (!s.ok()) return s;
    for (const auto& f : model->files) mapped_file_drop_pages(*f);
    cache[spec.key] = model;
    *out = model;
    return Status::Ok();
  } catch (const std::bad_alloc&) {
    load_progress_end(false);
    return Status::Error(StatusCode::out_of_memory, "out of memory while loading " + spec.key);
  }
}

const ModelConfig& model_config(const Model& m) {
  return m.config;
}
uint64_t model_weight_bytes(const Model& m) {
  return m.weight_bytes;
}

const char* status_code_name(StatusCode c) {
  switch (c) {
    case StatusCode::ok:
      return "OK";
    case StatusCode::bad_input:
      return "WEFT_ERR_ENGINE_BAD_INPUT";
    case StatusCode::model_corrupt:
      return "WEFT_ERR_MODEL_CORRUPT";
    case StatusCode::model_dtype:
      return "WEFT_ERR_MODEL_UNSUPPORTED_DTYPE";
    case StatusCode::model_shape:
      return "WEFT_ERR_MODEL_SHAPE_MISMATCH";
    case StatusCode::model_missing:
      return "WEFT_ERR_MODEL_MISSING_TENSOR";
    case StatusCode::not_found:
      return "WEFT_ERR_MODEL_NOT_FOUND";
    case StatusCode::out_of_memory:
      return "WEFT_ERR_ENGINE_OUT_OF_MEMORY";
    case StatusCode::no_device:
      return "WEFT_ERR_ENGINE_NO_DEVICE";
    case StatusCode::internal:
      return "WEFT_ERR_ENGINE_INTERNAL";
  }
  return "WEFT_ERR_ENGINE_INTERNAL";
}

}  // namespace weft
