// libFuzzer target: model_load on a ModelSpec and a model file that both come from the input.
// The TypeScript loader checks a file before it builds a ModelSpec, but the native side must not
// rely on it: any spec and any file give a Status, never a crash, undefined behaviour or an
// allocation the file's size does not justify. A spec that loads also gets a CPU engine and one
// greedy step, so what a hostile config can still reach past the loader is covered too.
//
// Input layout (little-endian; fields past the end read as zero), written by
// bench/fuzz/native-corpus.ts from real and synthetic model files:
//   u8  flags: bits 0-1 weight dtype (f32, int8, f16, bf16), 2 target cuda, 3 rope_interleaved,
//       4 tie_embeddings, 5 qkv_bias, 6 qk_norm, 7 weight dtype quant (GGML blocks kept)
//   i32 dim, num_layers, num_heads, num_kv_heads, head_dim, ffn_dim, vocab_size, max_positions
//   u8  rope scaling (none, linear, llama3); f32 rms_eps, rope_theta, rope_factor, rope_low_freq_factor,
//       rope_high_freq_factor; i32 rope_original_max_positions
//   u16 number of tensors, then per tensor:
//       u8 name length, the name; u8 dtype (TensorDType's order: f32, f16, bf16, q8_0, i8, q4_0,
//       q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, q2_k, q3_k; modulo 14); u8 rank; i64 × rank shape;
//       u64 offset; u64 byte length
//   the rest: the bytes of the model file every tensor points into
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "weft_engine.h"

namespace {

struct Cursor {
  const uint8_t* p;
  size_t n;
  template <class T> T take() {
    T v{};
    const size_t k = n < sizeof(T) ? n : sizeof(T);
    std::memcpy(&v, p, k);
    p += k;
    n -= k;
    return v;
  }
  std::string bytes(size_t len) {
    if (len > n) len = n;
    std::string s(reinterpret_cast<const char*>(p), len);
    p += len;
    n -= len;
    return s;
  }
};

// The model file: one path per process (libFuzzer's -fork/-jobs workers each have their own),
// rewritten for every input. Mappings are dropped between inputs because the model that holds
// them is released, so the next model_load maps the new contents.
const std::string& file_path() {
  static const std::string path = [] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir && *dir ? dir : "/tmp") + "/weft-fuzz-model-" + std::to_string(getpid()) + ".bin";
  }();
  static const bool cleanup = std::atexit([] { ::unlink(path.c_str()); }) == 0;
  (void)cleanup;
  return path;
}

void write_file(const std::string& path, const uint8_t* data, size_t n) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) std::abort();
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w <= 0) std::abort();
    data += w;
    n -= size_t(w);
  }
  ::close(fd);
}

// One greedy step over a two-token prompt: the forward pass and sampling at the loaded shapes.
void run_one_step(std::shared_ptr<const weft::Model> model, int vocab_size) {
  weft::EngineOptions o;
  o.num_threads = 1;
  o.num_kv_blocks = 1;
  o.block_size = 16;
  std::unique_ptr<weft::Engine> engine;
  if (!weft::engine_create(std::move(model), o, &engine).ok()) return;
  const int32_t ids[2] = {0, vocab_size > 1 ? 1 : 0}, pos[2] = {0, 1}, slots[2] = {0, 1};
  const int32_t seq_id = 0, qs[2] = {0, 2}, ctx = 2, plen = 2, table = 0, top_k = 0, nlp = 0;
  const uint8_t sample = 1;
  const float temp = 0, top_p = 1, min_p = 0, rep = 1, zero = 0;
  const uint32_t seeds[2] = {1, 0};
  weft::StepInput in;
  in.num_tokens = 2;
  in.num_seqs = 1;
  in.token_ids = ids;
  in.positions = pos;
  in.slot_mapping = slots;
  in.seq_ids = &seq_id;
  in.query_start = qs;
  in.context_lens = &ctx;
  in.prompt_lens = &plen;
  in.block_tables = &table;
  in.max_blocks_per_seq = 1;
  in.do_sample = &sample;
  in.temperature = &temp;
  in.top_k = &top_k;
  in.top_p = &top_p;
  in.min_p = &min_p;
  in.repetition_penalty = &rep;
  in.presence_penalty = &zero;
  in.frequency_penalty = &zero;
  in.num_logprobs = &nlp;
  in.seeds = seeds;
  weft::StepOutput out;
  const weft::Status s = engine->step(in, &out);
  if (s.ok() && (out.sampled.size() != 1 || out.sampled[0] < 0 || out.sampled[0] >= vocab_size)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Cursor c{data, size};
  weft::ModelSpec spec;
  spec.key = "fuzz";  // the previous input's model is released, so the cache never answers
  const uint8_t flags = c.take<uint8_t>();
  spec.weight_dtype = flags & 128 ? weft::WeightDType::quant : static_cast<weft::WeightDType>(flags & 3);
  spec.target = flags & 4 ? weft::Backend::cuda : weft::Backend::cpu;
  spec.rope_interleaved = flags & 8;
  weft::ModelConfig& m = spec.config;
  m.tie_embeddings = flags & 16;
  m.qkv_bias = flags & 32;
  m.qk_norm = flags & 64;
  for (int* f : {&m.dim, &m.num_layers, &m.num_heads, &m.num_kv_heads, &m.head_dim, &m.ffn_dim, &m.vocab_size, &m.max_positions})
    *f = c.take<int32_t>();
  m.rope_scaling = static_cast<weft::RopeScalingType>(c.take<uint8_t>() % 3);
  for (float* f : {&m.rms_eps, &m.rope_theta, &m.rope_factor, &m.rope_low_freq_factor, &m.rope_high_freq_factor}) *f = c.take<float>();
  m.rope_original_max_positions = c.take<int32_t>();
  const std::string& path = file_path();
  const unsigned num_tensors = c.take<uint16_t>() % 4096;
  for (unsigned i = 0; i < num_tensors && c.n > 0; ++i) {
    weft::TensorSpec t;
    t.name = c.bytes(c.take<uint8_t>());
    t.file = path;
    t.dtype = static_cast<weft::TensorDType>(c.take<uint8_t>() % 14);
    const unsigned rank = c.take<uint8_t>() % 5;
    for (unsigned d = 0; d < rank; ++d) t.shape.push_back(c.take<int64_t>());
    t.offset = c.take<uint64_t>();
    t.byte_length = c.take<uint64_t>();
    spec.tensors.push_back(std::move(t));
  }
  write_file(path, c.p, c.n);
  std::shared_ptr<const weft::Model> model;
  const weft::Status s = weft::model_load(spec, &model);
  if (s.ok() != (model != nullptr) || (!s.ok() && s.message.empty())) std::abort();
  if (s.ok() && spec.target == weft::Backend::cpu) run_one_step(std::move(model), m.vocab_size);
  return 0;
}
