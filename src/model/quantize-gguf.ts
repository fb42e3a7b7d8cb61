// quantizeToGguf: a HF directory (safetensors F32/F16/BF16) or an F32/F16/BF16 GGUF → one GGUF
// file in a llama.cpp file type (q4_k_m, q6_k, q8_0, …), each tensor's type chosen by quant-mix.
// A HF model is laid out as synth lays it out (metadata, tokenizer, permuted llama q/k rows); a
// GGUF keeps its metadata entries as they are, with only general.file_type (and
// general.quantization_version) changed. Tensors stream in row blocks, so a model is never held
// in f32 at once (a llama q/k matrix, read whole for its row permutation, is the largest piece).
import { basename, resolve } from 'node:path';

import { WeftError } from '../errors.js';
import { GGML_TYPES, GGUF_TYPE, ggmlTypeName, ggufTensorName, readGguf, type GgufEntry, type GgufFile } from './gguf.js';
import { ggufMetadata, ggufRowOrder, ropeFreqFactors } from './gguf-layout.js';
import { vocabFromTokenizerJson } from './gguf-tokenizer.js';
import { writeGgufFile, type GgufTensorSource } from './gguf-write.js';
import { expectedShapes, loadModelSpec } from './load.js';
import { chooseTensorTypes, llamaFileType, type GgufFileType } from './quant-mix.js';
import { readTensorBytes, toFloat32 } from './safetensors.js';
import type { ModelSpec, TensorRef } from './types.js';

const CHUNK_BYTES = 8 << 20;
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16']);

// Emits a tensor's rows (all of them, in order) as f32 in blocks of whole rows.
async function emitRows(ref: TensorRef, emit: (rows: Float32Array) => Promise<void>): Promise<void> {
  const numRows = ref.shape.length === 2 ? ref.shape[0] : 1,
    rowBytes = ref.byteLength / numRows;
  const perBlock = Math.max(1, Math.floor(CHUNK_BYTES / rowBytes));
  for (let r = 0; r < numRows; r += perBlock)
    await emit(toFloat32(readTensorBytes(ref, r * rowBytes, Math.min(perBlock, numRows - r) * rowBytes), ref.dtype));
}

// Rows in the order rowOrder gives (GGUF row → source row); the whole matrix is read once.
async function emitPermuted(ref: TensorRef, rowOrder: (r: number) => number, emit: (rows: Float32Array) => Promise<void>): Promise<void> {
  const [numRows, rowLen] = ref.shape,
    all = toFloat32(readTensorBytes(ref), ref.dtype),
    out = new Float32Array(all.length);
  for (let r = 0; r < numRows; r++) out.set(all.subarray(rowOrder(r) * rowLen, (rowOrder(r) + 1) * rowLen), r * rowLen);
  await emit(out);
}

function checkFloat(name: string, ref: TensorRef): void {
  if (!FLOAT_DTYPES.has(ref.dtype))
    throw new WeftError('WEFT_ERR_MODEL_UNSUPPORTED_DTYPE', `${ref.file}: ${name} is ${ref.dtype}; quantize reads F32, F16 or BF16 weights`);
}

function fromHf(spec: ModelSpec, type: GgufFileType): { entries: GgufEntry[]; tensors: GgufTensorSource[] } {
  const c = spec.config;
  const vocab = vocabFromTokenizerJson(spec.tokenizerJson, c.vocabSize, { bosId: c.bosTokenId, eosId: c.eosTokenIds[0] ?? null });
  const freqs = ropeFreqFactors(c);
  const list = [...expectedShapes(c).keys()]
    .filter((n) => spec.tensors[n])
    .map((hfName) => {
      const ref = spec.tensors[hfName];
      checkFloat(hfName, ref);
      return { hfName, ref, name: ggufTensorName(hfName) ?? hfName, dims: [...ref.shape].reverse() };
    });
  const all = [...list, ...(freqs ? [{ hfName: 'rope_freqs.weight', ref: null, name: 'rope_freqs.weight', dims: [freqs.length] }] : [])];
  const types = chooseTensorTypes(type, all, c);
  const tensors = all.map(
    ({ hfName, ref, name, dims }): GgufTensorSource => ({
      name,
      dims,
      type: types.get(name)!,
      produce: async (emit) => {
        if (!ref) return emit(freqs!);
        const order = ggufRowOrder(c, hfName, ref.shape[0]);
        return order ? emitPermuted(ref, order, emit) : emitRows(ref, emit);
      },
    }),
  );
  return { entries: ggufMetadata(c, vocab, type, spec.chatTemplate, basename(spec.path)), tensors };
}

// The metadata entries of a GGUF with their value types, as stored, so they can be written again unchanged.
export function readGgufEntries(g: GgufFile): GgufEntry[] {
  return [...g.metadata].map(([key, value]) => {
    const { type, elemType } = g.metadataTypes.get(key)!;
    if (elemType === GGUF_TYPE.ARRAY)
      throw new WeftError('WEFT_ERR_MODEL_UNSUPPORTED', `${g.path}: quantize cannot copy metadata of value type ${elemType} (nested arrays)`);
    return elemType === undefined ? { key, type, value } : { key, type, elemType, value };
  });
}

function fromGguf(spec: ModelSpec, type: GgufFileType): { entries: GgufEntry[]; tensors: GgufTensorSource[] } {
  const g = readGguf(spec.path);
  const list = g.tensors.map((info) => {
    const dtype = GGML_TYPES[info.type]?.[0];
    if (!dtype || !FLOAT_DTYPES.has(dtype))
      throw new WeftError(
        'WEFT_ERR_MODEL_UNSUPPORTED_DTYPE',
        `${g.path}: ${info.name} is ${ggmlTypeName(info.type)}; quantize reads F32, F16 or BF16 weights`,
      );
    const count = info.dims.reduce((a, b) => a * b, 1);
    const ref: TensorRef = {
      file: g.path,
      offset: g.dataOffset + info.offset,
      byteLength: count * (dtype === 'F32' ? 4 : 2),
      dtype,
      shape: info.dims.length === 1 ? [info.dims[0]] : [count / info.dims[0], info.dims[0]],
    };
    return { name: info.name, dims: info.dims, ref };
  });
  const types = chooseTensorTypes(type, list, spec.config);
  // the header is written anew (tensor offsets at 32-byte alignment); everything else is kept
  const entries = readGgufEntries(g)
    .filter((e) => e.key !== 'general.alignment' && e.key !== 'general.quantization_version')
    .map((e) => (e.key === 'general.file_type' ? { ...e, type: GGUF_TYPE.U32, value: llamaFileType(type) } : e));
  if (!entries.some((e) => e.key === 'general.file_type'))
    entries.push({ key: 'general.file_type', type: GGUF_TYPE.U32, value: llamaFileType(type) });
  if (type !== 'f32' && type !== 'f16') entries.push({ key: 'general.quantization_version', type: GGUF_TYPE.U32, value: 2 });
  const tensors = list.map(
    ({ name, dims, ref }): GgufTensorSource => ({ name, dims, type: types.get(name)!, produce: (emit) => emitRows(ref, emit) }),
  );
  return { entries, tensors };
}

// onProgress: tensors written so far, of all.
export async function quantizeToGguf(
  input: string,
  outFile: string,
  type: GgufFileType,
  onProgress?: (done: number, total: number) => void,
): Promise<void> {
  if (resolve(input) === resolve(outFile)) throw new WeftError('WEFT_ERR_CONFIG_INVALID', `quantize: the output must differ from ${input}`);
  const spec = await loadModelSpec(input);
  const { entries, tensors } = spec.format === 'hf' ? fromHf(spec, type) : fromGguf(spec, type);
  await writeGgufFile(outFile, entries, tensors, onProgress);
}
