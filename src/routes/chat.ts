// /chat: multi-turn chat rendered with the model's chat template (or the plain fallback),
// streamed like /stream unless `stream: false`. Also the prompt rendering the other chat
// routes (/v1/chat/completions, /tokenize with messages) share.
import type { FastifyInstance } from 'fastify';

import { ChatTemplate, normalizeMessages, type ChatMessage, type MessageInput, type RenderOptions } from '../chat-template.js';
import type { GenerationService } from '../generation.js';
import { resultBody, streamGeneration } from './generate.js';
import { toGenRequest, type SamplingFields } from './params.js';
import { chatBody } from './schemas.js';
import { onClientGone } from './sse.js';
import { constrain, type StructuredFields } from './structured.js';
import { promptMessages, type ToolPlan } from './tools.js';

const templates = new WeakMap<GenerationService, Promise<ChatTemplate>>();

function templateFor(svc: GenerationService): Promise<ChatTemplate> {
  let t = templates.get(svc);
  if (!t) {
    t = (async () => {
      const bos = svc.tokenizer.bosTokenId;
      const eos = svc.eosTokenId === null ? '' : await svc.tokenText(svc.eosTokenId);
      return new ChatTemplate(svc.model.chatTemplate, { bosToken: bos === null ? '' : await svc.tokenText(bos), eosToken: eos });
    })();
    templates.set(svc, t);
  }
  return t;
}

// vLLM's chat fields that shape the rendered prompt (OpenAI chat and /tokenize).
export interface ChatRenderFields {
  add_generation_prompt?: boolean;
  continue_final_message?: boolean;
  chat_template_kwargs?: Record<string, unknown> | null;
}

export const renderOptionsOf = (b: ChatRenderFields): Omit<RenderOptions, 'tools'> => ({
  addGenerationPrompt: b.add_generation_prompt ?? !b.continue_final_message,
  continueFinalMessage: b.continue_final_message ?? false,
  kwargs: b.chat_template_kwargs ?? {},
});

// messages → prompt text and ids (BOS added by the tokenizer unless the template wrote it).
// `tools`: a tool-calling plan (routes/tools.ts) whose functions the prompt shows.
export async function renderChat(
  svc: GenerationService,
  messages: readonly MessageInput[],
  options: Omit<RenderOptions, 'tools'> = {},
  tools?: ToolPlan,
): Promise<{ text: string; ids: number[]; messages: ChatMessage[] }> {
  const template = await templateFor(svc);
  const prompt = promptMessages(normalizeMessages(messages), tools, template.supportsTools);
  const norm = prompt.messages;
  const text = template.renderJoiningUserTurns(norm, { ...options, tools: prompt.tools });
  const ids = await svc.encode(text, template.addSpecialTokensFor(text));
  return { text, ids, messages: norm };
}

interface ChatBody extends SamplingFields, StructuredFields {
  messages: MessageInput[];
  stream?: boolean;
  logprobs?: number;
}

export async function chatRoutes(app: FastifyInstance): Promise<void> {
  app.post<{ Body: ChatBody }>(
    '/chat',
    { schema: { body: chatBody, tags: ['generate'], summary: 'Multi-turn chat (SSE unless stream is false)' } },
    async (request, reply) => {
      const svc = app.weft.service;
      const b = request.body;
      const { text, ids } = await renderChat(svc, b.messages);
      const req = await constrain(svc, toGenRequest(svc, ids, b, b.logprobs ?? -1, svc.model.maxModelLen), b);
      if (b.stream === false) {
        const gen = svc.start(req);
        onClientGone(reply, gen.abort);
        return resultBody(text, await gen.result, b.logprobs !== undefined);
      }
      await streamGeneration(app, request, reply, svc, req, text);
    },
  );
}
