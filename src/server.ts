// Entry point of `npm start`. The HTTP server (routes, scheduler, workers) is not built yet:
// until it lands this says so and exits non-zero, rather than pretending to serve.
export async function runServer(_argv: string[]): Promise<void> {
  process.stderr.write('weft: the HTTP server is not implemented yet; use `weft generate --model PATH --prompt TEXT` meanwhile\n');
  process.exitCode = 2;
}

if (import.meta.url === `file://${process.argv[1]}`) await runServer(process.argv.slice(2));
