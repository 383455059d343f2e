#!/usr/bin/env node
// bench/bullmq/throughput.js [N]: BullMQ's own benchmark style, the peer of
// `FLEET_BENCH_MODE=throughput mutirao run --fleet bench/fleet.lua`:
// N trivial jobs (default 50000) added first with addBulk (1,000 a call),
// then ONE Worker in this process, concurrency 50 (BULLMQ_CONCURRENCY),
// returns each job's number; timed from the first add to the last job
// completed, and from the worker's start (processing alone). From a fresh
// clone, with a redis-server (tests/services.sh starts one):
//   bash bench/bullmq/install.sh
//   bash tests/services.sh start && source build-services/env.sh
//   node bench/bullmq/throughput.js 50000
// Prints a human line and one line for bench/peer.sh:
//   RESULT mode=throughput tasks=N ms=... rate=... process_rate=... cpu_self_us=...
// The queue (BULLMQ_QUEUE, default a unique name) is obliterated at the end.
'use strict';
const { Queue, Worker } = require('bullmq');
const c = require('./common');

async function main() {
  const n = Number(process.argv[2] || process.env.BULLMQ_N || 50000);
  const concurrency = Number(process.env.BULLMQ_CONCURRENCY || 50);
  const name = process.env.BULLMQ_QUEUE || `peer-tp-${process.pid}-${Date.now()}`;
  const procs = c.watched();
  const qconn = c.connection();
  const queue = new Queue(name, { connection: qconn });
  // completed jobs are removed (as a production queue would), so that runs
  // leave nothing behind in the shared redis-server
  const opts = { removeOnComplete: true, removeOnFail: true };
  await queue.waitUntilReady();
  // warm up: the scripts loaded, a connection of each kind
  await queue.add('w', { i: 0 }, opts);

  const c0 = c.cpuMark(procs);
  const t0 = performance.now();
  for (let i = 1; i <= n; i += 1000) {
    const jobs = [];
    for (let j = i; j < Math.min(n + 1, i + 1000); j++) {
      jobs.push({ name: 't', data: { i: j }, opts });
    }
    await queue.addBulk(jobs);
  }
  const t1 = performance.now();
  let done = 0;
  let finish;
  const finished = new Promise((r) => (finish = r));
  const wconn = c.connection();
  const worker = new Worker(name, async (job) => job.data.i, {
    connection: wconn,
    concurrency,
  });
  worker.on('completed', () => {
    if (++done === n + 1) finish();
  });
  worker.on('failed', (job, err) => {
    console.error('failed', job && job.id, err);
    process.exit(1);
  });
  await finished;
  const t2 = performance.now();
  const c2 = c.cpuMark(procs);
  const ms = t2 - t0;
  console.log(
    `throughput: ${n} jobs in ${ms.toFixed(0)} ms = ${(n / (ms / 1000)).toFixed(0)} jobs/s ` +
      `end to end (addBulk took ${(t1 - t0).toFixed(0)} ms; processing alone ` +
      `${(t2 - t1).toFixed(0)} ms = ${(n / ((t2 - t1) / 1000)).toFixed(0)} jobs/s), ` +
      `one worker, concurrency ${concurrency}`,
  );
  console.log(
    `RESULT mode=throughput tasks=${n} ms=${ms.toFixed(1)} rate=${(n / (ms / 1000)).toFixed(0)} ` +
      `process_rate=${(n / ((t2 - t1) / 1000)).toFixed(0)} ${c.cpuFields(procs, c0, c2)}`,
  );
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  qconn.disconnect();
  wconn.disconnect();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
