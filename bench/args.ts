// The benches' command lines: node's parseArgs, plus --help (each option with its default) and, for
// an unknown or malformed option, one line and exit status 2 instead of a stack trace.
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

export function benchArgs<const T extends Options>(command: string, options: T, args: string[] = process.argv.slice(2)) {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(benchUsage(command, options));
    process.exit(0);
  }
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false });
  } catch (e) {
    process.stderr.write(`${command}: ${(e as Error).message}\n\n${benchUsage(command, options)}`);
    process.exit(2);
  }
}

export function benchUsage(command: string, options: Options): string {
  const rows = Object.entries(options).map(([name, o]) => {
    const value = o.type === 'string' ? ' <value>' : '';
    const d =
      o.default === undefined || o.default === false ? '' : `  (default ${Array.isArray(o.default) ? o.default.join(',') : String(o.default)})`;
    return `  --${name}${value}${d}`;
  });
  return `usage: ${command} [options]\n${rows.join('\n')}\n`;
}
