// Every way a model can be broken, each with its exact error code, plus the optional files
// loadModelSpec understands. Bad models are built in a temp dir from the real stories260K.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t, { type Test } from 'tap';

import { isWeftError } from '../../src/errors.js';
import { loadModelSpec } from '../../src/model/load.js';
import { readSafetensors, readTensorBytes, SafetensorsWriter, type TensorEntry } from '../../src/model/safetensors.js';
import type { TensorDType } from '../../src/model/types.js';
import { MODEL_DIR, MODEL_GGUF } from '../fixtures/paths.js';

const FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json'];
const tmp = mkdtempSync(join(tmpdir(), 'weft-load-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function modelCopy(): string {
  const dir = join(tmp, `m${n++}`);
  mkdirSync(dir);
  for (const f of FILES) copyFileSync(join(MODEL_DIR, f), join(dir, f));
  return dir;
}
function editJson(dir: string, file: string, edit: (j: Record<string, unknown>) => void): string {
  const j = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  edit(j);
  writeFileSync(join(dir, file), JSON.stringify(j));
  return dir;
}

interface Raw {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}
// Rewrites model.safetensors from the real tensors after `edit`.
async function editWeights(dir: string, edit: (ts: Raw[]) => Raw[]): Promise<string> {
  const refs = readSafetensors(join(MODEL_DIR, 'model.safetensors'));
  const ts = edit(Object.entries(refs).map(([name, r]) => ({ name, dtype: r.dtype as string, shape: r.shape, data: readTensorBytes(r) })));
  const w = await SafetensorsWriter.create(
    join(dir, 'model.safetensors'),
    ts.map((x): TensorEntry => ({ name: x.name, dtype: x.dtype as TensorDType, shape: x.shape })),
  );
  for (const x of ts) await w.write(x.data);
  await w.close();
  return dir;
}

// Asserts the error code, and that the message names `mentions`.
async function fails(t: Test, path: string, code: string, mentions: (string | RegExp)[] = [], why = code) {
  try {
    await loadModelSpec(path);
    t.fail(`${why}: loaded without error`);
  } catch (e) {
    t.equal(isWeftError(e) ? e.code : String(e), code, why);
    for (const m of mentions) t.match((e as Error).message, m, `${why}: message names ${m}`);
  }
}

t.test('the real model loads', async (t) => {
  const spec = await loadModelSpec(modelCopy());
  t.equal(Object.keys(spec.tensors).length, 47);
  t.equal(spec.chatTemplate, null);
  t.same(spec.config.eosTokenIds, [2]);
});

t.test('missing things', async (t) => {
  await fails(t, join(tmp, 'nope'), 'WEFT_ERR_MODEL_NOT_FOUND', ['nope'], 'missing directory');
  for (const [file, name] of [
    ['config.json', 'config.json'],
    ['model.safetensors', 'model.safetensors'],
    ['tokenizer.json', 'tokenizer.json'],
  ]) {
    const dir = modelCopy();
    unlinkSync(join(dir, file));
    await fails(t, dir, 'WEFT_ERR_MODEL_NOT_FOUND', [dir, name], `missing ${file}`);
  }
  const optional = modelCopy();
  unlinkSync(join(optional, 'tokenizer_config.json'));
  unlinkSync(join(optional, 'generation_config.json'));
  t.equal((await loadModelSpec(optional)).config.bosTokenId, 1, 'tokenizer_config / generation_config are optional');
  await fails(t, join(MODEL_DIR, 'config.json'), 'WEFT_ERR_MODEL_CORRUPT', ['config.json'], 'a file that is not GGUF');
});

t.test('architectures and rope', async (t) => {
  await fails(
    t,
    editJson(modelCopy(), 'config.json', (j) => {
      j.architectures = ['GPT2LMHeadModel'];
    }),
    'WEFT_ERR_MODEL_UNSUPPORTED_ARCH',
    ['GPT2LMHeadModel', 'config.json'],
  );
  await fails(
    t,
    editJson(modelCopy(), 'config.json', (j) => {
      delete j.architectures;
      j.model_type = 'gemma';
    }),
    'WEFT_ERR_MODEL_UNSUPPORTED_ARCH',
    ['gemma'],
    'unknown model_type',
  );
  await fails(
    t,
    editJson(modelCopy(), 'config.json', (j) => {
      j.architectures = ['MistralForCausalLM'];
      j.sliding_window = 128;
    }),
    'WEFT_ERR_MODEL_UNSUPPORTED_ARCH',
    ['sliding_window'],
    'sliding window shorter than the context',
  );
  const mistral = await loadModelSpec(
    editJson(modelCopy(), 'config.json', (j) => {
      j.architectures = ['MistralForCausalLM'];
      j.sliding_window = null;
    }),
  );
  t.equal(mistral.config.architecture, 'llama', 'Mistral without a sliding window is a Llama');
  const wide = await loadModelSpec(
    editJson(modelCopy(), 'config.json', (j) => {
      j.sliding_window = 4096;
    }),
  );
  t.equal(wide.config.maxPositions, 512, 'a window wider than the context is ignored');
  await fails(
    t,
    editJson(modelCopy(), 'config.json', (j) => {
      j.rope_scaling = { rope_type: 'yarn', factor: 4 };
    }),
    'WEFT_ERR_MODEL_UNSUPPORTED_ARCH',
    ['yarn'],
  );
  await fails(
    t,
    editJson(modelCopy(), 'config.json', (j) => {
      j.hidden_act = 'gelu';
    }),
    'WEFT_ERR_MODEL_UNSUPPORTED_ARCH',
    ['gelu'],
  );
  const l3 = await loadModelSpec(
    editJson(modelCopy(), 'config.json', (j) => {
      j.rope_scaling = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    }),
  );
  t.same(l3.config.ropeScaling, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
  const lin = await loadModelSpec(
    editJson(modelCopy(), 'config.json', (j) => {
      j.rope_scaling = { type: 'linear', factor: 2 };
    }),
  );
  t.same(lin.config.ropeScaling, { type: 'linear', factor: 2 });
  await fails(
    t,
    editJson(modelCopy(), 'config.json', (j) => {
      j.rope_scaling = { rope_type: 'llama3', factor: 8 };
    }),
    'WEFT_ERR_MODEL_BAD_CONFIG',
    ['low_freq_factor'],
    'llama3 rope without its fields',
  );
});

t.test('bad config fields', async (t) => {
  const cases: [string, (j: Record<string, unknown>) => void, string][] = [
    [
      'num_attention_heads 0',
      (j) => {
        j.num_attention_heads = 0;
      },
      'num_attention_heads',
    ],
    [
      'num_key_value_heads not dividing heads',
      (j) => {
        j.num_key_value_heads = 3;
      },
      'num_key_value_heads',
    ],
    [
      'hidden_size as a string',
      (j) => {
        j.hidden_size = '64';
      },
      'hidden_size',
    ],
    [
      'vocab_size missing',
      (j) => {
        delete j.vocab_size;
      },
      'vocab_size',
    ],
    [
      'num_hidden_layers fractional',
      (j) => {
        j.num_hidden_layers = 2.5;
      },
      'num_hidden_layers',
    ],
    [
      'heads not dividing hidden_size',
      (j) => {
        delete j.head_dim;
        j.num_attention_heads = 7;
        j.num_key_value_heads = 7;
      },
      'num_attention_heads',
    ],
    [
      'negative rms_norm_eps',
      (j) => {
        j.rms_norm_eps = -1;
      },
      'rms_norm_eps',
    ],
    [
      'eos outside the vocabulary',
      (j) => {
        j.eos_token_id = 9999;
      },
      'eos',
    ],
  ];
  for (const [why, edit, field] of cases)
    await fails(t, editJson(modelCopy(), 'config.json', edit), 'WEFT_ERR_MODEL_BAD_CONFIG', [field, 'config.json'], why);
  const dir = modelCopy();
  writeFileSync(join(dir, 'config.json'), '{ "hidden_size": 64,');
  await fails(t, dir, 'WEFT_ERR_MODEL_BAD_CONFIG', ['config.json'], 'config.json not JSON');
});

// Regressions found by `npm run fuzz` (bench/fuzz): values a hostile config.json or safetensors
// header controls. Each failed with a RangeError (not a WeftError) or took minutes before.
t.test('fuzzing findings: hostile values in config.json and the safetensors header', async (t) => {
  const deep = '['.repeat(100_000) + '1' + ']'.repeat(100_000); // JSON.stringify of it overflows the stack
  const writeDeep = (dir: string, file: string, edit: (j: Record<string, unknown>) => void) => {
    const j = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    edit(j);
    writeFileSync(join(dir, file), JSON.stringify(j).replace('"@deep@"', deep));
    return dir;
  };
  const short = async (path: string, code: string, mentions: string[], why: string) => {
    await fails(t, path, code, mentions, why);
    const message = await loadModelSpec(path).then(
      () => '',
      (e: Error) => e.message,
    );
    t.ok(message.length < 600, `${why}: the message stays short (${message.length} characters)`);
  };
  await short(
    writeDeep(modelCopy(), 'config.json', (j) => {
      j.hidden_size = '@deep@';
    }),
    'WEFT_ERR_MODEL_BAD_CONFIG',
    ['hidden_size'],
    'hidden_size nested 100k deep',
  );
  await short(
    writeDeep(modelCopy(), 'config.json', (j) => {
      j.architectures = ['@deep@'];
    }),
    'WEFT_ERR_MODEL_UNSUPPORTED_ARCH',
    ['architecture'],
    'architectures nested 100k deep',
  );
  await short(
    editJson(modelCopy(), 'config.json', (j) => {
      j.num_hidden_layers = 'x'.repeat(1 << 20);
    }),
    'WEFT_ERR_MODEL_BAD_CONFIG',
    ['num_hidden_layers'],
    'a 1 MB string as num_hidden_layers',
  );
  await fails(
    t,
    editJson(modelCopy(), 'config.json', (j) => {
      j.architectures = ['constructor'];
    }),
    'WEFT_ERR_MODEL_UNSUPPORTED_ARCH',
    ['constructor'],
    'architectures ["constructor"] (an inherited key of every object)',
  );
  await fails(
    t,
    editJson(modelCopy(), 'config.json', (j) => {
      delete j.architectures;
      j.model_type = 'toString';
    }),
    'WEFT_ERR_MODEL_UNSUPPORTED_ARCH',
    ['toString'],
    'model_type "toString"',
  );
  await fails(
    t,
    editJson(modelCopy(), 'config.json', (j) => {
      j.num_hidden_layers = 2 ** 53 - 1;
    }),
    'WEFT_ERR_MODEL_MISSING_TENSOR',
    ['model.layers.5.'],
    'num_hidden_layers 2^53 - 1: the first missing layer',
  );
  const st = new Uint8Array(readFileSync(join(MODEL_DIR, 'model.safetensors')));
  const len = Number(new DataView(st.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(st.subarray(8, 8 + len)));
  header['model.norm.weight'].shape = '@deep@';
  const json = new TextEncoder().encode(JSON.stringify(header).replace('"@deep@"', deep));
  const bytes = new Uint8Array(8 + json.length + st.length - 8 - len);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
  bytes.set(json, 8);
  bytes.set(st.subarray(8 + len), 8 + json.length);
  const dir = modelCopy();
  writeFileSync(join(dir, 'model.safetensors'), bytes);
  await short(dir, 'WEFT_ERR_MODEL_CORRUPT', ['model.norm.weight', 'shape'], 'a tensor shape nested 100k deep');
  // a directory where a file should be opens for reading, then every read fails with EISDIR
  const sharded = modelCopy();
  const names = Object.keys(readSafetensors(join(MODEL_DIR, 'model.safetensors')));
  renameSync(join(sharded, 'model.safetensors'), join(sharded, 'model-00001-of-00001.safetensors'));
  const weightMap = Object.fromEntries(names.map((n) => [n, n === 'model.norm.weight' ? '' : 'model-00001-of-00001.safetensors']));
  writeFileSync(join(sharded, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
  await fails(t, sharded, 'WEFT_ERR_MODEL_CORRUPT', ['not a regular file'], 'an index naming the shard ""');
  for (const [file, code] of [
    ['model.safetensors', 'WEFT_ERR_MODEL_CORRUPT'],
    ['tokenizer.json', 'WEFT_ERR_MODEL_TOKENIZER'],
    ['config.json', 'WEFT_ERR_MODEL_BAD_CONFIG'],
  ] as const) {
    const d = modelCopy();
    unlinkSync(join(d, file));
    mkdirSync(join(d, file));
    await fails(t, d, code, [file], `${file} is a directory`);
  }
});

t.test('weights that do not match', async (t) => {
  await fails(
    t,
    editJson(modelCopy(), 'config.json', (j) => {
      j.intermediate_size = 180;
    }),
    'WEFT_ERR_MODEL_SHAPE_MISMATCH',
    ['model.layers.0.mlp.gate_proj.weight', '[172, 64]', '[180, 64]', 'model.safetensors'],
    'intermediate_size vs the tensors',
  );
  await fails(
    t,
    await editWeights(modelCopy(), (ts) => ts.filter((x) => x.name !== 'model.layers.2.mlp.up_proj.weight')),
    'WEFT_ERR_MODEL_MISSING_TENSOR',
    ['model.layers.2.mlp.up_proj.weight', 'model.safetensors'],
    'a tensor left out',
  );
  await fails(
    t,
    editJson(modelCopy(), 'config.json', (j) => {
      j.tie_word_embeddings = false;
    }),
    'WEFT_ERR_MODEL_MISSING_TENSOR',
    ['lm_head.weight'],
    'untied without lm_head',
  );
  await fails(
    t,
    await editWeights(modelCopy(), (ts) => ts.map((x) => (x.name === 'model.norm.weight' ? { ...x, dtype: 'I32' } : x))),
    'WEFT_ERR_MODEL_UNSUPPORTED_DTYPE',
    ['model.norm.weight', 'I32', 'model.safetensors'],
    'I32 tensor',
  );
  await fails(
    t,
    await editWeights(modelCopy(), (ts) =>
      ts.map((x) => (x.name === 'model.norm.weight' ? { ...x, dtype: 'F64', data: new Uint8Array(x.data.length * 2) } : x)),
    ),
    'WEFT_ERR_MODEL_UNSUPPORTED_DTYPE',
    ['F64'],
    'F64 tensor',
  );
  const i8 = (x: Raw): Raw => ({ ...x, dtype: 'I8', data: new Uint8Array(x.data.length / 4) });
  await fails(
    t,
    await editWeights(modelCopy(), (ts) => ts.map((x) => (x.name === 'model.layers.0.self_attn.q_proj.weight' ? i8(x) : x))),
    'WEFT_ERR_MODEL_MISSING_TENSOR',
    ['q_proj.weight_scale'],
    'I8 without its scale',
  );
  await fails(
    t,
    await editWeights(modelCopy(), (ts) => ts.map((x) => (x.name === 'model.embed_tokens.weight' ? i8(x) : x))),
    'WEFT_ERR_MODEL_UNSUPPORTED_DTYPE',
    ['model.embed_tokens.weight'],
    'I8 embedding',
  );
});

t.test('corrupt files', async (t) => {
  const st = new Uint8Array(readFileSync(join(MODEL_DIR, 'model.safetensors')));
  const put = (dir: string, bytes: Uint8Array) => {
    writeFileSync(join(dir, 'model.safetensors'), bytes);
    return dir;
  };
  const badLen = st.slice();
  new DataView(badLen.buffer).setBigUint64(0, BigInt(st.length) * 2n, true);
  await fails(t, put(modelCopy(), badLen), 'WEFT_ERR_MODEL_CORRUPT', ['model.safetensors', 'header length'], 'header length past EOF');
  const badJson = st.slice();
  badJson[8] = 0x78; // 'x' over the opening brace
  await fails(t, put(modelCopy(), badJson), 'WEFT_ERR_MODEL_CORRUPT', ['JSON'], 'header JSON broken');
  await fails(t, put(modelCopy(), st.subarray(0, st.length - 1000)), 'WEFT_ERR_MODEL_CORRUPT', ['truncated'], 'data truncated');
  const gguf = new Uint8Array(readFileSync(MODEL_GGUF));
  const ggufAt = (name: string, bytes: Uint8Array) => {
    const p = join(tmp, name);
    writeFileSync(p, bytes);
    return p;
  };
  await fails(t, ggufAt('trunc.gguf', gguf.subarray(0, gguf.length - 5000)), 'WEFT_ERR_MODEL_CORRUPT', ['trunc.gguf'], 'truncated GGUF');
  await fails(t, ggufAt('head.gguf', gguf.subarray(0, 3000)), 'WEFT_ERR_MODEL_CORRUPT', ['head.gguf'], 'GGUF cut in its metadata');
  const magic = gguf.slice();
  new DataView(magic.buffer).setUint32(0, 0x12345678, true);
  await fails(t, ggufAt('magic.gguf', magic), 'WEFT_ERR_MODEL_CORRUPT', ['magic'], 'bad GGUF magic');
});

t.test('broken tokenizer.json', async (t) => {
  const dir = modelCopy();
  writeFileSync(join(dir, 'tokenizer.json'), '{"version": "1.0", "model": ');
  await fails(t, dir, 'WEFT_ERR_MODEL_TOKENIZER', ['tokenizer.json'], 'not JSON');
  await fails(
    t,
    editJson(modelCopy(), 'tokenizer.json', (j) => {
      j.model = { type: 'NoSuchModel' };
    }),
    'WEFT_ERR_MODEL_TOKENIZER',
    ['tokenizer.json'],
    'JSON that HF tokenizers rejects',
  );
  await fails(
    t,
    editJson(modelCopy(), 'tokenizer.json', (j) => {
      (j.model as Record<string, unknown>).merges = 'x';
    }),
    'WEFT_ERR_MODEL_TOKENIZER',
    [],
    'bad merges',
  );
});

t.test('optional files: chat template, generation config, token ids from the tokenizer', async (t) => {
  const list = editJson(modelCopy(), 'tokenizer_config.json', (j) => {
    j.chat_template = [
      { name: 'tool_use', template: 'T' },
      { name: 'default', template: 'D' },
    ];
  });
  t.equal((await loadModelSpec(list)).chatTemplate, 'D', 'the default of a template list');
  const str = editJson(modelCopy(), 'tokenizer_config.json', (j) => {
    j.chat_template = '{{ messages }}';
  });
  t.equal((await loadModelSpec(str)).chatTemplate, '{{ messages }}');
  const gen = editJson(modelCopy(), 'generation_config.json', (j) => {
    j.eos_token_id = [2, 5];
    j.temperature = 0.6;
    j.top_p = 0.9;
    j.top_k = 20;
  });
  const g = await loadModelSpec(gen);
  t.same(g.config.eosTokenIds, [2, 5], 'eos ids from config.json and generation_config.json');
  t.same(g.generationDefaults, { temperature: 0.6, topP: 0.9, topK: 20 });
  const noIds = editJson(modelCopy(), 'config.json', (j) => {
    delete j.bos_token_id;
    delete j.eos_token_id;
  });
  unlinkSync(join(noIds, 'generation_config.json'));
  const s = await loadModelSpec(noIds);
  t.equal(s.config.bosTokenId, 1, 'bos from tokenizer_config.json');
  t.same(s.config.eosTokenIds, [2], 'eos from tokenizer_config.json');
});

// Two more from `npm run fuzz`: a null entry in added_tokens reached weft's own reading of the file
// (an untyped TypeError), and a BPE continuing_subword_prefix that a merge's second part does not
// start with made HF tokenizers panic, which aborts the process.
t.test('fuzzing findings: a null added token, and merges without the continuing-subword prefix', async (t) => {
  const nullToken = editJson(modelCopy(), 'tokenizer.json', (j) => {
    (j.added_tokens as unknown[]).push(null);
  });
  await fails(t, nullToken, 'WEFT_ERR_MODEL_TOKENIZER', ['tokenizer.json'], 'a null added token');
  for (const prefix of ['xx', 'x'.repeat(1000)]) {
    const dir = editJson(modelCopy(), 'tokenizer.json', (j) => {
      (j.model as Record<string, unknown>).continuing_subword_prefix = prefix;
    });
    await fails(t, dir, 'WEFT_ERR_MODEL_TOKENIZER', ['subword prefix'], `a ${prefix.length}-character prefix`);
  }
});
