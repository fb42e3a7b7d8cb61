// POST /v1/rerank (and /rerank, /v2/rerank): documents scored against a query by the reranker
// model (--reranker-model), in the shape Cohere, Jina and vLLM clients read:
// {id, model, usage, results: [{index, relevance_score, document?}]}, best first.
import { randomUUID } from 'node:crypto';

import type { FastifyInstance } from 'fastify';

import { WeftError } from '../errors.js';
import { ModelReranker } from '../rerank.js';
import { rerankBody } from './schemas.js';

interface RerankBody {
  model?: string;
  query: string;
  documents: (string | { text: string })[];
  top_n?: number;
  return_documents?: boolean;
  instruction?: string;
}

export async function rerankRoutes(app: FastifyInstance): Promise<void> {
  for (const url of ['/v1/rerank', '/rerank', '/v2/rerank']) {
    app.post<{ Body: RerankBody }>(
      url,
      { schema: { body: rerankBody, tags: ['rerank'], summary: 'Rerank documents against a query' } },
      async (request) => {
        const r = app.weft.reranker;
        if (!(r instanceof ModelReranker))
          throw new WeftError('WEFT_ERR_REQ_NO_RERANKER', 'this server has no reranker model: start it with --reranker-model PATH');
        const b = request.body;
        const docs = b.documents.map((d) => (typeof d === 'string' ? d : d.text));
        const ids = await Promise.all(docs.map((d) => r.promptIds(b.query, d, b.instruction)));
        const scores = await Promise.all(ids.map((x) => r.score(x)));
        const ranked = scores
          .map((s, index) => ({ index, s }))
          .sort((x, y) => y.s - x.s || x.index - y.index)
          .slice(0, b.top_n ?? docs.length);
        return {
          id: `rerank-${randomUUID()}`,
          model: b.model ?? r.name,
          usage: { total_tokens: ids.reduce((a, x) => a + x.length, 0) },
          results: ranked.map(({ index, s }) => ({
            index,
            relevance_score: s,
            ...(b.return_documents === false ? {} : { document: { text: docs[index] } }),
          })),
        };
      },
    );
  }
}
