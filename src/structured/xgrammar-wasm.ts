// The WASM build of xgrammar (@mlc-ai/web-xgrammar), loaded into the calling thread.
//
// Two facts about that package shape this file:
// - its lib/index.js is a UMD bundle inside a "type": "module" package, so `import` fails in Node;
//   the bundle is read and evaluated as a CommonJS function instead;
// - a failed C++ check (a bad schema, grammar or regex) calls abort(): the message goes to
//   printErr, a RuntimeError is thrown, and the instance is left unusable (the C++ stack is never
//   unwound: about 40 aborts later it faults). So an instance that aborted is marked broken and
//   never used again; `XgrammarInstance.create()` makes a fresh one (~10 ms: the bundle is parsed
//   and the WebAssembly module compiled once per thread, only instantiation repeats).
// One patch is applied to the bundle's text: the module factory is called with our own arguments,
// so that printErr is captured (the error message a client sees) and the compiled module reused.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

import type * as Xg from '@mlc-ai/web-xgrammar';

import { WeftError } from '../errors.js';
import { Lazy } from './lazy.js';

export type XgApi = Pick<typeof Xg, 'Grammar' | 'GrammarCompiler' | 'GrammarMatcher' | 'TokenizerInfo' | 'Testings'>;
export type XgGrammar = Xg.Grammar;
export type XgCompiledGrammar = Xg.CompiledGrammar;
export type XgMatcher = Xg.GrammarMatcher;

// The embind surface under the wrapper classes: what a synchronous mask fill needs.
export interface XgBinding {
  vecIntToView(v: unknown): Int32Array;
}

// The WebAssembly global, typed here (this project's @types/node does not declare it).
interface WasmModule {
  readonly __wasmModule: unique symbol;
}
interface WasmInstance {
  readonly exports: object;
}
const Wasm = (
  globalThis as unknown as {
    WebAssembly: {
      compile(bytes: Uint8Array): Promise<WasmModule>;
      Instance: new (module: WasmModule, imports: object) => WasmInstance;
      RuntimeError: new (...args: unknown[]) => Error;
    };
  }
).WebAssembly;

const PACKAGE = '@mlc-ai/web-xgrammar';
const VERSION = '0.1.27'; // the patch below is checked against this build's text
const FACTORY_CALL = 'binding = await Module();';
const WASM_DATA = /wasmBinaryFile="data:application\/octet-stream;base64,([A-Za-z0-9+/=]+)"/;

type Factory = (exports: object, module: { exports: object }, require: NodeRequire, filename: string, dirname: string, moduleArg: object) => void;

interface Loaded {
  factory: Factory;
  file: string;
  wasm: WasmModule;
}

const bundle = new Lazy(loadBundle);

function loadError(why: string): WeftError {
  return new WeftError('WEFT_ERR_ENGINE_NATIVE_LOAD', `${PACKAGE}@${VERSION}: ${why}`);
}

async function loadBundle(): Promise<Loaded> {
  const require = createRequire(import.meta.url);
  let file: string;
  try {
    file = require.resolve(PACKAGE);
  } catch {
    throw loadError('not installed (npm install)');
  }
  const src = readFileSync(file, 'utf8');
  const data = WASM_DATA.exec(src);
  if (!src.includes(FACTORY_CALL) || !data) throw loadError('the bundle is not the one weft was written against (expected version ' + VERSION + ')');
  const wasm = await Wasm.compile(new Uint8Array(Buffer.from(data[1], 'base64')));
  const patched = src.replace(FACTORY_CALL, 'binding = await Module(__weftModuleArg);');
  const factory = new Function('exports', 'module', 'require', '__filename', '__dirname', '__weftModuleArg', patched) as Factory;
  return { factory, file, wasm };
}

// xgrammar's own failure (an abort with a FATAL message), as data.
export class XgrammarAbort extends Error {
  constructor(readonly detail: string) {
    super(detail);
    this.name = 'XgrammarAbort';
  }
}

// The FATAL line without the C++ source path: "EBNF parser error at line 1, column 16: Rule "b" is not defined".
function cleanMessage(lines: readonly string[]): string {
  const fatal = lines.filter((l) => l.includes('[FATAL]')).at(-1) ?? lines.filter((l) => !l.startsWith('Aborted(')).at(-1) ?? 'xgrammar aborted';
  return fatal
    .replace(/^\[FATAL\]\s*\S+:\d+:\s*/, '')
    .replace(/^Check failed: \(.*?\) is false:\s*/, '')
    .trim();
}

export class XgrammarInstance {
  #messages: string[] = [];
  #isBroken = false;

  private constructor(
    readonly api: XgApi,
    readonly binding: XgBinding,
    messages: string[],
  ) {
    this.#messages = messages;
  }

  // A fresh instance with its own WASM memory.
  static async create(): Promise<XgrammarInstance> {
    const l = await bundle.get();
    const messages: string[] = [];
    const moduleArg: Record<string, unknown> = {
      print: (s: string) => {
        messages.push(s);
      },
      printErr: (s: string) => {
        messages.push(s);
        if (messages.length > 64) messages.splice(0, messages.length - 64);
      },
      instantiateWasm: (imports: object, done: (i: WasmInstance, m: WasmModule) => void) => {
        const instance = new Wasm.Instance(l.wasm, imports);
        done(instance, l.wasm);
        return instance.exports;
      },
    };
    const mod = { exports: {} as XgApi };
    l.factory(mod.exports, mod, createRequire(l.file), l.file, dirname(l.file), moduleArg);
    // the wrapper initializes its binding on first use; a cheap call does it now
    const g = await mod.exports.Grammar.fromEBNF('root ::= "a"');
    g.dispose();
    return new XgrammarInstance(mod.exports, moduleArg as unknown as XgBinding, messages);
  }

  get isBroken(): boolean {
    return this.#isBroken;
  }

  // Runs `fn` against this instance. xgrammar's failure becomes an XgrammarAbort with its message
  // (and the instance is broken from then on); anything else is rethrown as is.
  async run<T>(fn: (api: XgApi) => T | Promise<T>): Promise<T> {
    if (this.#isBroken) throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', 'xgrammar: this instance aborted before and cannot be used');
    this.#messages.length = 0;
    try {
      return await fn(this.api);
    } catch (e) {
      if (e instanceof Wasm.RuntimeError || this.#messages.some((m) => m.startsWith('Aborted('))) {
        this.#isBroken = true;
        throw new XgrammarAbort(cleanMessage(this.#messages));
      }
      throw e;
    }
  }

  // Synchronous variant for the per-token calls (mask, accept), which must not wait on a promise.
  runSync<T>(fn: (api: XgApi) => T): T {
    if (this.#isBroken) throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', 'xgrammar: this instance aborted before and cannot be used');
    try {
      return fn(this.api);
    } catch (e) {
      if (e instanceof Wasm.RuntimeError) {
        this.#isBroken = true;
        throw new XgrammarAbort(cleanMessage(this.#messages));
      }
      throw e;
    }
  }
}
