// One engine instance on its own CUDA stream in a worker thread (bench/engine-gpu.ts streams):
// opens, signals ready, waits for the shared start flag, decodes, reports its decode tokens/s.
import { parentPort, workerData } from 'node:worker_threads';

import { openGpu, type StreamJob } from './engine-gpu.js';
import { timeDecode } from './timing.js';

const { job, barrier } = workerData as { job: StreamJob; barrier: Int32Array };
const e = await openGpu(job, Math.max(job.batch * 8, 512), job.batch);
timeDecode(e, 1, 8, 4); // warm-up (and graph capture of the small bucket)
parentPort!.postMessage('ready');
Atomics.wait(barrier, 0, 0);
const tokPerSec = timeDecode(e, job.batch, job.promptTokens, job.decodeTokens, 64);
e.close();
parentPort!.postMessage({ tokPerSec });
