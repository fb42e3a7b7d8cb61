// model_load against hostile ModelSpecs: the TypeScript loader validates a file before it builds a
// spec, but the native side checks every offset, length, shape and config product itself, so a
// bad spec is a typed Status, never an out-of-bounds read, an overflow or a giant allocation.
// Each case is a regression test for a fuzzing finding (native/fuzz/fuzz_model_load.cc) or a
// boundary of the same checks; the sanitizer build (WEFT_SANITIZE) runs them too.
// Ends with "N passed, N failed"; exit 1 on failure.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <unistd.h>

#include "check.h"
#include "weft_engine.h"

using namespace weft;

using weft_test::check;

// A tiny Llama (dim 32, one layer, 2 heads of 16, 1 KV head, FFN 32, vocab 8) in one f32 file.
struct TinyModel {
  ModelSpec spec;
  std::vector<uint8_t> bytes;

  TinyModel() {
    ModelConfig& c = spec.config;
    c.dim = 32, c.num_layers = 1, c.num_heads = 2, c.num_kv_heads = 1, c.head_dim = 16, c.ffn_dim = 32, c.vocab_size = 8;
    c.max_positions = 32;
    const std::string l = "model.layers.0.";
    add("model.embed_tokens.weight", {8, 32});
    add(l + "input_layernorm.weight", {32});
    add(l + "post_attention_layernorm.weight", {32});
    add(l + "self_attn.q_proj.weight", {32, 32});
    add(l + "self_attn.k_proj.weight", {16, 32});
    add(l + "self_attn.v_proj.weight", {16, 32});
    add(l + "self_attn.o_proj.weight", {32, 32});
    add(l + "mlp.gate_proj.weight", {32, 32});
    add(l + "mlp.up_proj.weight", {32, 32});
    add(l + "mlp.down_proj.weight", {32, 32});
    add("model.norm.weight", {32});
    add("lm_head.weight", {8, 32});
  }

  void add(const std::string& name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    TensorSpec t;
    t.name = name;
    t.offset = bytes.size();
    t.byte_length = uint64_t(n) * 4;
    t.shape = shape;
    for (int64_t i = 0; i < n; ++i) {
      const float v = name.find("norm") != std::string::npos ? 1.f : 0.01f * float((i * 7 + bytes.size()) % 13) - 0.06f;
      uint8_t b[4];
      std::memcpy(b, &v, 4);
      bytes.insert(bytes.end(), b, b + 4);
    }
    spec.tensors.push_back(t);
  }

  TensorSpec& tensor(const std::string& name) {
    for (auto& t : spec.tensors)
      if (t.name == name) return t;
    std::abort();
  }
};

static std::string g_dir;
static int g_files = 0;

// Writes the model's bytes to a new file (mappings are shared per path) and loads the spec.
static Status load(TinyModel m, std::shared_ptr<const Model>* out = nullptr) {
  const std::string path = g_dir + "/model-" + std::to_string(g_files++) + ".bin";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (!m.bytes.empty() && std::fwrite(m.bytes.data(), 1, m.bytes.size(), f) != m.bytes.size())) std::abort();
  std::fclose(f);
  for (auto& t : m.spec.tensors) t.file = path;
  m.spec.key = path;
  std::shared_ptr<const Model> model;
  Status s = model_load(m.spec, out ? out : &model);
  std::remove(path.c_str());
  return s;
}

static void expect(const char* what, const TinyModel& m, StatusCode code, const char* message_part) {
  const Status s = load(m);
  check(s.code == code && s.message.find(message_part) != std::string::npos,
        std::string(what) + ": got " + status_code_name(s.code) + " \"" + s.message + "\"");
}

static void edit(const char* what, StatusCode code, const char* message_part, const std::function<void(TinyModel&)>& change) {
  TinyModel m;
  change(m);
  expect(what, m, code, message_part);
}

// One greedy step over [0, 1]: the loaded weights run.
static bool one_step(std::shared_ptr<const Model> model) {
  EngineOptions o;
  o.num_kv_blocks = 1;
  std::unique_ptr<Engine> e;
  if (!engine_create(std::move(model), o, &e).ok()) return false;
  const int32_t ids[2] = {0, 1}, pos[2] = {0, 1}, slots[2] = {0, 1}, sid = 0, qs[2] = {0, 2}, ctx = 2, plen = 2, table = 0;
  const int32_t top_k = 0, nlp = -1;
  const uint8_t sample = 1;
  const float temp = 0, top_p = 1, min_p = 0, rep = 1, zero = 0;
  const uint32_t seeds[2] = {0, 0};
  StepInput in;
  in.num_tokens = 2, in.num_seqs = 1, in.token_ids = ids, in.positions = pos, in.slot_mapping = slots, in.seq_ids = &sid;
  in.query_start = qs, in.context_lens = &ctx, in.prompt_lens = &plen, in.block_tables = &table, in.max_blocks_per_seq = 1;
  in.do_sample = &sample, in.temperature = &temp, in.top_k = &top_k, in.top_p = &top_p, in.min_p = &min_p;
  in.repetition_penalty = &rep, in.presence_penalty = &zero, in.frequency_penalty = &zero, in.num_logprobs = &nlp, in.seeds = seeds;
  StepOutput out;
  return e->step(in, &out).ok() && out.sampled.size() == 1 && out.sampled[0] >= 0 && out.sampled[0] < 8;
}

int main() {
  char tmpl[] = "/tmp/weft-model-load-XXXXXX";
  if (!mkdtemp(tmpl)) return 2;
  g_dir = tmpl;

  {  // the unedited model loads for each weight layout and steps on the CPU
    std::shared_ptr<const Model> model;
    TinyModel m;
    check(load(m, &model).ok() && one_step(model), "the tiny model loads (f32, CPU) and steps");
    for (WeightDType wd : {WeightDType::int8, WeightDType::f16, WeightDType::bf16}) {
      TinyModel g;
      g.spec.weight_dtype = wd;
      g.spec.target = Backend::cuda;  // staged on the host: no device needed
      check(load(g).ok(), "the tiny model stages for CUDA, weight dtype " + std::to_string(int(wd)));
    }
  }
  // offsets and lengths near 2^64: offset + length wrapped past zero and passed the bounds check
  edit("offset + length wraps", StatusCode::model_corrupt, "out of bounds", [](TinyModel& m) {
    TensorSpec& t = m.tensor("model.layers.0.mlp.up_proj.weight");
    t.offset = UINT64_MAX - t.byte_length + 1;
  });
  edit("data runs past the end", StatusCode::model_corrupt, "out of bounds",
       [](TinyModel& m) { m.tensor("model.norm.weight").offset = m.bytes.size() - 64; });
  edit("offset beyond the end", StatusCode::model_corrupt, "out of bounds",
       [](TinyModel& m) { m.tensor("model.norm.weight").offset = m.bytes.size() + 1; });
  // rows * cols overflowed int64 (undefined behaviour) before it was compared with the length
  edit("rows * cols overflows", StatusCode::model_shape, "out of range", [](TinyModel& m) {
    TensorSpec& t = m.tensor("model.layers.0.mlp.gate_proj.weight");
    t.shape = {int64_t(1) << 62, 4};
    t.byte_length = 0;
  });
  edit("negative dimensions", StatusCode::model_shape, "out of range", [](TinyModel& m) {
    TensorSpec& t = m.tensor("model.norm.weight");
    t.shape = {-1, -32};
  });
  edit("zero dimension", StatusCode::model_shape, "out of range", [](TinyModel& m) { m.tensor("model.norm.weight").shape = {0}; });
  edit("rank 3", StatusCode::model_shape, "rank", [](TinyModel& m) { m.tensor("model.norm.weight").shape = {1, 1, 32}; });
  edit("length does not match the shape", StatusCode::model_corrupt, "data size",
       [](TinyModel& m) { m.tensor("model.norm.weight").byte_length -= 4; });
  edit("Q8_0 rows not a multiple of 32", StatusCode::model_corrupt, "multiple of 32", [](TinyModel& m) {
    TensorSpec& t = m.tensor("model.layers.0.self_attn.k_proj.weight");
    t.dtype = TensorDType::q8_0;
    t.shape = {32, 16};
    t.byte_length = 32 * 34 / 2;
  });
  edit("int8 scale offset wraps", StatusCode::model_corrupt, "expected F32", [](TinyModel& m) {
    TensorSpec& t = m.tensor("model.layers.0.mlp.down_proj.weight");
    t.dtype = TensorDType::i8;
    t.byte_length = 32 * 32;
    m.add("model.layers.0.mlp.down_proj.weight_scale", {32});
    TensorSpec& s = m.tensor("model.layers.0.mlp.down_proj.weight_scale");
    s.offset = UINT64_MAX - s.byte_length + 1;
  });
  // config products: heads * head_dim overflowed int; 2^31 layers were allocated up front
  edit("heads * head_dim overflows int", StatusCode::bad_input, "2^31",
       [](TinyModel& m) { m.spec.config.num_heads = m.spec.config.num_kv_heads = m.spec.config.head_dim = 1 << 16; });
  edit("2^31 - 1 layers", StatusCode::model_missing, "model.layers.1.", [](TinyModel& m) { m.spec.config.num_layers = INT32_MAX; });
  edit("empty file", StatusCode::model_corrupt, "out of bounds", [](TinyModel& m) { m.bytes.clear(); });

  rmdir(g_dir.c_str());
  return weft_test::finish();
}
