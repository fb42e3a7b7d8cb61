// OpenAPI 3 generated from the route schemas (@fastify/swagger), served with Swagger UI at
// /docs (assets come from the package: works offline) and as JSON at /docs/json.
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';

import { ERRORS } from '../errors.js';

const errorSchema = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: { message: { type: 'string' }, type: { type: 'string' }, code: { type: 'string', description: 'a WEFT_ERR_… code' } },
    },
  },
} as const;

// The error responses every route documents, one per HTTP status, listing the codes that status
// carries (from the one error table). Added to the OpenAPI document only (a transform): route
// responses are not serialized through these schemas.
function errorResponses(): Record<string, unknown> {
  const byStatus = new Map<number, string[]>();
  for (const [code, spec] of Object.entries(ERRORS)) byStatus.set(spec.status, [...(byStatus.get(spec.status) ?? []), code]);
  return Object.fromEntries(
    [...byStatus]
      .sort(([a], [b]) => a - b)
      .map(([status, codes]) => [
        status,
        {
          description: `{ error: { message, type, code } } with code one of: ${codes.join(', ')}`,
          ...errorSchema,
        },
      ]),
  );
}

// Must run before the routes are registered: @fastify/swagger collects them as they are added.
export async function registerDocs(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'weft',
        description:
          'LLM inference server: seed routes, OpenAI-compatible routes, health and metrics. Errors are { error: { message, type, code } }.',
        version: '0.1.0',
      },
      components: { schemas: { Error: errorSchema }, securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
      tags: [{ name: 'generate' }, { name: 'openai' }, { name: 'tokenize' }, { name: 'rerank' }, { name: 'embeddings' }, { name: 'health' }],
    },
    transform: ({ schema, url }) => ({
      schema: { ...schema, response: { 200: { description: 'OK: JSON, or an SSE stream (text/event-stream) when streaming' }, ...errorResponses() } },
      url,
    }),
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
}
