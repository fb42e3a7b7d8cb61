// The backend-agnostic engine interface: one model (weights, shared by every engine instance
// in the process) and engine instances (a paged KV cache, threads, per-sequence sampling state)
// that run one batched step per call. Native code returns a Status; it never prints or exits.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace weft {

enum class StatusCode {
  ok = 0,
  bad_input,  // WEFT_ERR_ENGINE_BAD_INPUT
  model_corrupt,  // WEFT_ERR_MODEL_CORRUPT
  model_dtype,  // WEFT_ERR_MODEL_UNSUPPORTED_DTYPE
  model_shape,  // WEFT_ERR_MODEL_SHAPE_MISMATCH
  model_missing,  // WEFT_ERR_MODEL_MISSING_TENSOR
  not_found,  // WEFT_ERR_MODEL_NOT_FOUND
  out_of_memory,  // WEFT_ERR_ENGINE_OUT_OF_MEMORY
  no_device,  // WEFT_ERR_ENGINE_NO_DEVICE
  internal,  // WEFT_ERR_ENGINE_INTERNAL
};

struct Status {
  StatusCode code = StatusCode::ok;
  std::string message;
  bool ok() const {
    return code == StatusCode::ok;
  }
  static Status Ok() {
    return {};
  }
  static Status Error(StatusCode c, std::string m) {
    return {c, std::move(m)};
  }
};
const char* status_code_name(StatusCode c);  // "WEFT_ERR_…"

enum class RopeScalingType { none = 0, linear = 1, llama3 = 2 };

struct ModelConfig {
  int dim = 0, num_layers = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0;
  int ffn_dim = 0, vocab_size = 0, max_positions = 0;
  float rms_eps = 1e-5f, rope_theta = 10000.f;
  RopeScalingType rope_scaling = RopeScalingType::none;
  float rope_factor = 1.f, rope_low_freq_factor = 1.f, rope_high_freq_factor = 4.f;
  int rope_original_max_positions = 8192;
  bool tie_embeddings = false, qkv_bias = false;
  bool qk_norm = false;  // Qwen3: per-head RMSNorm of q and k before RoPE
};

// q4_0 .. q6_k: GGML block formats (native/src/quant_blocks.h), read as stored.
enum class TensorDType { f32, f16, bf16, q8_0, i8, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, q2_k, q3_k };

struct TensorSpec {
  std::string name;  // canonical HF name
  std::string file;
  uint64_t offset = 0, byte_length = 0;
  TensorDType dtype = TensorDType::f32;
  std::vector<int64_t> shape;  // HF orientation
};

// f32 and int8 run on the CPU; f16, bf16 and int8 on CUDA. quant (CPU): every matrix keeps its
// file's type (GGML blocks stay blocks, Q8_0 runs as group-32 int8, float matrices as f32).
enum class WeightDType { f32, int8, f16, bf16, quant };

enum class Backend { cpu = 0, cuda = 1 };

struct ModelSpec {
  std::string key;  // cache key: same key → same loaded weights
  ModelConfig config;
  WeightDType weight_dtype = WeightDType::f32;
  Backend target = Backend::cpu;  // weight layout: CPU packed panels, or row-major staging for CUDA
  bool rope_interleaved = false;  // GGUF llama q/k row order
  std::vector<TensorSpec> tensors;
};

struct Model;  // opaque, immutable after load, shared across threads
// Loads (or returns the already loaded) weights for spec.key. Files are memory-mapped once per
// process; derived packed weights are shared by every engine instance.
Status model_load(const ModelSpec& spec, std::shared_ptr<const Model>* out);
const ModelConfig& model_config(const Model& m);
uint64_t model_weight_bytes(const Model& m);  // bytes one decode step reads from weights

// KV cache element type; automatic = f32 for f32 weights (the reference path), f16 otherwise.
// i8 (CPU only): int8 values, a float scale per 32 K values and per head of V values (attention.h),
// ~0.55x f16's bytes.
enum class KvDType { automatic = 0, f32 = 1, f16 = 2, i8 = 3 };

// The CPU engine's KV element type for `kv` with `weights` (never automatic): the one place the
// rule lives, asked by the CPU engine and by the server before any engine exists (to size the cache).
KvDType cpu_kv_dtype(KvDType kv, WeightDType weights);
// "f32", "f16", "int8" ("auto" for automatic): the names the API and the engines report.
const char* kv_dtype_name(KvDType kv);
// Bytes one token's K and V take in the CPU engine's cache over every layer, an int8 cache's
// scales included (kv never automatic): the rule the engine allocates by, which the server also
// sizes the cache by before any engine exists.
uint64_t cpu_kv_bytes_per_token(KvDType kv, const ModelConfig& c);

struct EngineOptions {
  Backend backend = Backend::cpu;
  int num_threads = 1;
  int num_kv_blocks = 256;
  int block_size = 16;
  int isa = -1;  // -1 auto, else weft::Isa value (tests force scalar/avx2/avx512)
  KvDType kv_dtype = KvDType::automatic;
  int device = 0;  // CUDA device
  // CUDA: when > 0, the KV cache takes this fraction of the device memory free after the
  // weights and this instance's workspaces, and num_kv_blocks is ignored (see num_kv_blocks()).
  double kv_cache_fraction = 0;
  int max_num_tokens = 2048;  // CUDA: activation workspace sized for this many tokens per step
  int max_num_seqs = 256;  // CUDA: and this many sequences
  int max_context_len = 0;  // CUDA: longest context of a sequence (0: the model's max_positions)
  bool cuda_graphs = true;  // CUDA: replay decode steps from graphs captured per batch bucket
};

// One batched step. All arrays are borrowed for the duration of the call.
// T = num_tokens, N = num_seqs. Tokens of sequence i are [query_start[i], query_start[i+1]).
// The per-sequence sampling parameters, defined once for C++ (the TypeScript twin is
// src/sampling.ts): X(type, name, name in the step object from JavaScript, value meaning "off").
// StepInput holds one array of each, SampleParams one value of each, and the addon reads them
// by these names. The seed travels apart, as two uint32 words per sequence.
#define WEFT_SAMPLING_FIELDS(X)                            \
  X(float, temperature, "temperature", 0) /* 0 = greedy */ \
  X(int32_t, top_k, "topK", 0)                             \
  X(float, top_p, "topP", 1)                               \
  X(float, min_p, "minP", 0)                               \
  X(float, repetition_penalty, "repetitionPenalty", 1)     \
  X(float, presence_penalty, "presencePenalty", 0)         \
  X(float, frequency_penalty, "frequencyPenalty", 0)       \
  X(int32_t, num_logprobs, "numLogprobs", -1) /* -1 none, 0 chosen, k top k */

struct StepInput {
  int num_tokens = 0, num_seqs = 0;
  const int32_t* token_ids = nullptr;  // [T]
  const int32_t* positions = nullptr;  // [T]
  const int32_t* slot_mapping = nullptr;  // [T] block_id * block_size + offset
  const int32_t* seq_ids = nullptr;  // [N] engine-wide sequence ids (penalty history)
  const int32_t* query_start = nullptr;  // [N+1]
  const int32_t* context_lens = nullptr;  // [N] KV length after this step
  const int32_t* prompt_lens = nullptr;  // [N] tokens before the first output (penalties)
  const int32_t* block_tables = nullptr;  // [N * max_blocks_per_seq]
  int max_blocks_per_seq = 0;
  const uint8_t* do_sample = nullptr;  // [N] 1: sample a token after this step's last token
  // sampling parameters, [N] each (WEFT_SAMPLING_FIELDS), and the seeds
#define WEFT_STEP_INPUT_FIELD(T, name, js, off) const T* name = nullptr;
  WEFT_SAMPLING_FIELDS(WEFT_STEP_INPUT_FIELD)
#undef WEFT_STEP_INPUT_FIELD
  const uint32_t* seeds = nullptr;  // [2N] lo, hi
  // housekeeping executed before the forward pass
  const int32_t* block_copies = nullptr;  // [2C] src, dst block ids
  int num_block_copies = 0;
  const int32_t* forks = nullptr;  // [2F] parent seq id, child seq id (copies history)
  int num_forks = 0;
  const int32_t* release_seq_ids = nullptr;  // [R] sequences whose state can be dropped
  int num_release = 0;
  // Token history not fed this step (a prompt prefix served from the prefix cache), so that
  // penalties see the whole sequence: for each of H sequences, tokens at positions 0, 1, …
  const int32_t* history_seq_ids = nullptr;  // [H]
  const int32_t* history_offsets = nullptr;  // [H+1] into history_tokens
  const int32_t* history_tokens = nullptr;
  int num_history = 0;
  bool return_logits = false;  // raw logits of each sampled row (tests, rerankers)
  // Only these vocabulary rows of the LM head are needed (a reranker reads two logits): an engine
  // may evaluate just them and leave every other logit at -inf (both engines do; the CPU one not
  // for an LM head split in segments of different block types). What is sampled is then
  // unspecified: for prefill-only scoring requests. null: the whole vocabulary.
  const int32_t* logit_rows = nullptr;
  int num_logit_rows = 0;
  // Token masks (structured output): a sampled sequence i with mask_index[i] >= 0 may only sample
  // the tokens allowed by row mask_index[i] of token_masks ([num_masks][mask_words], bit t & 31 of
  // word t >> 5 set = token t allowed, mask_words = ceil(vocab / 32)). The mask applies to the
  // logits before everything else (penalties, greedy, sampling rules, log-probs: the log-probs are
  // those of the allowed tokens). mask_index null or -1: every token allowed, at no cost.
  const int32_t* mask_index = nullptr;  // [N]
  const uint32_t* token_masks = nullptr;  // [num_masks * mask_words]
  int num_masks = 0, mask_words = 0;
  // Logit biases (OpenAI's logit_bias): sequence i adds bias_values[j] to the logit of token
  // bias_ids[j] for j in [bias_offsets[i], bias_offsets[i+1]), after its mask and before
  // everything else (log-probs included). bias_offsets null: no biases.
  const int32_t* bias_offsets = nullptr;  // [N + 1]
  const int32_t* bias_ids = nullptr;
  const float* bias_values = nullptr;
  // Prompt scoring (OpenAI's echo with logprobs, vLLM's prompt_logprobs): token row t with
  // score_targets[t] >= 0 gets the log-prob of that token (the next prompt token) under the raw
  // model distribution at its position, and the score_top_n likeliest tokens'. No mask, bias or
  // penalty applies. null: no row is scored. CPU only.
  const int32_t* score_targets = nullptr;  // [T]
  int score_top_n = 0;
  // Hidden states (embeddings): the final-normed hidden state (the LM head's input) of each token
  // row hidden_rows[j] is returned, in that order. For pooling, so any row may be asked for,
  // sampled or not. null: none. CPU only.
  const int32_t* hidden_rows = nullptr;  // [num_hidden_rows] token rows in [0, T)
  int num_hidden_rows = 0;
};

struct StepOutput {
  std::vector<int32_t> sampled;  // [N] -1 when not sampled
  std::vector<float> logprobs;  // [N] chosen token's logprob (NaN when not asked)
  int top_n = 0;  // max num_logprobs in the batch
  std::vector<int32_t> top_ids;  // [N * top_n], -1 padded
  std::vector<float> top_logprobs;  // [N * top_n]
  std::vector<float> logits;  // [num sampled rows * vocab] when return_logits
  // with score_targets: [T] the target's log-prob (NaN for rows not scored), [T * score_top_n]
  // the likeliest tokens (-1 / NaN padded); empty without
  std::vector<float> scored_logprobs;
  std::vector<int32_t> scored_ranks;  // [T] the target's rank (1 = likeliest), 0 for rows not scored
  std::vector<int32_t> scored_top_ids;
  std::vector<float> scored_top_logprobs;
  std::vector<float> hidden;  // with hidden_rows: [num_hidden_rows * dim]
  double forward_us = 0, sample_us = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual Status step(const StepInput& in, StepOutput* out) = 0;
  virtual int num_kv_blocks() const = 0;
  virtual int block_size() const = 0;
  virtual const char* isa_name() const = 0;  // CPU ISA, or the CUDA device name
  virtual const char* kv_dtype_name() const = 0;  // "f32", "f16", "int8" or "bf16"
  virtual uint64_t kv_cache_bytes() const = 0;  // the K and V caches' bytes, with any scales
  // Weight bytes one decode step at batch 1 reads (the figure its memory bandwidth bounds).
  virtual uint64_t token_weight_bytes() const = 0;
};

Status engine_create(std::shared_ptr<const Model> model, const EngineOptions& opts, std::unique_ptr<Engine>* out);

// CUDA devices visible to this build (0 when built without CUDA or without a driver/GPU).
int cuda_device_count();
struct CudaDeviceInfo {
  std::string name;
  int major = 0, minor = 0, sm_count = 0;
  uint64_t total_bytes = 0, free_bytes = 0;
};
Status cuda_device_info(int device, CudaDeviceInfo* out);

}  // namespace weft
