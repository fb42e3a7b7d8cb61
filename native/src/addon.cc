// node-addon-api glue only: converts JS objects and typed arrays to the engine's structs and
// Status codes to JS errors carrying a `code`. Context-aware: each worker thread gets its own
// addon instance, while models (weights) are shared process-wide by model_load's cache.
#include <napi.h>

#include <cmath>
#include <type_traits>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "cpu/isa.h"
#include "load_progress.h"
#include "weft_engine.h"

namespace {

using weft::Status;

[[noreturn]] void throw_status(Napi::Env env, const Status& s) {
  Napi::Error e = Napi::Error::New(env, s.message);
  e.Set("code", Napi::String::New(env, weft::status_code_name(s.code)));
  throw e;
}

[[noreturn]] void throw_bad(Napi::Env env, const std::string& m) {
  throw_status(env, Status::Error(weft::StatusCode::bad_input, m));
}

int get_int(Napi::Object o, const char* k, int def) {
  Napi::Value v = o.Get(k);
  return v.IsNumber() ? v.As<Napi::Number>().Int32Value() : def;
}
double get_num(Napi::Object o, const char* k, double def) {
  Napi::Value v = o.Get(k);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : def;
}
// A file offset or length: a non-negative integer, exact in a double (below 2^53), so the
// conversion to uint64_t is defined and model_load sees the number JavaScript holds.
uint64_t get_u64(Napi::Env env, Napi::Object o, const char* k) {
  Napi::Value v = o.Get(k);
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0 && d <= 9007199254740991.0 && d == std::floor(d))) throw_bad(env, std::string(k) + " must be a non-negative safe integer");
  return uint64_t(d);
}
bool get_bool(Napi::Object o, const char* k, bool def) {
  Napi::Value v = o.Get(k);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : def;
}
std::string get_str(Napi::Env env, Napi::Object o, const char* k) {
  Napi::Value v = o.Get(k);
  if (!v.IsString()) throw_bad(env, std::string("expected string field ") + k);
  return v.As<Napi::String>().Utf8Value();
}

// The typed array kind that carries T (the sampling fields are float or int32).
template <class T> constexpr napi_typedarray_type typed_array_type() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, int32_t>, "a sampling field is float or int32_t");
  return std::is_same_v<T, float> ? napi_float32_array : napi_int32_array;
}

template <class T, napi_typedarray_type Type> const T* typed(Napi::Env env, Napi::Object o, const char* k, size_t min_len, bool optional = false) {
  Napi::Value v = o.Get(k);
  if (optional && (v.IsUndefined() || v.IsNull())) return nullptr;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != Type)
    throw_bad(env, std::string("field ") + k + " must be a typed array of the right type");
  Napi::TypedArray a = v.As<Napi::TypedArray>();
  if (a.ElementLength() < min_len) throw_bad(env, std::string("field ") + k + " is too short");
  return reinterpret_cast<const T*>(static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset());
}
#define I32(k, n) typed<int32_t, napi_int32_array>(env, in, k, n)
#define F32(k, n) typed<float, napi_float32_array>(env, in, k, n)

weft::TensorDType parse_dtype(Napi::Env env, const std::string& s) {
  if (s == "F32") return weft::TensorDType::f32;
  if (s == "F16") return weft::TensorDType::f16;
  if (s == "BF16") return weft::TensorDType::bf16;
  if (s == "Q8_0") return weft::TensorDType::q8_0;
  if (s == "I8") return weft::TensorDType::i8;
  if (s == "Q4_0") return weft::TensorDType::q4_0;
  if (s == "Q4_1") return weft::TensorDType::q4_1;
  if (s == "Q5_0") return weft::TensorDType::q5_0;
  if (s == "Q5_1") return weft::TensorDType::q5_1;
  if (s == "Q4_K") return weft::TensorDType::q4_k;
  if (s == "Q5_K") return weft::TensorDType::q5_k;
  if (s == "Q6_K") return weft::TensorDType::q6_k;
  if (s == "Q2_K") return weft::TensorDType::q2_k;
  if (s == "Q3_K") return weft::TensorDType::q3_k;
  throw_status(env, Status::Error(weft::StatusCode::model_dtype, "unsupported tensor dtype " + s));
}

struct ModelHolder {
  std::shared_ptr<const weft::Model> model;
};
struct EngineHolder {
  std::unique_ptr<weft::Engine> engine;
};

template <class T> Napi::Value wrap(Napi::Env env, T* p) {
  return Napi::External<T>::New(env, p, [](Napi::Env, T* q) { delete q; });
}
template <class T> T* unwrap(Napi::Env env, Napi::Value v, const char* what) {
  if (!v.IsExternal()) throw_bad(env, std::string("expected a ") + what + " handle");
  return v.As<Napi::External<T>>().Data();
}

template <class T> Napi::Value to_array(Napi::Env env, const std::vector<T>& v) {
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(buf.Data(), v.data(), v.size() * sizeof(T));
  if constexpr (std::is_same_v<T, float>) return Napi::Float32Array::New(env, v.size(), buf, 0);
  else return Napi::Int32Array::New(env, v.size(), buf, 0);
}

class WeftAddon : public Napi::Addon<WeftAddon> {
 public:
  WeftAddon(Napi::Env env, Napi::Object exports) {
    DefineAddon(exports, {
                             InstanceMethod("loadModel", &WeftAddon::Guarded<&WeftAddon::LoadModel>),
                             InstanceMethod("createEngine", &WeftAddon::Guarded<&WeftAddon::CreateEngine>),
                             InstanceMethod("engineStep", &WeftAddon::Guarded<&WeftAddon::EngineStep>),
                             InstanceMethod("engineInfo", &WeftAddon::Guarded<&WeftAddon::EngineInfo>),
                             InstanceMethod("engineClose", &WeftAddon::Guarded<&WeftAddon::EngineClose>),
                             InstanceMethod("cpuInfo", &WeftAddon::Guarded<&WeftAddon::CpuInfo>),
                             InstanceMethod("cudaDeviceCount", &WeftAddon::Guarded<&WeftAddon::CudaDeviceCount>),
                             InstanceMethod("cudaDeviceInfo", &WeftAddon::Guarded<&WeftAddon::CudaDeviceInfo>),
                             InstanceMethod("loadProgress", &WeftAddon::Guarded<&WeftAddon::LoadProgressOf>),
                             InstanceMethod("mallocTrim", &WeftAddon::Guarded<&WeftAddon::MallocTrim>),
                             InstanceMethod("cpuKvDtype", &WeftAddon::Guarded<&WeftAddon::CpuKvDtype>),
                             InstanceMethod("cpuKvBytesPerToken", &WeftAddon::Guarded<&WeftAddon::CpuKvBytesPerToken>),
                         });
  }

 private:
  // Every method runs behind this: no C++ exception ever leaves the addon. A worker thread that
  // is terminated while a step runs makes the N-API calls that build the result fail; the
  // resulting Napi::Error must not reach node-addon-api's own handler, whose rethrow into a
  // terminating environment would call std::terminate and abort the whole process.
  template <Napi::Value (WeftAddon::*Method)(const Napi::CallbackInfo&)> Napi::Value Guarded(const Napi::CallbackInfo& info) {
    napi_env env = info.Env();
    try {
      return (this->*Method)(info);
    } catch (const Napi::Error& e) {
      bool thrown = false;
      try {
        napi_value v = e.Value();
        thrown = v != nullptr && napi_throw(env, v) == napi_ok;
      } catch (...) {
      }
      bool pending = false;
      if (!thrown && napi_is_exception_pending(env, &pending) == napi_ok && !pending)
        napi_throw_error(env, "WEFT_ERR_ENGINE_INTERNAL", "native call failed while its environment shut down");
    } catch (...) {
      napi_throw_error(env, "WEFT_ERR_ENGINE_INTERNAL", "unexpected native exception");
    }
    return Napi::Value();
  }

  static weft::WeightDType weight_dtype(Napi::Env env, const std::string& wd) {
    if (wd == "f32") return weft::WeightDType::f32;
    if (wd == "int8") return weft::WeightDType::int8;
    if (wd == "f16") return weft::WeightDType::f16;
    if (wd == "bf16") return weft::WeightDType::bf16;
    if (wd == "quant") return weft::WeightDType::quant;
    throw_bad(env, "weightDtype must be f32, int8, f16, bf16 or quant");
  }

  static weft::KvDType kv_dtype(Napi::Env env, const std::string& kv) {
    if (kv == "f32") return weft::KvDType::f32;
    if (kv == "f16") return weft::KvDType::f16;
    if (kv == "int8") return weft::KvDType::i8;
    if (kv != "auto") throw_bad(env, "kvDtype must be auto, f32, f16 or int8");
    return weft::KvDType::automatic;
  }

  // cpuKvDtype(weightDtype, kvDtype): the CPU engine's KV element type, before any engine exists.
  Napi::Value CpuKvDtype(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString() || !info[1].IsString()) throw_bad(env, "cpuKvDtype(weightDtype, kvDtype) needs two strings");
    const weft::KvDType kv = weft::cpu_kv_dtype(kv_dtype(env, info[1].As<Napi::String>()), weight_dtype(env, info[0].As<Napi::String>()));
    return Napi::String::New(env, weft::kv_dtype_name(kv));
  }

  // cpuKvBytesPerToken(kvElement, {numLayers, numKvHeads, headDim}): what one token's K and V take
  // in the CPU engine's cache (int8's scales included), to size the cache before any engine exists.
  Napi::Value CpuKvBytesPerToken(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString() || !info[1].IsObject()) throw_bad(env, "cpuKvBytesPerToken(kvDtype, config) needs a string and an object");
    const weft::KvDType kv = kv_dtype(env, info[0].As<Napi::String>());
    if (kv == weft::KvDType::automatic) throw_bad(env, "cpuKvBytesPerToken needs a resolved KV type (cpuKvDtype), not auto");
    Napi::Object c = info[1].As<Napi::Object>();
    weft::ModelConfig mc;
    mc.num_layers = get_int(c, "numLayers", 0);
    mc.num_kv_heads = get_int(c, "numKvHeads", 0);
    mc.head_dim = get_int(c, "headDim", 0);
    if (mc.num_layers <= 0 || mc.num_kv_heads <= 0 || mc.head_dim <= 0)
      throw_bad(env, "cpuKvBytesPerToken: numLayers, numKvHeads and headDim must be positive integers");
    return Napi::Number::New(env, double(weft::cpu_kv_bytes_per_token(kv, mc)));
  }

  Napi::Value LoadModel(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw_bad(env, "loadModel(spec) needs an object");
    Napi::Object o = info[0].As<Napi::Object>();
    weft::ModelSpec spec;
    spec.key = get_str(env, o, "key");
    spec.weight_dtype = weight_dtype(env, get_str(env, o, "weightDtype"));
    const std::string target = o.Get("target").IsString() ? get_str(env, o, "target") : "cpu";
    if (target != "cpu" && target != "cuda") throw_bad(env, "target must be cpu or cuda");
    spec.target = target == "cuda" ? weft::Backend::cuda : weft::Backend::cpu;
    spec.rope_interleaved = get_bool(o, "ropeInterleaved", false);
    Napi::Object c = o.Get("config").As<Napi::Object>();
    weft::ModelConfig& mc = spec.config;
    mc.dim = get_int(c, "dim", 0);
    mc.num_layers = get_int(c, "numLayers", 0);
    mc.num_heads = get_int(c, "numHeads", 0);
    mc.num_kv_heads = get_int(c, "numKvHeads", 0);
    mc.head_dim = get_int(c, "headDim", 0);
    mc.ffn_dim = get_int(c, "ffnDim", 0);
    mc.vocab_size = get_int(c, "vocabSize", 0);
    mc.max_positions = get_int(c, "maxPositions", 0);
    mc.rms_eps = float(get_num(c, "rmsEps", 1e-5));
    mc.rope_theta = float(get_num(c, "ropeTheta", 10000));
    mc.tie_embeddings = get_bool(c, "tieEmbeddings", false);
    mc.qkv_bias = get_bool(c, "qkvBias", false);
    mc.qk_norm = get_bool(c, "qkNorm", false);
    Napi::Value rs = c.Get("ropeScaling");
    if (rs.IsObject()) {
      Napi::Object r = rs.As<Napi::Object>();
      const std::string type = get_str(env, r, "type");
      mc.rope_scaling = type == "llama3" ? weft::RopeScalingType::llama3 : weft::RopeScalingType::linear;
      mc.rope_factor = float(get_num(r, "factor", 1));
      mc.rope_low_freq_factor = float(get_num(r, "lowFreqFactor", 1));
      mc.rope_high_freq_factor = float(get_num(r, "highFreqFactor", 4));
      mc.rope_original_max_positions = get_int(r, "originalMaxPositions", 8192);
    }
    Napi::Array tensors = o.Get("tensors").As<Napi::Array>();
    for (uint32_t i = 0; i < tensors.Length(); ++i) {
      Napi::Object t = tensors.Get(i).As<Napi::Object>();
      weft::TensorSpec ts;
      ts.name = get_str(env, t, "name");
      ts.file = get_str(env, t, "file");
      ts.offset = get_u64(env, t, "offset");
      ts.byte_length = get_u64(env, t, "byteLength");
      ts.dtype = parse_dtype(env, get_str(env, t, "dtype"));
      Napi::Array shape = t.Get("shape").As<Napi::Array>();
      for (uint32_t d = 0; d < shape.Length(); ++d) ts.shape.push_back(int64_t(shape.Get(d).As<Napi::Number>().Int64Value()));
      spec.tensors.push_back(std::move(ts));
    }
    auto* holder = new ModelHolder();
    Status s = weft::model_load(spec, &holder->model);
    if (!s.ok()) {
      delete holder;
      throw_status(env, s);
    }
    Napi::Object res = Napi::Object::New(env);
    res.Set("handle", wrap(env, holder));
    res.Set("weightBytes", Napi::Number::New(env, double(weft::model_weight_bytes(*holder->model))));
    return res;
  }

  Napi::Value CreateEngine(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ModelHolder* m = unwrap<ModelHolder>(env, info[0], "model");
    if (!info[1].IsObject()) throw_bad(env, "createEngine(model, options) needs options");
    Napi::Object o = info[1].As<Napi::Object>();
    weft::EngineOptions opts;
    opts.num_threads = get_int(o, "numThreads", 1);
    opts.num_kv_blocks = get_int(o, "numKvBlocks", 256);
    opts.block_size = get_int(o, "blockSize", 16);
    opts.isa = get_int(o, "isa", -1);
    opts.device = get_int(o, "device", 0);
    opts.kv_dtype = kv_dtype(env, o.Get("kvDtype").IsString() ? get_str(env, o, "kvDtype") : "auto");
    const std::string backend = o.Get("backend").IsString() ? get_str(env, o, "backend") : "cpu";
    if (backend != "cpu" && backend != "cuda") throw_bad(env, "backend must be cpu or cuda");
    opts.backend = backend == "cuda" ? weft::Backend::cuda : weft::Backend::cpu;
    opts.kv_cache_fraction = get_num(o, "kvCacheFraction", 0);
    opts.max_num_tokens = get_int(o, "maxNumTokens", 2048);
    opts.max_num_seqs = get_int(o, "maxNumSeqs", 256);
    opts.max_context_len = get_int(o, "maxContextLen", 0);
    opts.cuda_graphs = get_bool(o, "cudaGraphs", true);
    auto* holder = new EngineHolder();
    Status s = weft::engine_create(m->model, opts, &holder->engine);
    if (!s.ok()) {
      delete holder;
      throw_status(env, s);
    }
    return wrap(env, holder);
  }

  Napi::Value EngineStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EngineHolder* h = unwrap<EngineHolder>(env, info[0], "engine");
    if (!h->engine) throw_bad(env, "engine is closed");
    if (!info[1].IsObject()) throw_bad(env, "step(input) needs an object");
    Napi::Object in = info[1].As<Napi::Object>();
    weft::StepInput s;
    s.num_tokens = get_int(in, "numTokens", -1);
    s.num_seqs = get_int(in, "numSeqs", -1);
    s.max_blocks_per_seq = get_int(in, "maxBlocksPerSeq", 0);
    if (s.num_tokens < 0 || s.num_seqs < 0 || s.max_blocks_per_seq < 0) throw_bad(env, "numTokens, numSeqs, maxBlocksPerSeq required");
    const size_t T = s.num_tokens, N = s.num_seqs;
    s.token_ids = I32("tokenIds", T);
    s.positions = I32("positions", T);
    s.slot_mapping = I32("slotMapping", T);
    s.seq_ids = I32("seqIds", N);
    s.query_start = I32("queryStart", N + 1);
    s.context_lens = I32("contextLens", N);
    s.prompt_lens = I32("promptLens", N);
    s.block_tables = I32("blockTables", N * s.max_blocks_per_seq);
    s.do_sample = typed<uint8_t, napi_uint8_array>(env, in, "doSample", N);
#define WEFT_READ_SAMPLING(T, name, js, off) s.name = typed<T, typed_array_type<T>()>(env, in, js, N);
    WEFT_SAMPLING_FIELDS(WEFT_READ_SAMPLING)
#undef WEFT_READ_SAMPLING
    s.seeds = typed<uint32_t, napi_uint32_array>(env, in, "seeds", 2 * N);
    s.num_block_copies = get_int(in, "numBlockCopies", 0);
    s.num_forks = get_int(in, "numForks", 0);
    s.num_release = get_int(in, "numRelease", 0);
    if (s.num_block_copies < 0 || s.num_forks < 0 || s.num_release < 0) throw_bad(env, "negative housekeeping count");
    s.block_copies = s.num_block_copies ? I32("blockCopies", 2 * size_t(s.num_block_copies)) : nullptr;
    s.forks = s.num_forks ? I32("forks", 2 * size_t(s.num_forks)) : nullptr;
    s.release_seq_ids = s.num_release ? I32("releaseSeqIds", size_t(s.num_release)) : nullptr;
    s.num_history = get_int(in, "numHistory", 0);
    if (s.num_history < 0) throw_bad(env, "negative numHistory");
    if (s.num_history > 0) {
      s.history_seq_ids = I32("historySeqIds", size_t(s.num_history));
      s.history_offsets = I32("historyOffsets", size_t(s.num_history) + 1);
      const int32_t total = s.history_offsets[s.num_history];
      if (total < 0) throw_bad(env, "bad historyOffsets");
      s.history_tokens = I32("historyTokens", size_t(total));
    }
    s.return_logits = get_bool(in, "returnLogits", false);
    s.num_logit_rows = get_int(in, "numLogitRows", 0);
    if (s.num_logit_rows < 0) throw_bad(env, "negative numLogitRows");
    s.logit_rows = s.num_logit_rows ? I32("logitRows", size_t(s.num_logit_rows)) : nullptr;
    s.num_masks = get_int(in, "numMasks", 0);
    if (s.num_masks < 0) throw_bad(env, "negative numMasks");
    if (s.num_masks > 0) {
      s.mask_words = get_int(in, "maskWords", 0);
      if (s.mask_words <= 0) throw_bad(env, "maskWords must be positive with token masks");
      s.mask_index = I32("maskIndex", N);
      s.token_masks = typed<uint32_t, napi_uint32_array>(env, in, "tokenMasks", size_t(s.num_masks) * size_t(s.mask_words));
    }
    if (in.Get("biasOffsets").IsTypedArray()) {
      s.bias_offsets = I32("biasOffsets", N + 1);
      const int32_t total = s.bias_offsets[N];
      if (total < 0) throw_bad(env, "bad biasOffsets");
      s.bias_ids = I32("biasIds", size_t(total));
      s.bias_values = typed<float, napi_float32_array>(env, in, "biasValues", size_t(total));
    }
    if (in.Get("scoreTargets").IsTypedArray()) {
      s.score_targets = I32("scoreTargets", T);
      s.score_top_n = get_int(in, "scoreTopN", 0);
    }
    if (in.Get("hiddenRows").IsTypedArray()) {
      s.num_hidden_rows = int(in.Get("hiddenRows").As<Napi::TypedArray>().ElementLength());
      s.hidden_rows = I32("hiddenRows", size_t(s.num_hidden_rows));
    }
    weft::StepOutput out;
    Status st = h->engine->step(s, &out);
    if (!st.ok()) throw_status(env, st);
    Napi::Object res = Napi::Object::New(env);
    res.Set("sampled", to_array(env, out.sampled));
    res.Set("logprobs", to_array(env, out.logprobs));
    res.Set("topN", Napi::Number::New(env, out.top_n));
    res.Set("topIds", to_array(env, out.top_ids));
    res.Set("topLogprobs", to_array(env, out.top_logprobs));
    if (s.return_logits) res.Set("logits", to_array(env, out.logits));
    if (s.score_targets) {
      res.Set("scoredLogprobs", to_array(env, out.scored_logprobs));
      res.Set("scoredRanks", to_array(env, out.scored_ranks));
      res.Set("scoredTopIds", to_array(env, out.scored_top_ids));
      res.Set("scoredTopLogprobs", to_array(env, out.scored_top_logprobs));
    }
    if (s.hidden_rows) res.Set("hidden", to_array(env, out.hidden));
    res.Set("forwardUs", Napi::Number::New(env, out.forward_us));
    res.Set("sampleUs", Napi::Number::New(env, out.sample_us));
    return res;
  }

  Napi::Value EngineInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EngineHolder* h = unwrap<EngineHolder>(env, info[0], "engine");
    if (!h->engine) throw_bad(env, "engine is closed");
    Napi::Object res = Napi::Object::New(env);
    res.Set("numKvBlocks", Napi::Number::New(env, h->engine->num_kv_blocks()));
    res.Set("blockSize", Napi::Number::New(env, h->engine->block_size()));
    res.Set("isa", Napi::String::New(env, h->engine->isa_name()));
    res.Set("kvDtype", Napi::String::New(env, h->engine->kv_dtype_name()));
    res.Set("kvCacheBytes", Napi::Number::New(env, double(h->engine->kv_cache_bytes())));
    res.Set("tokenWeightBytes", Napi::Number::New(env, double(h->engine->token_weight_bytes())));
    return res;
  }

  Napi::Value EngineClose(const Napi::CallbackInfo& info) {
    unwrap<EngineHolder>(info.Env(), info[0], "engine")->engine.reset();
    return info.Env().Undefined();
  }

  Napi::Value CpuInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object res = Napi::Object::New(env);
    res.Set("isa", Napi::String::New(env, weft::isa_name(weft::isa_detect())));
    Napi::Array supported = Napi::Array::New(env);
    for (int i = 0; i <= 2; ++i)
      if (weft::isa_supported(static_cast<weft::Isa>(i)))
        supported.Set(supported.Length(), Napi::String::New(env, weft::isa_name(static_cast<weft::Isa>(i))));
    res.Set("supported", supported);
    return res;
  }

  // The model load in progress (any thread of this process), in bytes of its files' tensors.
  Napi::Value LoadProgressOf(const Napi::CallbackInfo& info) {
    const weft::LoadProgress p = weft::load_progress();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("bytesDone", Napi::Number::New(info.Env(), double(p.bytes_done)));
    o.Set("bytesTotal", Napi::Number::New(info.Env(), double(p.bytes_total)));
    o.Set("active", Napi::Boolean::New(info.Env(), p.active));
    return o;
  }

  Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), weft::cuda_device_count());
  }

  // glibc keeps memory freed by any thread in its arenas for reuse, and gives back only what sits
  // at the top of a heap: after a flood of request buffers the process stays at its peak size.
  // malloc_trim(0) returns every free page of every arena to the OS. The server calls it when it
  // goes idle after load. Without glibc there is nothing to do: false.
  Napi::Value MallocTrim(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__)
    return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
#else
    return Napi::Boolean::New(info.Env(), false);
#endif
  }

  Napi::Value CudaDeviceInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    weft::CudaDeviceInfo d;
    Status s = weft::cuda_device_info(info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0, &d);
    if (!s.ok()) throw_status(env, s);
    Napi::Object res = Napi::Object::New(env);
    res.Set("name", Napi::String::New(env, d.name));
    res.Set("computeCapability", Napi::String::New(env, std::to_string(d.major) + "." + std::to_string(d.minor)));
    res.Set("smCount", Napi::Number::New(env, d.sm_count));
    res.Set("totalBytes", Napi::Number::New(env, double(d.total_bytes)));
    res.Set("freeBytes", Napi::Number::New(env, double(d.free_bytes)));
    return res;
  }
};

}  // namespace

NODE_API_ADDON(WeftAddon)
