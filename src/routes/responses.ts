// OpenAI's Responses API (as vLLM serves it): POST /v1/responses, streamed as named events or
// not, and the stored responses: GET and DELETE /v1/responses/{id}, GET …/input_items, and POST
// …/cancel for a background one.
//
// A request is a chat turn: `instructions` (a system message), the conversation of
// `previous_response_id` (stored, its output included), then `input`. It is rendered, generated
// and read exactly as /v1/chat/completions does (renderChat, planTools, chatFormat with
// withToolCalls), and the chat output becomes output items: text in a message item, each tool
// call a function_call item. One OutputBuilder makes the items for the streamed and the whole
// response alike, so the events always add up to the response.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import type { MessageInput } from '../chat-template.js';
import { WeftError } from '../errors.js';
import type { GenResult, Generation, GenerationService } from '../generation.js';
import { ResponseStore } from '../response-store.js';
import { renderChat } from './chat.js';
import { streamErrorBody, toWeftError } from './error-body.js';
import { chatFormat, checkModel, TokenNames, type Format } from './openai.js';
import type { SamplingFields } from './params.js';
import { toGenRequest } from './params.js';
import { itemsToMessages, newId, readInput, type FunctionCallItem, type Item, type MessageItem, type OutputItem } from './response-items.js';
import { getResponseQuery, inputItemsQuery, responseIdParams, responsesBody } from './schemas.js';
import { SseStream, onClientGone } from './sse.js';
import { constrain, type StructuredFields } from './structured.js';
import { planTools, withToolCalls, type ToolFields, type ToolPlan } from './tools.js';

interface ResponsesBody extends Omit<SamplingFields, 'max_tokens' | 'max_completion_tokens' | 'min_tokens'> {
  model?: string;
  input: string | unknown[];
  instructions?: string | null;
  previous_response_id?: string | null;
  max_output_tokens?: number | null;
  top_logprobs?: number | null;
  include?: string[] | null;
  stream?: boolean | null;
  store?: boolean | null;
  background?: boolean | null;
  tools?: { type: 'function'; name: string; description?: string | null; parameters?: Record<string, unknown> | null; strict?: boolean | null }[];
  tool_choice?: 'none' | 'auto' | 'required' | { type: 'function'; name: string };
  parallel_tool_calls?: boolean | null;
  max_tool_calls?: number | null;
  text?: { format?: { type: 'text' | 'json_object' | 'json_schema'; name?: string; schema?: object | boolean; strict?: boolean | null } } | null;
  truncation?: 'auto' | 'disabled' | null;
  metadata?: Record<string, string> | null;
  user?: string;
  reasoning?: Record<string, unknown> | null;
  service_tier?: string | null;
  chat_template_kwargs?: Record<string, unknown> | null;
}

type Status = 'queued' | 'in_progress' | 'completed' | 'incomplete' | 'cancelled' | 'failed';

export interface ResponseObject {
  id: string;
  object: 'response';
  created_at: number;
  status: Status;
  background: boolean;
  error: { code: string; message: string } | null;
  incomplete_details: { reason: 'max_output_tokens' } | null;
  output: OutputItem[];
  usage: {
    input_tokens: number;
    input_tokens_details: { cached_tokens: number };
    output_tokens: number;
    output_tokens_details: { reasoning_tokens: number };
    total_tokens: number;
  } | null;
  [echoed: string]: unknown; // the request's settings, as OpenAI echoes them
}

type Store = ResponseStore<ResponseObject, Item, Exclude<MessageInput, string>>;
type Emit = (type: string, fields: Record<string, unknown>) => Promise<void>;

// The chat output, as it comes, → output items, announcing each step as the streamed events do
// (a whole response passes a no-op emit). Text opens a message item; a tool call closes it and
// adds a function_call item; the end closes what is open.
class OutputBuilder {
  readonly output: OutputItem[] = [];
  #message: MessageItem | null = null;
  #logprobs: unknown[] = [];
  #numCalls = 0;

  constructor(
    private readonly emit: Emit,
    private readonly withLogprobs: boolean,
    private readonly maxCalls: number,
  ) {}

  async text(delta: string, logprobs: unknown[]): Promise<void> {
    const m = this.#message ?? (await this.#open());
    const index = this.output.length - 1;
    m.content[0].text += delta;
    if (this.withLogprobs) this.#logprobs.push(...logprobs);
    if (delta === '' && logprobs.length === 0) return;
    await this.emit('response.output_text.delta', {
      item_id: m.id,
      output_index: index,
      content_index: 0,
      delta,
      logprobs: this.withLogprobs ? logprobs : [],
    });
  }

  async call(c: { id: string; function: { name: string; arguments: string } }): Promise<void> {
    if (this.#numCalls >= this.maxCalls) return; // max_tool_calls: the rest are dropped
    this.#numCalls++;
    await this.#close('completed');
    const item: FunctionCallItem = {
      type: 'function_call',
      id: newId('fc'),
      call_id: c.id,
      name: c.function.name,
      arguments: '',
      status: 'in_progress',
    };
    const at = { item_id: item.id, output_index: this.output.length };
    this.output.push(item);
    await this.emit('response.output_item.added', { output_index: at.output_index, item: { ...item } });
    item.arguments = c.function.arguments;
    await this.emit('response.function_call_arguments.delta', { ...at, delta: item.arguments });
    await this.emit('response.function_call_arguments.done', { ...at, name: item.name, arguments: item.arguments });
    item.status = 'completed';
    await this.emit('response.output_item.done', { output_index: at.output_index, item });
  }

  // Every response has at least its message item (empty when the model said nothing).
  async end(status: 'completed' | 'incomplete'): Promise<void> {
    if (this.output.length === 0) await this.#open();
    await this.#close(status);
  }

  async #open(): Promise<MessageItem> {
    const m: MessageItem = { type: 'message', id: newId('msg'), status: 'in_progress', role: 'assistant', content: [] };
    this.output.push(m);
    const index = this.output.length - 1;
    await this.emit('response.output_item.added', { output_index: index, item: { ...m, content: [] } });
    m.content.push({ type: 'output_text', text: '', annotations: [], ...(this.withLogprobs ? { logprobs: [] } : {}) });
    await this.emit('response.content_part.added', { item_id: m.id, output_index: index, content_index: 0, part: { ...m.content[0] } });
    this.#message = m;
    this.#logprobs = [];
    return m;
  }

  async #close(status: 'completed' | 'incomplete'): Promise<void> {
    const m = this.#message;
    if (!m) return;
    this.#message = null;
    const index = this.output.indexOf(m);
    const part = m.content[0] as MessageItem['content'][0] & { logprobs?: unknown[] };
    if (this.withLogprobs) part.logprobs = this.#logprobs;
    const at = { item_id: m.id, output_index: index, content_index: 0 };
    await this.emit('response.output_text.done', { ...at, text: part.text, logprobs: this.withLogprobs ? this.#logprobs : [] });
    await this.emit('response.content_part.done', { ...at, part });
    m.status = status;
    await this.emit('response.output_item.done', { output_index: index, item: m });
  }
}

// One chat chunk or message (chatFormat's, tool calls read) → the builder.
async function feed(out: OutputBuilder, m: Record<string, unknown> | undefined, logprobs: { content?: unknown[] } | null | undefined): Promise<void> {
  const content = typeof m?.content === 'string' ? m.content : '';
  const lps = logprobs?.content ?? [];
  if (content !== '' || lps.length > 0) await out.text(content, lps);
  for (const c of (m?.tool_calls ?? []) as { id: string; function: { name: string; arguments: string } }[]) await out.call(c);
}

// Tools and tool_choice in the Responses shape → the chat one planTools reads.
function chatTools(b: ResponsesBody): ToolFields {
  const choice = b.tool_choice;
  return {
    tools: b.tools?.map(({ type, ...f }) => ({ type, function: f })),
    tool_choice: typeof choice === 'object' ? { type: 'function', function: { name: choice.name } } : choice,
    parallel_tool_calls: b.parallel_tool_calls,
  };
}

// text.format → the chat completions' response_format.
function structuredOf(b: ResponsesBody): StructuredFields {
  const f = b.text?.format;
  if (!f || f.type === 'text') return {};
  if (f.type === 'json_object') return { response_format: { type: 'json_object' } };
  return {
    response_format: {
      type: 'json_schema',
      json_schema: { name: f.name ?? 'response', schema: f.schema as Record<string, unknown>, strict: f.strict },
    },
  };
}

const samplingOf = (b: ResponsesBody): SamplingFields => ({
  temperature: b.temperature,
  top_p: b.top_p,
  top_k: b.top_k,
  min_p: b.min_p,
  repetition_penalty: b.repetition_penalty,
  presence_penalty: b.presence_penalty,
  frequency_penalty: b.frequency_penalty,
  seed: b.seed,
  stop: b.stop,
  ignore_eos: b.ignore_eos,
  max_tokens: b.max_output_tokens,
});

// The prompt of the conversation; with truncation "auto", the oldest turns (after a system
// message) are dropped, fewest first, until it fits the context with max_output_tokens after it.
async function render(svc: GenerationService, b: ResponsesBody, system: MessageInput[], history: MessageInput[], plan: ToolPlan) {
  const opts = { kwargs: b.chat_template_kwargs ?? {} };
  const whole = await renderChat(svc, [...system, ...history], opts, plan);
  const limit = Math.min(svc.model.maxModelLen - (b.max_output_tokens ?? 1), svc.promptLimit);
  if (b.truncation !== 'auto' || whole.ids.length <= limit) return whole;
  // binary search for the fewest dropped turns that fit; the last turn is always kept
  let lo = 1,
    hi = history.length - 1,
    best = null as Awaited<ReturnType<typeof renderChat>> | null;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = await renderChat(svc, [...system, ...history.slice(mid)], opts, plan);
    if (r.ids.length <= limit) {
      best = r;
      hi = mid - 1;
    } else lo = mid + 1;
  }
  return best ?? renderChat(svc, [...system, ...history.slice(-1)], opts, plan); // still too long: the usual 400
}

const usageOf = (r: GenResult): ResponseObject['usage'] => ({
  input_tokens: r.numPromptTokens,
  input_tokens_details: { cached_tokens: r.numCachedTokens },
  output_tokens: r.numOutputTokens,
  output_tokens_details: { reasoning_tokens: 0 },
  total_tokens: r.numPromptTokens + r.numOutputTokens,
});

// What a finished generation makes of the response: its status, output and usage.
function finished(base: ResponseObject, r: GenResult, output: OutputItem[]): ResponseObject {
  const status: Status = r.finishReason === 'abort' ? 'cancelled' : r.finishReason === 'length' ? 'incomplete' : 'completed';
  return {
    ...base,
    status,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    output,
    usage: usageOf(r),
  };
}

const failed = (base: ResponseObject, e: unknown): ResponseObject => {
  const we = toWeftError(e);
  return { ...base, status: 'failed', error: { code: we.code, message: we.message } };
};

// The whole output of a finished generation, through the same builder a stream uses.
async function outputOf(fmt: Format, r: GenResult, withLogprobs: boolean, maxCalls: number): Promise<OutputItem[]> {
  const out = new OutputBuilder(async () => undefined, withLogprobs, maxCalls);
  const c = await fmt.choice(0, r);
  await feed(out, c.message as Record<string, unknown>, c.logprobs as { content?: unknown[] } | null);
  await out.end(r.finishReason === 'length' ? 'incomplete' : 'completed');
  return out.output;
}

export async function responsesRoutes(app: FastifyInstance): Promise<void> {
  const store: Store = new ResponseStore(app.weft.limits.responsesStoreBytes);
  app.weft.metrics.setResponseStoreSource(() => ({ count: store.size, bytes: store.bytes }));

  const stored = (id: string) => {
    const s = store.get(id);
    if (!s) throw new WeftError('WEFT_ERR_REQ_RESPONSE_NOT_FOUND', `no stored response has the id "${id}" (not stored, deleted, or evicted)`);
    return s;
  };

  app.post<{ Body: ResponsesBody }>(
    '/v1/responses',
    { schema: { body: responsesBody, tags: ['openai'], summary: "OpenAI's Responses API (text and function tools)" } },
    async (request, reply) => {
      const svc = app.weft.service;
      const b = request.body;
      checkModel(svc, b.model);
      const isStored = b.store !== false && store.isEnabled;
      if (b.background) {
        if (b.store === false) throw new WeftError('WEFT_ERR_REQ_INVALID', 'background needs store: true (the result is fetched from the store)');
        if (!store.isEnabled)
          throw new WeftError('WEFT_ERR_REQ_NO_RESPONSE_STORE', 'background needs the response store: --responses-store-bytes is 0');
        if (b.stream) throw new WeftError('WEFT_ERR_REQ_INVALID', 'background with stream is not supported: poll GET /v1/responses/{id}');
      }
      if (b.previous_response_id && !store.isEnabled)
        throw new WeftError('WEFT_ERR_REQ_NO_RESPONSE_STORE', 'previous_response_id needs the response store: --responses-store-bytes is 0');
      const previous = b.previous_response_id ? stored(b.previous_response_id) : null;
      if (previous?.cancel)
        throw new WeftError(
          'WEFT_ERR_REQ_INVALID',
          `the previous response ${b.previous_response_id} is still in progress: continue it once it is done`,
        );
      const inputItems = readInput(b.input);
      const history = [...(previous?.conversation ?? []), ...itemsToMessages(inputItems)];
      const system: MessageInput[] = b.instructions != null ? [{ role: 'system', content: b.instructions }] : [];
      const plan = planTools(chatTools(b), svc.model.chatTemplate, svc.model.toolCallParser);
      const chat = await render(svc, b, system, history, plan);
      const withLogprobs = !!b.include?.includes('message.output_text.logprobs') || (b.top_logprobs ?? 0) > 0;
      const numLogprobs = withLogprobs ? (b.top_logprobs ?? 0) : -1;
      const req = await constrain(
        svc,
        toGenRequest(svc, chat.ids, samplingOf(b), numLogprobs, svc.model.maxModelLen),
        structuredOf(b),
        plan.constraint,
      );
      const fmt = withToolCalls(chatFormat(new TokenNames(svc), withLogprobs), plan);
      const maxCalls = b.max_tool_calls ?? Number.POSITIVE_INFINITY;

      const base: ResponseObject = {
        id: newId('resp'),
        object: 'response',
        created_at: Math.floor(Date.now() / 1000),
        status: 'in_progress',
        background: b.background ?? false,
        error: null,
        incomplete_details: null,
        instructions: b.instructions ?? null,
        max_output_tokens: b.max_output_tokens ?? null,
        max_tool_calls: b.max_tool_calls ?? null,
        metadata: b.metadata ?? {},
        model: b.model ?? svc.model.id,
        output: [],
        parallel_tool_calls: b.parallel_tool_calls ?? true,
        previous_response_id: b.previous_response_id ?? null,
        reasoning: b.reasoning ?? { effort: null, summary: null },
        service_tier: 'default',
        store: isStored,
        temperature: b.temperature ?? 1,
        text: { format: b.text?.format ?? { type: 'text' } },
        tool_choice: b.tool_choice ?? (b.tools?.length ? 'auto' : 'none'),
        tools: (b.tools ?? []).map((t) => ({ description: null, parameters: null, strict: null, ...t })),
        top_logprobs: b.top_logprobs ?? 0,
        top_p: b.top_p ?? 1,
        truncation: b.truncation ?? 'disabled',
        usage: null,
        user: b.user ?? null,
      };
      // what a later request continuing this one sees: the conversation with this turn's output
      const keep = (response: ResponseObject, cancel?: () => Promise<void>) => {
        if (!isStored) return;
        const conversation =
          response.status === 'queued' || response.status === 'in_progress' ? history : [...history, ...itemsToMessages(response.output)];
        store.put(response.id, { response, inputItems, conversation, cancel }, !!cancel);
      };

      if (b.background) {
        const onFailure = (e: WeftError) => {
          app.weft.metrics.countError(e.code);
          request.log.warn({ code: e.code, response: base.id }, `background response failed: ${e.message}`);
        };
        const gen = svc.start(req);
        return background(base, { keep, isKept: () => store.has(base.id), gen, fmt, withLogprobs, maxCalls, onFailure });
      }

      if (!b.stream) {
        const gen = svc.start(req);
        onClientGone(reply, gen.abort);
        const r = await gen.result;
        const response = finished(base, r, await outputOf(fmt, r, withLogprobs, maxCalls));
        if (response.status !== 'cancelled') keep(response);
        return response;
      }
      return streamResponse(app, request, reply, { base, keep, fmt, withLogprobs, maxCalls, start: (hooks) => svc.start(req, hooks) });
    },
  );

  app.get<{ Params: { id: string }; Querystring: { stream?: string } }>(
    '/v1/responses/:id',
    { schema: { params: responseIdParams, querystring: getResponseQuery, tags: ['openai'], summary: 'A stored response' } },
    async (request) => {
      if (request.query.stream === 'true') throw new WeftError('WEFT_ERR_REQ_INVALID', 'resuming a response stream is not supported: GET it whole');
      return stored(request.params.id).response;
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/responses/:id',
    { schema: { params: responseIdParams, tags: ['openai'], summary: 'Delete a stored response (a running background one is cancelled)' } },
    async (request) => {
      const s = stored(request.params.id);
      store.delete(request.params.id);
      void s.cancel?.(); // after the delete: its end is not stored again
      return { id: request.params.id, object: 'response', deleted: true };
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/responses/:id/cancel',
    { schema: { params: responseIdParams, tags: ['openai'], summary: 'Cancel a background response' } },
    async (request) => {
      const s = stored(request.params.id);
      if (!s.response.background) throw new WeftError('WEFT_ERR_REQ_INVALID', 'only a background response can be cancelled');
      await s.cancel?.();
      return store.get(request.params.id)?.response ?? s.response;
    },
  );

  app.get<{ Params: { id: string }; Querystring: { limit?: string; order?: 'asc' | 'desc'; after?: string } }>(
    '/v1/responses/:id/input_items',
    { schema: { params: responseIdParams, querystring: inputItemsQuery, tags: ['openai'], summary: "A stored response's input items" } },
    async (request) => {
      const q = request.query;
      const items = [...stored(request.params.id).inputItems];
      if (q.order !== 'asc') items.reverse();
      const from = q.after === undefined ? 0 : items.findIndex((it) => it.id === q.after) + 1;
      if (q.after !== undefined && from === 0) throw new WeftError('WEFT_ERR_REQ_INVALID', `after: no input item has the id "${q.after}"`);
      const limit = Number(q.limit ?? 20);
      const data = items.slice(from, from + limit);
      return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: from + limit < items.length };
    },
  );
}

// background: stored at once (in progress: it is in the engine), replaced when it finishes unless
// it was deleted meanwhile. Cancelling aborts it; the stored response then holds what it had made,
// status cancelled.
function background(
  base: ResponseObject,
  s: {
    keep: (r: ResponseObject, cancel?: () => Promise<void>) => void;
    isKept: () => boolean;
    gen: Generation;
    fmt: Format;
    withLogprobs: boolean;
    maxCalls: number;
    onFailure: (e: WeftError) => void; // no client hears of it: logged and counted
  },
): ResponseObject {
  const settle = (response: ResponseObject) => {
    if (s.isKept()) s.keep(response);
  };
  const fail = (e: unknown) => {
    const we = toWeftError(e);
    s.onFailure(we);
    settle(failed(base, we));
  };
  const done = s.gen.result.then(async (r) => settle(finished(base, r, await outputOf(s.fmt, r, s.withLogprobs, s.maxCalls)))).catch(fail);
  s.keep(base, () => {
    s.gen.abort();
    return done;
  });
  return base;
}

// Named events, each with its sequence number; no [DONE] (the Responses API ends on its last event).
async function streamResponse(
  app: FastifyInstance,
  request: FastifyRequest,
  reply: FastifyReply,
  s: {
    base: ResponseObject;
    keep: (r: ResponseObject) => void;
    fmt: Format;
    withLogprobs: boolean;
    maxCalls: number;
    start: (hooks: Parameters<GenerationService['start']>[1]) => Generation;
  },
): Promise<FastifyReply> {
  let sse: SseStream | null = null;
  let seq = 0;
  // output events wait until response.created and response.in_progress are out
  let isOpen = false;
  const pending: [string, Record<string, unknown>][] = [];
  const send = (type: string, fields: Record<string, unknown>) => sse!.send({ type, sequence_number: seq++, ...fields }, type);
  const emit: Emit = async (type, fields) => {
    if (isOpen) await send(type, fields);
    else pending.push([type, fields]);
  };
  const out = new OutputBuilder(emit, s.withLogprobs, s.maxCalls);
  let first = true;
  const gen = s.start({
    onDelta: async (d) => {
      const c = await s.fmt.chunkChoice(0, d, first);
      first = false;
      if (c) await feed(out, c.delta as Record<string, unknown>, c.logprobs as { content?: unknown[] } | null);
    },
  });
  sse = SseStream.open(request, reply);
  sse.signal.addEventListener('abort', gen.abort, { once: true });
  await send('response.created', { response: s.base });
  await send('response.in_progress', { response: s.base });
  while (pending.length > 0) await send(...pending.shift()!);
  isOpen = true;
  try {
    const r = await gen.result;
    const end = s.fmt.endChoice(0, r);
    await feed(out, end.delta as Record<string, unknown>, null);
    await out.end(r.finishReason === 'length' ? 'incomplete' : 'completed');
    const response = finished(s.base, r, out.output);
    if (response.status !== 'cancelled') s.keep(response);
    await emit(response.status === 'incomplete' ? 'response.incomplete' : 'response.completed', { response });
  } catch (e) {
    gen.abort();
    const body = streamErrorBody(app.weft.metrics, e);
    await emit('response.failed', {
      response: { ...failed(s.base, e), output: out.output, error: { code: body.error.code, message: body.error.message } },
    });
  }
  sse.end();
  return reply;
}
