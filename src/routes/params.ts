// Request bodies (already validated by schemas.ts) → the generation service's GenRequest.
// vLLM's conventions: temperature 0 = greedy, top_k -1/0 = off, no seed = a random one.
import type { GenRequest, GenerationService } from '../generation.js';
import type { SamplingParams } from '../sampling.js';

export interface SamplingFields {
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  min_p?: number | null;
  repetition_penalty?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  seed?: number | null;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  min_tokens?: number;
  ignore_eos?: boolean;
  stop?: string | string[] | null;
  include_stop_str_in_output?: boolean;
  skip_special_tokens?: boolean;
  stop_token_ids?: number[];
  allowed_token_ids?: number[];
  logit_bias?: Record<string, number> | null;
}

// Generating routes without an explicit max_tokens get this many, within the context.
export const DEFAULT_MAX_TOKENS = 256;

export function toGenRequest(
  svc: GenerationService,
  promptIds: number[],
  b: SamplingFields,
  numLogprobs = -1,
  defaultMaxTokens = DEFAULT_MAX_TOKENS,
): GenRequest {
  const sampling: Partial<SamplingParams> = { numLogprobs };
  const defaults = { temperature: 1, topP: 1, topK: 0 };
  sampling.temperature = b.temperature ?? defaults.temperature;
  sampling.topP = b.top_p ?? defaults.topP;
  sampling.topK = b.top_k == null || b.top_k < 0 ? 0 : b.top_k;
  if (b.min_p != null) sampling.minP = b.min_p;
  if (b.repetition_penalty != null) sampling.repetitionPenalty = b.repetition_penalty;
  if (b.presence_penalty != null) sampling.presencePenalty = b.presence_penalty;
  if (b.frequency_penalty != null) sampling.frequencyPenalty = b.frequency_penalty;
  if (b.seed != null) sampling.seed = b.seed;
  const explicit = b.max_completion_tokens ?? b.max_tokens ?? undefined;
  const room = Math.max(1, svc.model.maxModelLen - promptIds.length);
  return {
    promptIds,
    maxTokens: explicit ?? Math.min(defaultMaxTokens, room),
    minTokens: b.min_tokens,
    ignoreEos: b.ignore_eos,
    stopTokenIds: b.stop_token_ids,
    stop: b.stop == null ? [] : typeof b.stop === 'string' ? [b.stop] : b.stop,
    ...(b.include_stop_str_in_output ? { includeStopStr: true } : {}),
    ...(b.skip_special_tokens === false ? { skipSpecialTokens: false } : {}),
    sampling,
    ...(b.allowed_token_ids ? { constraint: { type: 'token_ids' as const, ids: b.allowed_token_ids } } : {}),
    ...(b.logit_bias && Object.keys(b.logit_bias).length
      ? { logitBias: Object.entries(b.logit_bias).map(([id, v]) => [Number(id), v] as const) }
      : {}),
  };
}

// cachedTokens (the OpenAI routes): prompt tokens served from the prefix cache, as OpenAI's
// prompt_tokens_details.cached_tokens
export function usage(promptTokens: number, completionTokens: number, cachedTokens?: number) {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    ...(cachedTokens === undefined ? {} : { prompt_tokens_details: { cached_tokens: cachedTokens } }),
  };
}
