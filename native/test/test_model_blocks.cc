// A whole model stored in GGML block types, loaded with WeightDType::quant (blocks kept) and with
// f32 (the same blocks dequantized on load): one prefill step's logits agree within the error of
// the int8 activations, on every ISA. The file mixes types the way llama.cpp's _M files do, so
// the stacked q/k/v and gate/up matrices become row segments, and q/k rows are un-permuted
// (rope_interleaved) while they are blocks. Needs no llama.cpp: the blocks are random bytes with
// plausible fp16 scales. The CUDA staging (dequantized to f16 or per-row int8) is checked on the host.
// Ends with "N passed, N failed"; exit 1 on failure.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "check.h"
#include "cpu/isa.h"
#include "half.h"
#include "model.h"
#include "quant_blocks.h"
#include "weft_engine.h"

using namespace weft;
using weft_test::check;

namespace {

std::mt19937 rng(5);

// Random blocks of `type` for rows x cols values, fp16 fields set to small scales so the
// activations stay in range through the layer.
std::vector<uint8_t> random_blocks(TensorDType type, int64_t rows, int64_t cols) {
  std::vector<uint8_t> b(tensor_bytes(type, uint64_t(rows * cols)));
  for (auto& v : b) v = uint8_t(rng());
  std::uniform_real_distribution<float> u(2e-4f, 1e-3f);
  auto put = [&](size_t at, float v) {
    const uint16_t h = f32_to_f16(v);
    std::memcpy(&b[at], &h, 2);
  };
  const int bv = block_values(type);
  const size_t bytes = tensor_bytes(type, uint64_t(bv));
  for (size_t o = 0; o < b.size(); o += bytes) switch (type) {
      case TensorDType::q4_0:
      case TensorDType::q5_0:
      case TensorDType::q8_0:
        put(o, 20 * u(rng));
        break;
      case TensorDType::q4_1:
      case TensorDType::q5_1:
        put(o, 20 * u(rng));
        put(o + 2, -8 * 20 * u(rng));
        break;
      case TensorDType::q4_k:
      case TensorDType::q5_k:
        put(o, u(rng));
        put(o + 2, u(rng));
        break;
      case TensorDType::q6_k:
        put(o + 208, u(rng) / 4);
        break;
      case TensorDType::q2_k:  // scales 0..15 on 2-bit values, mins 0..15
        put(o + 80, 4 * u(rng));
        put(o + 82, 4 * u(rng));
        break;
      case TensorDType::q3_k:  // scales -32..31 on 3-bit values centred by 4
        put(o + 108, 4 * u(rng));
        break;
      default:
        break;
    }
  return b;
}

struct BlockModel {
  ModelSpec spec;
  std::vector<uint8_t> bytes;

  void add(const std::string& name, std::vector<int64_t> shape, TensorDType type) {
    TensorSpec t;
    t.name = name;
    t.offset = bytes.size();
    t.shape = shape;
    t.dtype = type;
    std::vector<uint8_t> b;
    if (type == TensorDType::f32) {  // norms: 1
      b.resize(shape[0] * 4);
      for (int64_t i = 0; i < shape[0]; ++i) std::memcpy(&b[i * 4], "\x00\x00\x80\x3f", 4);
    } else {
      b = random_blocks(type, shape[0], shape[1]);
    }
    t.byte_length = b.size();
    bytes.insert(bytes.end(), b.begin(), b.end());
    while (bytes.size() % 32) bytes.push_back(0);
    spec.tensors.push_back(t);
  }
};

BlockModel make_model() {
  BlockModel m;
  ModelConfig& c = m.spec.config;
  c.dim = 256, c.num_layers = 2, c.num_heads = 4, c.num_kv_heads = 2, c.head_dim = 64, c.ffn_dim = 512, c.vocab_size = 40;
  c.max_positions = 64;
  m.spec.rope_interleaved = true;
  m.add("model.embed_tokens.weight", {40, 256}, TensorDType::q6_k);
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    m.add(p + "input_layernorm.weight", {256}, TensorDType::f32);
    m.add(p + "post_attention_layernorm.weight", {256}, TensorDType::f32);
    m.add(p + "self_attn.q_proj.weight", {256, 256}, l ? TensorDType::q5_k : TensorDType::q4_k);
    m.add(p + "self_attn.k_proj.weight", {128, 256}, l ? TensorDType::q5_k : TensorDType::q4_k);
    m.add(p + "self_attn.v_proj.weight", {128, 256}, l ? TensorDType::q2_k : TensorDType::q6_k);
    m.add(p + "self_attn.o_proj.weight", {256, 256}, l ? TensorDType::q4_0 : TensorDType::q5_0);
    m.add(p + "mlp.gate_proj.weight", {512, 256}, l ? TensorDType::q4_1 : TensorDType::q8_0);
    m.add(p + "mlp.up_proj.weight", {512, 256}, l ? TensorDType::q3_k : TensorDType::q5_1);
    m.add(p + "mlp.down_proj.weight", {256, 512}, l ? TensorDType::q6_k : TensorDType::q4_k);
  }
  m.add("model.norm.weight", {256}, TensorDType::f32);
  m.add("lm_head.weight", {40, 256}, TensorDType::q6_k);
  return m;
}

// Logits after a prefill of `n` tokens, or empty on failure.
std::vector<float> prefill_logits(std::shared_ptr<const Model> model, int isa, int n) {
  EngineOptions o;
  o.num_kv_blocks = 4;
  o.isa = isa;
  o.kv_dtype = KvDType::f32;
  std::unique_ptr<Engine> e;
  if (!engine_create(std::move(model), o, &e).ok()) return {};
  std::vector<int32_t> ids(n), pos(n), slots(n);
  for (int i = 0; i < n; ++i) ids[i] = (i * 7 + 3) % 40, pos[i] = slots[i] = i;
  const int32_t sid = 0, qs[2] = {0, n}, ctx = n, plen = n, table[4] = {0, 1, 2, 3};
  const int32_t top_k = 0, nlp = -1;
  const uint8_t sample = 1;
  const float temp = 0, top_p = 1, min_p = 0, rep = 1, zero = 0;
  const uint32_t seeds[2] = {0, 0};
  StepInput in;
  in.num_tokens = n, in.num_seqs = 1, in.token_ids = ids.data(), in.positions = pos.data(), in.slot_mapping = slots.data();
  in.seq_ids = &sid, in.query_start = qs, in.context_lens = &ctx, in.prompt_lens = &plen, in.block_tables = table;
  in.max_blocks_per_seq = 4, in.do_sample = &sample, in.temperature = &temp, in.top_k = &top_k, in.top_p = &top_p;
  in.min_p = &min_p, in.repetition_penalty = &rep, in.presence_penalty = &zero, in.frequency_penalty = &zero;
  in.num_logprobs = &nlp, in.seeds = seeds, in.return_logits = true;
  StepOutput out;
  if (!e->step(in, &out).ok()) return {};
  return out.logits;
}

}  // namespace

int main() {
  char tmpl[] = "/tmp/weft-model-blocks-XXXXXX";
  if (!mkdtemp(tmpl)) return 2;
  const std::string path = std::string(tmpl) + "/model.bin";
  BlockModel m = make_model();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(m.bytes.data(), 1, m.bytes.size(), f) != m.bytes.size()) return 2;
  std::fclose(f);
  for (auto& t : m.spec.tensors) t.file = path;

  std::shared_ptr<const Model> quant, ref;
  m.spec.key = path + "#quant";
  m.spec.weight_dtype = WeightDType::quant;
  check(model_load(m.spec, &quant).ok(), "the mixed-type model loads with its block types kept");
  m.spec.key = path + "#f32";
  m.spec.weight_dtype = WeightDType::f32;
  check(model_load(m.spec, &ref).ok(), "the same file loads dequantized to f32");
  // blocks kept: the quant model is far smaller than f32 (4.5-8.5 bits a weight held, Q2_K and Q3_K as nibbles, against 32)
  check(quant && ref && model_weight_bytes(*quant) * 3 < model_weight_bytes(*ref),
        "kept blocks: " + std::to_string(quant ? model_weight_bytes(*quant) : 0) + " bytes against f32 " +
            std::to_string(ref ? model_weight_bytes(*ref) : 0));
  if (quant && ref) {
    const std::vector<float> want = prefill_logits(ref, 0, 9);
    double range = 0;
    for (float v : want) range = std::max(range, double(std::fabs(v)));
    for (int isa : {0, 1, 2}) {
      if (!isa_supported(Isa(isa))) continue;
      const std::vector<float> got = prefill_logits(quant, isa, 9);
      double worst = 0;
      for (size_t i = 0; i < got.size() && i < want.size(); ++i) worst = std::max(worst, double(std::fabs(got[i] - want[i])));
      // int8 activations per 32 (relative error ~1/254 per value) through 2 layers: a few % of the range
      if (std::getenv("VERBOSE")) std::printf("%s worst %g range %g\n", isa_name(Isa(isa)), worst, range);
      check(!got.empty() && got.size() == want.size() && range > 0.1 && worst < 0.05 * range,
            std::string("quant logits == f32 logits within 5% of their range on ") + isa_name(Isa(isa)) + ": worst " + std::to_string(worst) +
                " of range " + std::to_string(range));
    }
  }
  // CUDA staging on the host (no device needed): the blocks dequantized to f16, and to int8 with
  // per-row scales; layer 0's v rows (Q6_K, not permuted) sit after q and k in the stacked qkv.
  for (WeightDType wd : {WeightDType::f16, WeightDType::int8}) {
    std::shared_ptr<const Model> staged;
    m.spec.key = path + "#cuda" + std::to_string(int(wd));
    m.spec.weight_dtype = wd;
    m.spec.target = Backend::cuda;
    const bool loaded = model_load(m.spec, &staged).ok();
    bool same = loaded;
    if (loaded) {
      const HostMatrix& h = staged->layers[0].g_qkv;
      TensorView v;
      for (const auto& t : m.spec.tensors)
        if (t.name == "model.layers.0.self_attn.v_proj.weight") v = TensorView{m.bytes.data() + t.offset, t.dtype, 128, 256, nullptr};
      std::vector<float> row(256);
      for (int r = 0; r < 128; ++r) {
        tensor_row_f32(v, r, row.data());
        const int o = 256 + 128 + r;
        float amax = 0;
        for (float x : row) amax = std::max(amax, std::fabs(x));
        for (int c = 0; c < 256; ++c) {
          if (wd == WeightDType::f16) same &= h.half[size_t(o) * h.kpad + c] == f32_to_f16(row[c]);
          else same &= std::fabs(h.q[size_t(o) * h.kpad + c] * h.scales[o] - row[c]) <= 0.51f * amax / 127.f;
        }
      }
    }
    check(same, std::string("CUDA staging (") + (wd == WeightDType::f16 ? "f16" : "int8 per row") + ") of a Q6_K matrix equals its dequantized rows");
  }
  m.spec.target = Backend::cpu;
  m.spec.weight_dtype = WeightDType::quant;
  // a block row that does not divide into blocks is refused with the tensor's name
  m.spec.key = path + "#bad";
  for (auto& t : m.spec.tensors)
    if (t.name == "model.layers.0.self_attn.o_proj.weight") t.shape = {512, 128}, t.dtype = TensorDType::q4_k;
  const Status s = model_load(m.spec, &quant);
  check(s.code == StatusCode::model_corrupt && s.message.find("o_proj") != std::string::npos && s.message.find("256") != std::string::npos,
        "Q4_K rows of 128 refused: " + s.message);
  std::remove(path.c_str());
  rmdir(tmpl);
  return weft_test::finish();
}
