#!/usr/bin/env node
// bench/bullmq/latency.js: open loop at BULLMQ_RATE jobs/s (default 1000)
// for BULLMQ_DURATION_S seconds (default 20), the peer of
// `FLEET_BENCH_MODE=open mutirao run --fleet bench/fleet.lua`: jobs added
// on a fixed schedule, never waiting for an earlier one, each awaited with
// one QueueEvents ('completed' events matched to the job ids that add
// returned: job.waitUntilFinished would need completed jobs kept, and
// a listener per job); the worker is its own node
// process (worker.js, concurrency 50), as a mutirao-worker is. Per job the
// time from its scheduled add to its result back here; p50, p99, max over
// the run and over its first BULLMQ_HEAD_S seconds (default 2), after the
// queue was idle for BULLMQ_IDLE_MS (default 2000) after a warm-up.
// From a fresh clone, with a redis-server (tests/services.sh starts one):
//   bash bench/bullmq/install.sh
//   bash tests/services.sh start && source build-services/env.sh
//   node bench/bullmq/latency.js
// Prints a human line and one line for bench/peer.sh:
//   RESULT mode=open tasks=N rate=R ms=... p50_ms=... p99_ms=... max_ms=...
//     head_p50_ms=... head_p99_ms=... head_max_ms=... cpu_self_us=...
//     cpu_ticks_worker=... (and cpu_ticks_NAME of BENCH_CPU_PIDS)
'use strict';
const path = require('path');
const { spawn } = require('child_process');
const { Queue, QueueEvents } = require('bullmq');
const c = require('./common');

async function main() {
  const rate = Number(process.env.BULLMQ_RATE || 1000);
  const durationS = Number(process.env.BULLMQ_DURATION_S || 20);
  const headS = Number(process.env.BULLMQ_HEAD_S || 2);
  const idleMs = Number(process.env.BULLMQ_IDLE_MS || 2000);
  const n = Math.floor(rate * durationS);
  const name = process.env.BULLMQ_QUEUE || `peer-lat-${process.pid}-${Date.now()}`;
  const opts = { removeOnComplete: true, removeOnFail: true };

  const child = spawn(process.execPath, [path.join(__dirname, 'worker.js'), name], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: process.env,
  });
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => String(d).includes('ready') && resolve());
    child.on('exit', (code) => reject(new Error(`worker exited: ${code}`)));
  });
  // never leave the worker behind, however this process ends
  process.on('exit', () => child.kill('SIGKILL'));
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      console.error(`latency.js: ${sig}`);
      process.exit(1);
    });
  }
  const procs = c.watched([{ name: 'worker', pid: String(child.pid) }]);
  const qconn = c.connection();
  const econn = c.connection();
  // the events stream holds every job's events of the whole run (BullMQ
  // trims it to 10,000 by default: at 1,000 jobs/s a reader late by a
  // second or two would miss completions)
  const maxLen = Math.max(10000, n * 10);
  const queue = new Queue(name, { connection: qconn, streams: { events: { maxLen } } });
  // from the stream's start (the queue is new): read from '$', the
  // default, the reader's first XREAD can come after the warm-up job's
  // events, which are then never seen
  const events = new QueueEvents(name, { connection: econn, lastEventId: '0-0' });
  await queue.waitUntilReady();
  await events.waitUntilReady();
  // job id -> resolve, and the ids whose 'completed' came before add returned
  const waiting = new Map();
  const early = new Map();
  const settle = (jobId, err) => {
    const r = waiting.get(jobId);
    if (r) {
      waiting.delete(jobId);
      r(err);
    } else early.set(jobId, err);
  };
  events.on('completed', ({ jobId }) => settle(jobId, null));
  events.on('failed', ({ jobId, failedReason }) => settle(jobId, new Error(failedReason)));
  const finished = (jobId) =>
    new Promise((resolve, reject) => {
      const done = (err) => (err ? reject(err) : resolve());
      if (early.has(jobId)) {
        const err = early.get(jobId);
        early.delete(jobId);
        done(err);
      } else waiting.set(jobId, done);
    });
  const warm = setTimeout(() => {
    console.error('latency.js: no warm-up job finished within 60 s');
    process.exit(1);
  }, 60000);
  for (let i = 0; i < 3; i++) {
    const job = await queue.add('w', { i }, opts);
    await finished(job.id);
  }
  clearTimeout(warm);
  await c.sleep(idleMs);

  const interval = 1000 / rate;
  const lat = [];
  const head = [];
  const pending = [];
  let failed = 0;
  const one = async (i, at) => {
    try {
      const job = await queue.add('t', { i }, opts);
      await finished(job.id);
      const ms = performance.now() - at;
      lat.push(ms);
      if (at - start < headS * 1000) head.push(ms);
    } catch (e) {
      failed++;
      console.error(e.message);
    }
  };
  const c0 = c.cpuMark(procs);
  const start = performance.now();
  let sent = 0;
  while (sent < n) {
    const due = Math.min(n, Math.floor((performance.now() - start) / interval) + 1);
    while (sent < due) {
      sent++;
      pending.push(one(sent, start + (sent - 1) * interval));
    }
    const left = start + sent * interval - performance.now();
    if (left > 0) await c.sleep(left);
  }
  const t1 = performance.now();
  const deadline = Number(process.env.BULLMQ_DEADLINE_S || 60);
  let timer;
  await Promise.race([
    Promise.all(pending),
    new Promise((resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${waiting.size} jobs not finished ${deadline} s after the last add`)),
        deadline * 1000,
      );
    }),
  ]);
  clearTimeout(timer);
  const t2 = performance.now();
  const c2 = c.cpuMark(procs);
  if (failed) throw new Error(`${failed} jobs failed`);
  lat.sort((a, b) => a - b);
  head.sort((a, b) => a - b);
  const f = (x) => x.toFixed(2);
  console.log(
    `open loop at ${rate} jobs/s for ${durationS} s (${n} jobs, added in ${(t1 - start).toFixed(0)} ms, ` +
      `last result ${(t2 - t1).toFixed(0)} ms later): p50 ${f(c.pct(lat, 0.5))} ms, ` +
      `p99 ${f(c.pct(lat, 0.99))} ms, max ${f(lat[lat.length - 1])} ms; first ${headS} s: ` +
      `p50 ${f(c.pct(head, 0.5))} ms, p99 ${f(c.pct(head, 0.99))} ms, max ${f(head[head.length - 1])} ms`,
  );
  const g = (x) => x.toFixed(3);
  console.log(
    `RESULT mode=open tasks=${n} rate=${rate} ms=${(t2 - start).toFixed(1)} ` +
      `p50_ms=${g(c.pct(lat, 0.5))} p99_ms=${g(c.pct(lat, 0.99))} max_ms=${g(lat[lat.length - 1])} ` +
      `head_p50_ms=${g(c.pct(head, 0.5))} head_p99_ms=${g(c.pct(head, 0.99))} ` +
      `head_max_ms=${g(head[head.length - 1])} ${c.cpuFields(procs, c0, c2)}`,
  );
  child.removeAllListeners('exit');
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  await events.close();
  await queue.obliterate({ force: true });
  await queue.close();
  qconn.disconnect();
  econn.disconnect();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
