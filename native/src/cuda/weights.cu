#include "cuda/weights.cuh"

#include <algorithm>
#include <map>
#include <mutex>

#include "cpu/ops.h"

namespace weft {
namespace cuda {
namespace {

struct Uploader {
  DeviceModel& dm;
  template <class T> Status put(const std::vector<T>& host, const void** out, const char* what) {
    void* p = nullptr;
    const size_t bytes = host.size() * sizeof(T);
    WEFT_CUDA_TRY(cudaMalloc(&p, bytes ? bytes : 16), std::string("cudaMalloc for ") + what);
    dm.allocations.push_back(p);
    dm.bytes += bytes;
    if (bytes) WEFT_CUDA_TRY(cudaMemcpy(p, host.data(), bytes, cudaMemcpyHostToDevice), std::string("upload of ") + what);
    *out = p;
    return Status::Ok();
  }
  Status vec(const std::vector<float>& host, const float** out, const char* what) {
    const void* p = nullptr;
    Status s = put(host, &p, what);
    *out = static_cast<const float*>(p);
    return s;
  }
  Status matrix(const HostMatrix& m, GemmWeight* w, const char* what) {
    w->n = m.n;
    w->k = m.kpad;
    w->group = m.group;
    w->kind = m.kind == HostWeightKind::i8 ? WeightKind::i8 : m.kind == HostWeightKind::bf16 ? WeightKind::bf16 : WeightKind::f16;
    Status s = m.kind == HostWeightKind::i8 ? put(m.q, &w->data, what) : put(m.half, &w->data, what);
    if (!s.ok() || m.kind != HostWeightKind::i8) return s;
    return vec(m.scales, &w->scales, what);
  }
  // gate_up with its rows interleaved (gate j, up j at rows 2j, 2j+1), so that one CTA of the
  // decode gemv holds both halves of an output and applies SwiGLU in its epilogue (silu_mul.cuh).
  Status gate_up(const HostMatrix& m, GemmWeight* w) {
    HostMatrix il = m;
    const int f = m.n / 2;
    const size_t row = size_t(m.kpad), srow = m.kind != HostWeightKind::i8 ? 0 : m.scales.size() / size_t(m.n);
    for (int j = 0; j < f; ++j)
      for (int half = 0; half < 2; ++half) {
        const size_t from = size_t(half * f + j), to = size_t(2 * j + half);
        if (m.kind == HostWeightKind::i8) {
          std::copy_n(&m.q[from * row], row, &il.q[to * row]);
          std::copy_n(&m.scales[from * srow], srow, &il.scales[to * srow]);
        } else {
          std::copy_n(&m.half[from * row], row, &il.half[to * row]);
        }
      }
    return matrix(il, w, "gate_up");
  }
};

Status upload(const std::shared_ptr<const Model>& model, DeviceModel* dm) {
  const Model& m = *model;
  const ModelConfig& c = m.config;
  if (m.target != Backend::cuda) return Status::Error(StatusCode::bad_input, "the model was loaded for the CPU backend; load it with target cuda");
  dm->host = model;
  dm->act = m.act_bf16 ? DType::bf16 : DType::f16;
  Uploader u{*dm};
  Status s;
  dm->layers.resize(c.num_layers);
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& hl = m.layers[l];
    DeviceLayer& dl = dm->layers[l];
    if (!(s = u.vec(hl.attn_norm, &dl.attn_norm, "attn_norm")).ok()) return s;
    if (!(s = u.vec(hl.ffn_norm, &dl.ffn_norm, "ffn_norm")).ok()) return s;
    if (!hl.qkv_bias.empty() && !(s = u.vec(hl.qkv_bias, &dl.qkv_bias, "qkv_bias")).ok()) return s;
    if (!hl.q_norm.empty() && !(s = u.vec(hl.q_norm, &dl.q_norm, "q_norm")).ok()) return s;
    if (!hl.k_norm.empty() && !(s = u.vec(hl.k_norm, &dl.k_norm, "k_norm")).ok()) return s;
    if (!(s = u.matrix(hl.g_qkv, &dl.qkv, "qkv")).ok()) return s;
    if (!(s = u.matrix(hl.g_o, &dl.o, "o_proj")).ok()) return s;
    if (!(s = u.gate_up(hl.g_gate_up, &dl.gate_up)).ok()) return s;
    if (!(s = u.matrix(hl.g_down, &dl.down, "down")).ok()) return s;
  }
  if (!(s = u.put(m.g_embed, &dm->embed, "embed_tokens")).ok()) return s;
  if (!(s = u.vec(m.final_norm, &dm->final_norm, "norm")).ok()) return s;
  std::vector<float> inv_freq(c.head_dim / 2);
  rope_inv_freq(c, inv_freq.data());
  if (!(s = u.vec(inv_freq, &dm->inv_freq, "rope inv_freq")).ok()) return s;
  if (m.g_lm_head_is_embed) {
    dm->lm_head.data = dm->embed;
    dm->lm_head.kind = m.act_bf16 ? WeightKind::bf16 : WeightKind::f16;
    dm->lm_head.n = c.vocab_size;
    dm->lm_head.k = c.dim;
  } else if (!(s = u.matrix(m.g_lm_head, &dm->lm_head, "lm_head")).ok()) {
    return s;
  }
  return Status::Ok();
}

}  // namespace

DeviceModel::~DeviceModel() {
  int prev = 0;
  cudaGetDevice(&prev);
  cudaSetDevice(device);
  for (void* p : allocations) cudaFree(p);
  cudaSetDevice(prev);
}

Status device_model_get(const std::shared_ptr<const Model>& model, int device, std::shared_ptr<const DeviceModel>* out) {
  static std::mutex mu;
  static std::map<std::pair<const Model*, int>, std::weak_ptr<const DeviceModel>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[{model.get(), device}];
  if (auto dm = slot.lock()) {
    *out = dm;
    return Status::Ok();
  }
  WEFT_CUDA_TRY(cudaSetDevice(device), "cudaSetDevice(" + std::to_string(device) + ")");
  auto dm = std::make_shared<DeviceModel>();
  dm->device = device;
  Status s = upload(model, dm.get());
  if (!s.ok()) return s;  // dm's destructor frees what was uploaded
  slot = dm;
  *out = dm;
  return Status::Ok();
}

}  // namespace cuda
}  // namespace weft
