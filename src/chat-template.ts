// Chat messages → prompt text: the model's Jinja chat template (tokenizer_config.json's
// chat_template, or GGUF tokenizer.chat_template) through @huggingface/jinja, or, for models
// without one, the plain fallback documented in the README:
//   "<role>: <content>\n" per message, then "assistant:" when a reply is wanted.
import { Template } from '@huggingface/jinja';

import { WeftError } from './errors.js';

// An assistant turn's tool call as templates read it (transformers' convention: arguments as an
// object when they are JSON).
export interface ChatToolCall {
  id?: string;
  type: 'function';
  function: { name: string; arguments: unknown };
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
  tool_calls?: ChatToolCall[]; // assistant
  tool_call_id?: string; // tool
  name?: string;
}

export type MessageInput =
  | string
  | {
      role: string;
      content?: string | { type: string; text?: string }[] | null;
      name?: string;
      tool_calls?: { id?: string; type?: string; function: { name: string; arguments: string } }[];
      tool_call_id?: string;
    };

const ROLES = ['system', 'user', 'assistant', 'tool'];
// OpenAI's newer name for the system role: templates know only 'system'.
const ROLE_ALIASES: Record<string, ChatMessage['role']> = { developer: 'system' };

function parsedArguments(args: string): unknown {
  try {
    return JSON.parse(args);
  } catch {
    return args;
  }
}

export const PLAIN_FALLBACK = 'plain';

// The seed's form: a list of strings is the user's turns, oldest first (assistant turns need the
// {role, content} form). `POST /chat {"messages": ["Hello", "Tell me a story."]}` is two user turns.
export function normalizeMessages(messages: readonly MessageInput[]): ChatMessage[] {
  if (messages.length === 0) throw new WeftError('WEFT_ERR_REQ_BAD_MESSAGES', 'messages must not be empty');
  if (messages.every((m) => typeof m === 'string')) return (messages as string[]).map((content) => ({ role: 'user', content }));
  if (messages.some((m) => typeof m === 'string'))
    throw new WeftError('WEFT_ERR_REQ_BAD_MESSAGES', 'messages mixes strings and {role, content} objects');
  return (messages as Exclude<MessageInput, string>[]).map((raw, i) => {
    const m = ROLE_ALIASES[raw.role] ? { ...raw, role: ROLE_ALIASES[raw.role] } : raw;
    if (!ROLES.includes(m.role))
      throw new WeftError('WEFT_ERR_REQ_BAD_MESSAGES', `messages[${i}].role "${m.role}" is not system, user, assistant or tool`);
    const calls = m.tool_calls ?? [];
    if (calls.length > 0 && m.role !== 'assistant')
      throw new WeftError('WEFT_ERR_REQ_BAD_MESSAGES', `messages[${i}]: only assistant turns carry tool_calls`);
    if (m.content == null && calls.length === 0) throw new WeftError('WEFT_ERR_REQ_BAD_MESSAGES', `messages[${i}] has no content`);
    const content =
      m.content == null
        ? ''
        : typeof m.content === 'string'
          ? m.content
          : m.content
              .map((p) => {
                if (p.type !== 'text' || typeof p.text !== 'string')
                  throw new WeftError('WEFT_ERR_REQ_BAD_MESSAGES', `messages[${i}]: only text content parts are supported`);
                return p.text;
              })
              .join('');
    return {
      role: m.role as ChatMessage['role'],
      content,
      ...(calls.length > 0
        ? {
            tool_calls: calls.map((c) => ({
              ...(c.id ? { id: c.id } : {}),
              type: 'function' as const,
              function: { name: c.function.name, arguments: parsedArguments(c.function.arguments) },
            })),
          }
        : {}),
      ...(m.tool_call_id !== undefined ? { tool_call_id: m.tool_call_id } : {}),
      ...(m.name !== undefined ? { name: m.name } : {}),
    };
  });
}

// How a chat renders, past its messages: `tools` (OpenAI-shaped {type: "function", function}
// entries, for templates that render them), `addGenerationPrompt` (the assistant turn's header at
// the end; default true), `continueFinalMessage` (vLLM's and transformers': the last message left
// open, so the model continues it; needs addGenerationPrompt false), and `kwargs`, further
// variables for the template (vLLM's chat_template_kwargs, e.g. Qwen3's enable_thinking).
export interface RenderOptions {
  tools?: readonly object[];
  addGenerationPrompt?: boolean;
  continueFinalMessage?: boolean;
  kwargs?: Readonly<Record<string, unknown>>;
}

export class ChatTemplate {
  readonly #template: Template | null;
  readonly source: 'model' | typeof PLAIN_FALLBACK;
  readonly #supportsTools: boolean;

  constructor(
    template: string | null,
    private readonly specials: { bosToken: string; eosToken: string },
  ) {
    let t: Template | null = null;
    if (template) {
      try {
        t = new Template(template);
      } catch {
        t = null; // an unparsable template falls back to plain text rather than failing every chat
      }
    }
    this.#template = t;
    this.source = t ? 'model' : PLAIN_FALLBACK;
    this.#supportsTools = t !== null && /\btools\b/.test(template ?? '');
  }

  // Whether the template renders the `tools` variable itself (as transformers passes it).
  get supportsTools(): boolean {
    return this.#supportsTools;
  }

  // Templates that start with the BOS text add it themselves; otherwise the tokenizer adds it.
  addSpecialTokensFor(rendered: string): boolean {
    return !(this.specials.bosToken && rendered.startsWith(this.specials.bosToken));
  }

  // Renders the messages; where the template refuses consecutive user turns (templates that
  // demand user/assistant alternation raise an exception), they are joined into one, by lines.
  renderJoiningUserTurns(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    try {
      return this.render(messages, options);
    } catch (e) {
      const joined = joinConsecutiveUserTurns(messages);
      if (joined.length === messages.length) throw e;
      return this.render(joined, options);
    }
  }

  render(
    messages: readonly ChatMessage[],
    { tools, addGenerationPrompt = true, continueFinalMessage = false, kwargs = {} }: RenderOptions = {},
  ): string {
    const last = messages.at(-1);
    if (continueFinalMessage) {
      if (addGenerationPrompt)
        throw new WeftError(
          'WEFT_ERR_REQ_INVALID',
          'continue_final_message and add_generation_prompt cannot both be true: set add_generation_prompt to false',
        );
      if (!last?.content.trim()) throw new WeftError('WEFT_ERR_REQ_INVALID', 'continue_final_message needs a last message with content to continue');
    }
    const text = this.#renderWhole(messages, addGenerationPrompt, tools, kwargs);
    return continueFinalMessage ? cutAfterFinalMessage(text, last!.content) : text;
  }

  #renderWhole(messages: readonly ChatMessage[], addGenerationPrompt: boolean, tools: readonly object[] | undefined, kwargs: object): string {
    if (!this.#template) return messages.map((m) => `${m.role}: ${m.content}\n`).join('') + (addGenerationPrompt ? 'assistant:' : '');
    try {
      // the request's variables first: they cannot replace the messages or what weft sets
      return this.#template.render({
        ...kwargs,
        messages,
        add_generation_prompt: addGenerationPrompt,
        bos_token: this.specials.bosToken,
        eos_token: this.specials.eosToken,
        ...(tools && tools.length > 0 ? { tools } : {}),
      });
    } catch (e) {
      throw new WeftError('WEFT_ERR_REQ_CHAT_TEMPLATE', `the chat template failed on these messages: ${(e as Error).message}`);
    }
  }
}

// The rendered chat up to the end of its last message's content, dropping what the template
// writes after it (its end-of-turn): transformers' rule, the content found trimmed, its trailing
// whitespace kept where the template kept it.
function cutAfterFinalMessage(text: string, content: string): string {
  const trimmed = content.trim();
  const at = text.lastIndexOf(trimmed);
  if (at < 0)
    throw new WeftError(
      'WEFT_ERR_REQ_CHAT_TEMPLATE',
      'continue_final_message: the chat template does not write the last message as given, so it cannot be left open',
    );
  const kept = content.trimStart();
  return text.slice(0, at + (text.startsWith(kept, at) ? kept.length : trimmed.length));
}

function joinConsecutiveUserTurns(messages: readonly ChatMessage[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  for (const m of messages) {
    const last = out[out.length - 1];
    if (last && last.role === 'user' && m.role === 'user') out[out.length - 1] = { role: 'user', content: `${last.content}\n${m.content}` };
    else out.push({ ...m });
  }
  return out;
}
