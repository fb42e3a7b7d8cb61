// Paged causal attention (native/src/cuda/attention.cuh) against the CPU reference
// weft::attention_token_group_ref on seeded random batches: decode (split and unsplit context),
// prefill with and without a cached prefix (tensor-core and SIMT paths), mixed batches, padding
// sequences and rows, grid bounds above the real lengths, and a captured graph replayed on new
// lengths. Cache positions a sequence must never read (past its context, table slack) hold
// large values, and `out` starts as NaN: rows and columns that must stay untouched are checked.
#include <algorithm>
#include <numeric>

#include "cpu/attention.h"
#include "cuda/attention.cuh"
#include "cuda/attention_kernels.cuh"
#include "harness.h"

using namespace weft_test;
using weft::cuda::AttentionArgs;
using weft::cuda::AttentionForce;
using weft::cuda::AttentionPrefillPath;
using weft::cuda::DType;

namespace {

const DType kTypes[] = {DType::f16, DType::bf16};

// Tolerances. K, V and q are rounded through the dtype on both sides, so the differences are:
// the output's rounding to T (2^-11 relative for f16, 2^-8 for bf16, nearest-even halves it),
// fp32 summation order and exp2 vs exp, and on the tensor-core path P (the softmax weights,
// in [0, 1]) rounded to T before P·V. The latter moves the output by at most
// 2^-11 (f16) / 2^-8 (bf16) times max|v| = 1 in the worst case and by far less on average,
// while the normalizer sums the unrounded weights. Hence bf16 needs a larger absolute term.
float atol_for(DType t) {
  return t == DType::f16 ? 2e-3f : 6e-3f;
}
float rtol_for(DType t) {
  return t == DType::f16 ? 2e-2f : 3e-2f;
}
constexpr uint16_t kSentinel = 0xffff;  // NaN in f16 and bf16: rows/columns never written keep it

struct Shape {
  int nh, kvh, hd, bs;
};
struct Seq {
  int q_len, ctx;  // ctx >= q_len; {0, 0} is a padding sequence
};
struct Opts {
  int extra_qlen = 0, extra_ctx = 0;  // host bounds above the real maxima (graph replay)
  int pad_tokens = 0;  // rows of q / out past the last sequence's, owned by none
  int q_pad = 0, out_pad = 0;  // extra columns of the q / out rows
  float q_range = 1.f;
  AttentionForce force;
  uint32_t seed = 1;
  int fixed_blocks = 0, fixed_mbps = 0;  // graph replay: the same buffer sizes every time
};

std::string shape_name(DType t, const Shape& s) {
  return std::string(weft::cuda::dtype_name(t)) + " heads " + std::to_string(s.nh) + "/" + std::to_string(s.kvh) + " hd " + std::to_string(s.hd) +
         " bs " + std::to_string(s.bs);
}
const char* path_name(AttentionPrefillPath p) {
  return p == AttentionPrefillPath::mma ? " mma" : p == AttentionPrefillPath::simt ? " simt" : "";
}

// A batch on the host: metadata, caches and q (floats already rounded to the dtype).
struct HostBatch {
  Shape sh{};
  std::vector<Seq> seqs;
  int num_tokens = 0, mbps = 0, num_blocks = 0, q_stride = 0, out_stride = 0;
  int max_q = 0, max_ctx = 0;
  std::vector<int32_t> query_start, context_lens, block_tables;
  std::vector<float> k, v, q;
};

HostBatch make_batch(DType t, const Shape& sh, const std::vector<Seq>& seqs, const Opts& o) {
  HostBatch b;
  b.sh = sh, b.seqs = seqs;
  std::mt19937 rng(o.seed);
  std::uniform_real_distribution<float> unit(-1.f, 1.f);
  b.query_start.push_back(0);
  int need = 0, widest = 1;
  for (const Seq& s : seqs) {
    b.query_start.push_back(b.query_start.back() + s.q_len);
    b.context_lens.push_back(s.ctx);
    b.max_q = std::max(b.max_q, s.q_len);
    b.max_ctx = std::max(b.max_ctx, s.ctx);
    const int nb = (s.ctx + sh.bs - 1) / sh.bs;
    need += nb;
    widest = std::max(widest, nb);
  }
  b.num_tokens = b.query_start.back() + o.pad_tokens;
  b.mbps = o.fixed_mbps ? o.fixed_mbps : widest + 2;  // slack entries point at the poison block
  b.num_blocks = o.fixed_blocks ? o.fixed_blocks : need + 4;
  std::vector<int> ids(b.num_blocks);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);  // non-contiguous, unordered block ids
  const int poison = ids.back();
  b.block_tables.assign(seqs.size() * b.mbps, poison);
  int next = 0;
  for (size_t i = 0; i < seqs.size(); ++i)
    for (int j = 0; j < (seqs[i].ctx + sh.bs - 1) / sh.bs; ++j) b.block_tables[i * b.mbps + j] = ids[next++];
  // every slot first gets values that would wreck any output that reads them ...
  const size_t cache = size_t(b.num_blocks) * sh.kvh * sh.bs * sh.hd;
  b.k.assign(cache, 3.f);
  b.v.assign(cache, 50.f);
  // ... then the positions inside the contexts get the real data
  weft::PagedKv kv;
  kv.block_size = sh.bs, kv.num_kv_heads = sh.kvh, kv.head_dim = sh.hd;
  for (size_t i = 0; i < seqs.size(); ++i)
    for (int p = 0; p < seqs[i].ctx; ++p)
      for (int g = 0; g < sh.kvh; ++g) {
        const size_t off = weft::kv_pos_offset(kv, &b.block_tables[i * b.mbps], p, g);
        for (int d = 0; d < sh.hd; ++d) b.k[off + d] = round_to(unit(rng), t), b.v[off + d] = round_to(unit(rng), t);
      }
  b.q_stride = sh.nh * sh.hd + o.q_pad;
  b.out_stride = sh.nh * sh.hd + o.out_pad;
  b.q.resize(size_t(b.num_tokens) * b.q_stride);
  for (float& x : b.q) x = round_to(o.q_range * unit(rng), t);
  return b;
}

bool owns_rows(const Seq& s) {
  return s.q_len > 0 && s.ctx > 0;
}

// Reference output rows [num_tokens][nh * hd] (rows owned by no sequence stay 0).
std::vector<float> reference(HostBatch& b, float scale) {
  const Shape& sh = b.sh;
  const int G = sh.nh / sh.kvh, cols = sh.nh * sh.hd;
  weft::PagedKv kv;
  kv.k = b.k.data(), kv.v = b.v.data(), kv.f16 = false;
  kv.block_size = sh.bs, kv.num_kv_heads = sh.kvh, kv.head_dim = sh.hd;
  std::vector<float> want(size_t(b.num_tokens) * cols, 0.f), scores(std::max(b.max_ctx, 1));
  for (size_t i = 0; i < b.seqs.size(); ++i) {
    const Seq& s = b.seqs[i];
    if (!owns_rows(s)) continue;
    for (int j = 0; j < s.q_len; ++j) {
      const int row = b.query_start[i] + j, pos = s.ctx - s.q_len + j;
      for (int g = 0; g < sh.kvh; ++g)
        weft::attention_token_group_ref(kv, &b.block_tables[i * b.mbps], pos + 1, g, &b.q[size_t(row) * b.q_stride + size_t(g) * G * sh.hd], G, scale,
                                        scores.data(), &want[size_t(row) * cols + size_t(g) * G * sh.hd]);
    }
  }
  return want;
}

// Device copies of a batch.
struct DeviceBatch {
  DeviceBuf<int32_t> qs, ctx, bt;
  DeviceBuf<uint16_t> k, v, q, out;
  DeviceBuf<uint8_t> ws;
  DeviceBatch(const HostBatch& b, DType t, size_t ws_bytes)
      : qs(b.query_start),
        ctx(b.context_lens),
        bt(b.block_tables),
        k(to_half_vec(b.k, t)),
        v(to_half_vec(b.v, t)),
        q(to_half_vec(b.q, t)),
        out(size_t(b.num_tokens) * b.out_stride),
        ws(ws_bytes) {
    reset_out(b);
    cuda_ok(cudaMemset(ws.ptr, 0xff, ws_bytes), "workspace fill");  // NaN floats: stale partials would show
  }
  void reset_out(const HostBatch& b) {
    out.upload(std::vector<uint16_t>(size_t(b.num_tokens) * b.out_stride, kSentinel));
  }
  void upload(const HostBatch& b, DType t) {  // same sizes as at construction
    qs.upload(b.query_start), ctx.upload(b.context_lens), bt.upload(b.block_tables);
    k.upload(to_half_vec(b.k, t)), v.upload(to_half_vec(b.v, t)), q.upload(to_half_vec(b.q, t));
    reset_out(b);
  }
  AttentionArgs args(const HostBatch& b, const Opts& o, float scale) const {
    AttentionArgs a;
    a.query_start = qs.ptr, a.context_lens = ctx.ptr, a.block_tables = bt.ptr;
    a.num_seqs = int(b.seqs.size()), a.num_tokens = b.num_tokens, a.max_blocks_per_seq = b.mbps;
    a.max_query_len = b.max_q + o.extra_qlen, a.max_context_len = b.max_ctx + o.extra_ctx;
    a.num_heads = b.sh.nh, a.num_kv_heads = b.sh.kvh, a.head_dim = b.sh.hd, a.block_size = b.sh.bs;
    a.scale = scale;
    a.q = q.ptr, a.q_stride = b.q_stride, a.k_cache = k.ptr, a.v_cache = v.ptr;
    a.out = out.ptr, a.out_stride = b.out_stride;
    a.workspace = ws.ptr;
    return a;
  }
};

size_t workspace_for(const HostBatch& b, const Opts& o) {
  size_t bytes = weft::cuda::attention_workspace_bytes(b.num_tokens, b.sh.nh, b.sh.hd, b.max_ctx + o.extra_ctx);
  if (o.force.decode_splits > 0)
    bytes = std::max(bytes, weft::cuda::attention_partials_bytes(long(b.seqs.size()) * o.force.decode_splits, b.sh.nh, b.sh.hd));
  return bytes;
}

// Compares the rows owned by sequences with the reference and checks that everything else of
// `out` (padding columns, rows of no sequence) still holds the sentinel.
void compare(Harness& h, DType t, const HostBatch& b, const std::vector<uint16_t>& out_bits, const std::vector<float>& want,
             const std::string& what) {
  const int cols = b.sh.nh * b.sh.hd;
  std::vector<char> owned(b.num_tokens, 0);
  for (size_t i = 0; i < b.seqs.size(); ++i)
    if (owns_rows(b.seqs[i]))
      for (int r = b.query_start[i]; r < b.query_start[i + 1]; ++r) owned[r] = 1;
  std::vector<float> got_c, want_c;
  size_t touched = 0;
  for (int r = 0; r < b.num_tokens; ++r)
    for (int c = 0; c < b.out_stride; ++c) {
      const uint16_t bits = out_bits[size_t(r) * b.out_stride + c];
      if (owned[r] && c < cols) {
        got_c.push_back(from_half_bits(bits, t));
        want_c.push_back(want[size_t(r) * cols + c]);
      } else if (bits != kSentinel) {
        ++touched;
      }
    }
  h.check_close(got_c.data(), want_c.data(), got_c.size(), atol_for(t), rtol_for(t), what);
  h.check(touched == 0, what + ": " + std::to_string(touched) + " elements outside the owned rows/columns written");
}

void run_case(Harness& h, DType t, const Shape& sh, const std::vector<Seq>& seqs, const Opts& o, const std::string& label) {
  HostBatch b = make_batch(t, sh, seqs, o);
  const float scale = 1.f / std::sqrt(float(sh.hd));
  DeviceBatch d(b, t, workspace_for(b, o));
  const AttentionArgs a = d.args(b, o, scale);
  cuda_ok(weft::cuda::attention_forced(t, a, o.force, nullptr), "attention launch");
  sync("attention");
  const std::vector<float> want = reference(b, scale);
  const int splits =
      o.force.decode_splits ? o.force.decode_splits : weft::cuda::attention_decode_splits(a.num_seqs, a.num_tokens, sh.nh, sh.kvh, a.max_context_len);
  compare(h, t, b, d.out.download(), want, shape_name(t, sh) + " " + label + path_name(o.force.prefill) + " (splits " + std::to_string(splits) + ")");
}

std::vector<Seq> decode_seqs(const std::vector<int>& ctxs) {
  std::vector<Seq> s;
  for (int c : ctxs) s.push_back({1, c});
  return s;
}

const Shape kDecodeShapes[] = {
    {8, 4, 8, 16},  // the test model
    {32, 8, 64, 16},  // Llama 3.2 1B
    {8, 8, 64, 16},  // no GQA
    {16, 8, 128, 16},  // group 2
    {32, 8, 128, 16},  // group 4
};

}  // namespace

WEFT_CUDA_TEST(attention_decode_batches) {
  std::vector<int> c64;
  const int cyc[] = {1, 15, 16, 17, 300, 2049, 37, 511, 256, 257, 1000};
  for (int i = 0; i < 64; ++i) c64.push_back(cyc[i % 11]);
  const std::vector<std::pair<std::string, std::vector<int>>> batches = {
      {"decode 1 seq ctx 8192", {8192}},
      {"decode 7 seqs", {1, 15, 16, 17, 300, 2049, 8192}},
      {"decode 64 seqs", c64},
  };
  for (DType t : kTypes)
    for (const Shape& sh : kDecodeShapes)
      for (const auto& bt : batches) run_case(h, t, sh, decode_seqs(bt.second), Opts{}, bt.first);
}

WEFT_CUDA_TEST(attention_decode_forced_splits) {
  const std::vector<int> ctxs = {1, 15, 16, 17, 300, 2049, 8192, 255, 257, 513};
  for (DType t : kTypes)
    for (const Shape& sh : {Shape{32, 8, 64, 16}, Shape{16, 8, 128, 16}, Shape{8, 4, 8, 16}})
      for (int splits : {1, 2, 3, 7, 64}) {
        Opts o;
        o.force.decode_splits = splits;
        o.seed = 7 + splits;
        run_case(h, t, sh, decode_seqs(ctxs), o, "decode forced splits");
      }
}

// Both prefill kernels where the tensor-core one applies (head_dim 64/128), else the automatic one.
static std::vector<AttentionPrefillPath> prefill_paths(const Shape& sh) {
  if (sh.hd == 64 || sh.hd == 128) return {AttentionPrefillPath::mma, AttentionPrefillPath::simt};
  return {AttentionPrefillPath::automatic};
}

WEFT_CUDA_TEST(attention_prefill) {
  const Shape shapes[] = {
      {8, 4, 8, 16}, {32, 8, 64, 16}, {8, 8, 64, 16}, {16, 8, 128, 16}, {32, 8, 128, 16}, {8, 4, 32, 16}, {8, 2, 96, 16},
  };
  // without a cached prefix (q_len == ctx), and chunks after a prefix (ctx > q_len)
  const std::vector<Seq> fresh = {{2, 2}, {17, 17}, {64, 64}, {65, 65}, {300, 300}, {1, 1}};
  const std::vector<Seq> chunked = {{3, 100}, {64, 128}, {100, 1000}, {129, 429}, {2, 2049}, {16, 16}};
  for (DType t : kTypes)
    for (const Shape& sh : shapes) {
      for (AttentionPrefillPath p : prefill_paths(sh)) {
        Opts o;
        o.force.prefill = p;
        o.q_range = 2.f;
        run_case(h, t, sh, fresh, o, "prefill");
        o.seed = 2;
        run_case(h, t, sh, chunked, o, "prefill after prefix");
      }
    }
}

WEFT_CUDA_TEST(attention_mixed_batches) {
  // decode and prefill sequences together, a sequence without tokens, padding rows, and
  // q / out rows wider than the heads (the engine's out rows are padded to 64 columns)
  const std::vector<Seq> seqs = {{1, 300}, {50, 50}, {1, 1}, {17, 2000}, {0, 5}, {1, 2049}, {2, 2}, {1, 16}, {0, 0}};
  for (DType t : kTypes)
    for (const Shape& sh : {Shape{32, 8, 64, 16}, Shape{8, 4, 8, 16}, Shape{32, 8, 128, 16}, Shape{8, 2, 96, 16}}) {
      Opts o;
      o.pad_tokens = 3, o.q_pad = 8, o.out_pad = 64, o.seed = 11;
      run_case(h, t, sh, seqs, o, "mixed");
      if (sh.hd == 64 || sh.hd == 128) {
        o.force.prefill = AttentionPrefillPath::simt;
        run_case(h, t, sh, seqs, o, "mixed");
      }
    }
}

WEFT_CUDA_TEST(attention_grid_bounds_above_lengths) {
  // graph replay: the grid comes from bounds well above the real lengths, and the batch ends
  // with padding sequences (q_len 0, context 0) and padding rows, as in a captured bucket
  for (DType t : kTypes)
    for (const Shape& sh : {Shape{32, 8, 64, 16}, Shape{8, 4, 8, 16}, Shape{16, 8, 128, 16}}) {
      Opts o;
      o.extra_ctx = 4096, o.pad_tokens = 3, o.seed = 21;
      run_case(h, t, sh, {{1, 300}, {1, 1}, {1, 17}, {1, 40}, {1, 257}, {0, 0}, {0, 0}, {0, 0}}, o, "decode bounds");
      o.extra_qlen = 100, o.extra_ctx = 8192;
      run_case(h, t, sh, {{40, 40}, {1, 90}, {7, 300}, {0, 0}}, o, "prefill bounds");
    }
}

WEFT_CUDA_TEST(attention_block_sizes) {
  // 8, 32, a non-power of two (division path) and 1 (every position in its own block)
  const std::vector<Seq> seqs = {{1, 300}, {37, 37}, {1, 5}, {20, 333}, {1, 1000}};
  for (DType t : kTypes)
    for (int bs : {8, 32, 12, 1})
      for (const Shape& sh : {Shape{32, 8, 64, bs}, Shape{8, 4, 8, bs}, Shape{16, 8, 128, bs}}) {
        Opts o;
        o.seed = 31 + bs;
        run_case(h, t, sh, seqs, o, "block size");
      }
}

WEFT_CUDA_TEST(attention_odd_shapes) {
  // group 3 (a masked head in the decode CTA, 63 of 64 mma rows), 8, 16 (MQA-like), 80 (more
  // heads than mma rows: head chunks), head_dim 256, 36 (4-byte loads), 2
  const Shape shapes[] = {{6, 2, 64, 16},  {32, 4, 128, 16}, {16, 1, 128, 16}, {80, 1, 64, 16},
                          {4, 4, 256, 16}, {8, 2, 256, 16},  {4, 2, 36, 16},   {2, 1, 2, 16}};
  const std::vector<Seq> seqs = {{1, 700}, {33, 33}, {5, 90}, {1, 3}, {70, 170}};
  for (DType t : kTypes)
    for (const Shape& sh : shapes) {
      for (AttentionPrefillPath p : prefill_paths(sh)) {
        Opts o;
        o.force.prefill = p;
        o.seed = 41;
        run_case(h, t, sh, seqs, o, "odd shape");
      }
    }
}

WEFT_CUDA_TEST(attention_peaked_scores) {
  // large q: softmax dominated by few positions, the running max moves often
  for (DType t : kTypes)
    for (const Shape& sh : {Shape{32, 8, 64, 16}, Shape{16, 8, 128, 16}, Shape{8, 4, 8, 16}}) {
      Opts o;
      o.q_range = 12.f, o.seed = 51;
      run_case(h, t, sh, {{1, 3000}, {130, 130}, {64, 900}, {1, 33}}, o, "peaked");
    }
}

WEFT_CUDA_TEST(attention_empty_batches) {
  for (DType t : kTypes) {
    const Shape sh{32, 8, 64, 16};
    Opts o;
    o.pad_tokens = 4, o.extra_qlen = 8, o.extra_ctx = 1000;
    run_case(h, t, sh, {{0, 0}, {0, 0}, {0, 7}}, o, "no query tokens");
    // nothing at all: no launch, no error
    AttentionArgs a;
    a.num_heads = 32, a.num_kv_heads = 8, a.head_dim = 64, a.q_stride = a.out_stride = 32 * 64;
    DeviceBuf<int32_t> meta(4);
    DeviceBuf<uint16_t> buf(64);
    a.query_start = a.context_lens = a.block_tables = meta.ptr;
    a.q = a.k_cache = a.v_cache = buf.ptr;
    a.out = buf.ptr;
    h.check(weft::cuda::attention(t, a, nullptr) == cudaSuccess, "zero sequences: success");
    a.head_dim = 7;
    h.check(weft::cuda::attention(t, a, nullptr) == cudaErrorInvalidValue, "odd head_dim: invalid value");
    a.head_dim = 64, a.num_kv_heads = 5;
    h.check(weft::cuda::attention(t, a, nullptr) == cudaErrorInvalidValue, "heads not a multiple of kv heads");
  }
}

WEFT_CUDA_TEST(attention_workspace_covers_splits) {
  // host only: for every batch under (max_tokens, max_context_len) bounds the partials of the
  // chosen split count fit in attention_workspace_bytes of those bounds, and the count only
  // depends on the host-side bounds
  const int heads[][2] = {{32, 8}, {8, 4}, {16, 1}, {64, 8}, {80, 1}};
  bool ok = true;
  std::string first_bad;
  for (const auto& hk : heads)
    for (int max_tokens : {1, 2, 7, 8, 64, 512, 4096})
      for (int max_ctx : {1, 255, 256, 257, 513, 2049, 8192, 32768, 131072}) {
        const size_t ws = weft::cuda::attention_workspace_bytes(max_tokens, hk[0], 128, max_ctx);
        for (int tokens : {1, max_tokens / 2, max_tokens})
          for (int seqs : {1, 2, 3, 5, 17, 64, 100, 512, 4096}) {
            if (tokens < 1 || seqs > tokens) continue;
            for (int ctx : {1, max_ctx / 3, max_ctx}) {
              if (ctx < 1) continue;
              const int s = weft::cuda::attention_decode_splits(seqs, tokens, hk[0], hk[1], ctx);
              const bool fits = s == 1 || weft::cuda::attention_partials_bytes(long(seqs) * s, hk[0], 128) <= ws;
              if ((!fits || s < 1 || s > weft::cuda::kAttentionMaxSplits) && ok) {
                ok = false;
                first_bad = "tokens " + std::to_string(tokens) + " seqs " + std::to_string(seqs) + " ctx " + std::to_string(ctx) + " splits " +
                            std::to_string(s);
              }
            }
          }
      }
  h.check(ok, "workspace covers the split partials " + first_bad);
  const int s1 = weft::cuda::attention_decode_splits(1, 1, 32, 8, 8192);
  const int s64 = weft::cuda::attention_decode_splits(64, 64, 32, 8, 8192);
  std::printf("  info  splits: 1 seq ctx 8192 -> %d, 64 seqs -> %d, 1 seq ctx 300 -> %d\n", s1, s64,
              weft::cuda::attention_decode_splits(1, 1, 32, 8, 300));
  h.check(s1 > 1, "a single long sequence is split");
}

WEFT_CUDA_TEST(attention_graph_replay) {
  // one capture (8 decode sequences, contexts up to 4096), replayed on other lengths, with
  // padding sequences and rows: the launch shape never depends on device data
  for (DType t : kTypes)
    for (const Shape& sh : {Shape{32, 8, 64, 16}, Shape{8, 4, 8, 16}}) {
      const int N = 8, ctx_bound = 4096;
      Opts o;
      o.fixed_mbps = ctx_bound / sh.bs + 2;
      o.fixed_blocks = N * (ctx_bound / sh.bs) + 4;
      const std::vector<std::vector<Seq>> rounds = {
          decode_seqs({4096, 1, 17, 300, 2049, 256, 257, 1000}),
          {{1, 3}, {1, 700}, {1, 16}, {1, 4000}, {1, 1}, {0, 0}, {0, 0}, {0, 0}},
          {{1, 33}, {0, 0}, {0, 0}, {0, 0}, {0, 0}, {0, 0}, {0, 0}, {0, 0}},
          decode_seqs({512, 513, 511, 1, 2, 3, 4095, 60}),
      };
      auto batch_of = [&](int r) {
        Opts oo = o;
        int real = 0;
        for (const Seq& s : rounds[r]) real += s.q_len;
        oo.pad_tokens = N - real, oo.seed = 61 + r;
        return make_batch(t, sh, rounds[r], oo);
      };
      HostBatch b0 = batch_of(0);
      const float scale = 1.f / std::sqrt(float(sh.hd));
      DeviceBatch d(b0, t, weft::cuda::attention_workspace_bytes(N, sh.nh, sh.hd, ctx_bound));
      Opts bounds;
      AttentionArgs a = d.args(b0, bounds, scale);
      a.max_query_len = 1, a.max_context_len = ctx_bound;
      cudaStream_t stream;
      cuda_ok(cudaStreamCreate(&stream), "stream");
      cudaGraph_t graph;
      cudaGraphExec_t exec;
      cuda_ok(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), "begin capture");
      const cudaError_t le = weft::cuda::attention(t, a, stream);
      cuda_ok(cudaStreamEndCapture(stream, &graph), "end capture");
      cuda_ok(le, "captured attention");
      cuda_ok(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
      for (size_t r = 0; r < rounds.size(); ++r) {
        HostBatch b = r == 0 ? b0 : batch_of(int(r));
        d.upload(b, t);
        cuda_ok(cudaGraphLaunch(exec, stream), "graph launch");
        cuda_ok(cudaStreamSynchronize(stream), "graph sync");
        compare(h, t, b, d.out.download(), reference(b, scale), shape_name(t, sh) + " graph replay " + std::to_string(r));
      }
      cudaGraphExecDestroy(exec);
      cudaGraphDestroy(graph);
      cudaStreamDestroy(stream);
    }
}

// Timing report, checks nothing but launch success: Llama 3.2 1B shapes (32 / 8 heads, hd 64).
WEFT_CUDA_TEST(attention_perf) {
  const Shape sh{32, 8, 64, 16};
  struct P {
    const char* name;
    std::vector<Seq> seqs;
  };
  std::vector<P> cases = {
      {"decode 1 x 8192", decode_seqs({8192})},
      {"decode 8 x 4096", decode_seqs(std::vector<int>(8, 4096))},
      {"decode 64 x 1024", decode_seqs(std::vector<int>(64, 1024))},
      {"decode 256 x 512", decode_seqs(std::vector<int>(256, 512))},
      {"prefill 1 x 2048", {{2048, 2048}}},
      {"prefill 4 x 512 after 1536", {{512, 2048}, {512, 2048}, {512, 2048}, {512, 2048}}},
  };
  for (const P& c : cases) {
    const DType t = DType::bf16;
    HostBatch b = make_batch(t, sh, c.seqs, Opts{});
    DeviceBatch d(b, t, workspace_for(b, Opts{}));
    const AttentionArgs a = d.args(b, Opts{}, 0.125f);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    cudaError_t err = weft::cuda::attention(t, a, nullptr);
    const int iters = 20;
    cudaEventRecord(e0);
    for (int i = 0; i < iters; ++i) weft::cuda::attention(t, a, nullptr);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    ms /= iters;
    sync("attention perf");
    double kv_bytes = 0, flops = 0;
    for (const Seq& s : c.seqs) {
      kv_bytes += 2.0 * s.ctx * sh.kvh * sh.hd * 2;
      for (int j = 0; j < s.q_len; ++j) flops += 4.0 * (s.ctx - s.q_len + j + 1) * sh.nh * sh.hd;
    }
    std::printf("  info  %-28s %9.2f us  %7.1f GB/s of KV  %6.1f TFLOP/s\n", c.name, ms * 1e3, kv_bytes / (ms * 1e6), flops / (ms * 1e9));
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    h.check(err == cudaSuccess, std::string(c.name) + " launched");
  }
}
