// OpenAI-compatible routes: /v1/completions, /v1/chat/completions (both streamed or not,
// with n, stop, seed, logprobs, usage and vLLM's sampling extras) and /v1/models. The chat
// format (chatFormat, with tool calls read by withToolCalls) also shapes /v1/responses' output.
import { randomUUID } from 'node:crypto';

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import type { ChatMessage, MessageInput } from '../chat-template.js';
import { WeftError } from '../errors.js';
import type { GenDelta, GenRequest, GenResult, Generation, GenerationService, PromptLogprobs, TokenLogprob } from '../generation.js';
import { renderChat, renderOptionsOf, type ChatRenderFields } from './chat.js';
import { streamErrorBody } from './error-body.js';
import { allOrAbort, startAll } from './generate.js';
import { toGenRequest, usage, type SamplingFields } from './params.js';
import { chatCompletionsBody, completionsBody } from './schemas.js';
import { SseStream, onClientGone } from './sse.js';
import { constrain, type StructuredFields } from './structured.js';
import { planTools, withToolCalls, type ToolFields } from './tools.js';
import { IncrementalDetokenizer, tokenAlone, TokenTextStream } from '../tokenizer.js';

interface OpenAiCommon extends SamplingFields, StructuredFields {
  model: string;
  n?: number;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean; continuous_usage_stats?: boolean } | null;
  use_beam_search?: boolean;
  length_penalty?: number;
  early_stopping?: boolean | 'never';
  return_tokens_as_token_ids?: boolean; // vLLM's: log-prob entries name tokens "token_id:N"
  truncate_prompt_tokens?: number | null; // vLLM's: only the prompt's last k tokens are used
}
interface CompletionsBody extends OpenAiCommon {
  prompt: string | string[] | number[];
  logprobs?: number | null;
  echo?: boolean;
  prompt_logprobs?: number | null; // vLLM's
}
interface ChatCompletionsBody extends OpenAiCommon, ToolFields, ChatRenderFields {
  messages: Exclude<MessageInput, string>[];
  logprobs?: boolean | null;
  top_logprobs?: number | null;
  prompt_logprobs?: number | null; // vLLM's
  echo?: boolean; // vLLM's: a last assistant message starts each choice's content
}

// vLLM's truncate_prompt_tokens: a prompt longer than k tokens keeps its last k (the template's
// and BOS included in what is cut, as vLLM does).
const truncated = (ids: number[], b: OpenAiCommon): number[] =>
  b.truncate_prompt_tokens != null && ids.length > b.truncate_prompt_tokens ? ids.slice(-b.truncate_prompt_tokens) : ids;

// Shapes one choice's output for the wire: completions and chat differ only here.
export interface Format {
  object: string;
  chunkObject: string;
  choice(index: number, r: GenResult): Promise<Record<string, unknown>>;
  chunkChoice(index: number, d: GenDelta, isFirst: boolean): Promise<Record<string, unknown> | null>;
  endChoice(index: number, r: GenResult): Record<string, unknown>; // a streamed choice's last chunk
  response?(results: GenResult[]): Record<string, unknown>; // fields beside the choices (not streamed)
}

// The end of every streamed response: each choice's last chunk (sent by `run`, which returns the
// usage), the usage chunk if asked, or an error event; then [DONE].
async function endStream(
  app: FastifyInstance,
  sse: SseStream,
  gens: Generation[],
  includeUsage: boolean,
  chunk: (choices: unknown[], extra?: object) => unknown,
  run: () => Promise<unknown>,
): Promise<void> {
  try {
    const total = await run();
    if (includeUsage) await sse.send(chunk([], { usage: total }));
  } catch (e) {
    gens.forEach((g) => {
      g.abort();
      g.result.catch(() => undefined);
    });
    await sse.send(streamErrorBody(app.weft.metrics, e));
  }
  await sse.done();
}

const finishReason = (r: GenResult) => (r.finishReason === 'abort' ? 'stop' : r.finishReason);

// vLLM's stream_options.continuous_usage_stats (with include_usage): every chunk carries its
// choice's usage so far, its prompt's tokens and the output tokens streamed for it. null when not asked.
function continuousUsage(body: OpenAiCommon, reqs: GenRequest[], n: number) {
  if (!body.stream_options?.include_usage || !body.stream_options.continuous_usage_stats) return null;
  return (choice: number, numOutputTokens: number) => ({ usage: usage(reqs[Math.floor(choice / n)].promptIds.length, numOutputTokens) });
}

// What a beam search cannot combine with: log-probs (and beam-only fields without it).
function checkBeam(b: OpenAiCommon, wantsLogprobs: boolean): void {
  if (!b.use_beam_search) {
    if (b.length_penalty !== undefined || b.early_stopping !== undefined)
      throw new WeftError('WEFT_ERR_REQ_INVALID', 'length_penalty and early_stopping need use_beam_search: true');
    return;
  }
  if (wantsLogprobs) throw new WeftError('WEFT_ERR_REQ_INVALID', 'logprobs are not available with use_beam_search');
}

// `model` may be left out (as vLLM allows): it then means the one served model. Any of its names
// (--served-model-name) is accepted: a gateway may rewrite the name a client sent.
export function checkModel(svc: GenerationService, model: string | undefined): void {
  const names = [svc.model.id, ...svc.model.aliases];
  if (model !== undefined && !names.includes(model))
    throw new WeftError('WEFT_ERR_REQ_UNKNOWN_MODEL', `the model "${model}" does not exist; served: ${names.map((x) => `"${x}"`).join(', ')}`);
}

// vLLM's use_beam_search: one search of width n per prompt, its n hypotheses the choices (prompt
// p's j-th best is choice p·n + j). Streamed, each prompt's best streams as its tokens become
// final; the other hypotheses follow whole when the search ends.
async function respondBeam(
  app: FastifyInstance,
  request: FastifyRequest,
  reply: FastifyReply,
  body: OpenAiCommon,
  reqs: GenRequest[],
  fmt: Format,
  base: Record<string, unknown>,
): Promise<unknown> {
  const svc = app.weft.service;
  const n = body.n ?? 1;
  const beam = { beamWidth: n, lengthPenalty: body.length_penalty ?? 1, earlyStopping: body.early_stopping ?? false, numReturnSequences: n };
  svc.checkNumSequences(reqs.length * n, `${reqs.length} prompt(s) × beam width ${n}`);
  const asChoices = async (req: GenRequest, r: GenResult): Promise<GenResult[]> =>
    Promise.all(
      r.beam!.hypotheses.map(async (h) => ({
        text: await svc.hypothesisText(req.promptIds, h.tokens, req),
        tokenIds: h.tokens,
        logprobs: [],
        finishReason: h.finishReason,
        numPromptTokens: req.promptIds.length,
        numOutputTokens: h.tokens.length,
        numCachedTokens: r.numCachedTokens,
      })),
    );
  // each prompt's best hypothesis carries its output and cached tokens
  const ofBest = (rs: GenResult[][], f: (r: GenResult) => number) => rs.reduce((a, c) => a + (c[0] ? f(c[0]) : 0), 0);
  const total = (rs: GenResult[][]) =>
    usage(
      reqs.reduce((a, r) => a + r.promptIds.length, 0),
      ofBest(rs, (r) => r.numOutputTokens),
      ofBest(rs, (r) => r.numCachedTokens),
    );
  let sse: SseStream | null = null;
  const first = reqs.map(() => true);
  const chunk = (choices: unknown[], extra = {}) => ({ ...base, object: fmt.chunkObject, choices, ...extra });
  const running = continuousUsage(body, reqs, n);
  const gens: Generation[] = [];
  try {
    reqs.forEach((r, p) =>
      gens.push(
        svc.startBeam(
          r,
          beam,
          body.stream
            ? {
                onDelta: async (d) => {
                  const c = await fmt.chunkChoice(p * n, d, first[p]);
                  if (c) {
                    first[p] = false;
                    await sse?.send(chunk([c], running?.(p * n, d.numOutputTokens)));
                  }
                },
              }
            : {},
        ),
      ),
    );
  } catch (e) {
    gens.forEach((g) => {
      g.abort();
      g.result.catch(() => undefined);
    });
    throw e;
  }
  if (!body.stream) {
    onClientGone(reply, () => gens.forEach((g) => g.abort()));
    const results = await allOrAbort(gens);
    const choices = await Promise.all(results.map((r, p) => asChoices(reqs[p], r)));
    return { ...base, object: fmt.object, choices: await Promise.all(choices.flat().map((c, i) => fmt.choice(i, c))), usage: total(choices) };
  }
  sse = SseStream.open(request, reply);
  sse.signal.addEventListener('abort', () => gens.forEach((g) => g.abort()), { once: true });
  await endStream(app, sse, gens, !!body.stream_options?.include_usage, chunk, async () =>
    total(
      await Promise.all(
        gens.map(async (g, p) => {
          const choices = await asChoices(reqs[p], await g.result);
          for (const [j, c] of choices.entries()) {
            const i = p * n + j;
            const whole =
              j === 0 ? null : await fmt.chunkChoice(i, { text: c.text, tokenId: c.tokenIds.at(-1) ?? -1, numOutputTokens: c.numOutputTokens }, true);
            if (whole) await sse!.send(chunk([whole], running?.(i, c.numOutputTokens)));
            await sse!.send(chunk([fmt.endChoice(i, c)], running?.(i, c.numOutputTokens)));
          }
          return choices;
        }),
      ),
    ),
  );
  return reply;
}

// Runs every (prompt × n) choice together; answers once, or streams chunks as tokens come.
async function respond(
  app: FastifyInstance,
  request: FastifyRequest,
  reply: FastifyReply,
  body: OpenAiCommon,
  reqs: GenRequest[],
  fmt: Format,
  idPrefix: string,
): Promise<unknown> {
  const svc = app.weft.service;
  const n = body.n ?? 1;
  // the name the request used (as vLLM answers), so a client sees the alias it asked for
  const base = { id: `${idPrefix}-${randomUUID().replaceAll('-', '')}`, created: Math.floor(Date.now() / 1000), model: body.model ?? svc.model.id };
  // a prompt's n samples share its prefill: its prompt and cached tokens count once (its first sample's)
  const total = (rs: GenResult[]) =>
    usage(
      reqs.reduce((a, r) => a + r.promptIds.length, 0),
      rs.reduce((a, r) => a + r.numOutputTokens, 0),
      rs.reduce((a, r, i) => a + (i % n === 0 ? r.numCachedTokens : 0), 0),
    );
  if (body.use_beam_search) return respondBeam(app, request, reply, body, reqs, fmt, base);

  if (!body.stream) {
    const gens = startAll(svc, reqs, undefined, n);
    onClientGone(reply, () => gens.forEach((g) => g.abort()));
    const results = await allOrAbort(gens);
    const choices = await Promise.all(results.map((r, i) => fmt.choice(i, r)));
    return { ...base, object: fmt.object, choices, usage: total(results), ...fmt.response?.(results) };
  }

  let sse: SseStream | null = null;
  const first = Array.from({ length: reqs.length * n }, () => true); // per choice: no chunk sent yet
  const chunk = (choices: unknown[], extra = {}) => ({ ...base, object: fmt.chunkObject, choices, ...extra });
  const running = continuousUsage(body, reqs, n);
  const gens = startAll(
    svc,
    reqs,
    (i) => ({
      onDelta: async (d) => {
        const c = await fmt.chunkChoice(i, d, first[i]);
        if (c) {
          first[i] = false;
          await sse?.send(chunk([c], running?.(i, d.numOutputTokens)));
        }
      },
    }),
    n,
  );
  sse = SseStream.open(request, reply);
  sse.signal.addEventListener('abort', () => gens.forEach((g) => g.abort()), { once: true });
  await endStream(app, sse, gens, !!body.stream_options?.include_usage, chunk, async () =>
    total(
      await Promise.all(
        gens.map(async (g, i) => {
          const r = await g.result;
          await sse!.send(chunk([fmt.endChoice(i, r)], running?.(i, r.numOutputTokens)));
          return r;
        }),
      ),
    ),
  );
  return reply;
}

// ---- /v1/completions ----

// Log-prob token strings: the chosen tokens in context (joined, they are the text: leading spaces
// kept, a character split over byte tokens on the token completing it), alternatives on their own.
// OpenAI's legacy completions log-probs; null for a prompt's first token (echo with logprobs).
interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

// How log-prob entries name tokens: a chosen one by its text in context (its TokenTextStream
// piece), an alternative by its text alone; with vLLM's return_tokens_as_token_ids both as
// "token_id:N", exact where a text is not (part of a character, two tokens with one text).
// Offsets stay in the text either way.
export class TokenNames {
  constructor(
    readonly svc: GenerationService,
    readonly asIds = false,
  ) {}
  chosen(piece: string, id: number): string {
    return this.asIds ? `token_id:${id}` : piece;
  }
  alone(id: number): string {
    return this.asIds ? `token_id:${id}` : tokenAlone(this.svc.tokenizer.tokenBytes(id));
  }
  stream(): TokenTextStream {
    return new TokenTextStream(this.svc.tokenizer);
  }
}

// A token's alternatives as legacy completions list them: {token name: log-prob}.
function topByText(names: TokenNames, top: TokenLogprob['top'], max = Number.POSITIVE_INFINITY): Record<string, number> {
  return Object.fromEntries((top ?? []).slice(0, max).map((x) => [names.alone(x.id), x.logprob]));
}

function completionLogprobs(names: TokenNames, lps: TokenLogprob[], stream: TokenTextStream, startOffset = 0): CompletionLogprobs {
  const pieces = lps.map((l) => stream.push(l.id));
  const offsets: number[] = [];
  pieces.reduce((at, t) => {
    offsets.push(at);
    return at + t.length;
  }, startOffset);
  const top = lps.map((l) => topByText(names, l.top));
  return {
    tokens: pieces.map((p, i) => names.chosen(p, lps[i].id)),
    token_logprobs: lps.map((l) => l.logprob),
    top_logprobs: top,
    text_offset: offsets,
  };
}

function completionFormat(names: TokenNames, withLogprobs: boolean): Format {
  const textSoFar: number[] = [];
  const streams: TokenTextStream[] = [];
  return {
    object: 'text_completion',
    chunkObject: 'text_completion',
    choice: async (index, r) => ({
      index,
      text: r.text,
      finish_reason: finishReason(r),
      logprobs: withLogprobs ? completionLogprobs(names, r.logprobs, names.stream()) : null,
    }),
    chunkChoice: async (index, d) => {
      if (d.text === '' && !(withLogprobs && d.logprob)) return null;
      const stream = (streams[index] ??= names.stream());
      const lp = withLogprobs && d.logprob ? completionLogprobs(names, [d.logprob], stream, textSoFar[index] ?? 0) : null;
      textSoFar[index] = (textSoFar[index] ?? 0) + d.text.length;
      return { index, text: d.text, logprobs: lp, finish_reason: null };
    },
    endChoice: (index, r) => ({ index, text: '', logprobs: null, finish_reason: finishReason(r) }),
  };
}

// Prompt scoring runs on the CPU engine; `what` asked for it: echo with logprobs, or
// prompt_logprobs. A prompt is scored once, by the first of its n samples; the others are given
// its scores (GenerationService.startN).
function checkPromptScoring(svc: GenerationService, what: string): void {
  if (svc.model.backend === 'gpu')
    throw new WeftError(
      'WEFT_ERR_REQ_INVALID',
      `${what} needs the prompt's log-probs, which the GPU backend does not compute yet (the CPU backend does)`,
    );
}

// prompt_logprobs is vLLM's, for a whole response: not streamed.
function checkPromptLogprobs(svc: GenerationService, b: OpenAiCommon & { prompt_logprobs?: number | null }): number | null {
  const top = b.prompt_logprobs ?? null;
  if (top === null) return null;
  if (b.stream) throw new WeftError('WEFT_ERR_REQ_INVALID', 'prompt_logprobs is not streamed: ask without stream');
  checkPromptScoring(svc, 'prompt_logprobs');
  return top;
}

// A scored prompt's log-prob block: every prompt token, the first without a log-prob (null), as
// OpenAI's legacy completions give it. A token's offset is where its text starts in the prompt's
// decoded text (a BOS token and a SentencePiece text's first space take no room there).
function promptLogprobsBlock(names: TokenNames, ids: readonly number[], lps: PromptLogprobs, numTop: number): CompletionLogprobs {
  const stream = names.stream();
  const tokens = ids.map((id) => names.chosen(stream.push(id), id));
  const detok = new IncrementalDetokenizer(names.svc.tokenizer);
  let at = 0;
  const offsets = ids.map((id) => {
    const o = at;
    at += detok.push(id).length;
    return o;
  });
  return {
    tokens,
    token_logprobs: lps.map((l) => l?.logprob ?? null),
    top_logprobs: lps.map((l) => (l ? topByText(names, l.top, numTop) : null)),
    text_offset: offsets,
  };
}

// The completion's log-probs after its echoed prompt: offsets shift by the prompt's text.
function afterPrompt(prompt: CompletionLogprobs | null, rest: CompletionLogprobs | null, shift: number): CompletionLogprobs | null {
  if (!rest) return prompt;
  const shifted = { ...rest, text_offset: rest.text_offset.map((o) => o + shift) };
  if (!prompt) return shifted;
  return {
    tokens: [...prompt.tokens, ...shifted.tokens],
    token_logprobs: [...prompt.token_logprobs, ...shifted.token_logprobs],
    top_logprobs: [...prompt.top_logprobs, ...shifted.top_logprobs],
    text_offset: [...prompt.text_offset, ...shifted.text_offset],
  };
}

// echo (completions): each choice's text starts with its prompt, so does a streamed choice's first
// chunk. scoring: echo with logprobs, whose log-probs start with the prompt's.
function withEcho(
  fmt: Format,
  prompts: readonly string[],
  n: number,
  scoring: { names: TokenNames; prompts: number[][]; top: number } | null,
): Format {
  const started = new Set<number>();
  const promptBlock = (index: number, lps: PromptLogprobs | undefined) =>
    scoring && lps ? promptLogprobsBlock(scoring.names, scoring.prompts[Math.floor(index / n)], lps, scoring.top) : null;
  return {
    ...fmt,
    // a choice that sent no chunk (max_tokens 0): its prompt comes with the last one
    endChoice: (index, r) => {
      const c = fmt.endChoice(index, r);
      if (started.has(index)) return c;
      started.add(index);
      return { ...c, text: prompts[Math.floor(index / n)], logprobs: promptBlock(index, r.promptLogprobs) };
    },
    choice: async (index, r) => {
      const c = await fmt.choice(index, r);
      const text = prompts[Math.floor(index / n)];
      if (!scoring) return { ...c, text: text + String(c.text) };
      const lps = afterPrompt(promptBlock(index, r.promptLogprobs), c.logprobs as CompletionLogprobs | null, text.length);
      return { ...c, text: text + String(c.text), logprobs: lps };
    },
    chunkChoice: async (index, d, isFirst) => {
      const c = await fmt.chunkChoice(index, d, isFirst);
      const text = prompts[Math.floor(index / n)];
      const first = !started.has(index);
      started.add(index);
      if (scoring) {
        const lps = afterPrompt(first ? promptBlock(index, d.promptLogprobs) : null, (c?.logprobs ?? null) as CompletionLogprobs | null, text.length);
        if (!first) return c && { ...c, logprobs: lps };
        return { ...(c ?? { index, finish_reason: null }), text: text + String(c?.text ?? ''), logprobs: lps };
      }
      if (!first) return c;
      return c ? { ...c, text: text + String(c.text) } : { index, text, logprobs: null, finish_reason: null };
    },
  };
}

// vLLM's prompt_logprobs: per prompt position null for the first, then {token id: {logprob, rank,
// decoded_token}} for the `top` likeliest tokens and the prompt's own.
function vllmPromptLogprobs(names: TokenNames, lps: PromptLogprobs, top: number) {
  const entry = (id: number, logprob: number, rank: number) => [String(id), { logprob, rank, decoded_token: names.alone(id) }];
  return lps.map((l) =>
    l ? Object.fromEntries([...(l.top ?? []).slice(0, top).map((x, k) => entry(x.id, x.logprob, k + 1)), entry(l.id, l.logprob, l.rank ?? 0)]) : null,
  );
}

// Completions give each choice its prompt's (vLLM's layout).
function withPromptLogprobs(names: TokenNames, fmt: Format, top: number | null): Format {
  if (top === null) return fmt;
  return {
    ...fmt,
    choice: async (index, r) => ({ ...(await fmt.choice(index, r)), prompt_logprobs: vllmPromptLogprobs(names, r.promptLogprobs ?? [], top) }),
  };
}

// ---- /v1/chat/completions ----

// OpenAI's chat log-prob entry: `bytes` are the token's own UTF-8 bytes (concatenated, the
// content's); `token` as in completionLogprobs.
function chatLogprobEntry(names: TokenNames, l: TokenLogprob, stream: TokenTextStream) {
  const bytes = (id: number) => [...names.svc.tokenizer.tokenBytes(id)];
  const top = (l.top ?? []).map((x) => ({ token: names.alone(x.id), logprob: x.logprob, bytes: bytes(x.id) }));
  return { token: names.chosen(stream.push(l.id), l.id), logprob: l.logprob, bytes: bytes(l.id), top_logprobs: top };
}

export function chatFormat(names: TokenNames, withLogprobs: boolean): Format {
  const streams: TokenTextStream[] = [];
  return {
    object: 'chat.completion',
    chunkObject: 'chat.completion.chunk',
    choice: async (index, r) => {
      const stream = names.stream();
      return {
        index,
        message: { role: 'assistant', content: r.text },
        finish_reason: finishReason(r),
        logprobs: withLogprobs ? { content: r.logprobs.map((l) => chatLogprobEntry(names, l, stream)) } : null,
      };
    },
    chunkChoice: async (index, d, isFirst) => {
      if (d.text === '' && !isFirst && !(withLogprobs && d.logprob)) return null;
      const stream = (streams[index] ??= names.stream());
      const lp = withLogprobs && d.logprob ? { content: [chatLogprobEntry(names, d.logprob, stream)] } : null;
      return { index, delta: isFirst ? { role: 'assistant', content: d.text } : { content: d.text }, logprobs: lp, finish_reason: null };
    },
    endChoice: (index, r) => ({ index, delta: {}, logprobs: null, finish_reason: finishReason(r) }),
  };
}

// vLLM's chat echo: where the last message is the assistant's (say, continued with
// continue_final_message), each choice's content starts with it, streamed in its first chunk.
function withChatEcho(fmt: Format, prefix: string | null): Format {
  if (prefix === null) return fmt;
  const started = new Set<number>();
  const prepend = <T extends Record<string, unknown>>(m: T): T => (typeof m.content === 'string' ? { ...m, content: prefix + m.content } : m);
  return {
    ...fmt,
    choice: async (index, r) => {
      const c = await fmt.choice(index, r);
      return { ...c, message: prepend(c.message as Record<string, unknown>) };
    },
    chunkChoice: async (index, d, isFirst) => {
      const c = await fmt.chunkChoice(index, d, isFirst);
      if (!c || started.has(index)) return c;
      started.add(index);
      return { ...c, delta: prepend(c.delta as Record<string, unknown>) };
    },
  };
}

// The last message's text when it is the assistant's (chat echo's prefix), else null.
function lastAssistantText(messages: readonly ChatMessage[]): string | null {
  const last = messages.at(-1);
  return last?.role === 'assistant' ? last.content : null;
}

export async function openaiRoutes(app: FastifyInstance): Promise<void> {
  app.post<{ Body: CompletionsBody }>(
    '/v1/completions',
    { schema: { body: completionsBody, tags: ['openai'], summary: 'OpenAI-compatible completions' } },
    async (request, reply) => {
      const svc = app.weft.service;
      const b = request.body;
      checkModel(svc, b.model);
      const given: number[][] =
        typeof b.prompt === 'string'
          ? [await svc.encode(b.prompt)]
          : b.prompt.every((p) => typeof p === 'number')
            ? [b.prompt as number[]]
            : await Promise.all((b.prompt as string[]).map((p) => svc.encode(p)));
      const prompts = given.map((ids) => truncated(ids, b));
      const numLogprobs = b.logprobs == null ? -1 : b.logprobs;
      checkBeam(b, numLogprobs >= 0 || b.prompt_logprobs != null);
      // echo with logprobs scores the prompt too (what lm-evaluation-harness's loglikelihood asks),
      // and so does vLLM's prompt_logprobs
      const scorePrompt = b.echo === true && numLogprobs >= 0;
      const promptTop = checkPromptLogprobs(svc, b);
      if (scorePrompt) checkPromptScoring(svc, 'echo with logprobs');
      const scoreTop = Math.max(scorePrompt ? numLogprobs : -1, promptTop ?? -1);
      if (b.max_tokens === 0 && (!b.echo || b.use_beam_search))
        throw new WeftError('WEFT_ERR_REQ_INVALID', 'max_tokens 0 returns the prompt alone: it takes echo: true (and no beam search)');
      const reqs = await Promise.all(
        prompts.map(async (ids) => {
          const r = await constrain(svc, toGenRequest(svc, ids, b, numLogprobs, 16), b); // OpenAI's default max_tokens
          return scoreTop >= 0 ? { ...r, promptLogprobs: scoreTop } : r;
        }),
      );
      const names = new TokenNames(svc, b.return_tokens_as_token_ids ?? false);
      const fmt = completionFormat(names, b.logprobs != null);
      // the prompt's text as given; token ids, or what truncation kept, decoded
      const givenText = (p: number) => (typeof b.prompt === 'string' ? b.prompt : typeof b.prompt[p] === 'string' ? (b.prompt[p] as string) : null);
      const promptText = async (ids: number[], p: number) => (ids === given[p] ? givenText(p) : null) ?? svc.tokenizer.decode(ids);
      const texts = b.echo ? await Promise.all(prompts.map(promptText)) : null;
      const echo = texts && withEcho(fmt, texts, b.n ?? 1, scorePrompt ? { names, prompts, top: numLogprobs } : null);
      return respond(app, request, reply, b, reqs, withPromptLogprobs(names, echo ?? fmt, promptTop), 'cmpl');
    },
  );

  app.post<{ Body: ChatCompletionsBody }>(
    '/v1/chat/completions',
    { schema: { body: chatCompletionsBody, tags: ['openai'], summary: 'OpenAI-compatible chat completions' } },
    async (request, reply) => {
      const svc = app.weft.service;
      const b = request.body;
      checkModel(svc, b.model);
      if (b.top_logprobs != null && !b.logprobs) throw new WeftError('WEFT_ERR_REQ_INVALID', 'top_logprobs needs logprobs: true');
      const tools = planTools(b, svc.model.chatTemplate, svc.model.toolCallParser);
      const chat = await renderChat(svc, b.messages, renderOptionsOf(b), tools);
      const ids = truncated(chat.ids, b);
      const numLogprobs = b.logprobs ? (b.top_logprobs ?? 0) : -1;
      checkBeam(b, numLogprobs >= 0 || b.prompt_logprobs != null);
      const promptTop = checkPromptLogprobs(svc, b);
      const req = await constrain(svc, toGenRequest(svc, ids, b, numLogprobs, svc.model.maxModelLen), b, tools.constraint);
      const names = new TokenNames(svc, b.return_tokens_as_token_ids ?? false);
      const fmt = withChatEcho(withToolCalls(chatFormat(names, !!b.logprobs), tools), b.echo ? lastAssistantText(chat.messages) : null);
      // vLLM's chat layout: the (one) prompt's log-probs beside the choices
      const scored: Format =
        promptTop === null
          ? fmt
          : { ...fmt, response: (rs) => ({ prompt_logprobs: vllmPromptLogprobs(names, rs[0].promptLogprobs ?? [], promptTop) }) };
      return respond(app, request, reply, b, [promptTop === null ? req : { ...req, promptLogprobs: promptTop }], scored, 'chatcmpl');
    },
  );

  app.get('/v1/models', { schema: { tags: ['openai'], summary: 'The served model, once per name it answers to' } }, async () => {
    const m = app.weft.service.model;
    const root = app.weft.limits.exposeModelPath ? m.path : m.id; // where the model lies on disk: only when asked
    return {
      object: 'list',
      data: [m.id, ...m.aliases].map((id) => ({
        id,
        object: 'model',
        created: 0,
        owned_by: 'weft',
        root,
        max_model_len: m.maxModelLen,
        backend: m.backend,
        dtype: m.dtype,
        is_demo: m.isDemo,
        ...(m.isDemo ? { notice: 'built-in demo model: seeded synthetic weights, output is noise; pass --model PATH to serve a real model' } : {}),
      })),
    };
  });
}
