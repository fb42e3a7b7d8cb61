// The route-side check of a ConstraintSpec, before any work: a schema, regex, grammar or choice
// list the grammar engine cannot take becomes a 400 with a code naming its kind. The quick checks
// (JSON, the JSON Schema meta-schema, an empty choice list) run here; the grammar itself is built
// in a small worker thread (validate-worker.ts) exactly as the engine worker will build it, minus
// the vocabulary. Specs that passed are remembered (an agent sends the same tools every request).
import { Worker } from 'node:worker_threads';

import { Ajv } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';

import { WeftError, fromErrorData } from '../errors.js';
import { parseJsonSchema } from './json-schema.js';
import { specKey } from './spec-grammar.js';
import type { ConstraintSpec } from './types.js';
import type { ValidateReply, ValidateRequest } from './validate-worker.js';

const WORKER_FILE = new URL(`./validate-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);
const MAX_REMEMBERED = 512;

// Meta-schema validation: draft-07 for schemas that say so, 2020-12 for the rest. `$schema` itself
// is left out (ajv knows only its own drafts' URIs).
const drafts = { draft07: new Ajv({ strict: false, validateFormats: false }), draft2020: new Ajv2020({ strict: false, validateFormats: false }) };

export function checkMetaSchema(schema: unknown): void {
  if (typeof schema !== 'object' || schema === null) return;
  const { $schema, ...rest } = schema as Record<string, unknown>;
  const ajv = typeof $schema === 'string' && /draft-0[4-7]/.test($schema) ? drafts.draft07 : drafts.draft2020;
  if (!ajv.validateSchema(rest))
    throw new WeftError('WEFT_ERR_REQ_BAD_JSON_SCHEMA', `not a valid JSON Schema: ${ajv.errorsText(ajv.errors, { dataVar: 'schema' })}`);
}

export class ConstraintValidator {
  #worker: Worker | null = null;
  #nextId = 0;
  readonly #pending = new Map<number, { resolve(): void; reject(e: Error): void }>();
  readonly #passed = new Set<string>(); // insertion order = least recently used first

  // Resolves when the spec is usable; rejects with a 400 WeftError naming the problem.
  async check(spec: ConstraintSpec): Promise<void> {
    if (spec.type === 'token_ids') return; // ids are checked against the vocabulary by the generation service
    if (spec.type === 'bad_words') return; // the tokenizer's own ids
    const key = specKey(spec);
    if (this.#passed.has(key)) {
      this.#passed.delete(key);
      this.#passed.add(key);
      return;
    }
    if (spec.type === 'json_schema') checkMetaSchema(parseJsonSchema(spec.schema));
    if (spec.type === 'choice' && spec.choices.length === 0) throw new WeftError('WEFT_ERR_REQ_BAD_CHOICE', 'choice: the list of choices is empty');
    await this.#inWorker(spec);
    this.#passed.add(key);
    if (this.#passed.size > MAX_REMEMBERED) this.#passed.delete(this.#passed.values().next().value as string);
  }

  #inWorker(spec: ConstraintSpec): Promise<void> {
    const worker = this.#worker ?? this.#start();
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.ref(); // a check in flight keeps the process alive; an idle validator does not
      worker.postMessage({ id, spec } satisfies ValidateRequest);
    });
  }

  #start(): Worker {
    const worker = new Worker(WORKER_FILE);
    worker.unref();
    worker.on('message', (r: ValidateReply) => {
      const p = this.#pending.get(r.id);
      this.#pending.delete(r.id);
      if (this.#pending.size === 0) worker.unref();
      if (r.error) p?.reject(fromErrorData(r.error));
      else p?.resolve();
    });
    const fail = (why: string) => {
      if (this.#worker === worker) this.#worker = null;
      for (const p of this.#pending.values()) p.reject(new WeftError('WEFT_ERR_ENGINE_INTERNAL', `the constraint validator stopped: ${why}`));
      this.#pending.clear();
    };
    worker.on('error', (e) => fail(e.message));
    worker.on('exit', (code) => fail(`exit code ${code}`));
    this.#worker = worker;
    return worker;
  }

  async close(): Promise<void> {
    await this.#worker?.terminate();
    this.#worker = null;
  }
}

// The server's validator (its thread starts on the first constrained request).
export const constraintValidator = new ConstraintValidator();
