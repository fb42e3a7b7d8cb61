// The grammar engine behind structured output: ConstraintCompiler and TokenMatcher (types.ts) on
// the WASM build of xgrammar. Each grammar host (a thread of the engine worker, grammar-host.ts)
// opens one compiler per model on its first constraint; compiled grammars are cached per spec
// (LRU), and each sequence gets its own matcher over a cached grammar.
//
// Measured on the SmolLM2 tokenizer (49,152 tokens): the vocabulary is prepared once (~150 ms), a
// 50-property JSON Schema compiles in ~300 ms (npm run bench:structured), a next-token mask takes
// ~0.01 ms at the median. Masks are written synchronously into the caller's Uint32Array.
import { WeftError } from '../errors.js';
import { grammarOf, specKey } from './spec-grammar.js';
import type { ConstraintCompiler, ConstraintSpec, TokenMatcher } from './types.js';
import { Utf8Guard } from './utf8-guard.js';
import { loadGrammarVocab, type GrammarVocab } from './vocab.js';
import { XgrammarAbort, XgrammarInstance, type XgCompiledGrammar } from './xgrammar-wasm.js';

// The embind objects under the wrapper classes, used directly on the per-token path (the wrapper's
// getNextTokenBitmask is async and copies twice; its matcher factory leaks a handle per call).
interface RawVector {
  delete(): void;
}
interface RawMatcher {
  AcceptToken(token: number, verbose: boolean): boolean;
  GetNextTokenBitmask(vocabSize: number): RawVector;
  IsTerminated(): boolean;
  delete(): void;
}
interface RawBinding {
  vecIntToView(v: RawVector): Int32Array;
  GrammarMatcher: new (compiled: unknown, stopTokens: undefined, terminateWithoutStop: boolean, maxRollback: number) => RawMatcher;
}

export interface CompilerOptions {
  maxCachedGrammars: number; // compiled grammars kept (LRU); each holds its token-mask cache in WASM memory
}

const DEFAULT_OPTIONS: CompilerOptions = { maxCachedGrammars: 64 };

interface CacheEntry {
  readonly compiled: Promise<XgCompiledGrammar>;
  readonly instance: XgrammarInstance;
  users: number; // live matchers
  isEvicted: boolean; // out of the cache: disposed when its last matcher goes
}

interface Shared {
  readonly vocabSize: number;
  readonly numWords: number;
  readonly stopTokenIds: readonly number[];
  readonly utf8: Utf8Guard;
}

function disposeIfUnused(entry: CacheEntry): void {
  if (entry.isEvicted && entry.users === 0)
    void entry.compiled.then(
      (c) => c.dispose(),
      () => undefined,
    );
}

function release(entry: CacheEntry): void {
  entry.users--;
  disposeIfUnused(entry);
}

class XgrammarMatcher implements TokenMatcher {
  readonly #accepted: number[] = []; // replayed by fork()
  #utf8State = Utf8Guard.START;
  #isDisposed = false;

  constructor(
    private readonly raw: RawMatcher,
    private readonly entry: CacheEntry,
    private readonly compiled: XgCompiledGrammar,
    private readonly shared: Shared,
  ) {
    entry.users++;
  }

  fillNextTokenMask(out: Uint32Array): void {
    const { numWords, stopTokenIds } = this.shared;
    if (out.length < numWords) throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', `token mask of ${out.length} words; ${numWords} are needed`);
    if (this.raw.IsTerminated()) {
      // past a stop token (ignore_eos): only stop tokens again
      out.fill(0, 0, numWords);
      for (const t of stopTokenIds) out[t >> 5] |= 1 << (t & 31);
      return;
    }
    this.entry.instance.runSync(() => {
      const v = this.raw.GetNextTokenBitmask(this.shared.vocabSize);
      try {
        const view = (this.entry.instance.binding as unknown as RawBinding).vecIntToView(v);
        out.set(new Uint32Array(view.buffer, view.byteOffset, numWords));
      } finally {
        v.delete();
      }
    });
    this.shared.utf8.apply(this.#utf8State, out);
  }

  acceptToken(token: number): boolean {
    if (!Number.isInteger(token) || token < 0 || token >= this.shared.vocabSize) return false;
    const utf8State = this.shared.utf8.next(this.#utf8State, token);
    let ok: boolean;
    if (this.raw.IsTerminated()) ok = this.shared.stopTokenIds.includes(token);
    else ok = utf8State >= 0 && this.entry.instance.runSync(() => this.raw.AcceptToken(token, false));
    if (!ok) return false;
    this.#accepted.push(token);
    this.#utf8State = utf8State;
    return true;
  }

  // xgrammar has no matcher copy: a fresh matcher on the same compiled grammar replays the tokens.
  fork(): TokenMatcher {
    const m = new XgrammarMatcher(newRawMatcher(this.entry, this.compiled), this.entry, this.compiled, this.shared);
    for (const t of this.#accepted) {
      if (!m.acceptToken(t)) throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', `grammar fork: replaying token ${t} failed`);
    }
    return m;
  }

  dispose(): void {
    if (this.#isDisposed) return;
    this.#isDisposed = true;
    this.raw.delete();
    release(this.entry);
  }
}

function newRawMatcher(entry: CacheEntry, compiled: XgCompiledGrammar): RawMatcher {
  const binding = entry.instance.binding as unknown as RawBinding;
  return entry.instance.runSync(() => new binding.GrammarMatcher(compiled.handle, undefined, false, -1));
}

export class XgrammarCompiler implements ConstraintCompiler {
  readonly #cache = new Map<string, CacheEntry>();
  #instance: XgrammarInstance;
  #compiler: Promise<{ compileGrammar(g: unknown): Promise<XgCompiledGrammar> }>;

  private constructor(
    private readonly vocab: GrammarVocab,
    private readonly shared: Shared,
    instance: XgrammarInstance,
    private readonly options: CompilerOptions,
  ) {
    this.#instance = instance;
    this.#compiler = this.#newCompiler(instance);
  }

  // `vocabSize` is the model's logits width: ids the tokenizer does not have are never allowed.
  static async create(vocab: GrammarVocab, vocabSize: number, options: Partial<CompilerOptions> = {}): Promise<XgrammarCompiler> {
    const shared = {
      vocabSize,
      numWords: Math.ceil(vocabSize / 32),
      stopTokenIds: vocab.stopTokenIds.filter((t) => t < vocabSize),
      utf8: new Utf8Guard(vocab, vocabSize),
    };
    const c = new XgrammarCompiler(vocab, shared, await XgrammarInstance.create(), { ...DEFAULT_OPTIONS, ...options });
    await c.#compiler;
    return c;
  }

  #newCompiler(instance: XgrammarInstance) {
    const tokens = this.vocab.tokens.slice(0, this.shared.vocabSize);
    return instance.run(async (api) => {
      const info = await api.TokenizerInfo.createTokenizerInfo(tokens, this.vocab.type, this.vocab.prependSpace, this.shared.vocabSize, [
        ...this.shared.stopTokenIds,
      ]);
      return api.GrammarCompiler.createGrammarCompiler(info, false);
    });
  }

  get numCached(): number {
    return this.#cache.size;
  }

  #compile(spec: ConstraintSpec, instance: XgrammarInstance): Promise<XgCompiledGrammar> {
    return instance.run(async (api) => {
      const compiler = await this.#compiler;
      const grammar = await grammarOf(api, spec);
      try {
        return await compiler.compileGrammar(grammar);
      } finally {
        grammar.dispose();
      }
    });
  }

  // The cached entry for a spec (most recently used last), compiling it on a miss.
  #entry(spec: ConstraintSpec): CacheEntry {
    const key = specKey(spec);
    let entry = this.#cache.get(key);
    if (entry) {
      this.#cache.delete(key);
    } else {
      entry = { compiled: this.#compile(spec, this.#instance), instance: this.#instance, users: 0, isEvicted: false };
      entry.compiled.catch(() => this.#cache.delete(key));
    }
    this.#cache.set(key, entry);
    while (this.#cache.size > this.options.maxCachedGrammars) {
      const [oldKey, old] = this.#cache.entries().next().value as [string, CacheEntry];
      this.#cache.delete(oldKey);
      old.isEvicted = true;
      disposeIfUnused(old);
    }
    return entry;
  }

  async matcher(spec: ConstraintSpec): Promise<TokenMatcher> {
    const entry = this.#entry(spec);
    let compiled: XgCompiledGrammar;
    try {
      compiled = await entry.compiled;
    } catch (e) {
      if (!(e instanceof XgrammarAbort)) throw e;
      // Specs are checked before they get here, so this is xgrammar failing on this vocabulary. The
      // instance is unusable after an abort: new grammars go to a fresh one (matchers already
      // running keep theirs until they end).
      if (this.#instance.isBroken) {
        this.#instance = await XgrammarInstance.create();
        this.#compiler = this.#newCompiler(this.#instance);
        this.#cache.clear();
      }
      throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', `grammar engine: cannot compile the ${spec.type} constraint: ${e.detail}`);
    }
    return new XgrammarMatcher(newRawMatcher(entry, compiled), entry, compiled, this.shared);
  }
}

// The worker's entry point: the model's vocabulary and stop tokens, read the way the server
// reads them, and a compiler for its logits width.
export async function openConstraintCompiler(
  modelPath: string,
  vocabSize: number,
  options: Partial<CompilerOptions> = {},
): Promise<ConstraintCompiler> {
  return XgrammarCompiler.create(loadGrammarVocab(modelPath), vocabSize, options);
}
