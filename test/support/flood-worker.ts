import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { floodPost, type FloodAnswer, type SustainedFlood } from './flood.js';

/** sustainedFlood's thread (see flood.ts): floods for the time asked, then posts every answer. */

const options = workerData as SustainedFlood;
const until = performance.now() + options.seconds * 1000;
const answers: FloodAnswer[] = [];
await Promise.all(
  Array.from({ length: options.parallel }, async (_, i) => {
    while (performance.now() < until) {
      answers.push(await floodPost(options.url, { bytes: options.bytes, headers: options.headers, declare: i % 2 === 0 }));
    }
  }),
);
parentPort!.postMessage(answers);
