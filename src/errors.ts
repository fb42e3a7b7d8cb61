// Every error weft can raise, declared once with its HTTP status.
// Codes are WEFT_ERR_<AREA>_<WHAT>; the HTTP layer renders { error: { message, type, code } }.

export interface ErrorSpec {
  readonly status: number;
  readonly type: string;
}

export const ERRORS = {
  // model files and formats
  WEFT_ERR_MODEL_NOT_FOUND: { status: 500, type: 'model_error' },
  WEFT_ERR_MODEL_UNSUPPORTED_ARCH: { status: 500, type: 'model_error' },
  WEFT_ERR_MODEL_UNSUPPORTED_DTYPE: { status: 500, type: 'model_error' },
  WEFT_ERR_MODEL_CORRUPT: { status: 500, type: 'model_error' },
  WEFT_ERR_MODEL_SHAPE_MISMATCH: { status: 500, type: 'model_error' },
  WEFT_ERR_MODEL_MISSING_TENSOR: { status: 500, type: 'model_error' },
  WEFT_ERR_MODEL_BAD_CONFIG: { status: 500, type: 'model_error' },
  WEFT_ERR_MODEL_TOKENIZER: { status: 500, type: 'model_error' },
  WEFT_ERR_MODEL_UNSUPPORTED: { status: 500, type: 'model_error' }, // a Hub repository without files weft reads
  WEFT_ERR_MODEL_HUB: { status: 500, type: 'model_error' }, // the Hub unreachable or answering an error
  WEFT_ERR_MODEL_HUB_AUTH: { status: 500, type: 'model_error' }, // 401/403: a gated or private model without HF_TOKEN
  // native engine
  WEFT_ERR_ENGINE_NATIVE_LOAD: { status: 500, type: 'engine_error' },
  WEFT_ERR_ENGINE_BAD_INPUT: { status: 500, type: 'engine_error' },
  WEFT_ERR_ENGINE_OUT_OF_MEMORY: { status: 503, type: 'engine_error' },
  WEFT_ERR_ENGINE_INTERNAL: { status: 500, type: 'engine_error' },
  WEFT_ERR_ENGINE_NO_DEVICE: { status: 500, type: 'engine_error' },
  WEFT_ERR_ENGINE_WORKER_DIED: { status: 500, type: 'engine_error' },
  // configuration and command line
  WEFT_ERR_CONFIG_INVALID: { status: 500, type: 'config_error' },
  // scheduler: admission of a request to an engine instance
  WEFT_ERR_SCHED_QUEUE_FULL: { status: 429, type: 'overloaded_error' },
  WEFT_ERR_SCHED_TOO_LONG: { status: 400, type: 'invalid_request_error' },
  WEFT_ERR_SCHED_INVALID_PARAMS: { status: 400, type: 'invalid_request_error' },
  WEFT_ERR_SCHED_DUPLICATE_ID: { status: 400, type: 'invalid_request_error' },
  // HTTP layer: transport-level problems with a request
  WEFT_ERR_HTTP_NOT_FOUND: { status: 404, type: 'not_found_error' },
  WEFT_ERR_HTTP_BAD_JSON: { status: 400, type: 'invalid_request_error' },
  WEFT_ERR_HTTP_EMPTY_BODY: { status: 400, type: 'invalid_request_error' },
  WEFT_ERR_HTTP_BODY_TOO_LARGE: { status: 413, type: 'invalid_request_error' },
  WEFT_ERR_HTTP_UNSUPPORTED_MEDIA_TYPE: { status: 415, type: 'invalid_request_error' },
  WEFT_ERR_HTTP_NOT_READY: { status: 503, type: 'unavailable_error' },
  WEFT_ERR_HTTP_SHUTTING_DOWN: { status: 503, type: 'unavailable_error' },
  WEFT_ERR_HTTP_INTERNAL: { status: 500, type: 'internal_error' },
  WEFT_ERR_HTTP_FORBIDDEN: { status: 403, type: 'permission_error' },
  // the connection: Node's parser and timers, slow clients, shutdown
  WEFT_ERR_HTTP_REQUEST_TIMEOUT: { status: 408, type: 'timeout_error' },
  WEFT_ERR_HTTP_HEADERS_TOO_LARGE: { status: 431, type: 'invalid_request_error' },
  WEFT_ERR_HTTP_BAD_REQUEST: { status: 400, type: 'invalid_request_error' },
  WEFT_ERR_HTTP_WRITE_TIMEOUT: { status: 408, type: 'timeout_error' }, // logged and counted: the client is not reading
  WEFT_ERR_HTTP_SHUTDOWN_ABORTED: { status: 503, type: 'unavailable_error' },
  // authentication (Bearer API keys)
  WEFT_ERR_AUTH_MISSING_KEY: { status: 401, type: 'authentication_error' },
  WEFT_ERR_AUTH_INVALID_KEY: { status: 401, type: 'authentication_error' },
  // request content: schema violations and values the schema cannot judge
  WEFT_ERR_REQ_INVALID: { status: 400, type: 'invalid_request_error' },
  WEFT_ERR_REQ_NO_RERANKER: { status: 400, type: 'invalid_request_error' },
  WEFT_ERR_REQ_NO_EMBEDDING_MODEL: { status: 400, type: 'invalid_request_error' },
  WEFT_ERR_REQ_PROMPT_TOO_LONG: { status: 400, type: 'invalid_request_error' },
  WEFT_ERR_REQ_INVALID_TOKEN_ID: { status: 400, type: 'invalid_request_error' },
  WEFT_ERR_REQ_BAD_MESSAGES: { status: 400, type: 'invalid_request_error' },
  WEFT_ERR_REQ_CHAT_TEMPLATE: { status: 400, type: 'invalid_request_error' },
  WEFT_ERR_REQ_UNKNOWN_MODEL: { status: 404, type: 'not_found_error' },
  WEFT_ERR_REQ_RESPONSE_NOT_FOUND: { status: 404, type: 'not_found_error' }, // /v1/responses: not stored, deleted or evicted
  WEFT_ERR_REQ_NO_RESPONSE_STORE: { status: 400, type: 'invalid_request_error' }, // background or previous_response_id with the store off
  WEFT_ERR_REQ_TIMEOUT: { status: 504, type: 'timeout_error' },
  // structured output and tool calling: a constraint the grammar engine cannot take, named by kind
  WEFT_ERR_REQ_BAD_JSON_SCHEMA: { status: 400, type: 'invalid_request_error' },
  WEFT_ERR_REQ_BAD_REGEX: { status: 400, type: 'invalid_request_error' },
  WEFT_ERR_REQ_BAD_GRAMMAR: { status: 400, type: 'invalid_request_error' },
  WEFT_ERR_REQ_BAD_CHOICE: { status: 400, type: 'invalid_request_error' },
  WEFT_ERR_REQ_CONFLICTING_CONSTRAINTS: { status: 400, type: 'invalid_request_error' },
  WEFT_ERR_REQ_BAD_TOOLS: { status: 400, type: 'invalid_request_error' },
  WEFT_ERR_REQ_BAD_TOOL_CHOICE: { status: 400, type: 'invalid_request_error' },
  WEFT_ERR_REQ_TOO_MANY_SEQUENCES: { status: 400, type: 'invalid_request_error' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export class WeftError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly type: string;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WeftError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.type = ERRORS[code].type;
  }
}

export function isWeftError(e: unknown): e is WeftError {
  return e instanceof WeftError;
}

// Errors cross worker threads as plain data; rebuild the typed error on the other side.
export interface ErrorData {
  code: ErrorCode;
  message: string;
}

export function toErrorData(e: unknown): ErrorData {
  if (isWeftError(e)) return { code: e.code, message: e.message };
  return { code: 'WEFT_ERR_ENGINE_INTERNAL', message: e instanceof Error ? e.message : String(e) };
}

export function fromErrorData(d: ErrorData): WeftError {
  const code = (d.code in ERRORS ? d.code : 'WEFT_ERR_ENGINE_INTERNAL') as ErrorCode;
  return new WeftError(code, d.message);
}
