#include "cpu/matmul_internal.h"
namespace weft { namespace detail {
void matmul_f32_avx2(const float* x, int m, const PackedF32& w, float* y, int ldy, int n0, int n1) { matmul_f32_scalar(x,m,w,y,ldy,n0,n1); }
void quantize_act_avx2(const float* x, int m, int k, QuantAct* out) { quantize_act_scalar(x,m,k,out); }
void matmul_i8_avx2(const QuantAct& x, const PackedI8& w, float* y, int ldy, int n0, int n1) { matmul_i8_scalar(x,w,y,ldy,n0,n1); }
}}
