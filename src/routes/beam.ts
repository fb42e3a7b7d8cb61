// Beam search over a chat: POST /stream_chat_beam streams the chosen hypothesis (SSE: each token
// once it can no longer change, then a final event with the scores), POST /rerank_scores returns
// every hypothesis with its scores. The search runs inside the continuous batcher (beams share
// the prompt's KV blocks); the reranker orders the returned hypotheses.
import type { FastifyInstance } from 'fastify';

import { WeftError } from '../errors.js';
import type { BeamRequest, GenerationService, GenRequest } from '../generation.js';
import type { Hypothesis } from '../scheduler/beam-search.js';
import { logprobReranker, ModelReranker, type Reranker } from '../rerank.js';
import { renderChat } from './chat.js';
import { streamErrorBody } from './error-body.js';
import { tokenEvent } from './generate.js';
import { usage } from './params.js';
import { beamChatBody } from './schemas.js';
import { SseStream, onClientGone } from './sse.js';

interface BeamChatBody {
  messages: (string | { role: string; content: string | { type: string; text?: string }[] })[];
  beam_width: number;
  max_tokens?: number | null;
  min_tokens?: number;
  length_penalty: number;
  early_stopping: boolean | 'never';
  num_return_sequences?: number;
  use_rerank: boolean;
  stream_beams: boolean;
  ignore_eos?: boolean;
  stop?: string | string[] | null;
  stop_token_ids?: number[];
  repetition_penalty?: number | null;
}

const DEFAULT_BEAM_MAX_TOKENS = 64;

function toBeam(svc: GenerationService, ids: number[], b: BeamChatBody): { req: GenRequest; beam: BeamRequest } {
  const numReturn = b.num_return_sequences ?? b.beam_width;
  if (numReturn > b.beam_width)
    throw new WeftError('WEFT_ERR_REQ_INVALID', `num_return_sequences (${numReturn}) must not exceed beam_width (${b.beam_width})`);
  const room = Math.max(1, svc.model.maxModelLen - ids.length);
  return {
    req: {
      promptIds: ids,
      maxTokens: b.max_tokens ?? Math.min(DEFAULT_BEAM_MAX_TOKENS, room),
      minTokens: b.min_tokens,
      ignoreEos: b.ignore_eos,
      stopTokenIds: b.stop_token_ids,
      stop: b.stop == null ? [] : typeof b.stop === 'string' ? [b.stop] : b.stop,
      sampling: b.repetition_penalty == null ? {} : { repetitionPenalty: b.repetition_penalty },
    },
    beam: { beamWidth: b.beam_width, lengthPenalty: b.length_penalty, earlyStopping: b.early_stopping, numReturnSequences: numReturn },
  };
}

// The reranker for a request: the model's when use_rerank and one is loaded, else the beam score.
function rerankerFor(app: FastifyInstance, b: BeamChatBody): Reranker {
  return b.use_rerank && app.weft.reranker ? app.weft.reranker : logprobReranker;
}

// What the reranker judges the hypotheses against: the last user turn.
function queryOf(b: BeamChatBody): string {
  const last = [...b.messages].reverse().find((m) => typeof m === 'string' || m.role === 'user') ?? b.messages[b.messages.length - 1];
  if (typeof last === 'string') return last;
  return typeof last.content === 'string' ? last.content : (last.content as { text?: string }[]).map((p) => p.text ?? '').join('');
}

// Hypotheses as returned (text cut before a stop string), ranked by the reranker: each with its
// index among `hyps` and its /rerank_scores entry.
async function ranked(svc: GenerationService, reranker: Reranker, query: string, promptIds: number[], stops: string[], hyps: Hypothesis[]) {
  const texts = await Promise.all(hyps.map((h) => svc.hypothesisText(promptIds, h.tokens, { stop: stops })));
  const t0 = performance.now();
  const order = await reranker.rank(
    query,
    hyps.map((h, i) => ({ text: texts[i], beamScore: h.score, cumLogprob: h.cumLogprob })),
  );
  svc.metrics?.observeBeamSearch(reranker.name, hyps.length, (performance.now() - t0) / 1000);
  return order.map((o, rank) => ({
    index: o.index,
    entry: {
      rank,
      output_ids: hyps[o.index].tokens,
      output_text: texts[o.index],
      cumulative_logprob: hyps[o.index].cumLogprob,
      beam_score: hyps[o.index].score,
      rerank_score: o.score,
      finish_reason: hyps[o.index].finishReason,
    },
  }));
}

// What both routes start from: the chat rendered, the search's request.
async function prepare(app: FastifyInstance, b: BeamChatBody) {
  const svc = app.weft.service;
  const { text, ids } = await renderChat(svc, b.messages);
  return { svc, text, ids, ...toBeam(svc, ids, b), reranker: rerankerFor(app, b) };
}

export async function beamRoutes(app: FastifyInstance): Promise<void> {
  app.post<{ Body: BeamChatBody }>(
    '/stream_chat_beam',
    { schema: { body: beamChatBody, tags: ['generate'], summary: 'Beam search over a chat, streamed (SSE)' } },
    async (request, reply) => {
      const b = request.body;
      const { svc, text, ids, req, beam, reranker } = await prepare(app, b);
      let rerankScore: number | undefined;
      if (reranker instanceof ModelReranker) {
        // a model picks once the search ends; the rest streams then
        beam.choose = async (hyps) => {
          const [best] = await ranked(svc, reranker, queryOf(b), ids, req.stop ?? [], hyps);
          rerankScore = best.entry.rerank_score;
          return best.index;
        };
      }
      let sse: SseStream | null = null;
      beam.streamBeams = b.stream_beams;
      const text1 = (tokens: readonly number[]) => svc.decodeContinuation(ids, tokens);
      const gen = svc.startBeam(req, beam, {
        onDelta: (d) => sse?.send(tokenEvent(d)),
        // the demo page's view: every beam and kept hypothesis so far, as ids and text
        onBeams: async (live) =>
          sse?.send(
            {
              beams: await Promise.all(
                live.beams.map(async (x) => ({ token_ids: x.tokens, text: await text1(x.tokens), cumulative_logprob: x.cumLogprob })),
              ),
              hypotheses: await Promise.all(
                live.hypotheses.map(async (h) => ({
                  token_ids: h.tokens,
                  text: await text1(h.tokens),
                  beam_score: h.score,
                  finish_reason: h.finishReason,
                })),
              ),
            },
            'beams',
          ),
      });
      sse = SseStream.open(request, reply);
      sse.signal.addEventListener('abort', gen.abort, { once: true });
      try {
        const r = await gen.result;
        const chosen = r.beam!.chosen;
        if (!beam.choose) app.weft.metrics.observeBeamSearch(reranker.name, r.beam!.hypotheses.length, 0);
        await sse.send({
          finish_reason: r.finishReason,
          usage: usage(r.numPromptTokens, r.numOutputTokens),
          output_text: r.text,
          output_ids: r.tokenIds,
          input: text,
          beam_width: b.beam_width,
          beam_score: chosen.score,
          cumulative_logprob: chosen.cumLogprob,
          num_hypotheses: r.beam!.hypotheses.length,
          ...(b.use_rerank ? { reranker: reranker.name, rerank_score: rerankScore ?? chosen.score } : {}),
        });
      } catch (e) {
        await sse.send(streamErrorBody(app.weft.metrics, e));
      }
      await sse.done();
    },
  );

  app.post<{ Body: BeamChatBody }>(
    '/rerank_scores',
    { schema: { body: beamChatBody, tags: ['generate'], summary: 'Beam search over a chat: every hypothesis with its scores' } },
    async (request, reply) => {
      const b = request.body;
      const t0 = performance.now();
      const { svc, text, ids, req, beam, reranker } = await prepare(app, b);
      const gen = svc.startBeam(req, beam);
      onClientGone(reply, gen.abort);
      const r = await gen.result;
      const t1 = performance.now();
      const hypotheses = (await ranked(svc, reranker, queryOf(b), ids, req.stop ?? [], r.beam!.hypotheses)).map((h) => h.entry);
      return {
        input: text,
        prompt_ids: ids,
        reranker: reranker.name,
        beam_width: b.beam_width,
        length_penalty: b.length_penalty,
        early_stopping: b.early_stopping,
        hypotheses,
        chosen: hypotheses[0],
        usage: usage(r.numPromptTokens, r.numOutputTokens),
        timings: { search_ms: +(t1 - t0).toFixed(2), rerank_ms: +(performance.now() - t1).toFixed(2) },
      };
    },
  );
}
