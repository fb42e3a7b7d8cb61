// The seed's generation routes: /generate (one result), /stream (SSE, one event per token,
// then a final event), /generate_batch (several prompts scheduled together, results in order).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import type { GenDelta, GenRequest, GenResult, Generation, GenerationService, RunHooks } from '../generation.js';
import { streamErrorBody } from './error-body.js';
import { toGenRequest, usage, type SamplingFields } from './params.js';
import { generateBatchBody, generateBody, streamBody } from './schemas.js';
import { SseStream, onClientGone } from './sse.js';
import { constrain, type StructuredFields } from './structured.js';

export interface GenerateBody extends SamplingFields, StructuredFields {
  prompt: string;
  logprobs?: number;
}

const logprobsOf = (r: GenResult) => r.logprobs.map((l) => ({ id: l.id, logprob: l.logprob, ...(l.top ? { top: l.top } : {}) }));

export function resultBody(input: string, r: GenResult, withLogprobs: boolean) {
  return {
    input,
    output_ids: r.tokenIds,
    output_text: r.text,
    finish_reason: r.finishReason,
    usage: usage(r.numPromptTokens, r.numOutputTokens),
    ...(withLogprobs ? { logprobs: logprobsOf(r) } : {}),
  };
}

export const tokenEvent = (d: GenDelta) => ({
  text: d.text,
  token_id: d.tokenId,
  ...(d.logprob ? { logprob: d.logprob.logprob, ...(d.logprob.top ? { top_logprobs: d.logprob.top } : {}) } : {}),
});

// Streams one generation over SSE: token events, then { finish_reason, usage, output_text }.
// The request is submitted before the response starts, so admission errors keep their status.
export async function streamGeneration(
  app: FastifyInstance,
  request: FastifyRequest,
  reply: FastifyReply,
  svc: GenerationService,
  req: ReturnType<typeof toGenRequest>,
  input: string,
): Promise<void> {
  let sse: SseStream | null = null;
  const gen = svc.start(req, { onDelta: (d) => sse?.send(tokenEvent(d)) });
  sse = SseStream.open(request, reply);
  sse.signal.addEventListener('abort', gen.abort, { once: true });
  try {
    const r = await gen.result;
    await sse.send({
      finish_reason: r.finishReason,
      usage: usage(r.numPromptTokens, r.numOutputTokens),
      output_text: r.text,
      output_ids: r.tokenIds,
      input,
    });
  } catch (e) {
    await sse.send(streamErrorBody(app.weft.metrics, e));
  }
  await sse.done();
}

// Admits every request (n samples each, prefilled once) before any runs; one refused request
// aborts those already admitted. Generation p·n + j is prompt p's j-th sample.
export function startAll(svc: GenerationService, reqs: GenRequest[], hooks: (i: number) => RunHooks = () => ({}), n = 1): Generation[] {
  svc.checkNumSequences(reqs.length * n, `${reqs.length} prompt(s) × n ${n}`);
  const gens: Generation[] = [];
  try {
    reqs.forEach((r, p) => gens.push(...svc.startN(r, n, (j) => hooks(p * n + j))));
  } catch (e) {
    gens.forEach((g) => {
      g.abort();
      g.result.catch(() => undefined);
    });
    throw e;
  }
  return gens;
}

// All results, or the first error with the rest aborted.
export async function allOrAbort(gens: Generation[]): Promise<GenResult[]> {
  try {
    return await Promise.all(gens.map((g) => g.result));
  } catch (e) {
    gens.forEach((g) => {
      g.abort();
      g.result.catch(() => undefined);
    });
    throw e;
  }
}

export async function generateRoutes(app: FastifyInstance): Promise<void> {
  app.post<{ Body: GenerateBody }>(
    '/generate',
    { schema: { body: generateBody, tags: ['generate'], summary: 'Generate a completion' } },
    async (request, reply) => {
      const svc = app.weft.service;
      const b = request.body;
      const req = await constrain(svc, toGenRequest(svc, await svc.encode(b.prompt), b, b.logprobs ?? -1), b);
      const gen = svc.start(req);
      onClientGone(reply, gen.abort);
      return resultBody(b.prompt, await gen.result, b.logprobs !== undefined);
    },
  );

  app.post<{ Body: GenerateBody }>(
    '/stream',
    { schema: { body: streamBody, tags: ['generate'], summary: 'Generate, streamed as Server-Sent Events' } },
    async (request, reply) => {
      const svc = app.weft.service;
      const b = request.body;
      const req = await constrain(svc, toGenRequest(svc, await svc.encode(b.prompt), b, b.logprobs ?? -1), b);
      await streamGeneration(app, request, reply, svc, req, b.prompt);
    },
  );

  app.post<{ Body: Omit<GenerateBody, 'prompt'> & { prompts: string[] } }>(
    '/generate_batch',
    { schema: { body: generateBatchBody, tags: ['generate'], summary: 'Generate for several prompts, scheduled together' } },
    async (request, reply) => {
      const svc = app.weft.service;
      const b = request.body;
      const reqs = await Promise.all(b.prompts.map(async (p) => constrain(svc, toGenRequest(svc, await svc.encode(p), b, b.logprobs ?? -1), b)));
      const gens = startAll(svc, reqs);
      onClientGone(reply, () => gens.forEach((g) => g.abort()));
      const results = await allOrAbort(gens);
      return { results: results.map((r, i) => resultBody(b.prompts[i], r, b.logprobs !== undefined)) };
    },
  );
}
