// The validator's thread: builds each spec's grammar in its own xgrammar instance (a 50-property
// schema takes ~70 ms, which the event loop should not wait through) and answers with ok or the
// typed error as data. One spec at a time: an abort breaks the instance, and the next spec gets a
// fresh one.
import { parentPort } from 'node:worker_threads';

import { WeftError, toErrorData, type ErrorCode, type ErrorData } from '../errors.js';
import { Lazy } from './lazy.js';
import { grammarOf } from './spec-grammar.js';
import type { ConstraintSpec } from './types.js';
import { XgrammarAbort, XgrammarInstance } from './xgrammar-wasm.js';

export interface ValidateRequest {
  id: number;
  spec: ConstraintSpec;
}

export interface ValidateReply {
  id: number;
  error?: ErrorData;
}

const CODES: Record<ConstraintSpec['type'], ErrorCode> = {
  json_object: 'WEFT_ERR_REQ_BAD_JSON_SCHEMA',
  json_schema: 'WEFT_ERR_REQ_BAD_JSON_SCHEMA',
  regex: 'WEFT_ERR_REQ_BAD_REGEX',
  choice: 'WEFT_ERR_REQ_BAD_CHOICE',
  grammar: 'WEFT_ERR_REQ_BAD_GRAMMAR',
  token_ids: 'WEFT_ERR_REQ_INVALID_TOKEN_ID',
  bad_words: 'WEFT_ERR_REQ_INVALID',
};

const instance = new Lazy(() => XgrammarInstance.create());
let queue: Promise<unknown> = Promise.resolve();

async function check(spec: ConstraintSpec): Promise<void> {
  const xg = await instance.get();
  try {
    const grammar = await xg.run((api) => grammarOf(api, spec));
    grammar.dispose();
  } catch (e) {
    if (xg.isBroken) instance.reset();
    if (e instanceof XgrammarAbort) throw new WeftError(CODES[spec.type], `${spec.type.replace('_', ' ')}: ${e.detail}`);
    throw e;
  }
}

parentPort?.on('message', (req: ValidateRequest) => {
  queue = queue
    .then(() => check(req.spec))
    .then(
      () => parentPort!.postMessage({ id: req.id } satisfies ValidateReply),
      (e: unknown) => parentPort!.postMessage({ id: req.id, error: toErrorData(e) } satisfies ValidateReply),
    );
});
