// The Responses API's items (OpenAI's /v1/responses): a request's `input` read into items with
// ids (what GET …/input_items lists), items turned into the chat messages the template renders,
// and the output items a generation makes. Only text travels: an image, file or audio part is a
// 400 naming where it is.
//   message               {role, content: string | [{type: input_text | output_text | refusal, …}]}
//   function_call         an assistant's tool call {call_id, name, arguments}
//   function_call_output  the tool's answer {call_id, output}
//   reasoning             a reasoning model's item, replayed by clients: kept in the list, not rendered
import { randomUUID } from 'node:crypto';

import type { MessageInput } from '../chat-template.js';
import { WeftError } from '../errors.js';

export interface OutputText {
  type: 'output_text';
  text: string;
  annotations: unknown[];
  logprobs?: unknown[];
}

export type ItemStatus = 'in_progress' | 'completed' | 'incomplete';

export interface MessageItem {
  type: 'message';
  id: string;
  status: ItemStatus;
  role: 'user' | 'assistant' | 'system' | 'developer';
  content: ({ type: 'input_text'; text: string } | OutputText)[];
}

export interface FunctionCallItem {
  type: 'function_call';
  id: string;
  call_id: string;
  name: string;
  arguments: string;
  status: ItemStatus;
}

export interface FunctionCallOutputItem {
  type: 'function_call_output';
  id: string;
  call_id: string;
  output: string;
  status: ItemStatus;
}

export interface ReasoningItem {
  type: 'reasoning';
  id: string;
  [field: string]: unknown;
}

export type Item = MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem;
export type OutputItem = MessageItem | FunctionCallItem;

export const newId = (prefix: string) => `${prefix}_${randomUUID().replaceAll('-', '')}`;

const ROLES = ['user', 'assistant', 'system', 'developer'];

function bad(where: string, why: string): never {
  throw new WeftError('WEFT_ERR_REQ_BAD_MESSAGES', `${where}: ${why}`);
}

const str = (v: unknown, where: string): string => (typeof v === 'string' ? v : bad(where, 'must be a string'));

// A message's content parts → its text. input_text and output_text (and refusal, for an assistant
// turn a client replays) are text; anything else is refused.
function partsText(content: unknown, where: string): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return bad(where, 'content must be a string or a list of parts');
  return content
    .map((p, k) => {
      const at = `${where}[${k}]`;
      if (typeof p !== 'object' || p === null) return bad(at, 'a content part must be an object');
      const part = p as Record<string, unknown>;
      if (part.type === 'input_text' || part.type === 'output_text' || part.type === 'text') return str(part.text, `${at}.text`);
      if (part.type === 'refusal') return str(part.refusal, `${at}.refusal`);
      return bad(at, `a "${String(part.type)}" part is not supported: this server takes text only (input_text)`);
    })
    .join('');
}

// `input` (a string, or a list of items) → items with ids and statuses, as OpenAI lists them.
export function readInput(input: string | unknown[]): Item[] {
  if (typeof input === 'string')
    return [{ type: 'message', id: newId('msg'), status: 'completed', role: 'user', content: [{ type: 'input_text', text: input }] }];
  if (input.length === 0) bad('input', 'must not be an empty list');
  return input.map((raw, i): Item => {
    const where = `input[${i}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad(where, 'an item must be an object');
    const it = raw as Record<string, unknown>;
    const type = it.type ?? 'message';
    const id = typeof it.id === 'string' && it.id !== '' ? it.id : undefined;
    switch (type) {
      case 'message': {
        const role = str(it.role, `${where}.role`);
        if (!ROLES.includes(role)) bad(`${where}.role`, `"${role}" is not user, assistant, system or developer`);
        const text = partsText(it.content, `${where}.content`);
        const part = role === 'assistant' ? { type: 'output_text' as const, text, annotations: [] } : { type: 'input_text' as const, text };
        return { type: 'message', id: id ?? newId('msg'), status: 'completed', role: role as MessageItem['role'], content: [part] };
      }
      case 'function_call':
        return {
          type: 'function_call',
          id: id ?? newId('fc'),
          call_id: str(it.call_id, `${where}.call_id`),
          name: str(it.name, `${where}.name`),
          arguments: str(it.arguments, `${where}.arguments`),
          status: 'completed',
        };
      case 'function_call_output':
        return {
          type: 'function_call_output',
          id: id ?? newId('fco'),
          call_id: str(it.call_id, `${where}.call_id`),
          output: partsText(it.output, `${where}.output`),
          status: 'completed',
        };
      case 'reasoning':
        return { ...it, type: 'reasoning', id: id ?? newId('rs') };
      default:
        return bad(where, `an item of type "${String(type)}" is not supported (message, function_call, function_call_output, reasoning)`);
    }
  });
}

const itemText = (m: MessageItem) => m.content.map((p) => p.text).join('');

// Items → chat messages, in order. An assistant's function calls join its turn (the text before
// them, or the calls just before), as a chat completion returned them; a call's output is a tool turn.
export function itemsToMessages(items: readonly Item[]): Exclude<MessageInput, string>[] {
  const out: Exclude<MessageInput, string>[] = [];
  for (const it of items) {
    if (it.type === 'message') out.push({ role: it.role, content: itemText(it) });
    else if (it.type === 'function_call_output') out.push({ role: 'tool', tool_call_id: it.call_id, content: it.output });
    else if (it.type === 'function_call') {
      const call = { id: it.call_id, type: 'function', function: { name: it.name, arguments: it.arguments } };
      const last = out.at(-1);
      if (last?.role === 'assistant') last.tool_calls = [...(last.tool_calls ?? []), call];
      else out.push({ role: 'assistant', content: null, tool_calls: [call] });
    }
  }
  return out;
}
