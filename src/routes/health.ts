// Liveness (/health: the process answers), readiness (/ready: model loaded, workers up; 503
// before), the server's version (/version, as vLLM's), and Prometheus metrics (/metrics).
import type { FastifyInstance } from 'fastify';

import { errorBody } from './error-body.js';
import { WeftError } from '../errors.js';
import { packageVersion } from '../package-path.js';

export async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/health', { schema: { summary: 'Liveness: 200 while the process serves', tags: ['health'] } }, async () => ({ status: 'ok' }));

  app.get(
    '/ready',
    { schema: { summary: 'Readiness: 200 once the model is loaded and the workers are up, else 503', tags: ['health'] } },
    async (_request, reply) => {
      const svc = app.weft.maybeService;
      if (!svc || app.weft.isShuttingDown) {
        const e = app.weft.isShuttingDown
          ? new WeftError('WEFT_ERR_HTTP_SHUTTING_DOWN', 'the server is shutting down')
          : new WeftError('WEFT_ERR_HTTP_NOT_READY', 'the model is still loading');
        app.weft.metrics.countError(e.code);
        const progress = app.weft.isShuttingDown ? null : app.weft.loadProgress;
        return reply
          .status(503)
          .header('retry-after', '1')
          .send({ status: 'loading', ...(progress ? { progress } : {}), ...errorBody(e) });
      }
      const m = svc.model;
      return {
        status: 'ready',
        model: m.id,
        ...(app.weft.limits.exposeModelPath ? { path: m.path } : {}),
        is_demo: m.isDemo,
        backend: m.backend,
        dtype: m.dtype,
        num_instances: m.numInstances,
        max_model_len: m.maxModelLen,
        chat_template: m.chatTemplate ? 'model' : 'plain',
      };
    },
  );

  const version = await packageVersion();
  app.get('/version', { schema: { summary: "weft's version", tags: ['health'] } }, async () => ({ version }));

  app.get('/metrics', { schema: { summary: 'Prometheus metrics (text format)', tags: ['health'] } }, async (_request, reply) => {
    const text = await app.weft.metrics.text();
    return reply.header('content-type', app.weft.metrics.contentType).send(text);
  });
}
