// The built-in demo model: seeded synthetic weights at a small Llama shape with the project's
// own synthetic SentencePiece-style tokenizer, written once to a cache directory under the OS
// temp dir. Its output is noise; it exists so `npm start` serves something with no download.
import { existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { synthesizeModel } from './model/synth.js';

export const DEMO_CONFIG = Object.freeze({
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 128,
  intermediate_size: 344,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 32,
  vocab_size: 1024,
  max_position_embeddings: 1024,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
  hidden_act: 'silu',
});
const DEMO_SEED = 20251124;
const DEMO_VERSION = 'v1';

export const DEMO_MODEL_NAME = 'weft-demo';

// The demo model's directory, synthesized on first use (another process racing us is fine:
// each writes a private directory and renames it into place).
export async function ensureDemoModel(cacheRoot = tmpdir()): Promise<string> {
  const dir = join(cacheRoot, `weft-demo-model-${DEMO_VERSION}`);
  if (existsSync(join(dir, 'tokenizer_config.json'))) return dir;
  const tmp = mkdtempSync(join(cacheRoot, 'weft-demo-tmp-'));
  const out = join(tmp, 'model');
  await synthesizeModel({ config: { ...DEMO_CONFIG }, out, format: 'hf', dtype: 'f32', seed: DEMO_SEED });
  try {
    renameSync(out, dir);
  } catch {
    if (!existsSync(join(dir, 'tokenizer_config.json'))) throw new Error(`cannot create the demo model at ${dir}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}
