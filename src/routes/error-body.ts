// One mapping from anything thrown to a WeftError, and from a WeftError to the body every
// error response has: { error: { message, type, code } } (the OpenAI shape, with our code).
import { ERRORS, WeftError, isWeftError, type ErrorCode } from '../errors.js';

export interface ErrorBody {
  error: { message: string; type: string; code: ErrorCode };
}

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'WEFT_ERR_HTTP_BAD_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'WEFT_ERR_HTTP_EMPTY_BODY',
  FST_ERR_CTP_BODY_TOO_LARGE: 'WEFT_ERR_HTTP_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'WEFT_ERR_HTTP_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'WEFT_ERR_HTTP_BAD_JSON',
  FST_ERR_NOT_FOUND: 'WEFT_ERR_HTTP_NOT_FOUND',
};

interface FastifyLikeError {
  code?: string;
  statusCode?: number;
  validation?: unknown[];
  validationContext?: string;
  message?: string;
}

// Fields other servers take that weft does not: what to use instead.
const UNSUPPORTED_FIELDS: Record<string, string> = {
  best_of: 'best_of is not supported: ask for n samples, or use_beam_search for the n best',
  functions: 'the legacy functions API is not supported: use tools',
  function_call: 'the legacy functions API is not supported: use tool_choice',
  suffix: 'suffix (insertion) is not supported',
  prompt_logprobs: 'prompt_logprobs is taken by /v1/completions and /v1/chat/completions only',
};

// An Ajv error that names a field (an unknown one, or one out of range), said with that name.
function validationMessage(fe: FastifyLikeError): string | undefined {
  const v = (fe.validation ?? [])[0] as { keyword?: string; instancePath?: string; params?: { additionalProperty?: string } } | undefined;
  const field = v?.params?.additionalProperty;
  if (v?.keyword !== 'additionalProperties' || !field) return undefined;
  const where = v.instancePath ? ` in ${v.instancePath.slice(1).replaceAll('/', '.')}` : '';
  return UNSUPPORTED_FIELDS[field] && !where ? UNSUPPORTED_FIELDS[field] : `unknown field "${field}"${where}`;
}

export function toWeftError(e: unknown, body?: unknown): WeftError {
  if (isWeftError(e)) return e;
  const fe = (e ?? {}) as FastifyLikeError;
  if (fe.validation) {
    if (fe.validationContext === 'body' && (body === undefined || body === null))
      return new WeftError('WEFT_ERR_HTTP_EMPTY_BODY', 'the request needs a JSON body');
    return new WeftError('WEFT_ERR_REQ_INVALID', validationMessage(fe) ?? fe.message ?? 'invalid request');
  }
  const mapped = fe.code ? FASTIFY_CODES[fe.code] : undefined;
  if (mapped) return new WeftError(mapped, fe.message ?? mapped);
  // the JSON body parser's own errors (and any other client error Fastify flags)
  if (typeof fe.statusCode === 'number' && fe.statusCode === 413)
    return new WeftError('WEFT_ERR_HTTP_BODY_TOO_LARGE', fe.message ?? 'body too large');
  // @fastify/static (the Swagger UI's assets) refusing a path: `..`, `//`, `.` segments
  if (fe.statusCode === 403) return new WeftError('WEFT_ERR_HTTP_FORBIDDEN', fe.message ?? 'forbidden');
  if (fe.statusCode === 404) return new WeftError('WEFT_ERR_HTTP_NOT_FOUND', fe.message ?? 'not found');
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500)
    return new WeftError('WEFT_ERR_HTTP_BAD_JSON', fe.message ?? 'bad request');
  return new WeftError('WEFT_ERR_HTTP_INTERNAL', e instanceof Error ? e.message : String(e));
}

export function errorBody(e: WeftError): ErrorBody {
  return { error: { message: e.message, type: ERRORS[e.code].type, code: e.code } };
}

// For errors after an SSE stream has begun: counted like any other, sent as a final frame.
export function streamErrorBody(metrics: { countError(code: string): void }, e: unknown): ErrorBody {
  const we = toWeftError(e);
  metrics.countError(we.code);
  return errorBody(we);
}
