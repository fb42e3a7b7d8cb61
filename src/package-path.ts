// Files shipped beside the code (the native addon, the web UI): found by walking up from the
// calling module, so the same lookup works from src/ (tests) and dist/src/ (the build).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function findInPackage(moduleUrl: string, ...parts: string[]): string | null {
  let dir = dirname(fileURLToPath(moduleUrl));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, ...parts);
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return null;
}

// weft's version, from its package.json ('unknown' where none is found).
export async function packageVersion(): Promise<string> {
  const path = findInPackage(import.meta.url, 'package.json');
  return path ? (JSON.parse(await readFile(path, 'utf8')) as { version: string }).version : 'unknown';
}
