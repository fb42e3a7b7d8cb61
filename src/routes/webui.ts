// GET /: the chat page (src/webui/index.html), one self-contained file read once at startup.
// It is served with a Content-Security-Policy that allows only its own inline script (by hash)
// and requests to this server, so even a rendering slip could not run model-written markup.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

import type { FastifyInstance } from 'fastify';

import { WeftError } from '../errors.js';
import { findInPackage } from '../package-path.js';

// The page, beside the package: src/webui/index.html (from src/routes/ or dist/src/routes/).
export function findWebuiPath(): string {
  const path = findInPackage(import.meta.url, 'src', 'webui', 'index.html');
  if (path) return path;
  throw new WeftError('WEFT_ERR_CONFIG_INVALID', 'src/webui/index.html not found beside the package: reinstall weft, or start it with --no-webui');
}

function contentSecurityPolicy(html: string): string {
  const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => `'sha256-${createHash('sha256').update(m[1]).digest('base64')}'`);
  return [
    `default-src 'none'`,
    `script-src ${scripts.join(' ')}`,
    `style-src 'unsafe-inline'`,
    `connect-src 'self'`,
    `img-src 'self' data:`,
    `base-uri 'none'`,
    `form-action 'none'`,
    `frame-ancestors 'none'`,
  ].join('; ');
}

export async function webuiRoutes(app: FastifyInstance): Promise<void> {
  const html = await readFile(findWebuiPath(), 'utf8');
  const csp = contentSecurityPolicy(html);
  app.get('/', { schema: { summary: 'The chat page (HTML); off with --no-webui', tags: ['health'] } }, async (_request, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-cache')
      .header('content-security-policy', csp)
      .header('x-content-type-options', 'nosniff')
      .send(html),
  );
}
