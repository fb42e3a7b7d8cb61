// Chat messages → prompt text: the model's Jinja chat template (tokenizer_config.json's
// chat_template, or GGUF tokenizer.chat_template) through @huggingface/jinja, or, for models
// without one, the plain fallback documented in the README:
//   "<role>: <content>\n" per message, then "assistant:" when a reply is wanted.
import { Template } from '@huggingface/jinja';

import { WeftError } from './errors.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export const PLAIN_FALLBACK = 'plain';

// The seed's form: strings alternating user / assistant, the last one from the user.
export function normalizeMessages(messages: readonly (string | { role: string; content: string | { type: string; text?: string }[] })[]): ChatMessage[] {
  if (messages.length === 0) throw new WeftError('WEFT_ERR_REQ_BAD_MESSAGES', 'messages must not be empty');
  const isStrings = messages.every((m) => typeof m === 'string');
  if (isStrings) {
    if (messages.length % 2 === 0) throw new WeftError('WEFT_ERR_REQ_BAD_MESSAGES', 'a list of strings alternates user / assistant and must end with a user turn (odd length)');
    return (messages as string[]).map((content, i) => ({ role: i % 2 === 0 ? 'user' : 'assistant', content }));
  }
  if (messages.some((m) => typeof m === 'string')) throw new WeftError('WEFT_ERR_REQ_BAD_MESSAGES', 'messages mixes strings and {role, content} objects');
  return (messages as { role: string; content: string | { type: string; text?: string }[] }[]).map((m, i) => {
    if (!['system', 'user', 'assistant'].includes(m.role)) throw new WeftError('WEFT_ERR_REQ_BAD_MESSAGES', `messages[${i}].role "${m.role}" is not system, user or assistant`);
    const content = typeof m.content === 'string' ? m.content : m.content.map((p) => {
      if (p.type !== 'text' || typeof p.text !== 'string') throw new WeftError('WEFT_ERR_REQ_BAD_MESSAGES', `messages[${i}]: only text content parts are supported`);
      return p.text;
    }).join('');
    return { role: m.role as ChatMessage['role'], content };
  });
}

export class ChatTemplate {
  readonly #template: Template | null;
  readonly source: 'model' | typeof PLAIN_FALLBACK;

  constructor(template: string | null, private readonly specials: { bosToken: string; eosToken: string }) {
    let t: Template | null = null;
    if (template) {
      try {
        t = new Template(template);
      } catch {
        t = null;  // an unparsable template falls back to plain text rather than failing every chat
      }
    }
    this.#template = t;
    this.source = t ? 'model' : PLAIN_FALLBACK;
  }

  // Templates that start with the BOS text add it themselves; otherwise the tokenizer adds it.
  addSpecialTokensFor(rendered: string): boolean {
    return !(this.specials.bosToken && rendered.startsWith(this.specials.bosToken));
  }

  render(messages: readonly ChatMessage[], addGenerationPrompt = true): string {
    if (!this.#template) return messages.map((m) => `${m.role}: ${m.content}\n`).join('') + (addGenerationPrompt ? 'assistant:' : '');
    try {
      return this.#template.render({
        messages, add_generation_prompt: addGenerationPrompt, bos_token: this.specials.bosToken, eos_token: this.specials.eosToken,
      });
    } catch (e) {
      throw new WeftError('WEFT_ERR_REQ_CHAT_TEMPLATE', `the chat template failed on these messages: ${(e as Error).message}`);
    }
  }
}
