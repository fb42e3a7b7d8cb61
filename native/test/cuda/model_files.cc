#include "model_files.h"

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

namespace weft_test {
namespace {

// A minimal JSON value: enough for config.json and a safetensors header.
struct Json {
  enum Kind { null, boolean, number, string, array, object } kind = null;
  double num = 0;
  bool b = false;
  std::string str;
  std::vector<Json> arr;
  std::map<std::string, Json> obj;
  const Json* get(const std::string& k) const {
    auto it = obj.find(k);
    return it == obj.end() ? nullptr : &it->second;
  }
};

struct Parser {
  const std::string& s;
  size_t i = 0;
  bool ok = true;
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) ++i;
  }
  Json value() {
    ws();
    Json v;
    if (i >= s.size()) {
      ok = false;
      return v;
    }
    const char c = s[i];
    if (c == '{') {
      v.kind = Json::object;
      ++i;
      ws();
      if (s[i] == '}') {
        ++i;
        return v;
      }
      while (ok) {
        ws();
        Json k = value();
        ws();
        if (k.kind != Json::string || s[i] != ':') {
          ok = false;
          break;
        }
        ++i;
        v.obj[k.str] = value();
        ws();
        if (s[i] == ',') {
          ++i;
          continue;
        }
        if (s[i] == '}') {
          ++i;
          break;
        }
        ok = false;
      }
    } else if (c == '[') {
      v.kind = Json::array;
      ++i;
      ws();
      if (s[i] == ']') {
        ++i;
        return v;
      }
      while (ok) {
        v.arr.push_back(value());
        ws();
        if (s[i] == ',') {
          ++i;
          continue;
        }
        if (s[i] == ']') {
          ++i;
          break;
        }
        ok = false;
      }
    } else if (c == '"') {
      v.kind = Json::string;
      ++i;
      while (i < s.size() && s[i] != '"') {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;  // escapes: keep the escaped character
        v.str += s[i++];
      }
      ++i;
    } else if (s.compare(i, 4, "true") == 0) {
      v.kind = Json::boolean, v.b = true, i += 4;
    } else if (s.compare(i, 5, "false") == 0) {
      v.kind = Json::boolean, i += 5;
    } else if (s.compare(i, 4, "null") == 0) {
      i += 4;
    } else {
      char* end = nullptr;
      v.kind = Json::number;
      v.num = std::strtod(s.c_str() + i, &end);
      if (end == s.c_str() + i) ok = false;
      i = end - s.c_str();
    }
    return v;
  }
};

bool read_file(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

double num(const Json& o, const char* k, double def) {
  const Json* v = o.get(k);
  return v && v->kind == Json::number ? v->num : def;
}

}  // namespace

bool read_hf_model(const std::string& dir, weft::WeightDType dtype, weft::Backend target, weft::ModelSpec* spec, std::string* error) {
  std::string text;
  if (!read_file(dir + "/config.json", &text)) return *error = "cannot read " + dir + "/config.json", false;
  Parser p{text};
  const Json cfg = p.value();
  if (!p.ok || cfg.kind != Json::object) return *error = "bad config.json", false;
  weft::ModelConfig& c = spec->config;
  c.dim = int(num(cfg, "hidden_size", 0));
  c.num_layers = int(num(cfg, "num_hidden_layers", 0));
  c.num_heads = int(num(cfg, "num_attention_heads", 0));
  c.num_kv_heads = int(num(cfg, "num_key_value_heads", c.num_heads));
  c.head_dim = int(num(cfg, "head_dim", c.num_heads ? c.dim / c.num_heads : 0));
  c.ffn_dim = int(num(cfg, "intermediate_size", 0));
  c.vocab_size = int(num(cfg, "vocab_size", 0));
  c.max_positions = int(num(cfg, "max_position_embeddings", 2048));
  c.rms_eps = float(num(cfg, "rms_norm_eps", 1e-5));
  c.rope_theta = float(num(cfg, "rope_theta", 10000));
  const Json* tie = cfg.get("tie_word_embeddings");
  c.tie_embeddings = tie && tie->kind == Json::boolean && tie->b;
  const std::string file = dir + "/model.safetensors";
  std::ifstream f(file, std::ios::binary);
  uint64_t hlen = 0;
  if (!f || !f.read(reinterpret_cast<char*>(&hlen), 8) || hlen > (1u << 30)) return *error = "cannot read " + file, false;
  std::string header(hlen, '\0');
  f.read(&header[0], std::streamsize(hlen));
  Parser hp{header};
  const Json h = hp.value();
  if (!hp.ok || h.kind != Json::object) return *error = "bad safetensors header in " + file, false;
  for (const auto& [name, t] : h.obj) {
    if (name == "__metadata__") continue;
    weft::TensorSpec ts;
    ts.name = name;
    ts.file = file;
    const Json* dt = t.get("dtype");
    const Json* shape = t.get("shape");
    const Json* offs = t.get("data_offsets");
    if (!dt || !shape || !offs || offs->arr.size() != 2) return *error = "bad tensor entry " + name, false;
    if (dt->str == "F32") ts.dtype = weft::TensorDType::f32;
    else if (dt->str == "F16") ts.dtype = weft::TensorDType::f16;
    else if (dt->str == "BF16") ts.dtype = weft::TensorDType::bf16;
    else return *error = "unsupported dtype " + dt->str, false;
    for (const Json& d : shape->arr) ts.shape.push_back(int64_t(d.num));
    ts.offset = 8 + hlen + uint64_t(offs->arr[0].num);
    ts.byte_length = uint64_t(offs->arr[1].num - offs->arr[0].num);
    spec->tensors.push_back(ts);
  }
  spec->weight_dtype = dtype;
  spec->target = target;
  spec->key = dir + "|" + std::to_string(int(dtype)) + "|" + std::to_string(int(target));
  return true;
}

std::vector<int> read_golden_ids(const std::string& dir) {
  std::string text;
  std::vector<int> ids;
  if (!read_file(dir + "/SOURCE.md", &text)) return ids;
  const std::string marker = "Greedy ids from [BOS]:";
  const size_t at = text.find(marker);
  if (at == std::string::npos) return ids;
  const size_t end = text.find('\n', at);
  std::stringstream ss(text.substr(at + marker.size(), end - at - marker.size()));
  std::string tok;
  while (std::getline(ss, tok, ',')) ids.push_back(std::atoi(tok.c_str()));
  return ids;
}

}  // namespace weft_test
