// Sampling parameters, defined once for TypeScript: every per-sequence field the native sampler
// takes, the typed array it travels in, and its "off" value (GREEDY). The step packer, the
// native input type and the defaults are derived from this table; native/include/weft_engine.h
// has the C++ twin (WEFT_SAMPLING_FIELDS). The seed is the one exception in shape (two uint32
// words per sequence), so it is packed apart.
export const SAMPLING_FIELDS = {
  temperature: { array: Float32Array, off: 0 }, // 0 = greedy
  topK: { array: Int32Array, off: 0 }, // 0 = off
  topP: { array: Float32Array, off: 1 }, // 1 = off
  minP: { array: Float32Array, off: 0 }, // 0 = off
  repetitionPenalty: { array: Float32Array, off: 1 }, // 1 = off
  presencePenalty: { array: Float32Array, off: 0 }, // 0 = off
  frequencyPenalty: { array: Float32Array, off: 0 }, // 0 = off
  numLogprobs: { array: Int32Array, off: -1 }, // -1 none, 0 chosen token, k top-k too
} as const;

export type SamplingField = keyof typeof SAMPLING_FIELDS;
export const SAMPLING_FIELD_NAMES = Object.keys(SAMPLING_FIELDS) as SamplingField[];

export type SamplingParams = { [K in SamplingField]: number } & {
  seed: number; // 0 .. 2^53-1
};

// OpenAI's logit_bias: (token id, added logit) pairs, applied natively after the token mask and
// before every sampling rule (log-probs included). Sparse, so it travels apart from the fields.
export type LogitBias = readonly (readonly [number, number])[];

// The per-sequence arrays of a native step, one per field.
export type SamplingArrays = { [K in SamplingField]: InstanceType<(typeof SAMPLING_FIELDS)[K]['array']> } & { seeds: Uint32Array };

export const GREEDY: Readonly<SamplingParams> = Object.freeze({
  ...(Object.fromEntries(SAMPLING_FIELD_NAMES.map((k) => [k, SAMPLING_FIELDS[k].off])) as { [K in SamplingField]: number }),
  seed: 0,
});

export function samplingArrays(n: number): SamplingArrays {
  const out = Object.fromEntries(SAMPLING_FIELD_NAMES.map((k) => [k, new SAMPLING_FIELDS[k].array(n)]));
  return { ...(out as { [K in SamplingField]: InstanceType<(typeof SAMPLING_FIELDS)[K]['array']> }), seeds: new Uint32Array(2 * n) };
}

export function setSampling(a: SamplingArrays, i: number, p: Readonly<SamplingParams>): void {
  for (const k of SAMPLING_FIELD_NAMES) a[k][i] = p[k];
  a.seeds[2 * i] = p.seed % 0x100000000;
  a.seeds[2 * i + 1] = Math.floor(p.seed / 0x100000000);
}
