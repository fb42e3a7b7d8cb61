// Tool calling on /v1/chat/completions: tools, tool_choice and parallel_tool_calls checked (400s
// with codes), the plan for rendering and generating, and the response shaped into OpenAI
// tool_calls, whole or as streamed delta chunks.
//   tool_choice "none"      tools are not shown to the model; the answer is content
//   tool_choice "auto"      tools rendered; the output is read by the model's tool-call format
//                           (src/tool-formats.ts) into content and tool_calls
//   "required" or a named function: generation is constrained by a JSON Schema (vLLM's way): a
//                           named function's output is its arguments object; "required" writes a
//                           list of {"name", "parameters"} — so every call parses against its schema
import { randomUUID } from 'node:crypto';

import type { ChatMessage } from '../chat-template.js';
import { WeftError } from '../errors.js';
import type { GenDelta, GenResult } from '../generation.js';
import type { ConstraintSpec } from '../structured/types.js';
import { checkMetaSchema } from '../structured/validate.js';
import {
  ToolCallStream,
  callsAsText,
  detectToolParser,
  readJsonValues,
  toolInstructions,
  toolResultAsText,
  type ParsedOutput,
  type ParsedToolCall,
  type ToolFunction,
  type ToolParserName,
} from '../tool-formats.js';

// A function tool's fields: nested under `function` on chat, at the tool's top level on
// /v1/responses (whose clients send null for what is not given).
export const functionProperties = {
  name: { type: 'string', pattern: '^[a-zA-Z0-9_.-]{1,64}$' },
  description: { type: ['string', 'null'], maxLength: 1 << 16 },
  parameters: { type: ['object', 'null'] },
  strict: { type: ['boolean', 'null'] },
} as const;

export const toolFields = {
  tools: {
    type: 'array',
    maxItems: 128,
    items: {
      type: 'object',
      additionalProperties: false,
      required: ['type', 'function'],
      properties: {
        type: { type: 'string', enum: ['function'] },
        function: { type: 'object', additionalProperties: false, required: ['name'], properties: functionProperties },
      },
    },
  },
  tool_choice: {
    anyOf: [
      { type: 'string', enum: ['none', 'auto', 'required'] },
      {
        type: 'object',
        additionalProperties: false,
        required: ['type', 'function'],
        properties: {
          type: { type: 'string', enum: ['function'] },
          function: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
        },
      },
    ],
  },
  parallel_tool_calls: { type: 'boolean', nullable: true },
} as const;

type NullableFunction = { [K in keyof ToolFunction]: ToolFunction[K] | null } & { name: string; strict?: boolean | null };

export interface ToolFields {
  tools?: { type: 'function'; function: NullableFunction }[];
  tool_choice?: 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } };
  parallel_tool_calls?: boolean | null;
}

export interface ToolPlan {
  mode: 'none' | 'auto' | 'required' | 'named';
  functions: ToolFunction[]; // shown to the model (empty for "none")
  parser: ToolParserName;
  isParallel: boolean;
  named?: string;
  constraint?: [field: string, spec: ConstraintSpec];
}

// The forced modes' schemas: a tool's parameters become a $defs entry of the list's schema, so
// their own "#…" references are rewritten to point inside it.
function relocateRefs(v: unknown, base: string): unknown {
  if (Array.isArray(v)) return v.map((x) => relocateRefs(x, base));
  if (typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(
    Object.entries(v).map(([k, x]) => [
      k,
      k === '$ref' && typeof x === 'string' && x.startsWith('#') ? `${base}${x.slice(1)}` : relocateRefs(x, base),
    ]),
  );
}

function requiredSchema(functions: ToolFunction[], isParallel: boolean): object {
  const $defs = Object.fromEntries(functions.map((f, i) => [`tool${i}`, relocateRefs(f.parameters ?? { type: 'object' }, `#/$defs/tool${i}`)]));
  return {
    type: 'array',
    minItems: 1,
    ...(isParallel ? {} : { maxItems: 1 }),
    $defs,
    items: {
      anyOf: functions.map((f, i) => ({
        type: 'object',
        required: ['name', 'parameters'],
        properties: { name: { const: f.name }, parameters: { $ref: `#/$defs/tool${i}` } },
      })),
    },
  };
}

export function planTools(b: ToolFields, template: string | null, configured: ToolParserName | 'auto' = 'auto'): ToolPlan {
  // null is "not given": the templates and the tool instructions see only what was
  const functions: ToolFunction[] = (b.tools ?? []).map(({ function: f }) => ({
    name: f.name,
    ...(f.description != null ? { description: f.description } : {}),
    ...(f.parameters != null ? { parameters: f.parameters } : {}),
  }));
  const names = new Set<string>();
  functions.forEach((f, i) => {
    if (names.has(f.name)) throw new WeftError('WEFT_ERR_REQ_BAD_TOOLS', `tools[${i}]: the function name "${f.name}" is used twice`);
    names.add(f.name);
    try {
      if (f.parameters !== undefined) checkMetaSchema(f.parameters);
    } catch (e) {
      throw new WeftError('WEFT_ERR_REQ_BAD_TOOLS', `tools[${i}].function.parameters: ${(e as Error).message}`);
    }
  });
  const choice = b.tool_choice ?? (functions.length > 0 ? 'auto' : 'none');
  const parser = configured === 'auto' ? detectToolParser(template) : configured;
  const isParallel = b.parallel_tool_calls !== false;
  if (choice !== 'none' && choice !== 'auto' && functions.length === 0)
    throw new WeftError('WEFT_ERR_REQ_BAD_TOOL_CHOICE', 'tool_choice names a function or "required", but the request has no tools');
  if (choice === 'none' || functions.length === 0) return { mode: 'none', functions: [], parser, isParallel };
  if (choice === 'auto') return { mode: 'auto', functions, parser, isParallel };
  if (choice === 'required') {
    const spec: ConstraintSpec = { type: 'json_schema', schema: JSON.stringify(requiredSchema(functions, isParallel)) };
    return { mode: 'required', functions, parser, isParallel, constraint: ['tool_choice', spec] };
  }
  const f = functions.find((x) => x.name === choice.function.name);
  if (!f) {
    throw new WeftError(
      'WEFT_ERR_REQ_BAD_TOOL_CHOICE',
      `tool_choice names the function "${choice.function.name}", which is not among the tools (${[...names].join(', ')})`,
    );
  }
  const spec: ConstraintSpec = { type: 'json_schema', schema: JSON.stringify(f.parameters ?? { type: 'object' }) };
  return { mode: 'named', functions, parser, isParallel, named: f.name, constraint: ['tool_choice', spec] };
}

// The messages and `tools` variable for the chat template. A template that renders tools gets them
// as transformers passes them; for one that does not, the tool instructions of the format join the
// system message, past calls are written into their assistant turns in the format, and tool
// results become user turns.
export function promptMessages(
  messages: ChatMessage[],
  plan: ToolPlan | undefined,
  supportsTools: boolean,
): { messages: ChatMessage[]; tools?: object[] } {
  const functions = plan?.functions ?? [];
  if (supportsTools) return { messages, ...(functions.length > 0 ? { tools: functions.map((f) => ({ type: 'function', function: f })) } : {}) };
  const parser = plan?.parser ?? 'hermes';
  const out: ChatMessage[] = messages.map((m) => {
    if (m.role === 'tool') return { role: 'user', content: toolResultAsText(m.content) };
    if (!m.tool_calls) return m;
    const calls = callsAsText(
      parser,
      m.tool_calls.map((c) => ({ name: c.function.name, arguments: JSON.stringify(c.function.arguments) })),
    );
    return { role: m.role, content: m.content ? `${m.content}\n${calls}` : calls };
  });
  if (functions.length === 0) return { messages: out };
  const instructions = toolInstructions(parser, functions);
  if (out[0]?.role === 'system') out[0] = { ...out[0], content: `${out[0].content}\n\n${instructions}` };
  else out.unshift({ role: 'system', content: instructions });
  return { messages: out };
}

// The forced modes' output (constrained JSON) → calls; null when it did not complete.
function forcedCalls(plan: ToolPlan, text: string): ParsedToolCall[] | null {
  const { values, rest } = readJsonValues(text.trim());
  if (values.length !== 1 || rest.trim() !== '') return null;
  if (plan.mode === 'named') return [{ name: plan.named!, arguments: JSON.stringify(values[0]) }];
  if (!Array.isArray(values[0])) return null;
  return (values[0] as { name: string; parameters: unknown }[]).map((c) => ({ name: c.name, arguments: JSON.stringify(c.parameters) }));
}

// Reads one choice's output as it streams: content now, calls once complete.
class ChoiceReader {
  readonly #stream: ToolCallStream | null;
  #text = '';
  numCalls = 0;

  constructor(private readonly plan: ToolPlan) {
    this.#stream = plan.mode === 'auto' ? new ToolCallStream(plan.parser) : null;
  }

  push(text: string): ParsedOutput {
    if (this.#stream) return this.#limit(this.#stream.push(text));
    this.#text += text;
    return { content: '', calls: [] };
  }

  end(): ParsedOutput {
    if (this.#stream) return this.#limit(this.#stream.end());
    const calls = forcedCalls(this.plan, this.#text);
    return this.#limit(calls ? { content: '', calls } : { content: this.#text, calls: [] });
  }

  // parallel_tool_calls: false keeps the first call only
  #limit(out: ParsedOutput): ParsedOutput {
    const calls = this.plan.isParallel ? out.calls : out.calls.slice(0, Math.max(0, 1 - this.numCalls));
    this.numCalls += calls.length;
    return { content: out.content, calls };
  }
}

const callId = () => `call_${randomUUID().replaceAll('-', '').slice(0, 24)}`;
const openAiCall = (c: ParsedToolCall) => ({ id: callId(), type: 'function', function: { name: c.name, arguments: c.arguments } });

// The chat format's three hooks (see openai.ts), with tool calls read from the output.
interface ChatFormat {
  choice(index: number, r: GenResult): Promise<Record<string, unknown>>;
  chunkChoice(index: number, d: GenDelta, isFirst: boolean): Promise<Record<string, unknown> | null>;
  endChoice(index: number, r: GenResult): Record<string, unknown>;
}

export function withToolCalls<F extends ChatFormat>(base: F, plan: ToolPlan): F {
  if (plan.mode === 'none') return base;
  const readers = new Map<number, ChoiceReader>();
  const reader = (i: number) => readers.get(i) ?? readers.set(i, new ChoiceReader(plan)).get(i)!;
  const finish = (r: GenResult, numCalls: number) => (numCalls > 0 ? 'tool_calls' : r.finishReason === 'abort' ? 'stop' : r.finishReason);
  return {
    ...base,
    choice: async (index, r) => {
      const c = await base.choice(index, r);
      const rd = new ChoiceReader(plan);
      const a = rd.push(r.text),
        z = rd.end();
      const calls = [...a.calls, ...z.calls],
        content = (a.content + z.content).trim();
      if (calls.length === 0) return c;
      const message = { role: 'assistant', content: content === '' ? null : content, tool_calls: calls.map(openAiCall) };
      return { ...c, message, finish_reason: 'tool_calls' };
    },
    chunkChoice: async (index, d, isFirst) => {
      const rd = reader(index);
      const before = rd.numCalls;
      const out = rd.push(d.text);
      const c = await base.chunkChoice(index, { ...d, text: out.content }, isFirst);
      if (out.calls.length === 0) return c;
      const calls = out.calls.map((x, k) => ({ index: before + k, ...openAiCall(x) }));
      const delta = { ...((c?.delta as object | undefined) ?? {}), tool_calls: calls };
      return { index, logprobs: null, finish_reason: null, ...c, delta };
    },
    endChoice: (index, r) => {
      const rd = reader(index);
      const before = rd.numCalls;
      const out = rd.end();
      const delta = {
        ...(out.content ? { content: out.content } : {}),
        ...(out.calls.length > 0 ? { tool_calls: out.calls.map((x, k) => ({ index: before + k, ...openAiCall(x) })) } : {}),
      };
      return { ...base.endChoice(index, r), delta, finish_reason: finish(r, rd.numCalls) };
    },
  };
}
