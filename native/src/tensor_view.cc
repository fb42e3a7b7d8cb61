// Reading weight rows out of mapped files, whatever their on-disk dtype.
#include <cstring>
#include <vector>

#include "half.h"
#include "model.h"
#include "quant_blocks.h"

namespace weft {

void tensor_row_f32(const TensorView& t, int64_t r, float* out) {
  const int64_t k = t.cols;
  if (const BlockFormat* f = block_format(t.dtype)) {
    // through the common form the kernels use, so a row reads the same wherever it goes
    thread_local std::vector<uint8_t> u;
    thread_local std::vector<float> D, M;
    thread_local std::vector<int8_t> sc, mn;
    u.resize(k);
    D.resize(k / f->super);
    M.resize(k / f->super);
    sc.resize(k / f->sub);
    mn.resize(k / f->sub);
    block_row_decode(t.dtype, t.data + r * (k / f->values) * f->bytes, int(k), u.data(), D.data(), M.data(), sc.data(), mn.data());
    for (int64_t i = 0; i < k; ++i) {
      const int64_t b = i / f->super, s = i / f->sub;
      out[i] = D[b] * float(sc[s]) * float(u[i]) + M[b] * float(mn[s]);
    }
    return;
  }
  switch (t.dtype) {
    case TensorDType::f32:
      std::memcpy(out, t.data + r * k * 4, k * 4);
      break;
    case TensorDType::f16: {
      const uint8_t* p = t.data + r * k * 2;
      for (int64_t i = 0; i < k; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = f16_to_f32(h);
      }
      break;
    }
    case TensorDType::bf16: {
      const uint8_t* p = t.data + r * k * 2;
      for (int64_t i = 0; i < k; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = bf16_to_f32(h);
      }
      break;
    }
    case TensorDType::q8_0: {
      const uint8_t* p = t.data + r * (k / 32) * 34;
      for (int64_t b = 0; b < k / 32; ++b, p += 34) {
        uint16_t h;
        std::memcpy(&h, p, 2);
        const float d = f16_to_f32(h);
        const int8_t* q = reinterpret_cast<const int8_t*>(p + 2);
        for (int i = 0; i < 32; ++i) out[b * 32 + i] = d * q[i];
      }
      break;
    }
    case TensorDType::i8: {
      const int8_t* q = reinterpret_cast<const int8_t*>(t.data) + r * k;
      const float s = t.row_scales[r];
      for (int64_t i = 0; i < k; ++i) out[i] = s * q[i];
      break;
    }
    default:
      break;  // block types: above
  }
}

}  // namespace weft
