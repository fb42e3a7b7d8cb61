// How models write tool calls, and how weft reads them back into OpenAI tool_calls:
//   hermes       (Hermes, Qwen 2/2.5/3)  <tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>, one block per call
//   llama3_json  (Llama 3.1+)            {"name": …, "parameters": {…}}, calls separated by ";" (after <|python_tag|>)
//   mistral      (Mistral)               [TOOL_CALLS] [{"name": …, "arguments": {…}}, …]
// The parser is chosen from the chat template (or --tool-call-parser). Special markers such as
// [TOOL_CALLS] and <|python_tag|> may be dropped by the detokenizer; the JSON is read without them.
// For templates that do not render tools, the instructions for the chosen format are written here.
export type ToolParserName = 'hermes' | 'llama3_json' | 'mistral';
export const TOOL_PARSERS: readonly ToolParserName[] = ['hermes', 'llama3_json', 'mistral'];

export interface ToolFunction {
  name: string;
  description?: string;
  parameters?: Record<string, unknown>;
}

export interface ParsedToolCall {
  name: string;
  arguments: string; // JSON text, as OpenAI's tool_calls carry it
}

export interface ParsedOutput {
  content: string;
  calls: ParsedToolCall[];
}

export function detectToolParser(template: string | null): ToolParserName {
  if (template?.includes('[TOOL_CALLS]')) return 'mistral';
  if (template && (template.includes('<|python_tag|>') || template.includes('"parameters": '))) return 'llama3_json';
  return 'hermes';
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

// A call from a parsed JSON object ({name, arguments|parameters}), or null when it is not one.
function callOf(v: unknown): ParsedToolCall | null {
  if (!isObj(v) || typeof v.name !== 'string' || v.name === '') return null;
  const args = v.arguments ?? v.parameters ?? {};
  if (typeof args === 'string') {
    try {
      JSON.parse(args);
      return { name: v.name, arguments: args };
    } catch {
      return null;
    }
  }
  return isObj(args) ? { name: v.name, arguments: JSON.stringify(args) } : null;
}

// The JSON values at the start of `text`, separated by whitespace or ";", and whatever follows them.
export function readJsonValues(text: string): { values: unknown[]; rest: string } {
  const values: unknown[] = [];
  let pos = 0;
  for (;;) {
    while (pos < text.length && /[\s;]/.test(text[pos])) pos++;
    if (text[pos] !== '{' && text[pos] !== '[') break;
    const end = matchingBracket(text, pos);
    if (end < 0) break;
    try {
      values.push(JSON.parse(text.slice(pos, end + 1)));
    } catch {
      break;
    }
    pos = end + 1;
  }
  return { values, rest: text.slice(pos) };
}

// The index of the bracket closing the one at `start` (strings skipped), or -1.
function matchingBracket(text: string, start: number): number {
  let depth = 0,
    inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      if (--depth === 0) return i;
    }
  }
  return -1;
}

const HERMES_OPEN = '<tool_call>',
  HERMES_CLOSE = '</tool_call>';
const JSON_PREFIXES = ['<|python_tag|>', '[TOOL_CALLS]'];

// The calls in one JSON-format output (llama3_json, mistral): the whole text must be calls.
function parseJsonCalls(text: string): ParsedToolCall[] | null {
  let t = text.trim();
  for (const p of JSON_PREFIXES) if (t.startsWith(p)) t = t.slice(p.length).trim();
  const { values, rest } = readJsonValues(t);
  if (values.length === 0 || rest.trim() !== '') return null;
  const calls = values.flatMap((v) => (Array.isArray(v) ? v : [v])).map(callOf);
  return calls.length > 0 && calls.every((c) => c !== null) ? (calls as ParsedToolCall[]) : null;
}

function parseHermesBlock(inner: string): ParsedToolCall | null {
  const { values, rest } = readJsonValues(inner.trim());
  return values.length === 1 && rest.trim() === '' ? callOf(values[0]) : null;
}

// A whole output → its content and tool calls. Text that does not parse as a call stays content.
export function parseToolOutput(parser: ToolParserName, text: string): ParsedOutput {
  const s = new ToolCallStream(parser);
  const a = s.push(text),
    b = s.end();
  return { content: (a.content + b.content).trim(), calls: [...a.calls, ...b.calls] };
}

// The same, incrementally for streaming: push() returns the content that can be shown now and the
// calls completed so far; text that may still become a call is held back until it can be decided.
export class ToolCallStream {
  #held = '';
  #inCall = false; // hermes: inside <tool_call> … </tool_call>
  #mode: 'undecided' | 'content' | 'calls' = 'undecided'; // JSON formats

  constructor(private readonly parser: ToolParserName) {}

  push(text: string): ParsedOutput {
    this.#held += text;
    return this.parser === 'hermes' ? this.#hermes(false) : this.#json(false);
  }

  end(): ParsedOutput {
    return this.parser === 'hermes' ? this.#hermes(true) : this.#json(true);
  }

  #hermes(isEnd: boolean): ParsedOutput {
    const out: ParsedOutput = { content: '', calls: [] };
    for (;;) {
      if (this.#inCall) {
        const close = this.#held.indexOf(HERMES_CLOSE);
        if (close < 0 && !isEnd) return out;
        const inner = close < 0 ? this.#held : this.#held.slice(0, close);
        const call = parseHermesBlock(inner);
        if (call) out.calls.push(call);
        else out.content += HERMES_OPEN + inner + (close < 0 ? '' : HERMES_CLOSE);
        this.#held = close < 0 ? '' : this.#held.slice(close + HERMES_CLOSE.length);
        this.#inCall = false;
        continue;
      }
      const open = this.#held.indexOf(HERMES_OPEN);
      if (open >= 0) {
        out.content += this.#held.slice(0, open);
        this.#held = this.#held.slice(open + HERMES_OPEN.length);
        this.#inCall = true;
        continue;
      }
      // release all but a tail that may be the start of <tool_call>
      let keep = 0;
      for (let k = Math.min(HERMES_OPEN.length - 1, this.#held.length); k > 0 && !isEnd; k--) {
        if (HERMES_OPEN.startsWith(this.#held.slice(-k))) {
          keep = k;
          break;
        }
      }
      out.content += this.#held.slice(0, this.#held.length - keep);
      this.#held = this.#held.slice(this.#held.length - keep);
      return out;
    }
  }

  #json(isEnd: boolean): ParsedOutput {
    if (this.#mode === 'undecided') {
      const t = this.#held.trimStart();
      const mayBeCall = t === '' || t.startsWith('{') || t.startsWith('[') || JSON_PREFIXES.some((p) => p.startsWith(t) || t.startsWith(p));
      if (!mayBeCall) this.#mode = 'content';
      else if (t !== '') this.#mode = 'calls';
    }
    if (this.#mode === 'content') {
      const content = this.#held;
      this.#held = '';
      return { content, calls: [] };
    }
    if (!isEnd) return { content: '', calls: [] };
    const calls = parseJsonCalls(this.#held);
    const out = calls ? { content: '', calls } : { content: this.#held, calls: [] };
    this.#held = '';
    return out;
  }
}

// Instructions for templates that do not render tools themselves (their text is weft's own).
export function toolInstructions(parser: ToolParserName, tools: readonly ToolFunction[]): string {
  const list = tools.map((f) => JSON.stringify({ type: 'function', function: f })).join('\n');
  if (parser === 'hermes')
    return (
      `You may call these functions:\n<tools>\n${list}\n</tools>\n` +
      `To call one, answer with ${HERMES_OPEN}{"name": …, "arguments": {…}}${HERMES_CLOSE}`
    );
  if (parser === 'llama3_json') return `You may call these functions:\n${list}\nTo call one, answer with only {"name": …, "parameters": {…}}`;
  return `You may call these functions:\n${list}\nTo call them, answer with [TOOL_CALLS] [{"name": …, "arguments": {…}}]`;
}

// A past assistant turn's calls, written the way the format writes them (for templates without tool support).
export function callsAsText(parser: ToolParserName, calls: readonly ParsedToolCall[]): string {
  const objs = calls.map((c) => ({ name: c.name, [parser === 'llama3_json' ? 'parameters' : 'arguments']: JSON.parse(c.arguments) as unknown }));
  if (parser === 'hermes') return objs.map((o) => `${HERMES_OPEN}\n${JSON.stringify(o)}\n${HERMES_CLOSE}`).join('\n');
  if (parser === 'llama3_json') return objs.map((o) => JSON.stringify(o)).join('; ');
  return `[TOOL_CALLS] ${JSON.stringify(objs)}`;
}

// A tool result, for templates without a tool role.
export const toolResultAsText = (content: string) => `<tool_response>\n${content}\n</tool_response>`;
