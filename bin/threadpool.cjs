// The libuv thread pool weft runs with: one thread unless UV_THREADPOOL_SIZE is set. The pool's
// only steady work in weft is the tokenizer (its encode and decode calls run there), and each of
// its threads grew its own share of the process's memory: with Node's default of 4, a soak's RSS
// at rest kept rising round after round (183 → 207 MiB over 4 rounds of 5,000 streamed requests,
// also with 2 threads), with 1 it stayed flat (179 → 186 → 186 → 186 MiB). libuv reads the
// variable when it starts the pool, at the first asynchronous file read, which the ES module loader
// makes for the first import: so it is set here, in CommonJS, before anything is imported.
if (process.env.UV_THREADPOOL_SIZE === undefined) process.env.UV_THREADPOOL_SIZE = '1';
