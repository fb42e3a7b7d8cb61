// /tokenize (text or chat messages → ids and token strings) and /detokenize (ids → text).
import type { FastifyInstance } from 'fastify';

import { renderChat, renderOptionsOf, type ChatRenderFields } from './chat.js';
import { detokenizeBody, tokenizeBody } from './schemas.js';

interface TokenizeBody extends ChatRenderFields {
  text?: string;
  messages?: (string | { role: string; content: string })[];
  add_special_tokens?: boolean;
}

export async function tokenizeRoutes(app: FastifyInstance): Promise<void> {
  app.post<{ Body: TokenizeBody }>(
    '/tokenize',
    { schema: { body: tokenizeBody, tags: ['tokenize'], summary: 'Text or messages → token ids and strings' } },
    async (request) => {
      const svc = app.weft.service;
      const b = request.body;
      const addSpecial = b.add_special_tokens ?? true;
      let ids: number[];
      let prompt: string | undefined;
      if (b.messages !== undefined) ({ ids, text: prompt } = await renderChat(svc, b.messages, renderOptionsOf(b)));
      else ids = await svc.encode(b.text!, addSpecial);
      // tokens joined are the text of the ids (leading spaces kept; a character split over byte
      // tokens is on the token completing it), token_bytes each token's own UTF-8 bytes
      const tokens = svc.tokenizer.tokenStrings(ids);
      const token_bytes = ids.map((id) => [...svc.tokenizer.tokenBytes(id)]);
      return { ids, tokens, token_bytes, count: ids.length, max_model_len: svc.model.maxModelLen, ...(prompt !== undefined ? { prompt } : {}) };
    },
  );

  app.post<{ Body: { ids: number[]; skip_special_tokens?: boolean } }>(
    '/detokenize',
    { schema: { body: detokenizeBody, tags: ['tokenize'], summary: 'Token ids → text' } },
    async (request) => {
      const svc = app.weft.service;
      svc.checkTokenIds(request.body.ids, 'ids');
      return { text: await svc.tokenizer.decode(request.body.ids, request.body.skip_special_tokens ?? true) };
    },
  );
}
